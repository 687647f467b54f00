"""The mempool's rules one by one, over FakeApp (real transactions, fees in the args):
block order, eviction, replacement, per-sender bounds, the gapped pool, expiry, and
the re-check after a commit. tests/test_mempool_properties.py checks them together
on random sequences; tests/test_mempool.py runs the mempool on the real Application."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cloudchain.chaincode.codes import Code
from cloudchain.ledger import MAX_TX_BYTES, Transaction
from cloudchain.node.mempool import Mempool, MempoolLimits
from cloudchain.node.mempool.entry import pays_more_per_byte, rate_key
from cloudchain.node.mempool.limits import min_replacement_fee
from tests.helpers.chain import key
from tests.helpers.fake_app import FakeApp, pay

A, B, C, D = (key(f"rules-{name}") for name in ("a", "b", "c", "d"))


def pool_of(app: FakeApp | None = None, **limits: int) -> Mempool:
    return Mempool(app or FakeApp(), limits=MempoolLimits(**limits))


def admit(pool: Mempool, *txs: Transaction) -> None:
    for tx in txs:
        admission = pool.add(tx.to_bytes())
        assert admission.ok, admission.log


def raws(*txs: Transaction) -> list[bytes]:
    return [tx.to_bytes() for tx in txs]


# --- fee per byte -------------------------------------------------------------------------


@given(
    st.integers(0, 2**63 - 1),
    st.integers(1, MAX_TX_BYTES),
    st.integers(0, 2**63 - 1),
    st.integers(1, MAX_TX_BYTES),
)
def test_rate_keys_order_exactly_as_the_integer_cross_product(fee_a, size_a, fee_b, size_b):
    more = pays_more_per_byte(fee_a, size_a, fee_b, size_b)
    less = pays_more_per_byte(fee_b, size_b, fee_a, size_a)
    key_a, key_b = rate_key(fee_a, size_a), rate_key(fee_b, size_b)
    assert (key_a > key_b, key_a < key_b) == (more, less)


def test_rate_keys_tell_apart_the_closest_fractions_at_the_largest_size():
    n = MAX_TX_BYTES
    assert rate_key(n - 2, n - 1) < rate_key(n - 1, n)  # they differ by 1/(n(n-1))
    assert rate_key(1, n) < rate_key(1, n - 1)
    assert rate_key(3, 6) == rate_key(1, 2)


# --- block order --------------------------------------------------------------------------


def test_blocks_take_the_best_fee_per_byte_across_senders_and_nonce_order_within():
    pool = pool_of()
    a0, a1 = pay(A, 0, fee=10), pay(A, 1, fee=1_000)  # a dear one behind a cheap one
    b0 = pay(B, 0, fee=50)
    c0 = pay(C, 0, fee=50, pad=100)  # the same fee over more bytes: less per byte
    admit(pool, a1, a0, c0, b0)
    assert pool.reap() == raws(b0, c0, a0, a1)
    assert pool.reap(max_txs=2) == raws(b0, c0)


def test_equal_fees_per_byte_go_in_arrival_order():
    pool = pool_of()
    b0, a0, c0 = pay(B, 0, fee=7), pay(A, 0, fee=7), pay(C, 0, fee=7)
    admit(pool, b0, a0, c0)
    assert pool.reap() == raws(b0, a0, c0)


def test_a_reap_never_leaves_a_gap_and_passes_over_a_sender_that_does_not_fit():
    pool = pool_of()
    a0, a2 = pay(A, 0, fee=90), pay(A, 2, fee=900)  # nonce 1 missing: a2 waits apart
    b0, b1 = pay(B, 0, fee=80, pad=300), pay(B, 1, fee=800)
    c0 = pay(C, 0, fee=10)
    admit(pool, a0, a2, b0, b1, c0)
    assert pool.reap() == raws(a0, b0, b1, c0)
    # b0 does not fit in what a0 leaves: B is passed over (b1 would leave a gap), C goes.
    room = len(a0.to_bytes()) + len(c0.to_bytes())
    assert pool.reap(max_bytes=room) == raws(a0, c0)


# --- eviction -----------------------------------------------------------------------------


def test_a_full_ready_set_evicts_the_cheapest_tail_for_a_dearer_newcomer_only():
    pool = pool_of(max_txs=3)
    a0, a1, b0 = pay(A, 0, fee=1), pay(A, 1, fee=100), pay(B, 0, fee=5)
    admit(pool, a0, a1, b0)
    for fee in (4, 5):  # pays less, or as much: refused, nothing evicted
        refused = pool.add(pay(C, 0, fee=fee).to_bytes())
        assert refused.code == Code.MEMPOOL_FULL and "3 transactions" in refused.log
    c0 = pay(C, 0, fee=6)
    admit(pool, c0)
    # a0 pays least, but it is not a tail: evicting it would strand a1, which pays more.
    assert pool.reap() == raws(c0, a0, a1)
    assert pool.stats().evicted_txs == 1
    pool.check_invariants()


def test_eviction_goes_down_a_run_and_frees_bytes_for_a_large_newcomer():
    small = pay(A, 0, fee=2)
    size = len(small.to_bytes())
    pool = pool_of(max_txs=10, max_bytes=3 * size + 40)
    a0, a1, b0 = small, pay(A, 1, fee=3), pay(B, 0, fee=50)
    admit(pool, a0, a1, b0)
    big = pay(C, 0, fee=40, pad=40)  # needs the room of two: a1 (the tail), then a0
    admit(pool, big)
    assert pool.reap() == raws(b0, big)
    assert pool.stats().evicted_txs == 2
    pool.check_invariants()


def test_a_sender_never_evicts_its_own_transactions():
    pool = pool_of(max_txs=2)
    admit(pool, pay(A, 0, fee=1), pay(A, 1, fee=1))
    refused = pool.add(pay(A, 2, fee=1_000).to_bytes())
    assert refused.code == Code.MEMPOOL_FULL and len(pool) == 2


# --- replacement --------------------------------------------------------------------------


def test_a_replacement_needs_ten_percent_more_fee_and_strictly_more():
    assert [min_replacement_fee(f) for f in (0, 1, 9, 10, 100, 101)] == [1, 2, 10, 11, 110, 112]
    app = FakeApp()
    pool = pool_of(app)
    waiting = pay(A, 0, fee=100, amount=5)
    admit(pool, waiting)
    refused = pool.add(pay(A, 0, fee=109).to_bytes())
    assert refused.code == Code.NONCE_PENDING and refused.codespace == "mempool"
    assert "at least 110" in refused.log and "fee 100" in refused.log
    better = pay(A, 0, fee=110, amount=7)
    admit(pool, better)
    assert pool.reap() == raws(better) and waiting.hash not in pool
    assert pool.pending_cost(A.address) == 117
    zero = pay(B, 0, fee=0)
    admit(pool, zero)
    assert pool.add(pay(B, 0, fee=0, pad=1).to_bytes()).code == Code.NONCE_PENDING
    admit(pool, pay(B, 0, fee=1))
    pool.check_invariants()


def test_a_gapped_transaction_is_replaced_by_the_same_rule():
    pool = pool_of()
    gapped = pay(A, 3, fee=10)
    admit(pool, gapped)
    assert pool.add(pay(A, 3, fee=10, pad=3).to_bytes()).code == Code.NONCE_PENDING
    replaced = pay(A, 3, fee=11)
    admission = pool.add(replaced.to_bytes())
    assert admission.ok and admission.gapped
    assert pool.pending(10) == raws(replaced)


def test_a_replacement_that_moves_up_to_ready_is_handed_over_once_for_gossip():
    """A waiting gapped transaction (no ready room for it) replaced by one that now finds
    room: the admission says it is ready, so the node gossips it, and it is not among
    the promoted too (which would send it twice)."""
    pool = pool_of(max_txs=2)
    admit(pool, pay(B, 0, fee=1_000), pay(B, 1, fee=1_000), pay(A, 1, fee=10))
    admission = pool.add(pay(A, 0, fee=5_000).to_bytes())  # evicts B1; A1 still no room
    assert admission.ok and not admission.gapped
    pool.take_promoted()
    dearer = pay(A, 1, fee=100_000)
    replaced = pool.add(dearer.to_bytes())
    assert replaced.ok and not replaced.gapped  # ready now, evicting B0
    assert pool.take_promoted() == []
    assert pool.reap() == raws(pay(A, 0, fee=5_000), dearer)


# --- per-sender bounds --------------------------------------------------------------------


def test_each_sender_is_bounded_and_its_highest_gapped_makes_way_for_a_lower_nonce():
    pool = pool_of(max_txs_per_sender=3)
    a0, a1, a5 = pay(A, 0, fee=1), pay(A, 1, fee=1), pay(A, 5, fee=1)
    admit(pool, a0, a1, a5)
    beyond = pool.add(pay(A, 6, fee=1).to_bytes())
    assert beyond.code == Code.SENDER_FULL and "max_txs_per_sender" in beyond.log
    a2 = pay(A, 2, fee=1)
    admit(pool, a2)  # nearer to ready than a5, which goes
    assert pool.pending(10) == raws(a0, a1, a2) and pool.stats().evicted_txs == 1
    assert pool.add(pay(A, 3, fee=1).to_bytes()).code == Code.SENDER_FULL
    admit(pool, pay(B, 0, fee=1))  # another sender is not held back


def test_the_default_per_sender_bound_is_64():
    app = FakeApp()
    pool = Mempool(app)
    admit(pool, *(pay(A, n, fee=1) for n in range(64)))
    assert pool.add(pay(A, 64, fee=1).to_bytes()).code == Code.SENDER_FULL
    assert len(pool.reap()) == 64


# --- the gapped pool ----------------------------------------------------------------------


def test_gapped_transactions_wait_apart_unproposed_and_move_up_when_the_gap_fills():
    pool = pool_of()
    a2, a1 = pay(A, 2, fee=5), pay(A, 1, fee=5)
    for tx in (a2, a1):
        admission = pool.add(tx.to_bytes())
        assert admission.ok and admission.gapped and "waits for nonce 0" in admission.log
    stats = pool.stats()
    assert (stats.ready_txs, stats.gapped_txs) == (0, 2)
    assert pool.reap() == [] and pool.take_promoted() == []
    assert pool.pending(10) == raws(a2, a1)  # listed all the same: gapped in arrival order
    a0 = pay(A, 0, fee=5)
    admission = pool.add(a0.to_bytes())
    assert admission.ok and not admission.gapped
    assert pool.reap() == raws(a0, a1, a2)
    assert pool.take_promoted() == raws(a1, a2) and pool.take_promoted() == []
    pool.check_invariants()


def test_gapped_transactions_move_up_when_a_commit_fills_the_gap():
    app = FakeApp()
    pool = pool_of(app)
    a1 = pay(A, 1, fee=5)
    admit(pool, a1)
    elsewhere = pay(A, 0, fee=5)  # committed through another node's mempool
    app.commit([elsewhere])
    pool.update([elsewhere])
    assert pool.reap() == raws(a1) and pool.take_promoted() == raws(a1)


def test_the_gapped_pool_never_takes_the_ready_sets_room_nor_the_other_way():
    pool = pool_of(max_txs=2, max_gapped_txs=2, max_gapped_txs_per_sender=2)
    admit(pool, pay(A, 0, fee=1), pay(B, 0, fee=1))  # the ready set is full
    admit(pool, pay(C, 5, fee=1), pay(D, 5, fee=1))  # the gapped pool fills all the same
    full = pool.add(pay(C, 7, fee=1).to_bytes())
    assert full.code == Code.MEMPOOL_FULL and "gapped" in full.log
    assert pool.add(pay(C, 0, fee=1).to_bytes()).code == Code.MEMPOOL_FULL  # ready: full
    stats = pool.stats()
    assert (stats.ready_txs, stats.gapped_txs) == (2, 2)
    # A gapped newcomer paying more per byte evicts the cheapest gapped one.
    admit(pool, pay(C, 7, fee=9))
    assert pool.stats().gapped_txs == 2 and pool.stats().evicted_txs == 1
    pool.check_invariants()


def test_each_sender_has_a_small_share_of_the_gapped_pool():
    pool = pool_of(max_gapped_txs_per_sender=2)
    admit(pool, pay(A, 4, fee=1), pay(A, 8, fee=1))
    refused = pool.add(pay(A, 9, fee=1).to_bytes())
    assert refused.code == Code.SENDER_FULL and "max_gapped_txs_per_sender" in refused.log
    admit(pool, pay(A, 2, fee=1))  # a lower nonce: nonce 8 makes way
    assert {Transaction.from_bytes(r).nonce for r in pool.pending(10)} == {2, 4}


def test_a_promotion_waits_for_room_in_the_ready_set():
    app = FakeApp()
    pool = pool_of(app, max_txs=2)
    a0, a1 = pay(A, 0, fee=1), pay(A, 1, fee=1)
    b0 = pay(B, 0, fee=1)
    admit(pool, a1, b0)
    admit(pool, a0)  # a0 fills the gap, but the ready set is then full: a1 waits on
    assert pool.reap() == raws(b0, a0) and pool.take_promoted() == []
    pool.check_invariants()
    app.commit([b0])
    pool.update([b0])  # b0 leaves: room for a1
    assert pool.reap() == raws(a0, a1) and pool.take_promoted() == raws(a1)
    pool.check_invariants()


# --- expiry -------------------------------------------------------------------------------


def test_transactions_expire_after_ttl_num_blocks_and_their_senders_later_ones_are_gapped():
    app = FakeApp()
    pool = pool_of(app, ttl_num_blocks=2)
    a0 = pay(A, 0, fee=1)
    admit(pool, a0)
    pool.update([], height=1)
    a1 = pay(A, 1, fee=1)
    admit(pool, a1)  # arrives a block later
    pool.update([], height=2)
    assert len(pool) == 2 and pool.stats().expired_txs == 0
    pool.update([], height=3)  # a0 has seen 3 blocks: it leaves, a1 waits for nonce 0
    assert pool.stats().expired_txs == 1 and pool.reap() == []
    assert pool.stats().gapped_txs == 1
    pool.update([], height=4)
    assert len(pool) == 0 and pool.stats().expired_txs == 2
    pool.check_invariants()


def test_transactions_expire_after_ttl_duration():
    pool = pool_of(ttl_duration_ns=10 * 10**9)
    admit(pool, pay(A, 0, fee=1))
    pool.add(pay(B, 0, fee=1).to_bytes(), now_ns=5 * 10**9)
    pool.update([], now_ns=10 * 10**9)  # exactly the TTL: still waiting
    assert len(pool) == 2
    pool.update([], now_ns=10 * 10**9 + 1)
    assert pool.reap() == raws(pay(B, 0, fee=1)) and pool.stats().expired_txs == 1


def test_no_expiry_by_default():
    pool = pool_of()
    admit(pool, pay(A, 0, fee=1))
    pool.update([], height=10**6, now_ns=10**18)
    assert len(pool) == 1


# --- balance and the re-check -------------------------------------------------------------


def test_check_tx_sees_the_cost_of_the_senders_waiting_transactions():
    app = FakeApp({A.address: 1_000})
    pool = pool_of(app)
    admit(pool, pay(A, 0, fee=100, amount=200), pay(A, 5, fee=100, amount=300))
    assert app.asked_pending[-1] == (A.address, 5, 300)  # a gapped one counts too
    refused = pool.add(pay(A, 1, fee=100, amount=301).to_bytes())
    assert refused.code == Code.INSUFFICIENT_FUNDS and "700 waiting" in refused.log
    admit(pool, pay(A, 1, fee=100, amount=200))
    assert pool.pending_cost(A.address) == 1_000
    # A replacement's cost stands in for the one it replaces.
    admit(pool, pay(A, 1, fee=110, amount=190))
    assert app.asked_pending[-1] == (A.address, 1, 700)
    assert app.rechecked == 0  # each arrival is one check_tx: decoded and read once


def test_a_commit_rechecks_the_blocks_senders_in_nonce_order_without_verifying():
    app = FakeApp()
    pool = pool_of(app)
    a_txs = [pay(A, n, fee=1, amount=10) for n in range(4)]
    b0 = pay(B, 0, fee=1)
    admit(pool, *a_txs, b0, pay(A, 6, fee=1, amount=10))
    verified = app.verified
    app.asked_pending.clear()
    app.commit(a_txs[:2])
    assert pool.update(a_txs[:2]) == []
    assert app.verified == verified, "no signature verified after admission"
    # A's rest, in nonce order, each with the cost of those before it; B is not asked.
    assert app.asked_pending == [(A.address, 2, 0), (A.address, 3, 11), (A.address, 6, 22)]
    assert pool.stats().recheck_times == 3
    assert pool.reap() == raws(a_txs[2], a_txs[3], b0)  # equal per byte: arrival order


def test_a_transaction_failing_the_recheck_leaves_and_gaps_the_later_ones():
    app = FakeApp({A.address: 1_000})
    pool = pool_of(app)
    a0, a1, a2, a3 = (pay(A, n, fee=10, amount=a) for n, a in enumerate((90, 100, 500, 100)))
    admit(pool, a0, a1, a2, a3)
    app.commit([a0])
    app.balances[A.address] = 500  # spent elsewhere meanwhile: a2 no longer fits
    dropped = pool.update([a0])
    assert [(d.code, d.tx_hash) for d in dropped] == [(Code.INSUFFICIENT_FUNDS, a2.hash)]
    assert pool.reap() == raws(a1) and pool.stats().gapped_txs == 1
    assert pool.stats().recheck_failed_txs == 1
    cheaper = pay(A, 2, fee=10, amount=50)  # the sender sends nonce 2 anew: a3 is ready
    admit(pool, cheaper)
    assert pool.reap() == raws(a1, cheaper, a3) and pool.take_promoted() == raws(a3)
    pool.check_invariants()


def test_a_rival_committed_elsewhere_evicts_the_waiting_one_with_its_nonce():
    app = FakeApp()
    pool = pool_of(app)
    waiting, later = pay(A, 0, fee=1), pay(A, 1, fee=1)
    admit(pool, waiting, later)
    rival = pay(A, 0, fee=2, pad=1)
    app.commit([rival])
    dropped = pool.update([rival])
    assert [d.code for d in dropped] == [Code.NONCE_TOO_LOW]
    assert pool.reap() == raws(later)


def test_a_duplicate_is_refused_before_its_signature_is_verified_again():
    app = FakeApp()
    pool = pool_of(app)
    tx = pay(A, 0, fee=1)
    admit(pool, tx)
    assert pool.add(tx.to_bytes()).code == Code.TX_IN_MEMPOOL
    assert app.verified == 1


def test_a_committed_transaction_arriving_late_is_refused_without_verifying_it():
    app = FakeApp()
    pool = pool_of(app)
    tx, evicted_later = pay(A, 0, fee=1), pay(B, 0, fee=1)
    admit(pool, tx)
    app.commit([tx])
    pool.update([tx])
    verified = app.verified
    late = pool.add(tx.to_bytes())  # a slower peer's copy
    assert (late.code, late.codespace) == (Code.NONCE_TOO_LOW, "auth")
    assert "already committed" in late.log and late.tx_hash == tx.hash
    assert app.verified == verified and len(pool) == 0
    admit(pool, evicted_later)  # others are checked as usual
    assert app.verified == verified + 1


def test_the_committed_cache_is_bounded_and_forgets_the_oldest(monkeypatch):
    monkeypatch.setattr("cloudchain.node.mempool.pool.COMMITTED_CACHE_TXS", 2)
    app = FakeApp()
    pool = pool_of(app)
    txs = [pay(A, n, fee=1) for n in range(3)]
    for tx in txs:
        app.commit([tx])
        pool.update([tx])
    asked = len(app.asked_pending)
    assert pool.add(txs[2].to_bytes()).log == "transaction already committed: nonce 2 already used"
    assert len(app.asked_pending) == asked  # refused by its hash, not asked of check_tx
    forgotten = pool.add(txs[0].to_bytes())  # beyond the cache: check_tx refuses it
    assert forgotten.code == Code.NONCE_TOO_LOW and len(app.asked_pending) == asked + 1
