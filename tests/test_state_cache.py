"""The chain store's latest-value cache answers exactly what the KV store would.

Against an uncached store (cache_bytes=0) and a plain model of the state, over
random blocks of writes and deletes, with reads before and after each commit,
evictions (a cache of a few entries), reopening the store, and reads at older
heights; a failed write leaves the cache at the old state. The crash between a
block's write and the cache's update is in test_crash_recovery.py.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloudchain.chaincode.codes import Code
from cloudchain.crypto import ADDRESS_BYTES
from cloudchain.ledger import HASH_BYTES, Block, BlockHeader
from cloudchain.storage.chain import BlockResults, ChainStore
from cloudchain.storage.kv import MemoryKV
from cloudchain.storage.statecache import (
    ENTRY_OVERHEAD_BYTES,
    UNKNOWN,
    LatestValues,
)
from tests.helpers.chain import ACCOUNTS, make_chain, transfer

ALICE, BOB = ACCOUNTS[0], ACCOUNTS[1]
# A small key space, so that blocks rewrite and delete keys the cache holds; keys with
# zero bytes and prefixes of each other, as the version layout must keep them apart.
KEYS = (b"a", b"a\x00", b"a\x00b", b"ab", b"b", b"nonce/x", b"balance/x", b"\x00")
values = st.one_of(st.none(), st.binary(min_size=0, max_size=40))
blocks = st.lists(st.dictionaries(st.sampled_from(KEYS), values, max_size=6), max_size=8)


def empty_block(height: int) -> Block:
    """A block with no transactions: the store commits state with any block."""
    header = BlockHeader(
        "cloudchain-test",
        height,
        height,
        b"",
        b"",
        b"\x00" * HASH_BYTES,
        b"\x00" * HASH_BYTES,
        b"\x00" * HASH_BYTES,
        b"\x00" * HASH_BYTES,
        b"\x00" * ADDRESS_BYTES,
    )
    return Block(header, (), None)


def commit(store: ChainStore, changes: Mapping[bytes, bytes | None]) -> None:
    diff = store.diff(changes)
    if diff.height == 0:
        store.commit(diff)
    else:
        store.commit(diff, empty_block(diff.height), BlockResults(()))


def live(state: dict[bytes, bytes | None]) -> dict[bytes, bytes]:
    return {k: v for k, v in state.items() if v is not None}


@given(
    blocks=blocks,
    cache_bytes=st.sampled_from([0, 2 * ENTRY_OVERHEAD_BYTES + 50, 10**6]),
    reads=st.lists(st.sampled_from(KEYS), max_size=12),
    reopen_at=st.integers(0, 8),
)
def test_cached_store_answers_as_an_uncached_store_over_random_blocks(
    blocks, cache_bytes, reads, reopen_at
):
    kv, plain_kv = MemoryKV(), MemoryKV()
    cached, plain = ChainStore(kv, cache_bytes=cache_bytes), ChainStore(plain_kv, cache_bytes=0)
    for key in reads:  # reads before genesis: None, which the cache may hold
        assert cached.get(key) is None
    model: dict[bytes, bytes | None] = {}
    history = []
    for height, changes in enumerate([{}, *blocks]):
        for key in reads:  # fill the cache with the values about to change
            assert cached.get(key) == model.get(key)
        commit(cached, changes)
        commit(plain, changes)
        model.update(changes)
        history.append(dict(model))
        if height == reopen_at:  # a restart: a new store over the same KV, an empty cache
            cached = ChainStore(kv, cache_bytes=cache_bytes)
        assert cached.app_hash == plain.app_hash
        for key in KEYS:
            assert cached.get(key) == plain.get(key) == model.get(key)
            assert cached.get(key, cached.height) == model.get(key)
    for height, state in enumerate(history):
        for key in KEYS:
            assert cached.get(key, height) == plain.get(key, height) == state.get(key)
        assert dict(cached.iterate(b"", height)) == live(state)
    assert cached.recompute_app_hash() == cached.app_hash


def test_values_written_by_a_block_replace_the_cached_ones_and_deletes_answer_none():
    store = ChainStore(MemoryKV())
    commit(store, {b"k": b"v0", b"gone": b"x"})
    assert (store.get(b"k"), store.get(b"gone"), store.get(b"never")) == (b"v0", b"x", None)
    commit(store, {b"k": b"v1", b"gone": None, b"never": b"now"})
    assert (store.get(b"k"), store.get(b"gone"), store.get(b"never")) == (b"v1", None, b"now")
    assert (store.get(b"k", 0), store.get(b"gone", 0), store.get(b"never", 0)) == (
        b"v0",
        b"x",
        None,
    )


class WriteFailsKV(MemoryKV):
    """A store whose writes fail, as a full disk would."""

    fail = False

    def write(self, changes, *, sync=True):
        if self.fail:
            raise OSError("disk full")
        super().write(changes, sync=sync)


def test_a_failed_write_leaves_the_cache_at_the_old_state():
    kv = WriteFailsKV()
    store = ChainStore(kv)
    commit(store, {b"k": b"old", b"d": b"here"})
    assert store.get(b"k") == b"old" and store.get(b"d") == b"here"  # both cached now
    kv.fail = True
    with pytest.raises(OSError, match="disk full"):
        commit(store, {b"k": b"new", b"d": None, b"n": b"born"})
    assert (store.get(b"k"), store.get(b"d"), store.get(b"n")) == (b"old", b"here", None)
    uncached = ChainStore(kv, cache_bytes=0)
    assert [uncached.get(k) for k in (b"k", b"d", b"n")] == [b"old", b"here", None]


def test_the_cache_of_a_chain_agrees_with_a_fresh_store_after_blocks():
    chain = make_chain()
    for nonce in range(5):
        chain.produce_block([transfer(ALICE, nonce, BOB.address, 50).to_bytes()])
    store = chain.app.store
    fresh = ChainStore(store._kv, cache_bytes=0)
    keys = [k for k, _ in fresh.iterate()] + [b"auth/nonce/" + b"0" * 40]
    assert [store.get(k) for k in keys] == [fresh.get(k) for k in keys]
    assert store.recompute_app_hash() == store.app_hash


# --- the cache itself -------------------------------------------------------------------


def test_lookup_tells_a_known_absent_key_from_an_unknown_one():
    cache = LatestValues()
    assert cache.lookup(b"k") is UNKNOWN
    cache.put(b"k", None)
    assert cache.lookup(b"k") is None
    cache.put(b"k", b"v")
    assert cache.lookup(b"k") == b"v"


def test_the_cache_stays_within_its_bytes_and_drops_the_least_recently_used():
    entry = ENTRY_OVERHEAD_BYTES + 2  # a one-byte key and a one-byte value
    cache = LatestValues(max_bytes=3 * entry)
    for key in (b"a", b"b", b"c"):
        cache.put(key, b"v")
    assert cache.lookup(b"a") == b"v"  # now the most recently used
    cache.put(b"d", b"v")
    assert len(cache) == 3 and cache.size_bytes <= 3 * entry
    assert cache.lookup(b"b") is UNKNOWN
    assert [cache.lookup(k) for k in (b"a", b"c", b"d")] == [b"v", b"v", b"v"]


def test_a_value_too_large_to_hold_drops_the_key_rather_than_leave_the_old_value():
    cache = LatestValues(max_value_bytes=8)
    cache.put(b"k", b"small")
    cache.put(b"k", b"x" * 9)
    assert cache.lookup(b"k") is UNKNOWN and cache.size_bytes == 0


class BreaksMidway(Mapping[bytes, bytes | None]):
    """Changes whose iteration fails after the first key, as running out of memory would."""

    def __getitem__(self, key: bytes) -> bytes | None:
        return b"new"

    def __len__(self) -> int:
        return 2

    def __iter__(self) -> Iterator[bytes]:
        yield b"a"
        raise MemoryError

    def items(self):  # type: ignore[override]
        for key in self:
            yield key, self[key]


def test_an_update_that_fails_part_way_empties_the_cache():
    cache = LatestValues()
    cache.put(b"a", b"old")
    cache.put(b"b", b"old")
    with pytest.raises(MemoryError):
        cache.apply(BreaksMidway())
    assert len(cache) == 0 and cache.size_bytes == 0
    assert cache.lookup(b"a") is UNKNOWN and cache.lookup(b"b") is UNKNOWN


def test_bounds_below_zero_are_refused():
    with pytest.raises(ValueError, match="at least 0"):
        LatestValues(max_bytes=-1)


# --- what the cache must not change --------------------------------------------------


def test_a_wrong_signature_is_refused_while_the_senders_state_is_cached():
    chain = make_chain()
    chain.produce_block([transfer(ALICE, 0, BOB.address, 5).to_bytes()])
    good = transfer(ALICE, 1, BOB.address, 5)
    assert chain.app.check_tx(good.to_bytes()).ok  # Alice's nonce and balance now cached
    forged = transfer(ALICE, 1, BOB.address, 500).with_signature(good.signature)
    assert chain.app.check_tx(forged.to_bytes()).code == Code.BAD_SIGNATURE
    block = chain.produce_block([forged.to_bytes(), good.to_bytes()]).block
    assert [tx.hash for tx in block.txs] == [good.hash]


@given(order=st.permutations(KEYS), cache_bytes=st.sampled_from([0, 400, 10**6]))
def test_neither_the_order_of_reads_nor_evictions_change_the_app_hash(order, cache_bytes):
    """The same blocks, read in another order through caches of other sizes (so other
    keys are cached or evicted when each diff is computed): the same app hashes."""
    changes = [{k: bytes([i, j]) for j, k in enumerate(KEYS) if (i + j) % 3} for i in range(4)]
    changes.append({k: None for k in KEYS[::2]})
    reference, store = (
        ChainStore(MemoryKV(), cache_bytes=0),
        ChainStore(MemoryKV(), cache_bytes=cache_bytes),
    )
    for block in changes:
        for key in order:
            store.get(key)
        commit(reference, block)
        commit(store, block)
        assert store.app_hash == reference.app_hash
        assert store.app_hash_at(store.height) == reference.app_hash
