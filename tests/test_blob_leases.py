"""Leases and the quota of unanchored bytes in the blob store (blobs/store.py, "Leases").

An upload is leased, not pinned: its bytes count against `max_unanchored_bytes` until
its root is anchored (the `anchored` callable the node gives) or pinned; past the
quota a block is refused before it is written and the refused add rolls back what it
wrote; room is made by releasing anchored leases, then by dropping leases past their
grace, oldest first. The clock is a test's: no test waits for time to pass.
"""

import io
import json
import random

import pytest

from cloudchain.blobs import import_bytes
from cloudchain.blobs.flatfs import key_of
from cloudchain.blobs.importer import CHUNK_SIZE_BYTES
from cloudchain.blobs.leasefile import LeaseFileError
from cloudchain.blobs.store import BlobStore, InputSizeError, LeasePolicy, QuotaExceededError

CHUNK = CHUNK_SIZE_BYTES
S = 1_000_000_000  # ns
GRACE_NS = 100 * S


class Clock:
    """A clock the test moves: ns since the epoch."""

    def __init__(self, now_ns: int = 1_800_000_000 * S) -> None:
        self.now_ns = now_ns

    def __call__(self) -> int:
        return self.now_ns


class Anchors:
    """The roots "anchored on chain", as the node's `anchored_cids` gives them."""

    def __init__(self) -> None:
        self.roots: set = set()
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return sorted(self.roots, key=str)


class CountingReader:
    """A file's bytes, counting what is read of them."""

    def __init__(self, data: bytes) -> None:
        self._stream = io.BytesIO(data)
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        piece = self._stream.read(size)
        self.bytes_read += len(piece)
        return piece


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def dag_bytes(data: bytes) -> int:
    """What a lease of `data` counts: the bytes of the distinct blocks of its DAG."""
    blocks, _ = import_bytes(data)
    return sum(len(b.data) for b in {b.cid: b for b in blocks}.values())


def keys(store: BlobStore) -> list[str]:
    return sorted(store._fs.iter_keys())


def open_store(tmp_path, max_bytes: int, clock: Clock, anchored=None) -> BlobStore:
    return BlobStore(
        tmp_path / "store",
        policy=LeasePolicy(max_unanchored_bytes=max_bytes, grace_ns=GRACE_NS),
        clock=clock,
        anchored=anchored,
    )


def lease(store: BlobStore, data: bytes, **kwargs):
    return store.add(io.BytesIO(data), pin=False, lease=True, **kwargs)


# --- counting ---------------------------------------------------------------------------------


def test_an_upload_is_leased_counted_and_the_lease_survives_reopening(tmp_path):
    clock = Clock()
    data = payload(3 * CHUNK + 5, seed=1)
    with open_store(tmp_path, 10 * CHUNK, clock) as store:
        added = lease(store, data)
        assert added.leased and not added.pinned and store.pins() == []
        (held,) = store.leases()
        assert (held.root, held.bytes, held.added_ns) == (added.root, dag_bytes(data), clock())
        assert store.unanchored_bytes == dag_bytes(data)
        assert store.gc().blocks_removed == 0  # in its grace: a GC root like a pin
    document = json.loads((tmp_path / "store" / "leases.json").read_text())
    assert document["format"] == "cloudchain-leases" and document["leases"] == [
        {"cid": str(added.root), "bytes": dag_bytes(data), "added_ns": clock()}
    ]
    with open_store(tmp_path, 10 * CHUNK, clock) as store:
        assert store.leases() == [held] and store.unanchored_bytes == held.bytes
        assert store.stat(added.root).complete


def test_a_bad_lease_file_is_refused_and_a_torn_rewrite_is_ignored(tmp_path):
    clock = Clock()
    with open_store(tmp_path, 10 * CHUNK, clock) as store:
        added = lease(store, b"kept")
    path = tmp_path / "store" / "leases.json"
    (tmp_path / "store" / "leases.json.tmp").write_text("half a rewrite")
    with open_store(tmp_path, 10 * CHUNK, clock) as store:
        assert [held.root for held in store.leases()] == [added.root]
    assert not (tmp_path / "store" / "leases.json.tmp").exists()
    good = path.read_text()
    for bad, error in (
        ('{"format": "cloudchain-leases", "version": 1, "leases": [', "not JSON"),
        ('{"format": "cloudchain-pins", "version": 1, "pins": []}', "not a cloudchain-leases"),
        (good.replace('"bytes": ', '"bytes": -'), "bytes is not an integer"),
        (good.replace('"added_ns"', '"added"'), "not an object of"),
    ):
        path.write_text(bad)
        with pytest.raises(LeaseFileError, match=error):
            open_store(tmp_path, 10 * CHUNK, clock)


# --- refusing past the quota ------------------------------------------------------------------


def test_an_upload_past_the_quota_is_refused_midway_and_leaves_nothing(tmp_path):
    clock = Clock()
    first = payload(2 * CHUNK, seed=2)
    quota = dag_bytes(first) + 2 * CHUNK  # room for two more chunks, not five
    with open_store(tmp_path, quota, clock) as store:
        pinned = store.add(io.BytesIO(payload(CHUNK + 1, seed=3)))  # a pin: not counted
        held = lease(store, first)
        before = (
            keys(store),
            store.leases(),
            store.unanchored_bytes,
            store.counters.blocks_written,
        )
        assert before[2] == dag_bytes(first)
        big = CountingReader(payload(5 * CHUNK, seed=4))
        with pytest.raises(QuotaExceededError) as refused:
            store.add(big, pin=False, lease=True)  # streamed: its size is not announced
        error = refused.value
        assert error.max_unanchored_bytes == quota and not error.too_many_leases
        assert error.unanchored_bytes + error.needed_bytes > quota
        assert error.retry_after_s == GRACE_NS // S  # when the first lease's grace ends
        assert f"over the quota of {quota}" in str(error)
        assert CHUNK < big.bytes_read < 5 * CHUNK  # refused midway
        # Nothing of it is kept, nothing stored before is touched.
        assert (keys(store), store.leases(), store.unanchored_bytes) == before[:3]
        # Each file it wrote was removed (its first leaf's write may have been cancelled
        # before it started: then there is none).
        written = store.counters.blocks_written - before[3]
        assert store.counters.blocks_rolled_back == written
        assert store.stat(pinned.root, verify=True).complete
        assert store.stat(held.root, verify=True).complete
        assert not list((tmp_path / "store" / "blocks").glob("*/.tmp-*"))
        # Announced, the same upload is refused before a byte of it is read.
        announced = CountingReader(payload(5 * CHUNK, seed=4))
        with pytest.raises(QuotaExceededError):
            store.add(announced, pin=False, lease=True, expected_size=5 * CHUNK)
        assert announced.bytes_read == 0 and keys(store) == before[0]
        # Within the quota, an upload goes in.
        fits = lease(store, payload(CHUNK, seed=5))
        assert store.unanchored_bytes == before[2] + fits.dag_size


def test_any_failed_add_rolls_back_only_the_files_it_wrote(tmp_path):
    with open_store(tmp_path, 100 * CHUNK, Clock()) as store:
        shared = payload(2 * CHUNK, seed=6)
        kept = store.add(io.BytesIO(shared))
        with pytest.raises(InputSizeError):  # a truncated upload: the same two chunks, and more
            lease(store, shared + payload(CHUNK, seed=7), expected_size=4 * CHUNK)
        assert keys(store) == sorted(key_of(b.cid) for b in import_bytes(shared)[0])
        assert store.stat(kept.root, verify=True).complete and store.unanchored_bytes == 0


def test_a_roll_back_keeps_a_block_another_writer_claimed(tmp_path):
    blocks, _ = import_bytes(payload(2 * CHUNK, seed=8))
    one, two = blocks[0], blocks[1]
    with open_store(tmp_path, 100 * CHUNK, Clock()) as store:
        with store.hold(counted=True) as failing:
            failing.put_block(one.cid, one.data)
            failing.put_block(two.cid, two.data)
            assert store.unanchored_bytes == len(one.data) + len(two.data)
            with store.hold() as other:
                other.put_block(one.cid, one.data)  # found intact: it relies on our file
            assert failing.roll_back() == 1
        assert store.has(one.cid) and not store.has(two.cid)
        assert store.unanchored_bytes == 0  # a closed session counts nothing


def test_a_roll_back_keeps_a_block_claimed_before_it_and_used_after(tmp_path):
    """The race the symmetric marking closes: B claims a key, the failing session S
    claims and writes it, B finds S's file intact and ends; S's roll back keeps it."""
    (block,), _ = import_bytes(b"one block")
    key = key_of(block.cid)
    with open_store(tmp_path, 100 * CHUNK, Clock()) as store:
        with store.hold(counted=True) as failing:
            with store.hold() as earlier:
                assert store._claim(earlier, key, len(block.data))  # B, about to look
                assert failing.put_block(block.cid, block.data)  # S writes the file
                found, _ = store._write_unless_intact(
                    block.cid, key, block.data, sync_dir=True, session=earlier
                )
                assert not found  # B relies on S's file
            assert failing.roll_back() == 0
        assert store.get_block(block.cid) == block.data


# --- what does not count ----------------------------------------------------------------------


def test_pinned_and_anchored_blobs_do_not_count(tmp_path):
    clock, anchors = Clock(), Anchors()
    a, b, c = (payload(2 * CHUNK, seed=s) for s in (9, 10, 11))
    quota = dag_bytes(a) + CHUNK  # one such blob at a time
    with open_store(tmp_path, quota, clock, anchors) as store:
        first = lease(store, a)
        assert anchors.calls == 0  # room to spare: the chain is not asked
        with pytest.raises(QuotaExceededError):
            lease(store, b)
        assert anchors.calls == 1  # asked once, nothing anchored: refused
        assert store.pin(first.root)  # the operator's pin replaces the lease
        assert store.leases() == [] and store.unanchored_bytes == 0
        second = lease(store, b)
        anchors.roots.add(second.root)  # anchored on chain: released when room is short
        third = lease(store, c)
        assert [held.root for held in store.leases()] == [third.root]
        assert store.unanchored_bytes == dag_bytes(c)
        # GC keeps what the pin and the anchor (as `keep`) and the lease refer to.
        assert store.gc(keep=anchors()).blocks_removed == 0
        for root in (first.root, second.root, third.root):
            assert store.stat(root).complete
        # Unpinning drops a lease too: then GC collects it.
        assert store.unpin(third.root) and store.leases() == []
        assert store.gc(keep=anchors()).blocks_removed == len(set(import_bytes(c)[0]))


def test_the_number_of_leases_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr("cloudchain.blobs.store.LEASES_MAX", 2)
    monkeypatch.setattr("cloudchain.blobs.leasefile.LEASES_MAX", 2)
    with open_store(tmp_path, 100 * CHUNK, Clock()) as store:
        lease(store, b"one")
        lease(store, b"two")
        before = keys(store)
        with pytest.raises(QuotaExceededError, match="holds 2 unanchored blobs") as refused:
            lease(store, b"three")
        assert refused.value.too_many_leases and keys(store) == before
        with pytest.raises(QuotaExceededError):
            store.hold(counted=True).__enter__()  # a replica fetch is refused up front too


# --- oldest first -----------------------------------------------------------------------------


def test_room_is_made_from_expired_leases_oldest_first_and_only_as_needed(tmp_path):
    clock = Clock()
    blobs = [payload(2 * CHUNK, seed=20 + i) for i in range(4)]
    quota = 3 * dag_bytes(blobs[0])
    with open_store(tmp_path, quota, clock) as store:
        added = []
        for data in blobs[:3]:  # one second apart: the first is the oldest
            added.append(lease(store, data))
            clock.now_ns += S
        roots = [a.root for a in added]
        with pytest.raises(QuotaExceededError) as young:
            lease(store, blobs[3])  # all three within their grace: never dropped for room
        assert young.value.retry_after_s == GRACE_NS // S - 3
        clock.now_ns += GRACE_NS  # all three are past their grace now
        fourth = lease(store, blobs[3])
        # Only the oldest went, and its blocks with it; the other two are untouched.
        assert [held.root for held in store.leases()] == [roots[1], roots[2], fourth.root]
        assert not store.has(roots[0])
        assert all(store.stat(root, verify=True).complete for root in roots[1:])
        assert store.counters.leases_expired == 1
        # A GC drops every lease past its grace, oldest first, and keeps the young one.
        result = store.gc()
        assert result.leases_expired == (roots[1], roots[2])
        assert [held.root for held in store.leases()] == [fourth.root]
        assert not store.has(roots[1]) and not store.has(roots[2])
        assert store.stat(fourth.root).complete


def test_an_anchored_lease_is_released_before_any_is_dropped(tmp_path):
    clock, anchors = Clock(), Anchors()
    old, anchored, new = (payload(2 * CHUNK, seed=s) for s in (30, 31, 32))
    with open_store(tmp_path, 2 * dag_bytes(old), clock, anchors) as store:
        oldest = lease(store, old)
        clock.now_ns += S
        second = lease(store, anchored)
        anchors.roots.add(second.root)
        clock.now_ns += GRACE_NS  # both past their grace
        lease(store, new)
        # Releasing the anchored one made room: the oldest was not dropped.
        assert store.lease_of(oldest.root) is not None and store.lease_of(second.root) is None
        assert store.stat(second.root).complete and store.counters.leases_expired == 0
