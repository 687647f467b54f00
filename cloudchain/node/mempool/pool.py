"""The mempool: transactions admitted by check_tx, waiting for a block.

    add(raw)       check_tx, then the mempool's rules; ready or gapped, or refused
    reap(n)        a block's candidates: fee per byte across senders, nonce order within
    update(txs)    after a commit: the included leave, the rest of their senders are
                   re-checked (recheck_tx: no signature verified again), the old expire

Each sender's transactions are a ready run (nonces following on from its next nonce:
the only ones proposed and gossiped) and gapped ones (nonce ahead of the run's end),
which wait apart, bounded apart, and move to the ready run when the hole before them
fills. The ready set is bounded by count and bytes ([mempool] max_txs, max_bytes),
the gapped pool by its own per-sender and total bounds, so gapped transactions never
take the room of ready ones; every sender by max_txs_per_sender across both.

Rules of precedence, all in integers:
- Full: a newcomer evicts the cheapest per byte of the others, only if it pays
  strictly more per byte than each one it evicts (eviction.py). In the ready set only a
  sender's *last* ready transaction (the tail of its run) can be evicted, so that no
  run ever gets a hole and no later transaction of the victim, which may pay more than
  the newcomer, goes with it; once a tail goes, the transaction before it is a tail too.
- A sender at its own bounds makes way for a lower nonce by dropping its highest gapped
  transaction (it is the furthest from ready); otherwise it is refused (SENDER_FULL).
- A waiting (sender, nonce) is replaced only by a fee at least 10% higher and strictly
  higher (limits.py); otherwise NONCE_PENDING, the log naming the fee that would do.
- Balance: check_tx sees the cost of the sender's waiting transactions (less that of
  the one a replacement would take the place of). The mempool learns the sender only
  from check_tx's decoding, so it gives check_tx a function of the decoded transaction
  that finds that cost (`_pending_before`): one decoding, at most one signature check
  and one read of the state per arrival.
- After a commit, each sender with a transaction in the block is re-checked in nonce
  order, each with the cost of the ones before it that stayed. One that fails leaves;
  the later ones, re-checked too, are gapped by the hole it leaves (they go ready again
  when the sender sends that nonce anew) as far as the gapped bounds allow, the rest
  leave as evicted. Other senders are not re-checked: only a sender's own transactions
  move its nonce or (fees, amounts) take from its balance.
- Expiry ([mempool] ttl_num_blocks, ttl_duration_s): checked after each commit, in
  arrival order; the later transactions of an expired one's sender are gapped by it.
- The signature is verified last, once every rule here has let the newcomer in (check_tx
  with verify=False, then the application's verify_signature): a transaction refused for
  a full mempool, its sender's bounds or a replacement fee costs no verification, which
  is what keeps refusals cheap under overload. A bad signature is refused whatever the
  order, with check_tx's code and log.
- A signature is verified once per node: a transaction waiting here, or among the last
  COMMITTED_CACHE_TXS committed, is refused by its hash before check_tx (a copy gossiped
  by a second peer, or late). One that left otherwise (evicted, expired, refused by the
  re-check) may come back, and is then checked as new.

Pure: no I/O and no clock. The node passes the time of arrival and of each commit
(a clock that never goes back) and the committed height; `take_promoted` hands it the
transactions that became ready from gapped, for it to gossip.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from cloudchain import codec
from cloudchain.chaincode.application import BAD_SIGNATURE_LOG, CheckResult, PendingCost
from cloudchain.chaincode.codes import AUTH_CODESPACE, MEMPOOL_CODESPACE, Code
from cloudchain.ledger import Transaction
from cloudchain.node.mempool.entry import Entry
from cloudchain.node.mempool.eviction import CheapestFirst
from cloudchain.node.mempool.limits import (
    COMMITTED_CACHE_TXS,
    REPLACEMENT_BUMP_PERCENT,
    MempoolLimits,
    min_replacement_fee,
)
from cloudchain.node.mempool.priority import block_order
from cloudchain.node.mempool.sender import SenderQueue


class MempoolApp(Protocol):
    """What the mempool asks of the application (CONTRACT.md)."""

    def check_tx(
        self, raw: bytes, *, pending_cost: PendingCost = 0, verify: bool = True
    ) -> CheckResult: ...

    def verify_signature(self, tx: Transaction) -> bool: ...

    def recheck_tx(self, tx: Transaction, *, pending_cost: int = 0) -> CheckResult: ...

    def nonce(self, address: str) -> int: ...


@dataclass(frozen=True)
class Admission:
    code: Code
    codespace: str
    log: str
    tx_hash: bytes  # empty when the bytes are not a transaction
    gapped: bool = False  # admitted to wait apart: not to be gossiped (yet)

    @property
    def ok(self) -> bool:
        return self.code == Code.OK


@dataclass(frozen=True)
class MempoolStats:
    """Sizes now, and running counts since the mempool was made (for /metrics)."""

    ready_txs: int
    ready_bytes: int
    gapped_txs: int
    gapped_bytes: int
    evicted_txs: int  # made way for another transaction, or demoted with no gapped room
    expired_txs: int
    recheck_times: int  # recheck_tx calls after commits
    recheck_failed_txs: int  # left because recheck_tx refused them


class Mempool:
    def __init__(
        self,
        app: MempoolApp,
        max_txs: int | None = None,
        max_bytes: int | None = None,
        *,
        limits: MempoolLimits | None = None,
        height: int = 0,
    ) -> None:
        """`max_txs` and `max_bytes`, when given, override those of `limits`; `height` is
        the committed height the mempool starts at."""
        limits = limits or MempoolLimits()
        if max_txs is not None:
            limits = dataclasses.replace(limits, max_txs=max_txs)
        if max_bytes is not None:
            limits = dataclasses.replace(limits, max_bytes=max_bytes)
        self._app = app
        self.limits = limits
        self._height = height
        self._senders: dict[str, SenderQueue] = {}
        self._by_hash: dict[bytes, Entry] = {}  # in arrival order (expiry walks it)
        self._ready_txs = self._ready_bytes = 0
        self._gapped_txs = self._gapped_bytes = 0
        self._tails = CheapestFirst(self._is_tail)
        self._gapped_heap = CheapestFirst(self._is_gapped)
        self._blocked: set[str] = set()  # senders whose filled hole waits for ready room
        self._promoted: list[bytes] = []
        self._committed: dict[bytes, int] = {}  # hash -> nonce, the latest commits last
        self._seq = 0
        self._evicted = self._expired = self._rechecks = self._recheck_failed = 0

    # --- reading ---------------------------------------------------------------------------

    @property
    def max_txs(self) -> int:
        return self.limits.max_txs

    @property
    def max_bytes(self) -> int:
        return self.limits.max_bytes

    @property
    def ready_count(self) -> int:
        """Ready transactions waiting: what the next block can take."""
        return self._ready_txs

    def __len__(self) -> int:
        """Every waiting transaction, ready and gapped."""
        return len(self._by_hash)

    @property
    def size_bytes(self) -> int:
        return self._ready_bytes + self._gapped_bytes

    def __contains__(self, tx_hash: bytes) -> bool:
        return tx_hash in self._by_hash

    def stats(self) -> MempoolStats:
        return MempoolStats(
            self._ready_txs,
            self._ready_bytes,
            self._gapped_txs,
            self._gapped_bytes,
            self._evicted,
            self._expired,
            self._rechecks,
            self._recheck_failed,
        )

    def pending_cost(self, address: str) -> int:
        """What the sender's waiting transactions may take from its balance."""
        queue = self._senders.get(address)
        return 0 if queue is None else queue.pending_cost

    def _pending_before(self, tx: Transaction) -> int:
        """What check_tx must leave room for besides `tx`: the sender's waiting costs,
        but for the one `tx` would replace (its nonce's)."""
        queue = self._senders.get(tx.sender_address)
        if queue is None:
            return 0
        old = queue.entry_at(tx.nonce)
        return queue.pending_cost - (0 if old is None else old.cost)

    def reap(self, max_txs: int | None = None, max_bytes: int | None = None) -> list[bytes]:
        """Candidates for a block: ready transactions only, in block order (priority.py),
        at most `max_txs` of them and `max_bytes` of their raw bytes."""
        return [e.raw for e in block_order(self._senders.values(), max_txs, max_bytes)]

    def pending(self, limit: int) -> list[bytes]:
        """Up to `limit` waiting transactions: the ready ones in block order, then the
        gapped ones in arrival order."""
        listed = self.reap(max_txs=limit)
        if len(listed) < limit:
            gapped = sorted(
                (e for q in self._senders.values() for e in q.gapped.values()),
                key=lambda e: e.seq,
            )
            listed.extend(e.raw for e in gapped[: limit - len(listed)])
        return listed

    def take_promoted(self) -> list[bytes]:
        """The transactions that moved from gapped to ready since the last call."""
        promoted, self._promoted = self._promoted, []
        return promoted

    # --- admission -------------------------------------------------------------------------

    def add(self, raw: bytes, *, now_ns: int = 0) -> Admission:
        """check_tx, then the mempool's own rules; admitted only if all pass. `now_ns`:
        the node's clock (expiry by time)."""
        tx_hash = codec.sha256(raw)  # a transaction's hash is that of its canonical bytes
        if tx_hash in self._by_hash:  # before check_tx: no signature verified twice
            return _refuse(Code.TX_IN_MEMPOOL, "transaction already in the mempool", tx_hash)
        if (used := self._committed.get(tx_hash)) is not None:  # check_tx would refuse it
            return Admission(
                Code.NONCE_TOO_LOW,
                AUTH_CODESPACE,
                f"transaction already committed: nonce {used} already used",
                tx_hash,
            )
        # The signature last (`_verified`), after every rule here: a newcomer a full
        # mempool refuses, or one over its sender's bounds, costs no verification.
        check = self._app.check_tx(raw, pending_cost=self._pending_before, verify=False)
        if not check.ok:
            return _refusal(check, b"" if check.tx is None else check.tx.hash)
        tx = check.tx
        assert tx is not None
        queue = self._senders.get(tx.sender_address)
        if queue is None:
            queue = SenderQueue(tx.sender_address, self._app.nonce(tx.sender_address))
        if tx.nonce < queue.next_nonce:  # the node missed an update: never admit a used nonce
            return _refuse(Code.NONCE_TOO_LOW, f"nonce {tx.nonce} already used", tx_hash)
        old = queue.entry_at(tx.nonce)
        if old is not None and check.fee < min_replacement_fee(old.fee):
            return _refuse(
                Code.NONCE_PENDING,
                f"a transaction with nonce {tx.nonce} from this sender is waiting with fee "
                f"{old.fee}; a replacement needs a fee of at least "
                f"{min_replacement_fee(old.fee)} (+{REPLACEMENT_BUMP_PERCENT}%)",
                tx_hash,
            )
        self._seq += 1
        entry = Entry(self._seq, raw, tx, check.fee, check.cost, self._height, now_ns)
        if old is not None:
            return self._admit_replacement(queue, old, entry)
        return self._admit_new(queue, entry)

    def _admit_new(self, queue: SenderQueue, entry: Entry) -> Admission:
        limits = self.limits
        ready = entry.nonce == queue.ready_end
        make_way = None  # the sender's highest gapped transaction, if it must go
        over_gapped = not ready and len(queue.gapped) >= limits.max_gapped_txs_per_sender
        if len(queue) >= limits.max_txs_per_sender or over_gapped:
            highest = queue.highest_gapped()
            if highest is None or highest.nonce < entry.nonce:
                if over_gapped and len(queue) < limits.max_txs_per_sender:
                    bound = f"{limits.max_gapped_txs_per_sender} gapped transactions waiting"
                    setting = "max_gapped_txs_per_sender"
                else:
                    bound = f"{limits.max_txs_per_sender} transactions waiting"
                    setting = "max_txs_per_sender"
                return _refuse(
                    Code.SENDER_FULL,
                    f"this sender has {bound} ([mempool] {setting})",
                    entry.tx.hash,
                )
            make_way = highest
        if ready:
            victims = self._ready_victims(entry, count=1, size=entry.size)
            where = f"{self._ready_txs} transactions, {self._ready_bytes} bytes ready"
        else:
            victims = self._gapped_victims(entry, make_way)
            where = f"{self._gapped_txs} transactions, {self._gapped_bytes} bytes gapped"
        if victims is None:
            return _refuse(
                Code.MEMPOOL_FULL,
                f"mempool is full ({where}) and no other sender's transaction there pays "
                "less per byte",
                entry.tx.hash,
            )
        if not self._verified(entry):
            (self._tails if ready else self._gapped_heap).keep(victims)
            return _refuse_signature(entry)
        if make_way is not None:
            self._evict(make_way)
        for victim in victims:
            self._evict(victim)
        self._senders[queue.address] = queue
        self._by_hash[entry.tx.hash] = entry
        if ready:
            self._append_ready(queue, entry)
            self._tails.push(entry)
            self._promote(queue)
            return Admission(Code.OK, "", "", entry.tx.hash)
        self._add_gapped(queue, entry)
        return Admission(
            Code.OK,
            "",
            f"gapped: nonce {entry.nonce} waits for nonce {queue.ready_end}",
            entry.tx.hash,
            gapped=True,
        )

    def _admit_replacement(self, queue: SenderQueue, old: Entry, entry: Entry) -> Admission:
        ready = queue.is_ready(old)
        grow = entry.size - old.size
        if ready:
            victims = self._ready_victims(entry, count=0, size=grow)
        else:
            victims = self._gapped_victims(entry, old)
        if victims is None:
            return _refuse(
                Code.MEMPOOL_FULL,
                f"mempool is full: no room for the {grow} more bytes of the replacement",
                entry.tx.hash,
            )
        if not self._verified(entry):
            (self._tails if ready else self._gapped_heap).keep(victims)
            return _refuse_signature(entry)
        for victim in victims:
            self._evict(victim)
        del self._by_hash[old.tx.hash]
        self._by_hash[entry.tx.hash] = entry
        queue.replace(old, entry)
        if ready:
            self._ready_bytes += grow
            if queue.tail is entry:
                self._tails.push(entry)
            return Admission(Code.OK, "", "", entry.tx.hash)
        self._gapped_bytes += grow
        self._gapped_heap.push(entry)
        if entry.nonce == queue.ready_end:
            self._promote(queue)
        gapped = queue.is_gapped(entry)
        if not gapped:  # promoted itself: the admission says so, and its caller gossips it
            self._promoted.remove(entry.raw)
        return Admission(Code.OK, "", "", entry.tx.hash, gapped=gapped)

    def _verified(self, entry: Entry) -> bool:
        """The last check before a newcomer is admitted: nothing is changed before it
        (the victims planned for it are given back to their heap if it fails)."""
        return self._app.verify_signature(entry.tx)

    # --- room ------------------------------------------------------------------------------

    def _ready_victims(self, entry: Entry, count: int, size: int) -> list[Entry] | None:
        """Tails of other senders' runs to evict so that `count` more ready transactions
        and `size` more bytes fit, each paying less per byte than `entry`."""
        need_txs = self._ready_txs + count - self.limits.max_txs
        need_bytes = self._ready_bytes + size - self.limits.max_bytes
        self._tails.compact_if_stale(len(self._senders), self._live_tails)
        return self._tails.plan(
            lambda n, b: n >= need_txs and b >= need_bytes,
            entry.rate,
            spare=lambda e: e.sender == entry.sender,
            exposes=self._before_tail,
        )

    def _gapped_victims(self, entry: Entry, leaving: Entry | None) -> list[Entry] | None:
        """Other senders' gapped transactions to evict so that `entry` fits in the gapped
        pool, `leaving` (the sender's own, going anyway) counted as gone."""
        gone_txs = 0 if leaving is None else 1
        gone_bytes = 0 if leaving is None else leaving.size
        need_txs = self._gapped_txs + 1 - gone_txs - self.limits.max_gapped_txs
        need_bytes = self._gapped_bytes + entry.size - gone_bytes - self.limits.max_gapped_bytes
        self._gapped_heap.compact_if_stale(self._gapped_txs, self._live_gapped)
        return self._gapped_heap.plan(
            lambda n, b: n >= need_txs and b >= need_bytes,
            entry.rate,
            spare=lambda e: e.sender == entry.sender,
        )

    def _evict(self, entry: Entry) -> None:
        queue = self._senders[entry.sender]
        if queue.is_ready(entry):
            assert entry is queue.tail, "only a run's tail is evicted"
            self._pop_tail(queue)
            if queue.tail is not None:
                self._tails.push(queue.tail)
        else:
            self._remove_gapped(queue, entry)
        del self._by_hash[entry.tx.hash]
        self._evicted += 1
        self._forget_if_empty(queue)

    def _promote(self, queue: SenderQueue) -> None:
        """Move the gapped transactions that now follow on from the run into it, as far
        as the ready set has room (made, if need be, by evicting cheaper tails)."""
        while (following := queue.next_gapped()) is not None:
            victims = self._ready_victims(following, count=1, size=following.size)
            if victims is None:
                self._blocked.add(queue.address)
                return
            for victim in victims:
                self._evict(victim)
            self._remove_gapped(queue, following)
            self._append_ready(queue, following)
            self._tails.push(following)
            self._promoted.append(following.raw)
        self._blocked.discard(queue.address)

    # --- after a commit --------------------------------------------------------------------

    def update(
        self,
        committed: Iterable[Transaction],
        *,
        height: int | None = None,
        now_ns: int = 0,
    ) -> list[Admission]:
        """After the commit of a block holding `committed`, at `height` (default: one
        above the last) and the node's clock `now_ns`: drop the included transactions,
        expire the old, re-check the rest of the block's senders. Returns the refusals
        of the re-check (the transactions that left because of them)."""
        self._height = self._height + 1 if height is None else height
        included: set[bytes] = set()
        touched: dict[str, bool] = {}  # sender -> whether its transactions are re-checked
        for tx in committed:
            included.add(tx.hash)
            touched[tx.sender_address] = True
            self._remember_committed(tx)
        expired = set()
        for tx_hash, entry in self._by_hash.items():  # arrival order: the oldest first
            if not self._is_expired(entry, now_ns):
                break
            expired.add(tx_hash)
            touched.setdefault(entry.sender, False)
        refusals: list[Admission] = []
        for address in sorted(touched):
            queue = self._senders.get(address)
            if queue is not None:
                refusals.extend(self._rebuild(queue, touched[address], included, expired))
        for address in sorted(self._blocked | touched.keys()):
            queue = self._senders.get(address)
            if queue is not None:
                self._promote(queue)
        return refusals

    def _remember_committed(self, tx: Transaction) -> None:
        self._committed.pop(tx.hash, None)
        self._committed[tx.hash] = tx.nonce
        if len(self._committed) > COMMITTED_CACHE_TXS:
            del self._committed[next(iter(self._committed))]  # the oldest commit

    def _is_expired(self, entry: Entry, now_ns: int) -> bool:
        limits = self.limits
        return bool(
            (limits.ttl_num_blocks and self._height - entry.height > limits.ttl_num_blocks)
            or (limits.ttl_duration_ns and now_ns - entry.time_ns > limits.ttl_duration_ns)
        )

    def _rebuild(
        self, queue: SenderQueue, recheck: bool, included: set[bytes], expired: set[bytes]
    ) -> list[Admission]:
        """Lay one sender's transactions out again from its new next nonce: without the
        included and the expired, re-checked if `recheck`, ready as long as they follow
        on from the run, gapped after a hole (as the gapped bounds allow)."""
        was_ready = {id(e) for e in queue.ready}
        self._ready_txs -= len(queue.ready)
        self._ready_bytes -= sum(e.size for e in queue.ready)
        self._gapped_txs -= len(queue.gapped)
        self._gapped_bytes -= sum(e.size for e in queue.gapped.values())
        next_nonce = self._app.nonce(queue.address) if recheck else queue.next_nonce
        refusals = []
        for entry in queue.clear(next_nonce):
            tx_hash = entry.tx.hash
            if tx_hash in included:
                del self._by_hash[tx_hash]
                continue
            if tx_hash in expired:
                del self._by_hash[tx_hash]
                self._expired += 1
                continue
            if recheck:
                self._rechecks += 1
                again = self._app.recheck_tx(entry.tx, pending_cost=queue.pending_cost)
                if not again.ok:
                    del self._by_hash[tx_hash]
                    self._recheck_failed += 1
                    refusals.append(_refusal(again, tx_hash))
                    continue
            if id(entry) in was_ready and entry.nonce == queue.ready_end:
                self._append_ready(queue, entry)  # its room was its own
            elif not self._keep_gapped(queue, entry):
                del self._by_hash[tx_hash]
                self._evicted += 1
        if queue.tail is not None:
            self._tails.push(queue.tail)
        self._forget_if_empty(queue)
        return refusals

    def _keep_gapped(self, queue: SenderQueue, entry: Entry) -> bool:
        """Put a sender's re-laid transaction in the gapped pool if it fits there (by
        evicting cheaper ones of others, as a newcomer would); False if it does not."""
        if entry.nonce < queue.ready_end:
            return False  # unreachable: nonces ascend and none is below the next
        if len(queue.gapped) >= self.limits.max_gapped_txs_per_sender:
            return False
        victims = self._gapped_victims(entry, None)
        if victims is None:
            return False
        for victim in victims:
            self._evict(victim)
        self._add_gapped(queue, entry)
        return True

    # --- invariants ------------------------------------------------------------------------

    def check_invariants(self) -> None:
        """Assert what must hold between any two calls (the tests call it after each)."""
        limits = self.limits
        ready = [e for q in self._senders.values() for e in q.ready]
        gapped = [e for q in self._senders.values() for e in q.gapped.values()]
        assert self._ready_txs == len(ready) <= limits.max_txs
        assert self._ready_bytes == sum(e.size for e in ready) <= limits.max_bytes
        assert self._gapped_txs == len(gapped) <= limits.max_gapped_txs
        assert self._gapped_bytes == sum(e.size for e in gapped) <= limits.max_gapped_bytes
        assert len(self._by_hash) == len(ready) + len(gapped)
        assert {e.tx.hash for e in (*ready, *gapped)} == self._by_hash.keys()
        assert all(self._by_hash[h] is e for h, e in self._by_hash.items())
        seqs = [e.seq for e in self._by_hash.values()]
        assert seqs == sorted(seqs), "arrival order"
        for address, queue in self._senders.items():
            assert queue.address == address and len(queue) > 0
            assert len(queue) <= limits.max_txs_per_sender
            assert len(queue.gapped) <= limits.max_gapped_txs_per_sender
            assert all(e.sender == address for e in queue.entries())
            assert [e.nonce for e in queue.ready] == list(
                range(queue.next_nonce, queue.ready_end)
            ), "a ready run has no hole"
            assert all(nonce >= queue.ready_end for nonce in queue.gapped)
            assert all(e.nonce == n for n, e in queue.gapped.items())
            assert queue.pending_cost == sum(e.cost for e in queue.entries())
            if queue.ready_end in queue.gapped:
                assert address in self._blocked, "a filled hole waits only for room"
            if queue.tail is not None:
                assert self._tails.holds(queue.tail), "every tail can be found to evict"
        for entry in gapped:
            assert self._gapped_heap.holds(entry), "every gapped one can be found to evict"

    # --- bookkeeping -----------------------------------------------------------------------

    def _append_ready(self, queue: SenderQueue, entry: Entry) -> None:
        queue.append_ready(entry)
        self._ready_txs += 1
        self._ready_bytes += entry.size

    def _pop_tail(self, queue: SenderQueue) -> None:
        entry = queue.pop_tail()
        self._ready_txs -= 1
        self._ready_bytes -= entry.size

    def _add_gapped(self, queue: SenderQueue, entry: Entry) -> None:
        queue.add_gapped(entry)
        self._gapped_txs += 1
        self._gapped_bytes += entry.size
        self._gapped_heap.push(entry)

    def _remove_gapped(self, queue: SenderQueue, entry: Entry) -> None:
        queue.remove_gapped(entry)
        self._gapped_txs -= 1
        self._gapped_bytes -= entry.size

    def _forget_if_empty(self, queue: SenderQueue) -> None:
        if not queue and self._senders.get(queue.address) is queue:
            del self._senders[queue.address]
            self._blocked.discard(queue.address)

    def _is_tail(self, entry: Entry) -> bool:
        queue = self._senders.get(entry.sender)
        return queue is not None and queue.tail is entry

    def _is_gapped(self, entry: Entry) -> bool:
        queue = self._senders.get(entry.sender)
        return queue is not None and queue.is_gapped(entry)

    def _before_tail(self, entry: Entry) -> Entry | None:
        """The ready transaction before `entry` in its sender's run."""
        queue = self._senders[entry.sender]
        index = entry.nonce - queue.next_nonce - 1
        return queue.ready[index] if index >= 0 else None

    def _live_tails(self) -> Iterator[Entry]:
        for queue in self._senders.values():
            if queue.tail is not None:
                yield queue.tail

    def _live_gapped(self) -> Iterator[Entry]:
        for queue in self._senders.values():
            yield from queue.gapped.values()


def _refuse(code: Code, log: str, tx_hash: bytes) -> Admission:
    return Admission(code, MEMPOOL_CODESPACE, log, tx_hash)


def _refuse_signature(entry: Entry) -> Admission:
    return Admission(Code.BAD_SIGNATURE, AUTH_CODESPACE, BAD_SIGNATURE_LOG, entry.tx.hash)


def _refusal(check: CheckResult, tx_hash: bytes) -> Admission:
    return Admission(check.code, check.codespace, check.log, tx_hash)
