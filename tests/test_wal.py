"""The consensus WAL: records survive reopening, and a torn or corrupt tail is cut away.

Files are damaged byte by byte (torn at every offset of a frame, every byte of a
frame flipped), and a real process is killed with SIGKILL while it appends:
every append that returned must be there after reopening, as a gapless prefix.
"""

from __future__ import annotations

import logging
import os
import select
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from cloudchain.codec import thaw
from cloudchain.storage.wal import MAX_RECORD_BYTES, WAL, WALError

ROOT = Path(__file__).resolve().parent.parent
CHILD_DEADLINE_S = 30
# The crash test kills the child once it has reported this many appends.
CHILD_MIN_APPENDS = 50

RECORDS = [
    {"type": "proposal", "height": 1, "round": 0, "block": b"\x00\x01" * 20},
    {"type": "vote", "height": 1, "round": 0, "sigs": [b"\xff" * 64, b"\x01" * 64]},
    {"type": "timeout", "height": 1, "round": 1, "step": "prevote"},
    [1, -2, "three", None, True],
    b"raw",
    2**64 - 1,
]


def contents(wal: WAL) -> list[Any]:
    """The WAL's records as plain values (decoding gives tuples and read-only maps)."""
    return [thaw(record) for record in wal.records()]


def write_records(path: Path, records: list[Any]) -> list[int]:
    """Append `records` to a fresh WAL; return the file offset where each frame ends."""
    ends = []
    with WAL.open(path) as wal:
        for record in records:
            wal.append(record, sync=True)
            ends.append(path.stat().st_size)
    return ends


@pytest.mark.parametrize("sync", [True, False])
def test_round_trip_across_reopen(tmp_path: Path, sync: bool) -> None:
    path = tmp_path / "a" / "b" / "wal"  # parents are created
    with WAL.open(path) as wal:
        assert wal.records() == []
        for record in RECORDS[:3]:
            wal.append(record, sync=sync)
        assert contents(wal) == RECORDS[:3]
    with WAL.open(path) as wal:
        assert wal.truncated_bytes == 0
        assert contents(wal) == RECORDS[:3]
        for record in RECORDS[3:]:
            wal.append(record, sync=sync)
    with WAL.open(path) as wal:
        assert wal.truncated_bytes == 0
        assert contents(wal) == RECORDS


def test_frame_layout(tmp_path: Path) -> None:
    path = tmp_path / "wal"
    with WAL.open(path) as wal:
        wal.append({"k": 1}, sync=True)
    payload = b"\x81\xa1k\x01"  # msgpack {"k": 1}
    assert path.read_bytes() == struct.pack(">II", len(payload), zlib.crc32(payload)) + payload


def test_torn_tail_at_every_offset(tmp_path: Path) -> None:
    path = tmp_path / "wal"
    ends = write_records(path, RECORDS[:3])
    intact = path.read_bytes()
    third_start = ends[1]
    assert ends[2] - third_start > 8  # the loop covers the header and the payload
    for cut in range(third_start, ends[2]):
        path.write_bytes(intact[:cut])
        with WAL.open(path) as wal:
            assert contents(wal) == RECORDS[:2], cut
            assert wal.truncated_bytes == cut - third_start, cut
            assert path.stat().st_size == third_start, cut
            wal.append(RECORDS[4], sync=False)
        with WAL.open(path) as wal:
            assert wal.truncated_bytes == 0, cut
            assert contents(wal) == [*RECORDS[:2], RECORDS[4]], cut


def test_flipped_byte_in_second_frame_ends_the_log(tmp_path: Path) -> None:
    # The third frame is intact, yet dropped: nothing after the first bad frame is trusted.
    path = tmp_path / "wal"
    ends = write_records(path, RECORDS[:3])
    intact = path.read_bytes()
    for pos in range(ends[0], ends[1]):  # header and payload of the second frame
        damaged = bytearray(intact)
        damaged[pos] ^= 0xFF
        path.write_bytes(damaged)
        with WAL.open(path) as wal:
            assert contents(wal) == RECORDS[:1], pos
            assert wal.truncated_bytes == len(intact) - ends[0], pos
        assert path.read_bytes() == intact[: ends[0]], pos


def test_undecodable_payload_with_valid_crc_is_cut(tmp_path: Path) -> None:
    path = tmp_path / "wal"
    ends = write_records(path, RECORDS[:2])
    payload = b"\xcb" + bytes(8)  # a msgpack float: not canonical
    with open(path, "ab") as f:
        f.write(struct.pack(">II", len(payload), zlib.crc32(payload)) + payload)
    with WAL.open(path) as wal:
        assert contents(wal) == RECORDS[:2]
        assert wal.truncated_bytes == 8 + len(payload)
    assert path.stat().st_size == ends[1]


@pytest.mark.parametrize(
    "tail",
    [
        struct.pack(">II", MAX_RECORD_BYTES + 1, 0) + b"garbage",
        struct.pack(">II", 0xFFFF_FFFF, 0xDEAD_BEEF),
        bytes(4096),  # zeros, as a file system may leave after a crash: length 0, CRC 0
    ],
    ids=["over-max", "max-u32", "zeros"],
)
def test_garbage_header_at_tail_is_cut(
    tmp_path: Path, tail: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "wal"
    ends = write_records(path, RECORDS[:2])
    with open(path, "ab") as f:
        f.write(tail)
    with caplog.at_level(logging.WARNING, logger="cloudchain.storage.wal"):
        wal = WAL.open(path)
    with wal:
        assert contents(wal) == RECORDS[:2]
        assert wal.truncated_bytes == len(tail)
    # Refused by its length alone, without looking for a payload.
    assert "out of bounds" in caplog.records[-1].fields["problem"]
    assert path.stat().st_size == ends[1]


def test_oversized_append_raises_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "wal"
    write_records(path, RECORDS[:2])
    before = path.read_bytes()
    with WAL.open(path) as wal:
        with pytest.raises(ValueError, match="limit"):
            wal.append(b"x" * MAX_RECORD_BYTES, sync=True)  # plus 5 bytes of bin32 header
        assert path.read_bytes() == before
        wal.append(RECORDS[2], sync=True)  # the WAL is still usable
    with WAL.open(path) as wal:
        assert contents(wal) == RECORDS[:3]


def test_largest_record_round_trips(tmp_path: Path) -> None:
    # What append accepts, recovery must accept: bytes at the limit, and more objects
    # than the codec's default decode bound.
    path = tmp_path / "wal"
    largest = b"y" * (MAX_RECORD_BYTES - 5)  # bin32: 5 header bytes
    many = list(range(100_000))
    with WAL.open(path) as wal:
        wal.append(largest, sync=True)
        wal.append(many, sync=True)
    with WAL.open(path) as wal:
        assert wal.truncated_bytes == 0
        assert contents(wal) == [largest, many]


def test_unencodable_record_raises_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "wal"
    with WAL.open(path) as wal:
        wal.append(RECORDS[0], sync=True)
        with pytest.raises(ValueError, match="float"):
            wal.append({"x": 1.5}, sync=True)
        wal.append(RECORDS[1], sync=True)
    with WAL.open(path) as wal:
        assert contents(wal) == RECORDS[:2]


def test_rewrite_replaces_content(tmp_path: Path) -> None:
    path = tmp_path / "wal"
    with WAL.open(path) as wal:
        for record in RECORDS[:4]:
            wal.append(record, sync=False)
        inode = path.stat().st_ino
        wal.rewrite(RECORDS[2:4])
        assert path.stat().st_ino != inode  # a new file, renamed over the old one
        assert contents(wal) == RECORDS[2:4]
        wal.append(RECORDS[4], sync=True)  # appends go to the new file
        assert contents(wal) == RECORDS[2:5]
    assert os.listdir(tmp_path) == ["wal"]  # no temp file left
    with WAL.open(path) as wal:
        assert wal.truncated_bytes == 0
        assert contents(wal) == RECORDS[2:5]
        wal.rewrite([])
    assert path.stat().st_size == 0
    with WAL.open(path) as wal:
        assert wal.records() == []
    assert os.listdir(tmp_path) == ["wal"]


def test_rewrite_with_a_bad_record_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "wal"
    write_records(path, RECORDS[:3])
    before = path.read_bytes()
    with WAL.open(path) as wal:
        with pytest.raises(ValueError, match="limit"):
            wal.rewrite([RECORDS[0], b"z" * MAX_RECORD_BYTES])
        assert path.read_bytes() == before
        assert contents(wal) == RECORDS[:3]
    assert os.listdir(tmp_path) == ["wal"]


def test_crash_during_rewrite_keeps_old_log(tmp_path: Path) -> None:
    # A rewrite killed before its os.replace leaves a temp file; the log is the old one.
    path = tmp_path / "wal"
    write_records(path, RECORDS[:3])
    (tmp_path / ".wal.rewrite.tmp").write_bytes(b"half a rewrite")
    with WAL.open(path) as wal:
        assert wal.truncated_bytes == 0
        assert contents(wal) == RECORDS[:3]
    assert os.listdir(tmp_path) == ["wal"]


def test_closed_and_failed_wal_refuse_appends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "wal"
    wal = WAL.open(path)
    wal.close()
    wal.close()
    with pytest.raises(ValueError, match="closed"):
        wal.append(RECORDS[0], sync=False)

    with WAL.open(path) as wal:
        wal.append(RECORDS[0], sync=True)

        def failing_fsync(fd: int) -> None:
            raise OSError("EIO")

        monkeypatch.setattr(os, "fsync", failing_fsync)
        with pytest.raises(OSError, match="EIO"):
            wal.append(RECORDS[1], sync=True)
        monkeypatch.undo()
        with pytest.raises(WALError, match="reopen"):
            wal.append(RECORDS[2], sync=True)


def test_records_refuses_a_file_damaged_while_open(tmp_path: Path) -> None:
    path = tmp_path / "wal"
    with WAL.open(path) as wal:
        wal.append(RECORDS[0], sync=True)
        with open(path, "ab") as f:
            f.write(b"\x00\x00")
        with pytest.raises(WALError, match="incomplete header"):
            wal.records()


# Appends records until killed, printing each index once its append has returned.
CHILD_SCRIPT = """
import sys
from cloudchain.storage.wal import WAL

wal = WAL.open(sys.argv[1])
i = 0
while True:
    wal.append({"i": i, "pad": bytes(i % 300)}, sync=True)
    print(i, flush=True)
    i += 1
"""


def child_record(i: int) -> dict[str, Any]:
    return {"i": i, "pad": bytes(i % 300)}


def read_indices(child: subprocess.Popen[bytes], count: int) -> int:
    """Read the child's stdout until it has printed `count` indices; return the last one."""
    assert child.stdout is not None
    fd = child.stdout.fileno()
    deadline = time.monotonic() + CHILD_DEADLINE_S
    pending = b""
    last = -1
    while last + 1 < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"child printed only {last + 1} indices in {CHILD_DEADLINE_S} s")
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            child.wait()
            assert child.stderr is not None
            raise AssertionError(f"child exited early: {child.stderr.read().decode()}")
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            assert int(line) == last + 1, "the child printed indices out of order"
            last += 1
    return last


def test_sigkill_while_appending_loses_no_returned_append(tmp_path: Path) -> None:
    path = tmp_path / "wal"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_SCRIPT, str(path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        last = read_indices(child, CHILD_MIN_APPENDS)
        child.kill()  # SIGKILL
        child.wait()
        # Whatever the child printed before it died also had its append returned.
        assert child.stdout is not None
        for line in child.stdout.read().split(b"\n"):
            if line.strip():
                assert int(line) == last + 1
                last += 1
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -9
    assert last >= CHILD_MIN_APPENDS - 1

    with WAL.open(path) as wal:
        records = contents(wal)
        assert len(records) - 1 >= last, "an append that returned is missing"
        assert records == [child_record(i) for i in range(len(records))]
        wal.append(child_record(len(records)), sync=True)
    with WAL.open(path) as wal:
        assert wal.truncated_bytes == 0
        assert contents(wal) == [child_record(i) for i in range(len(records) + 1)]
