"""The consensus WAL as the driver uses it: in memory (simulations) or on disk.

`FileWAL` puts the records of consensus/wal_records.py into the file of
storage/wal.py: events without fsync (a crash may lose the last ones, as if they
had never arrived), signed messages and decisions fsynced before the driver
goes on (the fsync also covers the events before them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cloudchain.consensus import wal_records
from cloudchain.storage.wal import WAL


class MemoryWAL:
    """Records kept as objects; every append is durable (crashes come between effects)."""

    def __init__(self) -> None:
        self._records: list[tuple[str, Any, int]] = []

    def append(self, kind: str, payload: Any, now_ns: int) -> None:
        self._records.append((kind, payload, now_ns))

    def records(self) -> list[tuple[str, Any, int]]:
        return list(self._records)

    def rewrite(self, records: list[tuple[str, Any, int]]) -> None:
        self._records = list(records)

    def reopen(self) -> None:
        pass


class FileWAL:
    """The node's real WAL (storage/wal.py) with the records of consensus/wal_records.py:
    every record goes through encoding, the file, and decoding after a restart.

    The records are also kept in memory, decoded, as they were appended (or read when
    the file was opened), so that `records` after every commit does not read and
    decode the whole file again: a height of several rounds holds several proposals of
    full blocks, and decoding them all at each commit cost seconds under load. After a
    restart (`reopen`, or a new process) they come from the file, as before."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._wal = WAL.open(path)
        self._records = self._read()

    def append(self, kind: str, payload: Any, now_ns: int) -> None:
        encoded = _encode(kind, payload, now_ns)
        self._wal.append(encoded, sync=kind != "event")
        # As decode_record gives it back: only an event keeps its time.
        self._records.append(((kind, payload, now_ns if kind == "event" else 0), encoded))

    def records(self) -> list[tuple[str, Any, int]]:
        return [record for record, _ in self._records]

    def rewrite(self, records: list[tuple[str, Any, int]]) -> None:
        encoded_of = {id(record): encoded for record, encoded in self._records}
        kept = [(r, encoded_of.get(id(r)) or _encode(*r)) for r in records]
        self._wal.rewrite(encoded for _, encoded in kept)
        self._records = kept

    def reopen(self) -> None:
        """A restart: close the file and recover it as a new process would."""
        self._wal.close()
        self._wal = WAL.open(self._path)
        self._records = self._read()

    def _read(self) -> list[tuple[tuple[str, Any, int], Any]]:
        return [(wal_records.decode_record(r), r) for r in self._wal.records()]


def _encode(kind: str, payload: Any, now_ns: int) -> dict[str, Any]:
    if kind == "event":
        return wal_records.event_record(payload, now_ns)
    if kind == "signed":
        return wal_records.signed_record(payload)
    return wal_records.decided_record(payload)
