"""The consensus write-ahead log: one append-only file of records, recovered after a crash.

The WAL owns the bytes of that one file: framing, checksums, durability of
appends, recovery of a torn tail on open, and the atomic `rewrite` that drops
records of heights already committed. What the records mean (messages, timeouts,
end-of-height markers) is the consensus layer's business; here a record is any
value `cloudchain.codec.encode` accepts, and `records` gives it back decoded
(maps read-only, lists as tuples).

Frame layout, one per record, back to back from offset 0:

    length   4 bytes, big-endian: payload bytes, 1..MAX_RECORD_BYTES
    crc      4 bytes, big-endian: zlib.crc32 of the payload (the IEEE CRC-32,
             not CRC32C; it guards against torn and garbled writes, not attackers)
    payload  codec.encode(record)

Durability: `append(..., sync=True)` returns only after the frame is fsynced;
the node does that before any message it signed leaves the process. With
sync=False the frame is in the kernel (it survives the process dying, not the
machine) until the next synced append, whose fsync covers it as well.

Recovery (on `open`): frames are read from the start, and the first frame that
is incomplete (header or payload), has a length out of bounds, fails its CRC or
does not decode ends the log. The file is truncated to the end of the last good
frame and fsynced, and the number of bytes dropped is `truncated_bytes`. This
holds even when valid-looking frames follow the bad one: a crash can only tear
the tail of an append-only file, so a bad frame in the middle means the file
was damaged some other way, and nothing after the first bad frame is trusted.

One process, one thread, one open WAL per file: there is no locking.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Iterable
from io import FileIO
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from cloudchain import codec
from cloudchain.fsutil import fsync_directory
from cloudchain.logfields import fields

log = logging.getLogger(__name__)

# Largest payload (encoded record) in bytes: 16 MiB, the codec's default decode
# bound. Consensus records are a message or a block part, far below it; a larger
# length in a header is garbage, so recovery can refuse it without reading it.
MAX_RECORD_BYTES = 16 * 1024 * 1024

# Frame header: payload length, CRC-32 of the payload; both unsigned 32-bit big-endian.
_HEADER = struct.Struct(">II")


class WALError(RuntimeError):
    """The WAL cannot be used: a write or fsync failed, or the file changed under it."""


class _BadFrame(Exception):
    """The frame at an offset is torn or corrupt; this ends the log (reason in args)."""


class WAL:
    """The write-ahead log in one file. Create with `WAL.open`."""

    def __init__(self, path: Path, file: FileIO, truncated_bytes: int) -> None:
        self.path = path
        # Bytes that recovery cut off the tail when this WAL was opened.
        self.truncated_bytes = truncated_bytes
        self._file: FileIO | None = file
        self._failed: BaseException | None = None

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> WAL:
        """Open (creating it and its parent directories if needed) and recover the WAL at `path`."""
        path = Path(path)
        _make_dirs(path.parent)
        # A rewrite that crashed before its os.replace leaves this; the WAL itself is intact.
        _temp_path(path).unlink(missing_ok=True)
        created = not path.exists()
        with open(path, "ab"):
            pass
        if created:
            fsync_directory(path.parent)
        with open(path, "rb") as f:
            _, good_end, problem = _scan(f)
            size = os.fstat(f.fileno()).st_size
        truncated = size - good_end
        if problem is not None:
            log.warning(
                "WAL torn tail truncated",
                extra=fields(path=str(path), problem=problem, bytes=truncated, offset=good_end),
            )
            with open(path, "r+b") as f:
                f.truncate(good_end)
                os.fsync(f.fileno())
        return cls(path, _open_for_append(path), truncated)

    def append(self, record: Any, *, sync: bool) -> None:
        """Write one record as one frame; with sync, fsync before returning.

        Raises ValueError (codec.CodecError included) for a record that cannot be
        encoded or whose encoding exceeds MAX_RECORD_BYTES; the file is untouched.
        """
        file = self._writable()
        frame = _frame(record)
        try:
            # One write call for the whole frame: a crash tears at most this frame.
            written = file.write(frame)
            if written != len(frame):
                raise OSError(f"short write to {self.path}: {written} of {len(frame)} bytes")
            if sync:
                os.fsync(file.fileno())
        except BaseException as exc:
            # A partial frame now ends the log (recovery would drop every append after
            # it), and after a failed fsync Linux may discard the dirty pages and report
            # the next fsync as a success. Refuse all further appends: the node must stop
            # and reopen, and recovery cuts the tail back to what is really there.
            self._failed = exc
            raise

    def records(self) -> list[Any]:
        """Every record in the file, in append order, read and checked from disk."""
        if self._file is None:
            raise ValueError("WAL is closed")
        with open(self.path, "rb") as f:
            records, good_end, problem = _scan(f)
        if problem is not None:
            raise WALError(f"WAL {self.path}: {problem} at offset {good_end}")
        return records

    def rewrite(self, records: Iterable[Any]) -> None:
        """Atomically replace the whole log with `records` (to drop committed heights).

        After a crash at any instant the file holds either the old records or the
        new ones. Raises ValueError, with the log unchanged, if any record cannot
        be appended.
        """
        self._writable()
        frames = [_frame(record) for record in records]  # all checked before any write
        temp = _temp_path(self.path)
        try:
            with open(temp, "wb") as f:
                for frame in frames:
                    f.write(frame)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, self.path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        try:
            # Until the directory is synced a crash may bring the old file back.
            fsync_directory(self.path.parent)
            file = _open_for_append(self.path)
        except BaseException as exc:
            self._failed = exc
            raise
        old, self._file = self._file, file
        if old is not None:
            old.close()

    def close(self) -> None:
        """Close the file; further appends raise. Closing twice is harmless."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> WAL:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _writable(self) -> FileIO:
        if self._file is None:
            raise ValueError("WAL is closed")
        if self._failed is not None:
            raise WALError(
                f"WAL {self.path}: an earlier write failed; reopen it to recover"
            ) from self._failed
        return self._file


def _frame(record: Any) -> bytes:
    payload = codec.encode(record)
    if len(payload) > MAX_RECORD_BYTES:
        raise ValueError(f"WAL record encodes to {len(payload)} bytes, limit is {MAX_RECORD_BYTES}")
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def _scan(f: BinaryIO) -> tuple[list[Any], int, str | None]:
    """Read frames from the start of `f` until the end or the first bad frame.

    Returns the records, the offset where the good frames end, and why the
    scan stopped early (None if it reached the end of the file cleanly).
    """
    size = os.fstat(f.fileno()).st_size
    records: list[Any] = []
    pos = 0
    while pos < size:
        try:
            record, length = _read_frame(f, size - pos)
        except _BadFrame as bad:
            return records, pos, str(bad)
        records.append(record)
        pos += _HEADER.size + length
    return records, pos, None


def _read_frame(f: BinaryIO, available: int) -> tuple[Any, int]:
    """Read the frame at the current position of `f`; return its record and payload length."""
    header = f.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise _BadFrame(f"incomplete header ({len(header)} of {_HEADER.size} bytes)")
    length, crc = _HEADER.unpack(header)
    # Zero is refused too: a tail of zeros (which some file systems leave after a
    # crash) would otherwise pass as a frame, since the CRC-32 of no bytes is 0.
    if not 0 < length <= MAX_RECORD_BYTES:
        raise _BadFrame(f"payload length {length} out of bounds")
    if length > available - _HEADER.size:
        raise _BadFrame(f"incomplete payload ({available - _HEADER.size} of {length} bytes)")
    payload = f.read(length)
    if len(payload) < length:
        raise _BadFrame(f"incomplete payload ({len(payload)} of {length} bytes)")
    if zlib.crc32(payload) != crc:
        raise _BadFrame("CRC mismatch")
    try:
        # Every msgpack object takes at least one byte, so max_objects=length never
        # refuses a payload that `append` wrote; the codec's default count would.
        record = codec.decode(payload, max_bytes=MAX_RECORD_BYTES, max_objects=length)
    except codec.CodecError as exc:
        raise _BadFrame(f"undecodable payload: {exc}") from None
    return record, length


def _open_for_append(path: Path) -> FileIO:
    """Unbuffered, so that each `write` is one system call that hands the kernel a whole frame."""
    return open(path, "ab", buffering=0)


def _temp_path(path: Path) -> Path:
    """Where `rewrite` builds the new file: same directory, so os.replace is atomic."""
    return path.with_name(f".{path.name}.rewrite.tmp")


def _make_dirs(directory: Path) -> None:
    """Create `directory` and missing ancestors, each new entry synced into its parent."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for new in reversed(missing):
        new.mkdir(exist_ok=True)
        fsync_directory(new.parent)
