"""Property tests of the market: random sequences of every market transaction.

A stateful hypothesis test (`MarketMachine`) drives a one-validator market chain
(MarketChain, one clock second a block, tight per-block bounds) with one rule per
transaction: register, update, add_stake, leave, add_oracle, remove_oracle, submit,
cancel, start, complete, attest, attest_provider, dispute, vote, and token.transfer,
token.burn and token.mint. Each is mostly sent by the party that may send it, about
a task in a state that allows it, for an amount it holds; otherwise by anyone, about
any task or an unknown one, for more than the balance (or the maximum amount).
Transactions queue up and share a block (at most MAX_PENDING). Three more rules
move time and tasks on: `produce_block`, `let_time_pass` (up to 12 blocks), the
parties moving every unfinished task on for a few blocks (as due, not now, by an
intruder, or twice in a block), and `at_a_deadline`, which waits until the block
just before, or just at, a task's deadline or window close and acts in it. The
authority can mint up to the maximum supply, and a requester holding a good part of
it (a whale) stakes all of it on its tasks; `hold_up_the_queue` submits more tasks
than a block reads that no provider may take. After every block it checks:

Tokens are conserved
- supply = genesis + minted (mints, epoch rewards) - burned - fees (burnt: every
  included transaction pays its fee, failed ones too);
- balances + escrow + stakes = supply;
- every balance and every stake equals a ledger the test keeps from what it saw:
  the transactions that succeeded, the payout recorded on each task when it first
  reached its final state, rewards and returned stakes (events). A task paid twice
  would leave a balance above the ledger.

Escrow and stakes
- market/totals escrow = Σ deposits of tasks not in a final state (refunded,
  settled, resolved); market/totals stake = Σ providers' stakes;
- no balance, stake or total is negative;
- a task has a payout exactly when it is final, reaches one final state once, is
  paid in the block where it got there, never again (its payout never changes, one
  refund/settle/resolve event), and its payout shares out deposit + slashed stake;
- indexes (open, due, unbonding), oracle count, and units in flight and capacity
  by provider and by class agree with the records.

Refusals
- a transaction is refused exactly when one of the rules the issue names applies
  to the state it runs on (wrong state, wrong party, deadline passed, insufficient
  funds after the fee, unknown task...), and then with one of those rules' codes and
  a log, the fee event alone, and no state change but its sender's nonce and its fee
  (the sender's balance and the supply): the application below
  records the block's buffered writes before and after each transaction;
- no handler fails (INTERNAL) and no end-of-block work fails.

Assignment
- tasks that cannot be assigned (a class nobody offers, a price below every offer, a
  named provider that is busy) do not hold back one that can be: after a block that
  assigned nothing, a task a provider could take now has been passed over, in a row
  of such blocks, at most once for each other task of its class open meanwhile.

After the last step, empty blocks run until every task is final: the escrow is
then empty and no provider is left unbonding.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from cloudchain import codec
from cloudchain.chaincode.application import DEFAULT_MODULES, Application
from cloudchain.chaincode.auth import get_authority, nonce_key
from cloudchain.chaincode.codes import Code
from cloudchain.chaincode.context import StateReader
from cloudchain.chaincode.market import state as mstate
from cloudchain.chaincode.market.lifecycle import FINAL
from cloudchain.chaincode.market.records import STAT_MAX
from cloudchain.chaincode.market.state import get_params
from cloudchain.chaincode.module import MAX_AMOUNT
from cloudchain.chaincode.modules import token
from cloudchain.ledger import Block, Event, Transaction, TxResult
from tests.helpers.chain import key
from tests.helpers.market import BALANCE, EVERYONE, FAST_PARAMS, GPU, MarketChain, market_genesis

# Actors by name (the names tests/helpers/market.py's keys are made from), so that a failing
# sequence reads as who did what. The stranger signs but holds nothing at genesis.
PROVIDERS_ = ("provider0", "provider1", "provider2")
REQUESTERS_ = ("requester0", "requester1", "requester2")
SENDERS = ("authority", *PROVIDERS_, *REQUESTERS_, "oracle0", "oracle1", "oracle2", "stranger")
# requester2 and provider2 may be made oracles too: an oracle may not judge its own task
ORACLE_CANDIDATES = ("oracle0", "oracle1", "oracle2", "oracle3", "requester2", "provider2")
KEY = {name: key(name) for name in (*SENDERS, *ORACLE_CANDIDATES)}
ADDRESS = {name: k.address for name, k in KEY.items()}
NAME = {address: name for name, address in ADDRESS.items()}
assert {ADDRESS[n] for n in SENDERS if n != "stranger"} == {k.address for k in EVERYONE}
GENESIS_SUPPLY = BALANCE * len(EVERYONE)
CLASSES = (GPU, "t4-16gb")
CID = "Qm" + "a" * 44
MAX_PENDING = 4  # transactions queued before a block is produced anyway
MAX_DEADLINE_S = 25  # of a task: short, so that deadlines pass within a run
MAX_OFFER_UNITS = 60  # in one class of one provider's offers
# Empty blocks after the last step by which every task is final: its deadline, then
# the attestation window, the dispute window and the vote, with room to spare.
DRAIN_BLOCKS = (
    MAX_DEADLINE_S
    + FAST_PARAMS["attestation_blocks"]
    + FAST_PARAMS["dispute_blocks"]
    + FAST_PARAMS["dispute_vote_blocks"]
    + 5
)
# Bounds small enough that a run meets them: deadlines and windows left for the next
# block, open tasks not scanned, providers and blocks that take no more tasks.
TIGHT_LIMITS = {
    "max_transitions_per_block": 3,
    "max_assignments_per_block": 3,
    "max_assignments_per_provider": 2,
    "max_open_tasks_scanned": 5,
}
WHALE = MAX_AMOUNT // 4  # a balance above this is a whale's
ABSENT = object()
FEE_ROOM = 10_000  # more than any transaction here pays (base + its bytes + a surcharge)
TX_METHODS = {(m.name, n): method for m in DEFAULT_MODULES for n, method in m.methods.items()}
FINAL_EVENTS = ("market_refund", "market_settle", "market_resolved")


# --- the refusal rules, as the issue states them --------------------------------------------


def _stored_provider(kv: StateReader, address: str) -> dict[str, Any] | None:
    """The provider's record as state holds it (a map, as the rules below read it)."""
    provider = mstate.get_provider(kv, address)
    return None if provider is None else provider.to_obj()


def _stored_task(kv: StateReader, task_id: int) -> dict[str, Any] | None:
    task = mstate.get_task(kv, task_id)
    return None if task is None else task.to_obj()


def _cost(tx: Transaction) -> int:
    """What `tx` may take from its sender's balance: its fee and what its method declares."""
    return tx.fee + TX_METHODS[tx.module, tx.method].spends(tx.args)


def refusal_codes(kv: StateReader, height: int, time_ns: int, tx: Transaction) -> set[Code]:
    """The codes of every rule that refuses `tx` on state `kv` (empty: it must succeed)."""
    sender, args = tx.sender_address, tx.args
    balance = token.get_balance(kv, sender) - tx.fee  # the fee is charged before the handler
    if tx.module == "token":
        if tx.method == "mint":
            return ({Code.UNAUTHORIZED} if sender != get_authority(kv) else set()) | (
                {Code.LIMIT_EXCEEDED}  # the fee is burnt before: the supply is that much less
                if token.get_supply(kv) - tx.fee + args["amount"] > MAX_AMOUNT
                else set()
            )
        return {Code.INSUFFICIENT_FUNDS} if args["amount"] > balance else set()
    check = _MARKET_RULES[tx.method]
    return check(kv, height, time_ns, sender, balance, **args)


def _register(kv, height, time_ns, sender, balance, stake, **_) -> set[Code]:
    codes = set()
    provider = _stored_provider(kv, sender)
    if provider is not None and provider["status"] != "left":
        codes.add(Code.ALREADY_EXISTS)
    if stake < get_params(kv).min_stake:
        codes.add(Code.OUT_OF_RANGE)
    if stake > balance:
        codes.add(Code.INSUFFICIENT_FUNDS)
    return codes


def _provider_rules(kv, sender: str, leaving_refused: bool) -> tuple[set[Code], Any]:
    provider = _stored_provider(kv, sender)
    if provider is None or provider["status"] == "left":
        return {Code.NOT_FOUND}, None
    if leaving_refused and provider["status"] != "active":
        return {Code.INVALID_STATE}, provider
    return set(), provider


def _update(kv, height, time_ns, sender, balance, offers, **_) -> set[Code]:
    codes, provider = _provider_rules(kv, sender, leaving_refused=True)
    if provider is not None and any(
        offers.get(name, {}).get("units", 0) < units
        for name, units in provider["in_flight"].items()
    ):
        codes.add(Code.OUT_OF_RANGE)
    return codes


def _add_stake(kv, height, time_ns, sender, balance, amount, **_) -> set[Code]:
    codes, _provider = _provider_rules(kv, sender, leaving_refused=False)
    return codes | ({Code.INSUFFICIENT_FUNDS} if amount > balance else set())


def _leave(kv, height, time_ns, sender, balance, **_) -> set[Code]:
    return _provider_rules(kv, sender, leaving_refused=True)[0]


def _oracle_admin(present: bool):
    def check(kv, height, time_ns, sender, balance, oracle, **_) -> set[Code]:
        codes = {Code.UNAUTHORIZED} if sender != get_authority(kv) else set()
        if mstate.is_oracle(kv, oracle) == present:
            codes.add(Code.ALREADY_EXISTS if present else Code.NOT_FOUND)
        return codes

    return check


def _submit(
    kv, height, time_ns, sender, balance, units, max_price, penalty, provider, resource_class, **_
) -> set[Code]:
    codes = set()
    deposit = units * max_price
    if deposit > MAX_AMOUNT or penalty > deposit:
        codes.add(Code.OUT_OF_RANGE)
    if provider:
        named = _stored_provider(kv, provider)
        if named is None or named["status"] != "active" or resource_class not in named["offers"]:
            codes.add(Code.NOT_FOUND)
    if deposit > balance:
        codes.add(Code.INSUFFICIENT_FUNDS)
    return codes


def _task_rules(kv, task_id: int, states: tuple[str, ...]) -> tuple[set[Code], Any]:
    task = _stored_task(kv, task_id)
    if task is None:
        return {Code.NOT_FOUND}, None
    return ({Code.INVALID_STATE} if task["state"] not in states else set()), task


def _cancel(kv, height, time_ns, sender, balance, task, **_) -> set[Code]:
    codes, record = _task_rules(kv, task, ("open",))
    if record is not None and sender != record["requester"]:
        codes.add(Code.UNAUTHORIZED)
    return codes


def _run_rules(states: tuple[str, ...]):
    """start and complete: the assigned provider, before the deadline."""

    def check(kv, height, time_ns, sender, balance, task, units_used=0, **_) -> set[Code]:
        codes, record = _task_rules(kv, task, states)
        if record is None:
            return codes
        if sender != record["provider"]:
            codes.add(Code.UNAUTHORIZED)
        if time_ns >= record["deadline_ns"]:
            codes.add(Code.DEADLINE_PASSED)
        if units_used > record["units"]:
            codes.add(Code.OUT_OF_RANGE)
        return codes

    return check


def _oracle_rules(kv, sender: str) -> set[Code]:
    return set() if mstate.is_oracle(kv, sender) else {Code.UNAUTHORIZED}


def _party_rules(sender: str, record: dict[str, Any]) -> set[Code]:
    """An oracle may not judge a task it is the provider or the requester of."""
    return {Code.UNAUTHORIZED} if sender in (record["provider"], record["requester"]) else set()


def _attest(kv, height, time_ns, sender, balance, task, units, **_) -> set[Code]:
    codes = _oracle_rules(kv, sender)
    task_codes, record = _task_rules(kv, task, ("completed", "verified"))
    codes |= task_codes
    if record is None or task_codes:
        return codes
    codes |= _party_rules(sender, record)
    if record["state"] == "completed" and (
        height >= record["completed_at"] + get_params(kv).attestation_blocks
    ):
        codes.add(Code.DEADLINE_PASSED)
    if sender in record["attestations"]:
        codes.add(Code.ALREADY_EXISTS)
    if units > record["units"]:
        codes.add(Code.OUT_OF_RANGE)
    return codes


def _attest_provider(kv, height, time_ns, sender, balance, provider, **_) -> set[Code]:
    codes = _oracle_rules(kv, sender)
    record = _stored_provider(kv, provider)
    if record is None or record["status"] == "left":
        codes.add(Code.NOT_FOUND)
    if provider == sender:
        codes.add(Code.UNAUTHORIZED)
    return codes


def _dispute(kv, height, time_ns, sender, balance, task, **_) -> set[Code]:
    codes, record = _task_rules(kv, task, ("verified",))
    if record is None:
        return codes
    if sender not in (record["requester"], record["provider"]):
        codes.add(Code.UNAUTHORIZED)
    if not codes and height >= record["verified_at"] + get_params(kv).dispute_blocks:
        codes.add(Code.DEADLINE_PASSED)
    return codes


def _vote(kv, height, time_ns, sender, balance, task, **_) -> set[Code]:
    codes = _oracle_rules(kv, sender)
    task_codes, record = _task_rules(kv, task, ("disputed",))
    codes |= task_codes
    if record is None or task_codes:
        return codes
    codes |= _party_rules(sender, record)
    dispute = record["dispute"]
    if height >= dispute["at"] + get_params(kv).dispute_vote_blocks:
        codes.add(Code.DEADLINE_PASSED)
    if sender in dispute["votes"]:
        codes.add(Code.ALREADY_EXISTS)
    return codes


_MARKET_RULES = {
    "register": _register,
    "update": _update,
    "add_stake": _add_stake,
    "leave": _leave,
    "add_oracle": _oracle_admin(True),
    "remove_oracle": _oracle_admin(False),
    "submit": _submit,
    "cancel": _cancel,
    "start": _run_rules(("assigned",)),
    "complete": _run_rules(("assigned", "running")),
    "attest": _attest,
    "attest_provider": _attest_provider,
    "dispute": _dispute,
    "vote": _vote,
}


# --- an application that records what each transaction wrote -------------------------------


@dataclass(frozen=True)
class Delivery:
    tx: Transaction
    result: TxResult
    refusals: frozenset[Code]  # what the rules say about the state it ran on
    changed: frozenset[bytes]  # keys whose buffered value it changed in the block


class WatchedApplication(Application):
    """The application, recording for each transaction the refusal rules that apply
    to the state it runs on and the keys it changed in the block's buffered writes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.deliveries: list[Delivery] = []
        super().__init__(*args, **kwargs)

    def _deliver(self, block_kv, block: Block, index: int, tx: Transaction) -> TxResult:
        refusals = refusal_codes(block_kv, block.height, block.header.time_ns, tx)
        before = dict(block_kv.writes)
        result = super()._deliver(block_kv, block, index, tx)
        after = block_kv.writes
        changed = frozenset(
            k for k in before.keys() | after.keys() if before.get(k, ABSENT) != after.get(k, ABSENT)
        )
        self.deliveries.append(Delivery(tx, result, frozenset(refusals), changed))
        return result


# --- drawing arguments ------------------------------------------------------------------------


def _attributes(event: Event) -> dict[str, str]:
    return dict(event.attributes)


an_offer = st.fixed_dictionaries(
    {
        "gpu": st.just("A100"),
        "gpus": st.integers(1, 8),
        "memory_gb": st.just(80),
        "units": st.integers(1, MAX_OFFER_UNITS),
        "price": st.integers(1, 30),
    }
)
offers_strategy = st.dictionaries(st.sampled_from(CLASSES), an_offer, min_size=1, max_size=2)


def _mostly(data, usual: st.SearchStrategy, *unusual: st.SearchStrategy) -> Any:
    """A draw from `usual` four times in (four + len(unusual)), else from one of
    `unusual`; a failing sequence shrinks toward `usual`."""
    pick = data.draw(st.integers(0, 3 + len(unusual)))
    return data.draw(usual if pick < 4 else unusual[pick - 4])


def _amount(data, balance: int) -> int:
    """Within a balance, exactly it, just above it, or far beyond it."""
    within = st.integers(1, balance) if balance > 0 else st.just(1)
    return _mostly(
        data,
        within,
        st.just(max(balance, 1)),
        st.integers(balance + 1, balance + 100),
        st.just(MAX_AMOUNT),
    )


class MarketMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.m = MarketChain(market_genesis(**TIGHT_LIMITS), application=WatchedApplication)
        self.pending: list[Transaction] = []
        # The ledger: what every balance and stake must be, from what the test saw.
        self.balances: dict[str, int] = {k.address: BALANCE for k in EVERYONE}
        self.stakes: dict[str, int] = defaultdict(int)
        self.minted = 0
        self.burned = 0
        self.fees = 0  # burnt too
        self.paid: dict[int, dict[str, int]] = {}  # a final task's payout, when first seen
        self.final_events: Counter[int] = Counter()
        self.rewarded: Counter[tuple[str, str]] = Counter()  # by (role, address)
        # The committed state, as of the last block, for choosing what to send.
        self.tasks: dict[int, dict[str, Any]] = {}
        self.providers: dict[str, dict[str, Any]] = {}
        self.oracles: list[str] = list(ORACLE_CANDIDATES[:3])
        self.decoded: dict[bytes, Any] = {}  # records by their bytes, decoded once
        # Open tasks that could be assigned after blocks that assigned nothing: how many
        # such blocks in a row, and the other tasks of their class open meanwhile.
        self.passed_over: dict[int, tuple[int, frozenset[int]]] = {}
        self.broken = False

    # --- who, and about what ---------------------------------------------------------------

    def _sender(self, data, *right: str | None) -> str:
        """Usually one of the parties that may send it (if any), otherwise anyone."""
        right = tuple(sorted({k for k in right if k is not None}))
        anyone = st.sampled_from(SENDERS)
        return _mostly(data, st.sampled_from(right), anyone) if right else data.draw(anyone)

    def _task(self, data, *states: str) -> int:
        """Usually a task in one of `states`, else any task, else an unknown id."""
        unknown = st.integers(len(self.tasks) + 1, len(self.tasks) + 3)
        fitting = sorted(i for i, t in self.tasks.items() if t["state"] in states)
        if not self.tasks:
            return data.draw(unknown)
        any_task = st.sampled_from(sorted(self.tasks))
        return _mostly(data, st.sampled_from(fitting) if fitting else any_task, any_task, unknown)

    def _balance(self, who: str) -> int:
        return self.balances.get(ADDRESS[who], 0)

    def _is_whale(self, who: str) -> bool:
        """Holds a good part of the largest supply there can be (after a mint to the limit):
        its tasks test what amounts and sums near the 64-bit bounds do."""
        return self._balance(who) > WHALE

    def _party(self, task_id: int, role: str) -> str | None:
        """The name of the task's requester or provider, if the task and it exist."""
        return NAME.get(self.tasks.get(task_id, {}).get(role, ""))

    def _queue(self, sender: str, method: str, **args: Any) -> None:
        tx = self.m.tx(KEY[sender], method, **args)
        # A proposer leaves out a transaction whose fee may not be payable: the sender's
        # balance must cover the costs of its transactions before it in the block and
        # this fee (application._BlockFunds). Such a one is not sent.
        address = tx.sender_address
        taken = sum(_cost(t) for t in self.pending if t.sender_address == address)
        if self.balances.get(address, 0) < taken + tx.fee:
            event("left out: its fee may not be payable")
            self.m.unsend(tx)
            return
        self.pending.append(tx)
        if len(self.pending) >= MAX_PENDING:
            self._block()

    # --- setup ---------------------------------------------------------------------------------

    @initialize(
        units=st.integers(20, MAX_OFFER_UNITS),
        price=st.integers(1, 20),
        stake=st.integers(1_000, 10_000),
    )
    def a_provider_is_in_the_market(self, units, price, stake) -> None:
        offers = {
            name: {"gpu": "A100", "gpus": 8, "memory_gb": 80, "units": units, "price": price}
            for name in CLASSES
        }
        self._queue(
            "provider0", "register", name="first", tier="enterprise", offers=offers, stake=stake
        )
        self._block()

    # --- the registry --------------------------------------------------------------------------

    @rule(data=st.data(), tier=st.sampled_from(("enterprise", "community")), offers=offers_strategy)
    def register(self, data, tier, offers) -> None:
        sender = _mostly(
            data, st.sampled_from(PROVIDERS_), st.sampled_from(("requester0", "stranger"))
        )
        stake = _mostly(
            data,
            st.integers(1_000, 10_000),
            st.integers(1, 999),
            st.just(self._balance(sender) + 1),
        )
        self._queue(
            sender, "register", name=f"node {sender}", tier=tier, offers=offers, stake=stake
        )

    @rule(data=st.data(), offers=offers_strategy)
    def update(self, data, offers) -> None:
        self._queue(self._sender(data, *PROVIDERS_), "update", offers=offers)

    @rule(data=st.data())
    def add_stake(self, data) -> None:
        sender = self._sender(data, *PROVIDERS_)
        self._queue(sender, "add_stake", amount=_amount(data, self._balance(sender)))

    @rule(data=st.data())
    def leave(self, data) -> None:
        self._queue(self._sender(data, *PROVIDERS_), "leave")

    @rule(data=st.data(), oracle=st.sampled_from(ORACLE_CANDIDATES))
    def add_oracle(self, data, oracle) -> None:
        self._queue(self._sender(data, "authority"), "add_oracle", oracle=ADDRESS[oracle])

    @rule(data=st.data(), oracle=st.sampled_from(ORACLE_CANDIDATES))
    def remove_oracle(self, data, oracle) -> None:
        self._queue(self._sender(data, "authority"), "remove_oracle", oracle=ADDRESS[oracle])

    # --- tasks --------------------------------------------------------------------------------

    @rule(
        data=st.data(),
        resource_class=st.sampled_from(CLASSES),
        min_uptime_bps=st.sampled_from((9_000, 0, 10_000)),
        max_latency_ms=st.sampled_from((500, 1, 10**9)),
    )
    def submit(self, data, resource_class, min_uptime_bps, max_latency_ms) -> None:
        sender = self._sender(data, *REQUESTERS_, "provider1")
        units = _mostly(data, st.integers(1, 20), st.integers(21, 60))
        balance = self._balance(sender)
        all_of_it = st.just(max(balance // units, 1))
        max_price = _mostly(
            data,
            all_of_it if self._is_whale(sender) else st.integers(15, 40),
            st.integers(1, 14),
            st.just(MAX_AMOUNT // units),
            st.just(balance + 1),
            all_of_it,
        )
        deposit = max_price * units
        penalty = _mostly(
            data,
            st.integers(0, min(deposit, 100)),
            st.just(min(deposit, MAX_AMOUNT)),  # a deposit may exceed what a tx can carry
            st.just(min(deposit + 1, MAX_AMOUNT)),
        )
        deadline_s = _mostly(data, st.integers(8, MAX_DEADLINE_S), st.integers(1, 7))
        named = _mostly(data, st.just(""), st.sampled_from((*PROVIDERS_, "requester1")))
        self._queue(
            sender,
            "submit",
            kind="training",
            inputs=[CID],
            resource_class=resource_class,
            units=units,
            max_price=max_price,
            deadline_s=deadline_s,
            min_uptime_bps=min_uptime_bps,
            max_latency_ms=max_latency_ms,
            penalty=penalty,
            provider=ADDRESS.get(named, ""),
        )

    @rule(
        data=st.data(),
        resource_class=st.sampled_from(CLASSES),
        how=st.sampled_from(("max_price", "units", "provider")),
    )
    def hold_up_the_queue(self, data, resource_class, how) -> None:
        """The head-of-line attack: a requester submits more tasks than a block reads that
        no provider may take (a max_price of one, more units than any offer, or naming a
        provider that may be busy), with the longest deadline, ahead of everyone else's."""
        args = {"units": 1, "max_price": 1, "provider": ""}
        if how == "units":
            args["units"] = MAX_OFFER_UNITS + 1
        elif how == "provider":
            args.update(max_price=40, provider=ADDRESS[data.draw(st.sampled_from(PROVIDERS_))])
        sender = data.draw(st.sampled_from(REQUESTERS_))
        for _ in range(TIGHT_LIMITS["max_open_tasks_scanned"] + 1):
            self._queue(
                sender,
                "submit",
                kind="inference",
                inputs=[],
                resource_class=resource_class,
                deadline_s=MAX_DEADLINE_S,
                min_uptime_bps=0,
                max_latency_ms=10**9,
                penalty=0,
                **args,
            )

    @rule(data=st.data())
    def cancel(self, data) -> None:
        task = self._task(data, "open")
        self._queue(self._sender(data, self._party(task, "requester")), "cancel", task=task)

    @rule(data=st.data())
    def start(self, data) -> None:
        task = self._task(data, "assigned")
        self._queue(self._sender(data, self._party(task, "provider")), "start", task=task)

    @rule(data=st.data(), output=st.sampled_from(([], [CID])))
    def complete(self, data, output) -> None:
        task = self._task(data, "assigned", "running")
        units = self.tasks.get(task, {}).get("units", 10)
        units_used = _mostly(data, st.integers(1, units), st.just(units + 1))
        self._queue(
            self._sender(data, self._party(task, "provider")),
            "complete",
            task=task,
            units_used=units_used,
            output=output,
        )

    # --- SLA records and disputes -------------------------------------------------------------

    def _fresh_oracles(self, task_id: int, record: str) -> tuple[str, ...]:
        """Oracles that have not attested to (or voted on) the task yet."""
        task = self.tasks.get(task_id, {})
        done = (
            task.get("attestations", {})
            if record == "attest"
            else (task.get("dispute") or {}).get("votes", {})
        )
        return tuple(o for o in self.oracles if ADDRESS[o] not in done)

    @rule(
        data=st.data(),
        uptime_bps=st.sampled_from((9_900, 8_000, 10_000, 0)),
        latency_ms=st.sampled_from((100, 900, 0)),
    )
    def attest(self, data, uptime_bps, latency_ms) -> None:
        task = self._task(data, "completed")
        units = self.tasks.get(task, {}).get("units", 10)
        completed = _mostly(data, st.just(True), st.just(False))
        reported = _mostly(data, st.integers(0, units), st.just(units + 1))
        self._queue(
            self._sender(data, *self._fresh_oracles(task, "attest")),
            "attest",
            task=task,
            completed=completed,
            units=reported,
            uptime_bps=uptime_bps,
            latency_ms=latency_ms,
        )

    @rule(
        data=st.data(),
        provider=st.sampled_from((*PROVIDERS_, "requester0")),
        uptime_bps=st.integers(0, 10_000),
        latency_ms=st.integers(0, 1_000),
    )
    def attest_provider(self, data, provider, uptime_bps, latency_ms) -> None:
        self._queue(
            self._sender(data, *self.oracles),
            "attest_provider",
            provider=ADDRESS[provider],
            uptime_bps=uptime_bps,
            latency_ms=latency_ms,
        )

    @rule(data=st.data(), reason=st.sampled_from(("too slow", "", "the probe was wrong")))
    def dispute(self, data, reason) -> None:
        task = self._task(data, "verified")
        parties = (self._party(task, "requester"), self._party(task, "provider"))
        self._queue(self._sender(data, *parties), "dispute", task=task, reason=reason)

    @rule(data=st.data(), uphold=st.booleans())
    def vote(self, data, uphold) -> None:
        task = self._task(data, "disputed")
        self._queue(
            self._sender(data, *self._fresh_oracles(task, "vote")), "vote", task=task, uphold=uphold
        )

    # --- everyone does their part -------------------------------------------------------------

    @rule(data=st.data(), rounds=st.integers(1, 6))
    def the_parties_move_their_tasks_on(self, data, rounds) -> None:
        """For a few blocks, the next step of each unfinished task: mostly as due, by the
        party whose turn it is, so that sequences often reach the later states (verified,
        disputed, resolved) before their windows close; sometimes not yet, sent by an
        intruder, or sent twice (in one block: the second must be refused)."""
        for _ in range(rounds):
            self._next_steps(data)
            self._block()

    def _next_steps(self, data) -> None:
        if not any(t["state"] == "open" for t in self.tasks.values()):
            whales = [r for r in REQUESTERS_ if self._is_whale(r)]
            requester = _mostly(
                data, st.sampled_from(whales or REQUESTERS_), st.sampled_from(REQUESTERS_)
            )
            units = data.draw(st.integers(1, 20))
            max_price = data.draw(st.integers(5, 40))
            if self._is_whale(requester):  # all it holds but its fee, for one unit
                units, max_price = 1, self._balance(requester) - FEE_ROOM
            self._queue(
                requester,
                "submit",
                kind="inference",
                inputs=[],
                resource_class=data.draw(st.sampled_from(CLASSES)),
                units=units,
                max_price=max_price,
                deadline_s=data.draw(st.integers(8, MAX_DEADLINE_S)),
                min_uptime_bps=9_000,
                max_latency_ms=500,
                penalty=data.draw(st.integers(0, max_price * units)),
                provider="",
            )
        for task_id, task in sorted(self.tasks.items()):
            steps = self._steps_of(data, task_id, task)
            how = _mostly(
                data,
                st.just("as due"),
                st.just("not now"),
                st.just("by an intruder"),
                st.just("twice"),
            )
            if how == "not now":
                continue
            for sender, method, args in steps:
                if how == "by an intruder":
                    sender = data.draw(st.sampled_from(SENDERS))
                for _ in range(2 if how == "twice" else 1):
                    self._queue(sender, method, **args)

    @rule(data=st.data(), late=st.booleans())
    def at_a_deadline(self, data, late) -> None:
        """Blocks pass until a task's deadline or window is about to close (the next
        block is the last before it) or closes (the next block is the first at it); then
        the parties move the task on in that block."""
        due = sorted(i for i, t in self.tasks.items() if t["due"])
        if not due:
            return
        task_id = data.draw(st.sampled_from(due))
        kind, at = self.tasks[task_id]["due"]
        step = 1 if kind == "h" else 10**9  # a block: one height, one clock second
        self._block()
        for _ in range(DRAIN_BLOCKS):
            upcoming = self.m.height + 1 if kind == "h" else self.m.clock.now_ns + 10**9
            if upcoming >= (at if late else at - step):
                break
            self._block()
        for sender, method, args in self._steps_of(data, task_id, self.tasks[task_id]):
            self._queue(sender, method, **args)
        self._block()

    def _steps_of(self, data, task_id: int, task: dict[str, Any]) -> list[tuple[str, str, Any]]:
        """The transactions that move the task on, each by the party whose turn it is."""
        provider, requester = self._party(task_id, "provider"), self._party(task_id, "requester")
        current = task["state"]
        if current == "open" and requester and data.draw(st.booleans()):
            return [(requester, "cancel", {"task": task_id})]
        if current == "assigned" and provider and data.draw(st.booleans()):
            return [(provider, "start", {"task": task_id})]
        if current in ("assigned", "running") and provider:
            units_used = data.draw(st.integers(1, task["units"]))
            return [
                (provider, "complete", {"task": task_id, "units_used": units_used, "output": [CID]})
            ]
        if current == "completed":
            return [
                (
                    oracle,
                    "attest",
                    {
                        "task": task_id,
                        "completed": _mostly(data, st.just(True), st.just(False)),
                        "units": data.draw(st.integers(0, task["units"])),
                        "uptime_bps": data.draw(st.sampled_from((9_900, 10_000, 5_000))),
                        "latency_ms": data.draw(st.sampled_from((100, 0, 900))),
                    },
                )
                for oracle in self._fresh_oracles(task_id, "attest")
            ]
        if current == "verified":
            party = data.draw(st.sampled_from(("requester", "provider")))
            return [(self._party(task_id, party), "dispute", {"task": task_id, "reason": "no"})]
        if current == "disputed":
            return [
                (oracle, "vote", {"task": task_id, "uphold": data.draw(st.booleans())})
                for oracle in self._fresh_oracles(task_id, "vote")
            ]
        return []

    # --- tokens -------------------------------------------------------------------------------

    @rule(data=st.data(), to=st.sampled_from(SENDERS))
    def transfer(self, data, to) -> None:
        sender = self._sender(data)
        self._queue(
            sender, "token.transfer", to=ADDRESS[to], amount=_amount(data, self._balance(sender))
        )

    @rule(data=st.data())
    def burn(self, data) -> None:
        sender = self._sender(data)
        self._queue(sender, "token.burn", amount=_amount(data, self._balance(sender)))

    @rule(data=st.data())
    def mint(self, data) -> None:
        to = _mostly(data, st.sampled_from(REQUESTERS_), st.sampled_from(SENDERS))
        room = MAX_AMOUNT - (GENESIS_SUPPLY + self.minted - self.burned)  # as of the last block
        amount = _mostly(
            data,
            st.integers(1, 5_000),
            st.just(max(room, 1)),
            st.just(max(room - 1_000, 1)),
            st.just(MAX_AMOUNT),
        )
        self._queue(self._sender(data, "authority"), "token.mint", to=ADDRESS[to], amount=amount)

    # --- time ---------------------------------------------------------------------------------

    @rule()
    def produce_block(self) -> None:
        self._block()

    @rule(blocks=st.integers(1, 12))
    def let_time_pass(self, blocks) -> None:
        for _ in range(blocks):
            self._block()

    def teardown(self) -> None:
        if self.broken:
            return  # the failure already reported is the one to see
        self._block()
        for _ in range(DRAIN_BLOCKS):
            if all(t["state"] in FINAL for t in self.tasks.values()) and not any(
                p["status"] == "unbonding" for p in self.providers.values()
            ):
                break
            self._block()
        assert all(t["state"] in FINAL for t in self.tasks.values()), self.tasks
        reader = self.m.app.state()
        assert mstate.get_totals(reader).escrow == 0
        assert not any(list(reader.iterate(prefix)) for prefix in mstate.DUE.values())
        # Every query answers (none fails on what the run left behind).
        paths = [
            ("/market/stats", ""),
            ("/market/prices", ""),
            ("/market/oracles", ""),
            ("/market/providers", ""),
            ("/market/tasks", ""),
        ]
        paths += [("/market/task", str(i)) for i in sorted(self.tasks)]
        paths += [
            (f"/market/{what}", ADDRESS[name])
            for name in SENDERS
            for what in ("account", "provider")
            if what == "account" or name in (NAME.get(a) for a in self.providers)
        ]
        for path, data in paths:
            answer = self.m.app.query(path, data.encode())
            assert answer.code == Code.OK, (path, data, answer.log)
        assert not list(reader.iterate(mstate.UNBONDING))

    # --- one block, and everything that must hold after it ---------------------------------

    def _block(self) -> None:
        txs, self.pending = self.pending, []
        self.m.app.deliveries = []
        events_before = len(self.m.block_events)
        before = self._balances()
        try:
            results = self.m.block(*txs)
            # What the mempool's re-check and process_proposal's proof of payable fees
            # rest on: only an account's own transactions take from its balance.
            senders = {tx.sender_address for tx in txs}
            fell = {a for a, b in self._balances().items() if b < before[a]}
            assert fell <= senders, f"balances fell without a transaction of theirs: {fell}"
            block_events = self.m.block_events[events_before:]
            deliveries = self.m.app.deliveries
            assert [d.result for d in deliveries] == list(results)
            for delivery in deliveries:
                self._check_delivery(delivery)
            self._read_state()
            self._account(deliveries, block_events)
            self._check_invariants()
            self._check_no_starvation(block_events)
        except BaseException:
            self.broken = True
            raise

    def _check_delivery(self, d: Delivery) -> None:
        tx, result = d.tx, d.result
        sender = tx.sender_address
        what = (
            f"{tx.module}.{tx.method}",
            tx.args,
            result.code.name,
            result.log,
            sorted(c.name for c in d.refusals),
        )
        event(f"{tx.module}.{tx.method}: {result.code.name}")
        assert result.code != Code.INTERNAL, what
        assert nonce_key(sender) in d.changed, what
        if result.ok:
            assert not d.refusals, f"accepted although a rule refuses it: {what}"
            return
        assert result.code in d.refusals, f"refused without a rule that says so: {what}"
        assert result.log, what
        assert result.codespace == tx.module, what
        # Refused, it still paid its fee (burnt): its one event, and its only writes but
        # its nonce.
        assert [e.type for e in result.events] == ["fee"], what
        paid = {nonce_key(sender), token.balance_key(sender), token.SUPPLY_KEY}
        assert d.changed == paid, f"a refused transaction changed state: {what}"

    def _balances(self) -> dict[str, int]:
        reader = self.m.app.state()
        return {address: token.get_balance(reader, address) for address in ADDRESS.values()}

    def _read_state(self) -> None:
        reader = self.m.app.state()
        self.tasks = {int(i): t for i, t in self._records(reader, mstate.TASK)}
        self.providers = dict(self._records(reader, mstate.PROVIDER))
        self.oracles = [o for o in ORACLE_CANDIDATES if mstate.is_oracle(reader, ADDRESS[o])]

    def _records(self, reader: StateReader, prefix: bytes) -> list[tuple[str, Any]]:
        """(key suffix, record) under `prefix`, decoding only records that changed."""
        records = []
        for state_key, raw in reader.iterate(prefix):
            if raw not in self.decoded:
                self.decoded[raw] = codec.thaw(codec.decode(raw))
            records.append((state_key[len(prefix) :].decode(), self.decoded[raw]))
        return records

    def _account(self, deliveries: list[Delivery], block_events: list[Event]) -> None:
        """Bring the ledger up to date with this block: what succeeded, what was paid out
        (a task's payout once, when first seen final), what was minted and returned."""
        height = self.m.height
        events = list(block_events)
        for d in deliveries:
            self._credit(d.tx.sender_address, -d.tx.fee)  # paid, and burnt, whatever the result
            self.fees += d.tx.fee
            if not d.result.ok:
                continue
            events.extend(d.result.events)
            sender, args = d.tx.sender_address, d.tx.args
            method = f"{d.tx.module}.{d.tx.method}"
            if method == "token.transfer":
                self._credit(sender, -args["amount"])
                self._credit(args["to"], args["amount"])
            elif method == "token.burn":
                self._credit(sender, -args["amount"])
                self.burned += args["amount"]
            elif method == "token.mint":
                self._credit(args["to"], args["amount"])
                self.minted += args["amount"]
            elif method in ("market.register", "market.add_stake"):
                amount = args.get("stake", args.get("amount"))
                self._credit(sender, -amount)
                self.stakes[sender] += amount
            elif method == "market.submit":
                self._credit(sender, -args["units"] * args["max_price"])
        for task_id, task in sorted(self.tasks.items()):
            if task["state"] not in FINAL:
                assert task["payout"] is None, task
                continue
            if task_id in self.paid:
                assert task["payout"] == self.paid[task_id], f"task {task_id} paid again"
                continue
            payout = task["payout"]
            event(f"task: {' > '.join(s for s, _ in task['history'])}")
            assert payout is not None and payout["at"] == height, task
            self.paid[task_id] = payout
            self._credit(task["requester"], payout["requester"])
            if task["provider"]:
                self._credit(task["provider"], payout["provider"])
                self.stakes[task["provider"]] -= payout["slashed"]
            assert payout["provider"] + payout["requester"] == task["deposit"] + payout["slashed"]
            assert 0 <= payout["provider"] <= task["deposit"] and payout["slashed"] >= 0, task
        for block_event in events:
            attrs = _attributes(block_event)
            if block_event.type == "market_reward":
                self._credit(attrs["recipient"], int(attrs["amount"]))
                self.minted += int(attrs["amount"])
                self.rewarded[attrs["role"], attrs["recipient"]] += int(attrs["amount"])
            elif block_event.type == "market_left":
                self._credit(attrs["provider"], int(attrs["stake_returned"]))
                self.stakes[attrs["provider"]] -= int(attrs["stake_returned"])
            elif block_event.type in FINAL_EVENTS:
                self.final_events[int(attrs["task"])] += 1
            assert block_event.type != "end_block_error", block_event

    def _credit(self, address: str, amount: int) -> None:
        self.balances[address] = self.balances.get(address, 0) + amount

    def _check_invariants(self) -> None:
        reader = self.m.app.state()
        tasks, providers = self.tasks, self.providers
        prefix = b"token/balance/"
        balances = {k[len(prefix) :].decode(): codec.decode(v) for k, v in reader.iterate(prefix)}
        supply = token.get_supply(reader)
        totals = mstate.get_totals(reader).to_obj()
        # Tokens are conserved, and no balance, stake or total is negative.
        assert supply == GENESIS_SUPPLY + self.minted - self.burned - self.fees
        assert sum(balances.values()) + totals["escrow"] + totals["stake"] == supply
        assert all(b > 0 for b in balances.values()), balances
        assert totals["escrow"] >= 0 and totals["stake"] >= 0, totals
        assert all(p["stake"] >= 0 for p in providers.values()), providers
        # Every balance and stake is what the ledger says: nothing paid twice.
        assert balances == {a: b for a, b in self.balances.items() if b}
        assert {a: p["stake"] for a, p in providers.items() if p["stake"]} == {
            a: s for a, s in self.stakes.items() if s
        }
        # Escrow holds the deposits of unsettled tasks; stakes are the providers'.
        unsettled = [t for t in tasks.values() if t["state"] not in FINAL]
        assert totals["escrow"] == sum(t["deposit"] for t in unsettled)
        assert totals["stake"] == sum(p["stake"] for p in providers.values())
        # One final state, once, with one refund/settle/resolve event.
        for task_id, task in tasks.items():
            history = [s for s, _ in task["history"]]
            final = task["state"] in FINAL
            assert sum(s in FINAL for s in history) == int(final), task
            assert history[-1] == task["state"], task
            assert self.final_events[task_id] == int(final), (task, self.final_events[task_id])
            if task["provider"]:
                assert 0 < task["price"] <= task["max_price"], task
        self._check_indexes(reader)
        self._check_statistics(reader)

    def _check_no_starvation(self, block_events: list[Event]) -> None:
        """Tasks that cannot be assigned do not hold back one that can.

        After a block that assigned nothing, an open task that a provider could take now
        (active, staked, offering its class at no more than the task's max_price, with
        the free units; the one it names, if it names one) could have been taken in that
        block too: nothing after the assignment changes that. So it was not looked at,
        and its class's cursor moved on past other tasks of its class, never past it:
        in a row of such blocks it is passed over at most once for each other task of
        its class open meanwhile (the two classes share the five tasks read a block)."""
        if any(e.type == "market_assign" for e in block_events):
            self.passed_over = {}
            return
        time_ns = self.m.app.store.last_block.header.time_ns
        min_stake = get_params(self.m.app.state()).min_stake
        waiting: dict[str, set[int]] = defaultdict(set)
        for task_id, task in self.tasks.items():
            if task["state"] == "open":
                waiting[task["resource_class"]].add(task_id)
        passed_over = {}
        for task_id, task in sorted(self.tasks.items()):
            if (
                task["state"] != "open"
                or time_ns >= task["deadline_ns"]
                or not any(_could_take(p, a, task, min_stake) for a, p in self.providers.items())
            ):
                continue
            blocks, others = self.passed_over.get(task_id, (0, frozenset()))
            blocks += 1
            others |= waiting[task["resource_class"]] - {task_id}
            assert blocks <= len(others), (
                f"task {task_id} could be assigned, but was passed over {blocks} times "
                f"behind {sorted(others)}"
            )
            passed_over[task_id] = (blocks, others)
        self.passed_over = passed_over

    def _check_statistics(self, reader: StateReader) -> None:
        """What the statistics say each account earned, was refunded and lost is what the
        payouts and rewards moved (running sums, saturating at STAT_MAX); and what a
        requester paid, the price P_i of U_r, is what it put into its tasks and did not
        get back, however they ended (a slashed stake it was given lowers it)."""
        expected: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        paid: Counter[str] = Counter()
        moved: Counter[str] = Counter()  # |what was paid|, summed: below STAT_MAX, no saturation
        for task_id, payout in self.paid.items():
            task = self.tasks[task_id]
            expected["requester", task["requester"]]["refunded"] += payout["requester"]
            paid[task["requester"]] += task["deposit"] - payout["requester"]
            moved[task["requester"]] += abs(task["deposit"] - payout["requester"])
            if task["provider"]:
                expected["provider", task["provider"]]["earned"] += payout["provider"]
                expected["provider", task["provider"]]["slashed"] += payout["slashed"]
        for (role, address), rewarded in self.rewarded.items():
            expected[role, address]["rewarded"] += rewarded
        for (role, address), amounts in expected.items():
            stats = mstate.get_stats(reader, role, address)
            assert {k: getattr(stats, k) for k in amounts} == {
                k: min(v, STAT_MAX) for k, v in amounts.items()
            }, role + address
        for address, amount in paid.items():
            if moved[address] <= STAT_MAX:
                assert mstate.get_requester_stats(reader, address).paid == amount, address

    def _check_indexes(self, reader: StateReader) -> None:
        tasks, providers = self.tasks, self.providers
        assert set(mstate.iterate_open(reader)) == {
            (t["resource_class"], i) for i, t in tasks.items() if t["state"] == "open"
        }
        due = {
            (kind, int(k[len(p) :][:20]), int(k[len(p) :][20:]))
            for kind, p in mstate.DUE.items()
            for k, _ in reader.iterate(p)
        }
        assert due == {(t["due"][0], t["due"][1], i) for i, t in tasks.items() if t["due"]}
        assert all(bool(t["due"]) == (t["state"] not in FINAL) for t in tasks.values())
        assert set(mstate.iterate_unbonding(reader)) == {
            a for a, p in providers.items() if p["status"] == "unbonding"
        }
        assert mstate.oracle_count(reader) == len(list(reader.iterate(mstate.ORACLE)))
        # Units in flight: those of assigned and running tasks, by provider and by class.
        in_flight: dict[str, Counter[str]] = defaultdict(Counter)
        for task in tasks.values():
            if task["state"] in ("assigned", "running"):
                in_flight[task["provider"]][task["resource_class"]] += task["units"]
        pending: Counter[str] = Counter(
            t["provider"] for t in tasks.values() if t["provider"] and t["state"] not in FINAL
        )
        for address, provider in providers.items():
            assert provider["in_flight"] == dict(in_flight[address]), (address, provider)
            assert provider["tasks_pending"] == pending[address], (address, provider)
            if provider["status"] == "left":
                assert provider["offers"] == {} and provider["stake"] == 0, provider
        for name, record in ((n, r.to_obj()) for n, r in mstate.iterate_classes(reader)):
            assert record["in_flight"] == sum(c[name] for c in in_flight.values()), name
            assert record["capacity"] == sum(
                p["offers"][name]["units"] for p in providers.values() if name in p["offers"]
            ), (name, record)
            for provider in providers.values():
                offer = provider["offers"].get(name)
                if offer is not None:
                    assert provider["in_flight"].get(name, 0) <= offer["units"], provider


def _could_take(
    provider: dict[str, Any], address: str, task: dict[str, Any], min_stake: int
) -> bool:
    """Whether the provider could take the task now (its per-block cap aside)."""
    offer = provider["offers"].get(task["resource_class"])
    return (
        provider["status"] == "active"
        and provider["stake"] >= min_stake
        and offer is not None
        and offer["price"] <= task["max_price"]
        and offer["units"] - provider["in_flight"].get(task["resource_class"], 0) >= task["units"]
        and task["named_provider"] in ("", address)
    )


MarketMachine.TestCase.settings = settings(stateful_step_count=30)
TestMarketMachine = MarketMachine.TestCase
