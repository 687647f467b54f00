"""Property tests of the mempool: random sequences of admissions, blocks and time.

A stateful hypothesis test (`MempoolMachine`) drives a Mempool with tight bounds over
FakeApp (tests/helpers/fake_app.py: real transactions and signatures, fees and costs
in the arguments) for a handful of senders: transactions at or ahead of the sender's
next nonce, replacements, fees and sizes that differ, amounts that outrun balances,
blocks reaped from the mempool or holding a rival of a waiting transaction, spending
that happens elsewhere, and time that passes. After every step it checks:

- the mempool's own invariants (Mempool.check_invariants: every bound, runs without
  holes, gapped ones after the run, the counts, pending costs, every candidate findable);
- a transaction with a forged signature is refused, whatever rule meets it first;
- an admission changes nothing when refused; when admitted, every transaction that
  left (but the one it replaced) paid strictly less per byte than the newcomer or than
  one it promoted, or was its own sender's highest gapped one, above its nonce;
- a reap is a valid block: each sender's nonces follow on from its next one, and each
  transaction taken is the best paying of the senders' heads (ties: the earlier);
- after a commit nothing waits with a used nonce, the included ones are gone, and no
  signature was verified (re-checks only);
- every transaction waiting past its TTL (blocks or time) has left, and counted.
"""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from cloudchain.ledger import Transaction
from cloudchain.node.mempool import Mempool, MempoolLimits
from cloudchain.node.mempool.entry import pays_more_per_byte
from tests.helpers.chain import key
from tests.helpers.fake_app import FakeApp, fee_and_cost, pay

SENDERS = tuple(key(f"mempool-sender-{i}") for i in range(5))
FORGER = key("mempool-forger")
LIMITS = MempoolLimits(
    max_txs=8,
    max_bytes=8 * 260,
    max_txs_per_sender=6,
    max_gapped_txs_per_sender=3,
    max_gapped_txs=5,
    max_gapped_bytes=5 * 260,
    ttl_num_blocks=5,
    ttl_duration_ns=30 * 10**9,
)
BALANCE = 2_000


class MempoolMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.app = FakeApp({k.address: BALANCE for k in SENDERS})
        self.pool = Mempool(self.app, limits=LIMITS)
        self.height = 0
        self.now_ns = 0
        self.arrival: dict[bytes, int] = {}  # hash -> order of admission (the pool's seq)
        self.admitted_at: dict[bytes, tuple[int, int]] = {}  # hash -> (height, time)
        self.arrivals = 0
        self.evicted_before = 0
        self.updated_ns = 0  # the clock at the last commit

    def _waiting(self) -> dict[bytes, Transaction]:
        return {
            tx.hash: tx for tx in (Transaction.from_bytes(raw) for raw in self.pool.pending(10**6))
        }

    @rule(
        sender=st.sampled_from(SENDERS),
        # About the end of what the sender has waiting: a replacement, the next, a gap.
        offset=st.sampled_from((-2, -1, 0, 0, 0, 1, 3)),
        fee=st.integers(0, 60),
        amount=st.integers(0, 700),
        pad=st.sampled_from((0, 10, 40)),
        forged=st.sampled_from((False, False, False, True)),
    )
    def add(self, sender, offset, fee, amount, pad, forged):
        before = self._waiting()
        next_nonce = self.app.nonce(sender.address)
        waiting = sum(tx.sender == sender.public_key for tx in before.values())
        tx = pay(sender, max(next_nonce, next_nonce + waiting + offset), fee, amount, pad)
        if forged:  # signed by another key: refused by whichever rule meets it first
            tx = tx.with_signature(FORGER.sign(tx.sign_bytes()))
        verified = self.app.verified
        admission = self.pool.add(tx.to_bytes(), now_ns=self.now_ns)
        assert self.app.verified <= verified + 1, "one signature a transaction at most"
        promoted = [Transaction.from_bytes(raw) for raw in self.pool.take_promoted()]
        after = self._waiting()
        assert not (forged and admission.ok), "a forged signature never gets in"
        if not admission.ok:
            assert admission.log and after.keys() == before.keys(), "a refusal changes nothing"
            assert not promoted
            return
        assert tx.hash in after and admission.tx_hash == tx.hash
        self.arrivals += 1
        self.arrival[tx.hash] = self.arrivals
        self.admitted_at[tx.hash] = (self.height, self.now_ns)
        size = len(tx.to_bytes())
        evictors = [(fee, size)] + [
            (fee_and_cost(p)[0], len(p.to_bytes())) for p in promoted if p.hash != tx.hash
        ]
        for gone in before.keys() - after.keys():
            old = before[gone]
            if old.sender == tx.sender and old.nonce == tx.nonce:
                continue  # replaced
            if old.sender == tx.sender:
                assert old.nonce > tx.nonce, "a sender makes way only for a lower nonce"
                continue
            old_fee, old_size = fee_and_cost(old)[0], len(old.to_bytes())
            assert any(pays_more_per_byte(f, s, old_fee, old_size) for f, s in evictors), (
                "evicted by one paying no more per byte"
            )

    @rule(max_txs=st.integers(0, 4), rival=st.none() | st.sampled_from(SENDERS))
    def commit(self, max_txs, rival):
        everything = [Transaction.from_bytes(raw) for raw in self.pool.reap()]
        self._check_block_order(everything)
        reaped = [Transaction.from_bytes(raw) for raw in self.pool.reap(max_txs=max_txs)]
        assert reaped == everything[:max_txs]
        block = list(reaped)
        if rival is not None and all(t.sender != rival.public_key for t in block):
            # A transaction this mempool never saw takes the sender's next nonce.
            block.append(pay(rival, self.app.nonce(rival.address), 0, 0, 5))
        self.app.commit(block)
        self.height += 1
        self.now_ns += 10**9
        verified = self.app.verified
        self.pool.update(block, height=self.height, now_ns=self.now_ns)
        self.updated_ns = self.now_ns
        ready = set(self.pool.reap())
        assert all(raw in ready for raw in self.pool.take_promoted()), "promoted: ready"
        assert self.app.verified == verified, "a re-check verifies no signature"
        waiting = self._waiting()
        assert not {t.hash for t in block} & waiting.keys()
        for tx in waiting.values():
            assert tx.nonce >= self.app.nonce(tx.sender_address), "a used nonce waits"

    @rule(seconds=st.integers(1, 40))
    def let_time_pass(self, seconds):
        self.now_ns += seconds * 10**9

    @rule(sender=st.sampled_from(SENDERS), spent=st.integers(1, BALANCE))
    def spend_elsewhere(self, sender, spent):
        self.app.balances[sender.address] = max(0, self.app.balance(sender.address) - spent)

    def _check_block_order(self, reaped):
        """Each taken transaction is the best-paying head, and no sender skips a nonce."""
        by_sender: dict[bytes, list[Transaction]] = {}
        for tx in reaped:
            by_sender.setdefault(tx.sender, []).append(tx)
        for txs in by_sender.values():
            start = self.app.nonce(txs[0].sender_address)
            assert [t.nonce for t in txs] == list(range(start, start + len(txs))), "a gap"
        position = {sender: 0 for sender in by_sender}
        for tx in reaped:
            heads = [txs[position[s]] for s, txs in by_sender.items() if position[s] < len(txs)]
            fee, size = fee_and_cost(tx)[0], len(tx.to_bytes())
            for other in heads:
                other_fee, other_size = fee_and_cost(other)[0], len(other.to_bytes())
                assert not pays_more_per_byte(other_fee, other_size, fee, size)
                if other_fee * size == fee * other_size:
                    assert self.arrival[tx.hash] <= self.arrival[other.hash], "ties: earlier"
            position[tx.sender] += 1

    @invariant()
    def holds(self):
        self.pool.check_invariants()
        stats = self.pool.stats()
        assert stats.evicted_txs >= self.evicted_before
        self.evicted_before = stats.evicted_txs

    @invariant()
    def nothing_waits_past_its_ttl_after_a_commit(self):
        for tx_hash in self._waiting():
            height, time_ns = self.admitted_at[tx_hash]
            assert self.height - height <= LIMITS.ttl_num_blocks
            assert self.updated_ns - time_ns <= LIMITS.ttl_duration_ns


TestMempoolMachine = MempoolMachine.TestCase
