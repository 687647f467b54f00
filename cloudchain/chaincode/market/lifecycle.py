"""A task's states, the transitions between them, and the money each final one moves.

    open ──assign──> assigned ──start──> running ──complete──> completed
      │                 │                   │                      │ quorum of attestations
      │ cancel          │ deadline          │ deadline             v
      v                 v                   v                   verified ──window──> settled
    refunded <──── expired <────────────────┘                      │ dispute
      ^                                         no quorum in time  v
      └──────────────── completed ─────────────────────────── disputed ──votes──> resolved

Every change of state goes through `transition`, which refuses any pair not in
TRANSITIONS: a bug cannot move a task where the rules do not allow. Tokens move
only at the three final states: `refunded` (`refund`: the deposit back, and an
assigned provider that let the deadline pass is penalised), `settled` and `resolved`
(`pay_out`: the provider paid its term of Π_p, P_i·C_i - λ_i·R_i, the rest of the
deposit back). Both take a penalty beyond what the provider is paid from its stake by
one rule, `slash`.
"""

from __future__ import annotations

from dataclasses import replace

from cloudchain.chaincode.context import BlockContext, Context, Overlay
from cloudchain.chaincode.market import state
from cloudchain.chaincode.market.economics import ProfitTerm, Tokens, Units, UtilityTerm
from cloudchain.chaincode.market.params import BPS, MarketParams
from cloudchain.chaincode.market.records import Due, HistoryEntry, Outcome, Payout, Provider, Task
from cloudchain.chaincode.modules import token

TRANSITIONS = frozenset({
    ("open", "assigned"), ("open", "expired"), ("open", "refunded"),
    ("assigned", "running"), ("assigned", "completed"), ("assigned", "expired"),
    ("running", "completed"), ("running", "expired"),
    ("completed", "verified"), ("completed", "refunded"),
    ("expired", "refunded"),
    ("verified", "settled"), ("verified", "disputed"),
    ("disputed", "resolved"),
})  # fmt: skip
FINAL = frozenset({"refunded", "settled", "resolved"})


class TransitionError(AssertionError):
    """A transition the state machine does not have: a bug, never a user's mistake
    (handlers check states first and refuse with a code)."""


def transition(kv: Overlay, task: Task, new_state: str, height: int) -> Task:
    """The task moved to `new_state` (and filed under when it is next due); the caller
    has set what the new state's window starts from (completed_at, verified_at,
    dispute.at) and stores the task."""
    if (task.state, new_state) not in TRANSITIONS:
        raise TransitionError(f"task {task.id}: {task.state} -> {new_state}")
    if task.state == "open":  # nothing moves back to open: it leaves the queue for good
        state.set_open(kv, task.resource_class, task.id, False)
    next_due = due(kv, task, new_state)
    state.file_due(kv, task.id, task.due, next_due)
    history = (*task.history, HistoryEntry(new_state, height))
    return replace(task, state=new_state, history=history, due=next_due)


def due(kv: Overlay, task: Task, current: str) -> Due | None:
    """When the end-of-block work must next look at the task in state `current`: its
    deadline (by block time) while it waits or runs, the close of its window (by
    height) after."""
    if current in ("open", "assigned", "running"):
        return Due("t", task.deadline_ns)
    if current in FINAL or current == "expired":
        return None
    params = state.get_params(kv)
    if current == "completed":
        return Due("h", task.completed_at + params.attestation_blocks)
    if current == "verified":
        return Due("h", task.verified_at + params.dispute_blocks)
    assert current == "disputed" and task.dispute is not None
    return Due("h", task.dispute.at + params.dispute_vote_blocks)


def violations_of(task: Task, completed: bool, uptime_bps: int, latency_ms: int) -> int:
    """R_i: the SLA terms broken."""
    return (not completed) + (uptime_bps < task.min_uptime_bps) + (latency_ms > task.max_latency_ms)


def profit_term(task: Task, units: Units, violations: int) -> ProfitTerm:
    """The task's term of Π_p when `units` (C_i) were verified and `violations` (R_i)
    found: P_i·C_i at the price it was assigned at, λ_i·R_i at its penalty."""
    return ProfitTerm.of(task.price, units, task.penalty, violations)


def release_capacity(kv: Overlay, task: Task) -> None:
    """The provider's units for this task are free again."""
    provider = state.get_provider(kv, task.provider)
    assert provider is not None
    state.put_provider(kv, task.provider, provider.with_in_flight(task.resource_class, -task.units))
    state.add_class(kv, task.resource_class, in_flight=-task.units)


def slash(kv: Overlay, task: Task, provider: Provider, amount: Tokens) -> tuple[Provider, Tokens]:
    """Take `amount`, as far as it goes, from the stake of the task's provider
    (`provider`, its record) and give it to the task's requester: the provider with the
    stake that is left, for the caller to store, and what was taken. The one slashing
    rule, for every path a penalty reaches a provider by: settlement and dispute
    resolution (`pay_out`, when λ_i·R_i is more than P_i·C_i) and expiry (`refund`,
    where nothing is paid).

    The stake goes to the requester, never burned: the paper bills requesters by the
    quality of service they got (section III.C: "billed based on the quality of service
    and actual use of resources"), so a violation lowers the price P_i a requester pays
    in U_r = Σ(Q_i - P_i), below zero when the penalty is more than the payment; and
    λ_i·R_i is the provider's loss in Π_p = Σ(P_i·C_i - λ_i·R_i). What the provider
    loses the requester it failed gains: the penalty moves between the two parties to
    the broken agreement, and the supply stays as it was (burning would make the
    requester bear the violation uncompensated, and shrink the supply with every one).

    Booked by the caller, the same way whichever path it came by: the provider's
    `slashed` with the rest of its statistics; the requester's `refunded` as much, and
    its price P_i lowered by as much (`UtilityTerm.of`: below zero when the provider was
    paid nothing, so that U_r counts the compensation)."""
    assert provider.stake >= 0 and amount >= 0
    slashed = min(amount, provider.stake)
    if slashed:
        state.add_totals(kv, stake=-slashed)
        token.credit(kv, task.requester, slashed)
    return replace(provider, stake=provider.stake - slashed), slashed


def pay_out(kv: Overlay, params: MarketParams, task: Task, outcome: Outcome, height: int) -> Task:
    """Move the escrowed deposit as `outcome` says: the provider is paid the task's term
    of Π_p if it is positive, and answers for it from its stake (`slash`) if it is
    negative; the rest of the deposit goes back. The task with its payout.

    The statistics book the task's terms as economics defines them: the ProfitTerm
    (P_i·C_i, λ_i·R_i, and what it earned) for the provider, the UtilityTerm (Q_i, P_i)
    for the requester."""
    profit = outcome.profit
    earned = profit.earned
    assert earned <= task.deposit
    back = task.deposit - earned
    provider = state.get_provider(kv, task.provider)
    assert provider is not None
    provider, slashed = slash(kv, task, provider, profit.owed)
    provider = replace(provider, tasks_pending=provider.tasks_pending - 1)
    state.put_provider(kv, task.provider, _rated(provider, params, outcome.violations))
    state.add_totals(kv, escrow=-task.deposit)
    token.credit(kv, task.provider, earned)
    token.credit(kv, task.requester, back)
    state.add_stats(
        kv,
        "provider",
        task.provider,
        earned=earned,
        gross=profit.payment,
        penalties=profit.penalty,
        slashed=slashed,
        units=outcome.units,
        tasks=1,
        violated=int(outcome.violations > 0),
    )
    utility = UtilityTerm.of(task.max_price, outcome.units, outcome.violations, earned, slashed)
    state.add_stats(
        kv,
        "requester",
        task.requester,
        paid=utility.paid,
        worth=utility.quality,
        refunded=back + slashed,
        tasks=1,
    )
    state.add_global(kv, tasks_settled=1, tasks_compliant=int(outcome.violations == 0))
    # quality-weighted units: at most the units, so that an epoch's sum stays an int64
    state.add_epoch(kv, state.EPOCH_WORK, task.provider, outcome.units * outcome.quality_bps // BPS)
    return replace(task, payout=Payout(earned, back + slashed, slashed, height))


def refund(kv: Overlay, params: MarketParams, task: Task, penalise: int, height: int) -> Task:
    """The whole deposit back to the requester; an assigned provider answers for
    `penalise` violations (λ_i each) from its stake (`slash`): nothing having been
    verified (C_i = 0), its term of Π_p is -λ_i·R_i, all of it owed. The task with its
    payout.

    The requester's term of U_r is then Q_i = 0 (nothing delivered) and P_i = -slashed:
    only that price is booked, and only when a stake was slashed, so that a refund
    stores the sums it always stored (a sum is stored once something is added to it,
    even 0: records._Sums)."""
    slashed = 0
    if task.provider:
        provider = state.get_provider(kv, task.provider)
        assert provider is not None
        provider = replace(provider, tasks_pending=provider.tasks_pending - 1)
        if penalise:
            profit = profit_term(task, 0, penalise)
            # nothing verified: no P_i·C_i to take λ_i·R_i from, all of it is owed
            provider, slashed = slash(kv, task, provider, profit.penalty)
            provider = _rated(provider, params, penalise)
            state.add_stats(
                kv,
                "provider",
                task.provider,
                penalties=profit.penalty,
                slashed=slashed,
                tasks=1,
                violated=1,
            )
            state.add_global(kv, tasks_settled=1)
        state.put_provider(kv, task.provider, provider)
    state.add_totals(kv, escrow=-task.deposit)
    token.credit(kv, task.requester, task.deposit)
    requester = {"refunded": task.deposit + slashed}
    if slashed:
        requester["paid"] = UtilityTerm.of(task.max_price, 0, penalise, 0, slashed).paid
    state.add_stats(kv, "requester", task.requester, **requester)
    return replace(task, payout=Payout(0, task.deposit + slashed, slashed, height))


def refund_open(ctx: Context | BlockContext, params: MarketParams, task: Task, reason: str) -> Task:
    """An open task refunded whole (cancelled, or past what its dataset's budget has
    left), stored, and said in a market_refund event; the task as it is now."""
    record = transition(ctx.kv, task, "refunded", ctx.height)
    record = refund(ctx.kv, params, record, 0, ctx.height)
    state.put_task(ctx.kv, record)
    assert record.payout is not None
    ctx.emit(
        "market_refund",
        task=task.id,
        requester=task.requester,
        amount=record.payout.requester,
        reason=reason,
    )
    return record


def _rated(provider: Provider, params: MarketParams, violations: int) -> Provider:
    """Its reputation after a task with `violations`: down per violation, up without."""
    if violations:
        loss = params.reputation_loss_bps * violations
        return replace(provider, reputation=max(0, provider.reputation - loss))
    return replace(provider, reputation=min(BPS, provider.reputation + params.reputation_gain_bps))
