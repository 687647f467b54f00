"""The node's consensus WAL keeps its records in memory as well as in its file: what
`records` answers is what the file holds, decoded, before and after a rewrite and a
reopen (node/consensus_wal.py)."""

from cloudchain.consensus.events import TimeoutElapsed, TimeoutKind
from cloudchain.node.consensus_wal import FileWAL
from cloudchain.storage.wal import WAL


def from_file(path) -> list:
    """What a new process would read."""
    wal = FileWAL(path)
    try:
        return wal.records()
    finally:
        wal._wal.close()


def test_records_in_memory_are_what_the_file_holds_through_rewrites_and_reopens(tmp_path):
    path = tmp_path / "cs.wal"
    wal = FileWAL(path)
    events = [TimeoutElapsed(h, r, TimeoutKind.PREVOTE) for h in (1, 2, 3) for r in (0, 1)]
    for n, event in enumerate(events):
        wal.append("event", event, 1_000 + n)
    assert (
        wal.records() == from_file(path) == [("event", e, 1_000 + n) for n, e in enumerate(events)]
    )
    kept = [r for r in wal.records() if r[1].height > 1]
    wal.rewrite(kept)
    assert wal.records() == kept == from_file(path)
    wal.append("event", TimeoutElapsed(4, 0, TimeoutKind.COMMIT), 9)
    assert wal.records() == from_file(path) and len(wal.records()) == 5
    wal.reopen()
    assert wal.records() == from_file(path)
    assert len(WAL.open(path).records()) == 5  # the file itself, frame by frame
