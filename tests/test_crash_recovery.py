"""A crash at any instant leaves the stores at the old height or the new one, never half.

Real processes on LevelDB are killed with SIGKILL while they commit blocks,
and reopened; the store must come back at a consistent height whose app hash
equals both a from-scratch recomputation and a reference chain's.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from cloudchain.storage.chain import ChainStore
from cloudchain.storage.kv import LevelDBKV, MemoryKV
from tests.helpers.crash_child import deterministic_chain, next_block_txs

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_S = 60


class Reference:
    """The same deterministic chain in memory, extended on demand."""

    def __init__(self) -> None:
        self.chain = deterministic_chain(MemoryKV())
        self.app_hashes = {0: self.chain.app.info().app_hash}
        self.block_hashes: dict[int, bytes] = {}

    def at(self, height: int) -> tuple[bytes, bytes]:
        while self.chain.app.info().height < height:
            produced = self.chain.produce_block(next_block_txs(self.chain))
            self.app_hashes[produced.block.height] = produced.result.app_hash
            self.block_hashes[produced.block.height] = produced.block.hash
        return self.app_hashes[height], self.block_hashes[height]


def start_child(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.crash_child", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def read_until_committed(child: subprocess.Popen[str], height: int) -> int:
    """Read the child's output until it reports `height` committed; return the last height."""
    deadline = time.monotonic() + DEADLINE_S
    last = -1
    assert child.stdout is not None
    while time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        word, value = line.split()
        last = int(value)
        if word == "committed" and last >= height:
            return last
    raise AssertionError(f"child did not reach height {height} (last line: {last})")


def assert_consistent(path: Path, reference: Reference, at_least: int) -> int:
    store = ChainStore(LevelDBKV(path))
    try:
        height = store.height
        assert height >= at_least, "a commit the child reported is missing"
        app_hash, block_hash = reference.at(height)
        assert store.app_hash == app_hash
        assert store.app_hash_at(height) == app_hash
        assert store.recompute_app_hash() == app_hash
        block = store.block(height)
        assert block is not None and block.hash == block_hash
        assert store.block(height + 1) is None, "a block above the committed height"
        results = store.block_results(height)
        assert results is not None and len(results.tx_results) == len(block.txs)
        for tx in block.txs:
            location = store.tx_location(tx.hash)
            assert location is not None and location[0] <= height
        return height
    finally:
        store.close()


def test_sigkill_while_committing_then_restart_and_continue(tmp_path):
    path = tmp_path / "db"
    reference = Reference()
    reported = 0
    for _ in range(3):
        child = start_child("run", str(path))
        try:
            reported = read_until_committed(child, reported + 3)
        finally:
            child.kill()  # SIGKILL: mid-commit as often as not, since it commits nonstop
            child.wait()
        reported = assert_consistent(path, reference, reported)
    assert reported >= 9


def test_exit_between_building_and_writing_the_batch_keeps_the_old_height(tmp_path):
    path = tmp_path / "db"
    reference = Reference()
    child = start_child("exit-at", str(path), "4")
    try:
        assert child.wait(timeout=DEADLINE_S) == 3
    finally:
        child.kill()
    assert child.stdout is not None
    assert child.stdout.read().split()[-1] == "3"
    assert assert_consistent(path, reference, 3) == 3
    # The restarted chain commits height 4 exactly as a chain that never crashed.
    child = start_child("run", str(path))
    try:
        read_until_committed(child, 5)
    finally:
        child.kill()
        child.wait()
    assert assert_consistent(path, reference, 5) >= 5


def test_exit_between_the_write_and_the_cache_update_reads_exactly_the_new_state(tmp_path):
    """The block's batch is on disk but the process dies before the store's latest-value
    cache learns of it: the restarted store must read the new height's state, from its
    cache as from LevelDB, and go on as a chain that never crashed."""
    path = tmp_path / "db"
    reference = Reference()
    child = start_child("exit-after", str(path), "4")
    try:
        assert child.wait(timeout=DEADLINE_S) == 3
    finally:
        child.kill()
    assert assert_consistent(path, reference, 4) == 4
    reference.at(4)
    expected = dict(reference.chain.app.store.iterate())
    store = ChainStore(LevelDBKV(path))
    try:
        uncached = ChainStore(store._kv, cache_bytes=0)
        keys = [*sorted(expected), b"auth/nonce/" + b"f" * 40]  # and one never written
        for _ in range(2):  # a miss fills the cache, then the cache answers
            assert [store.get(k) for k in keys] == [expected.get(k) for k in keys]
        assert [uncached.get(k) for k in keys] == [expected.get(k) for k in keys]
    finally:
        store.close()
    child = start_child("run", str(path))
    try:
        read_until_committed(child, 6)
    finally:
        child.kill()
        child.wait()
    assert assert_consistent(path, reference, 6) >= 6


class FailingKV(MemoryKV):
    """A store whose next write fails, as a full disk or an I/O error would."""

    fail = False

    def write(self, changes):
        if self.fail:
            raise OSError("disk full")
        super().write(changes)


def test_failed_write_leaves_the_store_and_application_unchanged():
    kv = FailingKV()
    chain = deterministic_chain(kv)
    chain.produce_block(next_block_txs(chain))
    store = chain.app.store
    height, app_hash = store.height, store.app_hash
    kv.fail = True
    with pytest.raises(OSError, match="disk full"):
        chain.produce_block(next_block_txs(chain))
    assert (store.height, store.app_hash) == (height, app_hash)
    reopened = ChainStore(kv)
    assert (reopened.height, reopened.app_hash) == (height, app_hash)
    assert reopened.recompute_app_hash() == app_hash
