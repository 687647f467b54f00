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
only at the three final states: `refunded` (the deposit back, and an assigned
provider that let the deadline pass is penalised), `settled` and `resolved`
(the provider paid P_i·C_i less the penalty λ_i·R_i; a penalty beyond the payment
is taken from its stake and given to the requester; the rest of the deposit back).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cloudchain.chaincode.context import Overlay
from cloudchain.chaincode.market import state
from cloudchain.chaincode.market.params import BPS, MarketParams, get_params
from cloudchain.chaincode.module import MAX_AMOUNT
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
QUALITY_LOSS_PER_VIOLATION_BPS = 2_500


class TransitionError(AssertionError):
    """A transition the state machine does not have: a bug, never a user's mistake
    (handlers check states first and refuse with a code)."""


def transition(kv: Overlay, task: dict[str, Any], new_state: str, height: int) -> None:
    """Move the task; the caller has set what the new state's window starts from
    (completed_at, verified_at, dispute["at"]) and stores the task."""
    if (task["state"], new_state) not in TRANSITIONS:
        raise TransitionError(f"task {task['id']}: {task['state']} -> {new_state}")
    if task["state"] == "open":  # nothing moves back to open: it leaves the queue for good
        state.set_open(kv, task, False)
    task["state"] = new_state
    task["history"].append([new_state, height])
    state.set_due(kv, task, due(kv, task))


def due(kv: Overlay, task: dict[str, Any]) -> tuple[str, int] | None:
    """When the end-of-block work must next look at the task: its deadline (by block
    time) while it waits or runs, the close of its window (by height) after."""
    current = task["state"]
    if current in ("open", "assigned", "running"):
        return ("t", task["deadline_ns"])
    if current in FINAL or current == "expired":
        return None
    params = get_params(kv)
    if current == "completed":
        return ("h", task["completed_at"] + params.attestation_blocks)
    if current == "verified":
        return ("h", task["verified_at"] + params.dispute_blocks)
    assert current == "disputed"
    return ("h", task["dispute"]["at"] + params.dispute_vote_blocks)


@dataclass(frozen=True)
class Outcome:
    """What the oracles' quorum decided about a completed task."""

    completed: bool
    units: int  # verified compute units, C_i
    uptime_bps: int
    latency_ms: int
    violations: int  # R_i: SLA terms the quorum found broken
    payment: int  # P_i·C_i
    penalty: int  # λ_i·R_i

    @property
    def quality_bps(self) -> int:
        return max(0, BPS - QUALITY_LOSS_PER_VIOLATION_BPS * self.violations)

    def to_obj(self) -> dict[str, Any]:
        return {
            "completed": self.completed,
            "units": self.units,
            "uptime_bps": self.uptime_bps,
            "latency_ms": self.latency_ms,
            "violations": self.violations,
            "payment": self.payment,
            "penalty": self.penalty,
            "quality_bps": self.quality_bps,
        }

    @classmethod
    def from_obj(cls, obj: dict[str, Any]) -> Outcome:
        return cls(
            obj["completed"],
            obj["units"],
            obj["uptime_bps"],
            obj["latency_ms"],
            obj["violations"],
            obj["payment"],
            obj["penalty"],
        )


def violations_of(task: dict[str, Any], completed: bool, uptime_bps: int, latency_ms: int) -> int:
    return (
        (not completed)
        + (uptime_bps < task["min_uptime_bps"])
        + (latency_ms > task["max_latency_ms"])
    )


def penalty_of(task: dict[str, Any], violations: int) -> int:
    """λ_i·R_i, as an amount: at most MAX_AMOUNT (a payment and a stake, all it can be
    taken from, are amounts too), so that an outcome always fits in state."""
    return min(task["penalty"] * violations, MAX_AMOUNT)


def release_capacity(kv: Overlay, task: dict[str, Any]) -> None:
    """The provider's units for this task are free again."""
    provider = state.get_provider(kv, task["provider"])
    assert provider is not None
    name = task["resource_class"]
    provider["in_flight"][name] -= task["units"]
    assert provider["in_flight"][name] >= 0
    if provider["in_flight"][name] == 0:
        del provider["in_flight"][name]
    state.put_provider(kv, task["provider"], provider)
    state.add_class(kv, name, in_flight=-task["units"])


def pay_out(
    kv: Overlay, params: MarketParams, task: dict[str, Any], outcome: Outcome, height: int
) -> dict[str, int]:
    """Move the escrowed deposit as `outcome` says; returns who got what."""
    deposit = task["deposit"]
    provider_address = task["provider"]
    provider = state.get_provider(kv, provider_address)
    assert provider is not None
    paid = max(0, outcome.payment - outcome.penalty)
    slashed = min(max(0, outcome.penalty - outcome.payment), provider["stake"])
    refund = deposit - paid + slashed
    assert 0 <= paid <= deposit
    state.add_totals(kv, escrow=-deposit, stake=-slashed)
    provider["stake"] -= slashed
    provider["tasks_pending"] -= 1
    _rate(provider, params, outcome.violations)
    state.put_provider(kv, provider_address, provider)
    token.credit(kv, provider_address, paid)
    token.credit(kv, task["requester"], refund)
    # P_i·C_i - λ_i·R_i for the profit Π_p; Q_i (the deposit's worth, scaled by the
    # quality delivered) and the price paid for the utility U_r.
    worth = task["max_price"] * outcome.units * outcome.quality_bps // BPS
    state.add_stats(
        kv,
        "provider",
        provider_address,
        earned=paid,
        gross=outcome.payment,
        penalties=outcome.penalty,
        slashed=slashed,
        units=outcome.units,
        tasks=1,
        violated=int(outcome.violations > 0),
    )
    state.add_stats(
        kv,
        "requester",
        task["requester"],
        paid=paid - slashed,
        worth=worth,
        refunded=refund,
        tasks=1,
    )
    state.add_global(kv, tasks_settled=1, tasks_compliant=int(outcome.violations == 0))
    # quality-weighted units: at most the units, so that an epoch's sum stays an int64
    state.add_epoch(
        kv, state.EPOCH_WORK, provider_address, outcome.units * outcome.quality_bps // BPS
    )
    task["payout"] = {"provider": paid, "requester": refund, "slashed": slashed, "at": height}
    return task["payout"]


def refund(
    kv: Overlay, params: MarketParams, task: dict[str, Any], penalise: int, height: int
) -> dict[str, int]:
    """The whole deposit back to the requester; an assigned provider answers for
    `penalise` violations (λ_i each) from its stake, which goes to the requester too."""
    deposit = task["deposit"]
    slashed = 0
    if task["provider"]:
        provider = state.get_provider(kv, task["provider"])
        assert provider is not None
        provider["tasks_pending"] -= 1
        state.put_provider(kv, task["provider"], provider)
    if task["provider"] and penalise:
        slashed = min(penalty_of(task, penalise), provider["stake"])
        provider["stake"] -= slashed
        _rate(provider, params, penalise)
        state.put_provider(kv, task["provider"], provider)
        state.add_stats(
            kv,
            "provider",
            task["provider"],
            penalties=penalty_of(task, penalise),
            slashed=slashed,
            tasks=1,
            violated=1,
        )
        state.add_global(kv, tasks_settled=1)
    state.add_totals(kv, escrow=-deposit, stake=-slashed)
    token.credit(kv, task["requester"], deposit + slashed)
    state.add_stats(kv, "requester", task["requester"], refunded=deposit + slashed)
    task["payout"] = {
        "provider": 0,
        "requester": deposit + slashed,
        "slashed": slashed,
        "at": height,
    }
    return task["payout"]


def _rate(provider: dict[str, Any], params: MarketParams, violations: int) -> None:
    if violations:
        loss = params.reputation_loss_bps * violations
        provider["reputation"] = max(0, provider["reputation"] - loss)
    else:
        provider["reputation"] = min(BPS, provider["reputation"] + params.reputation_gain_bps)
