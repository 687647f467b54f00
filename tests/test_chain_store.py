import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloudchain import codec
from cloudchain.storage import apphash
from cloudchain.storage.chain import ChainStore, StoreError
from cloudchain.storage.kv import LevelDBKV, MemoryKV
from tests.helpers.chain import ACCOUNTS, TEST_FEE, make_chain, transfer
from tests.helpers.crash_child import deterministic_chain, next_block_txs

ALICE, BOB = ACCOUNTS[0], ACCOUNTS[1]


@pytest.fixture(params=["memory", "leveldb"])
def kv(request, tmp_path):
    store = MemoryKV() if request.param == "memory" else LevelDBKV(tmp_path / "db")
    yield store
    store.close()


def test_values_are_readable_at_every_committed_height(kv):
    chain = make_chain(kv)
    store = chain.app.store
    key = b"token/balance/" + BOB.address.encode()
    seen = {0: store.get(key)}
    for nonce in range(4):
        chain.produce_block([transfer(ALICE, nonce, BOB.address, 10).to_bytes()])
        seen[store.height] = store.get(key)
    for height, value in seen.items():
        assert store.get(key, height) == value
    assert len(set(seen.values())) == 5
    with pytest.raises(StoreError, match="not committed"):
        store.get(key, store.height + 1)


def test_iterate_sees_each_key_once_at_its_version_and_hides_deletes(kv):
    chain = make_chain(kv)
    store = chain.app.store
    prefix = b"token/balance/"
    at_genesis = dict(store.iterate(prefix, 0))
    # Alice sends her whole balance (less the fee): her balance key is deleted at height 1.
    chain.produce_block([transfer(ALICE, 0, BOB.address, 1000 - TEST_FEE).to_bytes()])
    at_one = dict(store.iterate(prefix, 1))
    alice_key, bob_key = prefix + ALICE.address.encode(), prefix + BOB.address.encode()
    assert alice_key in at_genesis and alice_key not in at_one
    assert at_one[bob_key] != at_genesis[bob_key]
    assert list(store.iterate(prefix, 0)) == sorted(at_genesis.items())
    assert dict(store.iterate(prefix, 0)) == at_genesis  # history is intact


def _state_rows(kv) -> int:
    return sum(1 for _ in kv.scan(b"s/", b"s0"))


def test_a_pruned_store_keeps_the_last_heights_the_same_state_and_no_more_versions(kv):
    """The same blocks on a store keeping 3 heights and on one keeping all: the same app
    hashes and latest state, reads of the last 3 heights as before, older heights
    refused, and every key's versions beyond them gone (a deleted key's too)."""
    full = make_chain(MemoryKV())
    pruned = make_chain(kv, keep_heights=3)
    balance = b"token/balance/" + BOB.address.encode()
    for nonce in range(12):
        txs = [transfer(ALICE, nonce, BOB.address, 10).to_bytes()]
        assert full.produce_block(txs).result.app_hash == pruned.produce_block(txs).result.app_hash
    store, reference = pruned.app.store, full.app.store
    top = store.height
    for height in range(top - 2, top + 1):
        assert store.get(balance, height) == reference.get(balance, height)
        assert dict(store.iterate(b"token/", height)) == dict(reference.iterate(b"token/", height))
    with pytest.raises(StoreError, match="pruned"):
        store.get(balance, top - 3)
    # Bob's balance has 13 versions in full, at most 3 + 1 here
    versions = [row for row, _ in kv.scan(b"s/" + balance, b"s/" + balance + b"\x00\x02")]
    assert len(versions) <= 4 < 13
    assert _state_rows(kv) < _state_rows(full.app.store._kv)
    # Alice empties her account: her balance key is deleted, and 3 heights on, gone whole
    alice = b"token/balance/" + ALICE.address.encode()
    left = codec.decode(store.get(alice))
    pruned.produce_block([transfer(ALICE, 12, BOB.address, left - TEST_FEE).to_bytes()])
    assert store.get(alice) is None
    for _ in range(3):
        pruned.produce_block([])
    assert [row for row, _ in kv.scan(b"s/" + alice, b"s/" + alice + b"\x00\x02")] == []
    assert store.get(alice) is None and alice not in dict(store.iterate(b"token/"))


def test_a_pruned_store_keeps_the_blocks_results_and_indexes_of_the_last_heights_only(kv):
    """Below the kept heights a block, its results, its transactions' index entries and
    its event index entries are gone; within them they read as on a store keeping all."""
    full = make_chain(MemoryKV())
    pruned = make_chain(kv, keep_heights=3)
    sent = []
    for nonce in range(8):
        tx = transfer(ALICE, nonce, BOB.address, 10)
        sent.append(tx)
        full.produce_block([tx.to_bytes()])
        pruned.produce_block([tx.to_bytes()])
    store, reference = pruned.app.store, full.app.store
    top = store.height
    for height in range(top - 2, top + 1):
        assert store.block(height) == reference.block(height)
        assert store.block_results(height) == reference.block_results(height)
    for height in range(1, top - 2):
        assert store.block(height) is None and store.block_results(height) is None
        assert reference.block(height) is not None
        assert store.app_hash_at(height) == reference.app_hash_at(height)
    assert store.tx_result(sent[0].hash) is None and reference.tx_result(sent[0].hash)
    assert store.tx_result(sent[-1].hash) == reference.tx_result(sent[-1].hash)
    heights = [at for _, (at, _) in store.txs_with_event("transfer.sender")]
    assert heights == list(range(top - 2, top + 1))
    assert len(list(reference.txs_with_event("transfer.sender"))) == top
    assert len(list(kv.scan(b"b/", b"b0"))) == 3


def test_keys_with_zero_bytes_keep_their_order_and_prefixes():
    store = ChainStore(MemoryKV())
    state = {
        b"p": b"0",
        b"p\x00": b"1",
        b"p\x00\x00": b"2",
        b"p\x00a": b"3",
        b"p\x01": b"4",
        b"pa": b"5",
        b"q": b"6",
    }
    store.commit(store.diff(state))
    assert list(store.iterate(b"p")) == sorted((k, v) for k, v in state.items() if k != b"q")
    assert [k for k, _ in store.iterate(b"p\x00")] == [b"p\x00", b"p\x00\x00", b"p\x00a"]
    assert [k for k, _ in store.iterate(b"")] == sorted(state)
    for key, value in state.items():
        assert store.get(key) == value
    assert store.get(b"p\x02") is None


def test_diff_drops_writes_that_change_nothing():
    store = ChainStore(MemoryKV())
    store.commit(store.diff({b"k": b"v"}))
    diff = store.diff({b"k": b"v", b"gone": None})
    assert diff.changes == {}
    assert diff.app_hash == store.app_hash


@given(
    st.dictionaries(st.binary(min_size=1, max_size=6), st.binary(max_size=6), max_size=12),
    st.randoms(use_true_random=False),
)
def test_app_hash_depends_on_the_state_not_on_the_order_of_writes(state, rng):
    items = list(state.items())
    rng.shuffle(items)
    a, b = ChainStore(MemoryKV()), ChainStore(MemoryKV())
    a.commit(a.diff(dict(state)))
    b.commit(b.diff(dict(items)))
    assert a.app_hash == b.app_hash == apphash.digest(apphash.from_items(state.items()))
    assert a.recompute_app_hash() == a.app_hash


def test_app_hash_changes_with_any_value():
    a, b = ChainStore(MemoryKV()), ChainStore(MemoryKV())
    a.commit(a.diff({b"k": b"v1"}))
    b.commit(b.diff({b"k": b"v2"}))
    assert a.app_hash != b.app_hash
    c = ChainStore(MemoryKV())
    c.commit(c.diff({b"kv": b"1"}))
    d = ChainStore(MemoryKV())
    d.commit(d.diff({b"k": b"v1"}))  # same concatenation, different split
    assert c.app_hash != d.app_hash


def test_incremental_app_hash_matches_recomputation_after_blocks(kv):
    chain = make_chain(kv)
    for nonce in range(5):
        chain.produce_block(
            [transfer(ALICE, nonce, BOB.address, 200).to_bytes()]  # the last ones overdraw
        )
    store = chain.app.store
    assert store.recompute_app_hash() == store.app_hash
    for height in range(store.height + 1):
        assert store.recompute_app_hash(height) == store.app_hash_at(height)


def test_blocks_and_transactions_are_found_by_height_and_hash(kv):
    chain = make_chain(kv)
    tx = transfer(ALICE, 0, BOB.address, 7)
    produced = chain.produce_block([tx.to_bytes()])
    store = chain.app.store
    assert store.block(1) == produced.block
    assert store.block_height(produced.block.hash) == 1
    assert store.tx_location(tx.hash) == (1, 0)
    result = store.tx_result(tx.hash)
    assert result is not None and result.ok and result.height == 1 and result.index == 0
    assert [e.type for e in result.events] == ["fee", "message", "transfer"]
    assert store.block(2) is None
    assert store.block_height(b"\x00" * 32) is None
    assert store.tx_result(b"\x00" * 32) is None


def test_reopened_store_has_everything(tmp_path):
    chain = make_chain(LevelDBKV(tmp_path / "db"))
    for nonce in range(3):
        chain.produce_block([transfer(ALICE, nonce, BOB.address, 1).to_bytes()])
    before = chain.app.store
    height, app_hash, last = before.height, before.app_hash, before.last_block
    before.close()
    after = ChainStore(LevelDBKV(tmp_path / "db"))
    assert (after.height, after.app_hash, after.last_block) == (height, app_hash, last)
    after.close()


def test_commit_out_of_order_is_refused():
    store = ChainStore(MemoryKV())
    diff = store.diff({b"k": b"v"})
    store.commit(diff)
    with pytest.raises(StoreError, match="height 0 on top of height 0"):
        store.commit(diff)
    with pytest.raises(StoreError, match="block and its results are required"):
        store.commit(store.diff({b"k": b"w"}))


def test_iterate_answers_every_height_of_a_key_with_a_long_history(kv):
    chain = make_chain(kv)
    store = chain.app.store
    prefix = b"token/balance/"
    snapshots = {0: list(store.iterate(prefix))}
    for nonce in range(40):  # Alice and Bob change at every height
        chain.produce_block([transfer(ALICE, nonce, BOB.address, 1).to_bytes()])
        snapshots[store.height] = list(store.iterate(prefix))
    for height, snapshot in snapshots.items():
        assert list(store.iterate(prefix, height)) == snapshot
        assert list(store.iterate(b"", height)) == sorted(store.iterate(b"", height))
    assert len({tuple(s) for s in snapshots.values()}) == 41


# The app hashes of a fixed chain and of a fixed update, as the code before issue 15's
# speed work (f0a1554) computed them: a faster path must give the same bytes.
PINNED_CHAIN_APP_HASHES = (
    "6d97d9de21a07ad44c39867e35f888f77dd41fe74f673aae9bd99b3de8a6c642",
    "31b31af5e1f2a1a720f05301596ada8ac9f8ab3efab5722c6234990b82ad4a67",
    "0b91f7fa4592491d1f4d53ef5653f6b9b83050289c741361dcdf164cec51f04f",
    "c459b2ead041bafaebf508a33bfa5d8f53097cc8ccb3065bf1b13377e8446f34",
    "7bf039b016dcea98117a1e3e08a5f3b8554b9e334302bdd9a407071232df5c36",
    "32f4ef910f0dc8ec9c38934a775c8f74cac855b51c27c52449cca7fb976a758a",
)
PINNED_UPDATE_APP_HASH = "235663d94c1c623d4c3db1ea17b83b0e2437bf991789fda162fb7c7113ef8768"


def test_app_hashes_are_the_pinned_ones():
    chain = deterministic_chain(MemoryKV())
    hashes = [chain.app.info().app_hash.hex()]
    for _ in range(5):
        hashes.append(chain.produce_block(next_block_txs(chain)).result.app_hash.hex())
    assert tuple(hashes) == PINNED_CHAIN_APP_HASHES
    items = [(b"k%d" % i, b"v" * i) for i in range(50)]
    acc = apphash.update(apphash.from_items(items), [(b"new", b"x")], items[:7])
    assert apphash.digest(acc).hex() == PINNED_UPDATE_APP_HASH


edges = st.sampled_from([0, 1, 2, apphash.MODULUS - 1, 2**3072 - 1])
pairs = st.lists(st.tuples(st.binary(max_size=8), st.binary(max_size=8)), max_size=6)


@given(acc=st.one_of(edges, st.integers(1, 2**3072 - 1)), added=pairs, removed=pairs)
def test_update_is_the_product_and_quotient_mod_p_in_python_integers(acc, added, removed):
    p = apphash.MODULUS
    numerator = acc
    for key, value in added:
        numerator = numerator * apphash.element(key, value) % p
    denominator = 1
    for key, value in removed:
        denominator = denominator * apphash.element(key, value) % p
    expected = numerator * pow(denominator, -1, p) % p
    got = apphash.update(acc, added, removed)
    assert type(got) is int
    assert got == (expected if added or removed else acc)  # no change: acc as it was


def test_the_latest_results_kept_in_memory_are_those_on_disk(tmp_path):
    kv = LevelDBKV(tmp_path / "db")
    chain = make_chain(kv)
    store = chain.app.store
    chain.produce_block([transfer(ALICE, 0, BOB.address, 10).to_bytes()])
    chain.produce_block(
        [
            transfer(ALICE, 1, BOB.address, 1).to_bytes(),
            transfer(BOB, 0, ALICE.address, 2).to_bytes(),
        ]
    )
    height = store.height
    in_memory = store.block_results(height)
    earlier = store.block_results(height - 1)
    kv.close()
    reopened = ChainStore(LevelDBKV(tmp_path / "db"))
    try:
        assert in_memory is not None and len(in_memory.tx_results) == 2
        assert reopened.block_results(height) == in_memory
        assert reopened.block_results(height - 1) == earlier
    finally:
        reopened.close()
