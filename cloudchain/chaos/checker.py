"""The checker: a pure function from a run's history and the nodes' views to violations.

    check(history, views, genesis_balances, heal_ns, progress_bound_ns, recoveries)

What it holds the network to, once every fault is healed (each rule a violation type):

- Fork: every node has the same block hash at every height they both have, and each
  node's own app hash at the observed height equals the others' (and the next header's).
- LostWrite: a transfer acknowledged committed (OK) is, on every node whose chain
  reaches its height, in the block at that height with the code the node gave.
- DoubleApply: no transaction hash, and no (sender, nonce), is committed twice.
- PhantomWrite: a transfer check_tx refused (FAILED) is on no node's chain.
- BalanceNotConserved: replaying a node's own chain from the genesis balances (fees
  burnt from the sender whatever the code; amounts moved when the code is 0) gives
  the balances the node reports at the observed height, no balance goes negative, and
  the accounts' total plus the fees they paid is their genesis total.
- StaleRead: on one node, a read invoked after another read completed is not answered
  at a lower height. ReadMismatch: a read's balances are the replay's at its height.
- NoProgress: every node commits a new block within `progress_bound_ns` of the heal.
- HonestDoubleSign: every double vote committed as evidence is of a validator the
  nemesis made equivocate, at a height inside that window (a node whose WAL was cut
  must not sign twice). UncaughtEquivocation: each such window of MIN_CAUGHT_HEIGHTS
  heights or more has its evidence committed.
- Unobserved: every node answered the observer (a node that did not cannot be checked).
- Crash: no node process exited unless a fault made it (the runner says which did).

Everything here is deterministic: sorted iteration, integers, no clock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from cloudchain.chaos.history import History, Outcome, Read, Transfer
from cloudchain.chaos.observe import CommittedTx, NodeView, Recovery

MAX_VIOLATIONS_PER_KIND = 100  # a broken run reports the first ones of each kind
MIN_CAUGHT_HEIGHTS = 3  # an equivocation this long must have been caught


@dataclass(frozen=True)
class Violation:
    """A rule the network broke. `describe()` says what, where, and which ops/heights."""

    kind: ClassVar[str] = "violation"

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Fork(Violation):
    """Nodes disagree at `height` on `what` ("block hash" or "app hash"): (node, value)."""

    kind: ClassVar[str] = "fork"
    height: int
    what: str
    values: tuple[tuple[int, str], ...]

    def describe(self) -> str:
        seen = ", ".join(f"node{n}={v[:12]}" for n, v in self.values)
        return f"{self.what} differs at height {self.height}: {seen}"


@dataclass(frozen=True)
class LostWrite(Violation):
    kind: ClassVar[str] = "lost_write"
    op_id: int
    tx_hash: str
    height: int  # acknowledged at
    code: int
    nodes: tuple[int, ...]  # where it is not as acknowledged
    found: str  # what those nodes have instead

    def describe(self) -> str:
        return (
            f"op {self.op_id} tx {self.tx_hash[:12]} acknowledged at height {self.height} "
            f"code {self.code}; on nodes {list(self.nodes)}: {self.found}"
        )


@dataclass(frozen=True)
class DoubleApply(Violation):
    """`what` (a tx hash, or "sender/nonce") committed more than once on `node`."""

    kind: ClassVar[str] = "double_apply"
    node: int
    what: str
    heights: tuple[int, ...]
    op_ids: tuple[int, ...]

    def describe(self) -> str:
        return (
            f"node{self.node}: {self.what} committed at heights {list(self.heights)} "
            f"(ops {list(self.op_ids)})"
        )


@dataclass(frozen=True)
class PhantomWrite(Violation):
    kind: ClassVar[str] = "phantom_write"
    op_id: int
    tx_hash: str
    node: int
    height: int

    def describe(self) -> str:
        return (
            f"op {self.op_id} tx {self.tx_hash[:12]} was refused by check_tx but node"
            f"{self.node} has it at height {self.height}"
        )


@dataclass(frozen=True)
class BalanceNotConserved(Violation):
    kind: ClassVar[str] = "balance_not_conserved"
    node: int
    height: int
    detail: str

    def describe(self) -> str:
        return f"node{self.node} at height {self.height}: {self.detail}"


@dataclass(frozen=True)
class StaleRead(Violation):
    kind: ClassVar[str] = "stale_read"
    node: int
    op_id: int
    height: int
    earlier_op_id: int
    earlier_height: int

    def describe(self) -> str:
        return (
            f"node{self.node}: read op {self.op_id} answered at height {self.height} after "
            f"read op {self.earlier_op_id} had completed at height {self.earlier_height}"
        )


@dataclass(frozen=True)
class ReadMismatch(Violation):
    kind: ClassVar[str] = "read_mismatch"
    node: int
    op_id: int
    height: int
    detail: str

    def describe(self) -> str:
        return f"node{self.node}: read op {self.op_id} at height {self.height}: {self.detail}"


@dataclass(frozen=True)
class NoProgress(Violation):
    kind: ClassVar[str] = "no_progress"
    node: int
    height_at_heal: int
    detail: str

    def describe(self) -> str:
        return f"node{self.node} (height {self.height_at_heal} at the heal): {self.detail}"


@dataclass(frozen=True)
class Unobserved(Violation):
    kind: ClassVar[str] = "unobserved"
    node: int
    error: str

    def describe(self) -> str:
        return f"node{self.node} could not be observed: {self.error}"


@dataclass(frozen=True)
class ByzantineWindow:
    """The nemesis made validator `validator` (hex address) equivocate while the
    network's heights ran from `first_height` to `last_height`."""

    validator: str
    first_height: int
    last_height: int

    def covers(self, validator: str, height: int) -> bool:
        return validator == self.validator and self.first_height <= height <= self.last_height


@dataclass(frozen=True)
class HonestDoubleSign(Violation):
    """Block `height` commits a double vote of `validator` at `vote_height`, outside any
    window in which the nemesis made it equivocate: an honest node signed twice."""

    kind: ClassVar[str] = "honest double sign"
    height: int
    validator: str
    vote_height: int

    def describe(self) -> str:
        return (
            f"validator {self.validator[:12]} signed two votes at height {self.vote_height} "
            f"(evidence in block {self.height}) without being made to"
        )


@dataclass(frozen=True)
class UncaughtEquivocation(Violation):
    """The nemesis made `validator` equivocate over `heights` heights, and no block
    commits evidence of it."""

    kind: ClassVar[str] = "uncaught equivocation"
    validator: str
    first_height: int
    last_height: int

    def describe(self) -> str:
        return (
            f"validator {self.validator[:12]} equivocated at heights {self.first_height}.."
            f"{self.last_height} and no evidence of it was committed"
        )


@dataclass(frozen=True)
class Crash(Violation):
    """Node `node`'s process exited with `returncode` when no fault asked it to (a
    storage failure's own exit code is asked for by a full disk, not by anything else)."""

    kind: ClassVar[str] = "crash"
    node: int
    returncode: int
    detail: str = ""

    def describe(self) -> str:
        return f"node{self.node} exited with {self.returncode} on its own: {self.detail}"


@dataclass(frozen=True)
class CheckResult:
    violations: tuple[Violation, ...]
    heights: tuple[tuple[int, int], ...]  # (node, latest height)
    state_height: int  # where balances were compared
    committed_txs: int  # on the highest node's chain
    fees_paid: int  # by the accounts, up to state_height on the highest node
    counts: Mapping[str, int] = field(default_factory=dict)  # violations by kind
    evidence: int = 0  # double votes committed, on the highest node's chain

    @property
    def ok(self) -> bool:
        return not self.violations


def check(
    history: History,
    views: Sequence[NodeView],
    genesis_balances: Mapping[str, int],
    heal_ns: int | None = None,
    progress_bound_ns: int = 0,
    recoveries: Sequence[Recovery] = (),
    byzantine: Sequence[ByzantineWindow] = (),
    crashes: Sequence[Crash] = (),
) -> CheckResult:
    """The violations of `history` and `views` (see the module's docstring).
    `genesis_balances` are the workload's accounts; `heal_ns` (monotonic ns) None
    skips the progress rule; `byzantine` are the windows in which a validator was
    made to equivocate: evidence outside them is an honest double sign. `crashes` are the
    exits of node processes that no fault caused, as the runner saw them."""
    found: list[Violation] = [Unobserved(v.node, v.error) for v in views if not v.answered]
    found += crashes
    answering = sorted((v for v in views if v.answered), key=lambda v: v.node)
    found += _forks(answering)
    found += _double_applies(answering, history)
    found += _lost_writes(history.transfers, answering)
    found += _phantom_writes(history.transfers, answering)
    replays = {v.node: _Replay(genesis_balances, v.txs) for v in answering}
    found += _balances(answering, replays, genesis_balances)
    found += _stale_reads(history.reads)
    found += _read_mismatches(history.reads, answering, replays)
    found += _double_signs(answering, byzantine)
    if heal_ns is not None:
        found += _no_progress(views, heal_ns, progress_bound_ns, recoveries)
    counts: dict[str, int] = defaultdict(int)
    kept = []
    for violation in found:
        counts[violation.kind] += 1
        if counts[violation.kind] <= MAX_VIOLATIONS_PER_KIND:
            kept.append(violation)
    top = max(answering, key=lambda v: (v.latest_height, -v.node), default=None)
    state_height = max((v.state_height for v in answering), default=0)
    return CheckResult(
        violations=tuple(kept),
        heights=tuple((v.node, v.latest_height) for v in views),
        state_height=state_height,
        committed_txs=len(top.txs) if top else 0,
        evidence=len(top.evidence) if top else 0,
        fees_paid=replays[top.node].fees_until(state_height) if top else 0,
        counts=dict(sorted(counts.items())),
    )


def _double_signs(
    views: Sequence[NodeView], byzantine: Sequence[ByzantineWindow]
) -> Iterable[Violation]:
    """Evidence only of what the nemesis caused, and of all it caused (a window of at
    least MIN_CAUGHT_HEIGHTS heights: a shorter one may have seen no prevote sent)."""
    seen = {e for v in views for e in v.evidence}
    for e in sorted(seen, key=lambda e: (e.height, e.validator, e.vote_height)):
        if not any(w.covers(e.validator, e.vote_height) for w in byzantine):
            yield HonestDoubleSign(e.height, e.validator, e.vote_height)
    for w in byzantine:
        caught = any(w.covers(e.validator, e.vote_height) for e in seen)
        if not caught and w.last_height - w.first_height >= MIN_CAUGHT_HEIGHTS:
            yield UncaughtEquivocation(w.validator, w.first_height, w.last_height)


def _forks(views: Sequence[NodeView]) -> Iterable[Violation]:
    top = max((v.latest_height for v in views), default=0)
    for height in range(1, top + 1):  # the first divergence: later blocks chain on it
        values = tuple(
            (v.node, v.headers[height - 1].block_hash) for v in views if v.latest_height >= height
        )
        if len({value for _, value in values}) > 1:
            yield Fork(height, "block hash", values)
            break
    by_height: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for v in views:
        if v.state_height:
            by_height[v.state_height].append((v.node, v.state_app_hash))
            if v.latest_height > v.state_height:  # the next header names the state after H
                by_height[v.state_height].append((v.node, v.headers[v.state_height].app_hash))
    for height, values in sorted(by_height.items()):
        if len({value for _, value in values}) > 1:
            yield Fork(height, "app hash", tuple(sorted(set(values))))


def _double_applies(views: Sequence[NodeView], history: History) -> Iterable[Violation]:
    ops_by_hash: dict[str, list[int]] = defaultdict(list)
    for t in history.transfers:
        ops_by_hash[t.tx_hash].append(t.op_id)
    for v in views:
        by_hash: dict[str, list[CommittedTx]] = defaultdict(list)
        by_nonce: dict[tuple[str, int], list[CommittedTx]] = defaultdict(list)
        for tx in v.txs:
            by_hash[tx.tx_hash].append(tx)
            by_nonce[(tx.sender, tx.nonce)].append(tx)
        for tx_hash, txs in sorted(by_hash.items()):
            if len(txs) > 1:
                heights = tuple(t.height for t in txs)
                yield DoubleApply(v.node, f"tx {tx_hash}", heights, tuple(ops_by_hash[tx_hash]))
        for (sender, nonce), txs in sorted(by_nonce.items()):
            if len({t.tx_hash for t in txs}) > 1:
                ops = tuple(op for t in txs for op in ops_by_hash[t.tx_hash])
                heights = tuple(t.height for t in txs)
                yield DoubleApply(v.node, f"nonce {nonce} of {sender}", heights, ops)


def _tx_index(view: NodeView) -> dict[str, list[CommittedTx]]:
    index: dict[str, list[CommittedTx]] = defaultdict(list)
    for tx in view.txs:
        index[tx.tx_hash].append(tx)
    return index


def _lost_writes(transfers: Sequence[Transfer], views: Sequence[NodeView]) -> Iterable[Violation]:
    indexes = [(v, _tx_index(v)) for v in views]
    for t in transfers:
        if t.outcome is not Outcome.OK:
            continue
        missing: list[int] = []
        instead: set[str] = set()
        for view, index in indexes:
            if view.latest_height < t.height:
                continue
            committed = index.get(t.tx_hash, [])
            if not any(c.height == t.height and c.code == t.code for c in committed):
                missing.append(view.node)
                instead.add(
                    ", ".join(f"height {c.height} code {c.code}" for c in committed) or "absent"
                )
        if not any(v.latest_height >= t.height for v in views):
            top = max((v.latest_height for v in views), default=0)
            missing = [v.node for v in views]
            instead = {f"every chain ends below it (highest {top})"}
        if missing:
            found = "; ".join(sorted(instead))
            yield LostWrite(t.op_id, t.tx_hash, t.height, t.code, tuple(missing), found)


def _phantom_writes(
    transfers: Sequence[Transfer], views: Sequence[NodeView]
) -> Iterable[Violation]:
    indexes = [(v, _tx_index(v)) for v in views]
    for t in transfers:
        if t.outcome is not Outcome.FAILED:
            continue
        for view, index in indexes:
            for c in index.get(t.tx_hash, []):
                yield PhantomWrite(t.op_id, t.tx_hash, view.node, c.height)


class _Replay:
    """The accounts' balances after each height of one node's chain, replayed from
    genesis: `at(h)` is the state after block h, `fees_until(h)` what they paid."""

    def __init__(self, genesis: Mapping[str, int], txs: Sequence[CommittedTx]) -> None:
        self.negative: list[tuple[int, str, int]] = []  # (height, address, balance)
        self._heights: list[int] = [0]
        self._states: list[dict[str, int]] = [dict(genesis)]
        self._fees: list[int] = [0]
        balances, fees = dict(genesis), 0
        for tx in txs:
            if tx.height != self._heights[-1]:
                self._heights.append(tx.height)
                self._states.append(dict(balances))
                self._fees.append(fees)
            if tx.sender in balances:
                balances[tx.sender] -= tx.fee
                fees += tx.fee
                if tx.code == 0 and tx.is_transfer:
                    balances[tx.sender] -= tx.amount
            if tx.code == 0 and tx.is_transfer and tx.recipient in balances:
                balances[tx.recipient] += tx.amount
            for address in (tx.sender, tx.recipient):
                if balances.get(address, 0) < 0:
                    self.negative.append((tx.height, address, balances[address]))
            self._states[-1] = dict(balances)
            self._fees[-1] = fees

    def _last_at_or_below(self, height: int) -> int:
        low, high = 0, len(self._heights) - 1
        while low < high:  # the last index whose height is <= `height`
            mid = (low + high + 1) // 2
            if self._heights[mid] <= height:
                low = mid
            else:
                high = mid - 1
        return low

    def at(self, height: int) -> dict[str, int]:
        return self._states[self._last_at_or_below(height)]

    def fees_until(self, height: int) -> int:
        return self._fees[self._last_at_or_below(height)]


def _balances(
    views: Sequence[NodeView], replays: Mapping[int, _Replay], genesis: Mapping[str, int]
) -> Iterable[Violation]:
    genesis_total = sum(genesis.values())
    for v in views:
        replay = replays[v.node]
        for height, address, balance in replay.negative[:1]:
            yield BalanceNotConserved(v.node, height, f"{address} replays to {balance} < 0")
        if not v.state_height:
            continue
        reported = dict(v.balances)
        expected = replay.at(v.state_height)
        for address in sorted(set(reported) | set(expected)):
            if reported.get(address) != expected.get(address):
                yield BalanceNotConserved(
                    v.node,
                    v.state_height,
                    f"{address} reports {reported.get(address)}, the chain's transfers "
                    f"give {expected.get(address)}",
                )
        fees = replay.fees_until(v.state_height)
        total = sum(reported.get(a, 0) for a in genesis)
        if total + fees != genesis_total:
            yield BalanceNotConserved(
                v.node,
                v.state_height,
                f"accounts hold {total} and paid {fees} in fees: {total + fees}, "
                f"genesis {genesis_total}",
            )


def _stale_reads(reads: Sequence[Read]) -> Iterable[Violation]:
    by_node: dict[int, list[Read]] = defaultdict(list)
    for r in reads:
        if r.outcome is Outcome.OK:
            by_node[r.node].append(r)
    for node, node_reads in sorted(by_node.items()):
        completed = sorted(node_reads, key=lambda r: (r.complete_ns, r.op_id))
        highest: Read | None = None
        i = 0
        for r in sorted(node_reads, key=lambda r: (r.invoke_ns, r.op_id)):
            while i < len(completed) and completed[i].complete_ns < r.invoke_ns:
                if highest is None or completed[i].height > highest.height:
                    highest = completed[i]
                i += 1
            if highest is not None and r.height < highest.height:
                yield StaleRead(node, r.op_id, r.height, highest.op_id, highest.height)


def _read_mismatches(
    reads: Sequence[Read], views: Sequence[NodeView], replays: Mapping[int, _Replay]
) -> Iterable[Violation]:
    by_node = {v.node: v for v in views}
    for r in reads:
        view = by_node.get(r.node)
        if r.outcome is not Outcome.OK or view is None:
            continue
        if r.height > view.latest_height:
            yield ReadMismatch(
                r.node, r.op_id, r.height, f"the node's chain ends at {view.latest_height}"
            )
            continue
        expected = replays[r.node].at(r.height)
        wrong = [(a, b) for a, b in r.balances if expected.get(a) != b]
        if wrong:
            address, balance = wrong[0]
            yield ReadMismatch(
                r.node,
                r.op_id,
                r.height,
                f"{address} read {balance}, the chain gives {expected.get(address)}"
                + (f" ({len(wrong) - 1} more accounts differ)" if len(wrong) > 1 else ""),
            )


def _no_progress(
    views: Sequence[NodeView], heal_ns: int, bound_ns: int, recoveries: Sequence[Recovery]
) -> Iterable[Violation]:
    by_node = {r.node: r for r in recoveries}
    for v in sorted(views, key=lambda v: v.node):
        r = by_node.get(v.node)
        if r is None:
            yield NoProgress(v.node, 0, "its recovery was not watched")
        elif r.new_block_ns is None:
            why = f" (last error: {r.error})" if r.error else ""
            yield NoProgress(
                v.node, r.height_at_heal, f"no new block within {bound_ns / 1e9:.1f} s{why}"
            )
        elif r.new_block_ns - heal_ns > bound_ns:
            waited_s = (r.new_block_ns - heal_ns) / 1e9
            yield NoProgress(
                v.node,
                r.height_at_heal,
                f"a new block {waited_s:.1f} s after the heal, bound {bound_ns / 1e9:.1f} s",
            )
