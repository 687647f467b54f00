"""SLA records: oracles attest to completed tasks and to providers' service.

An attestation is an oracle's signed transaction. A task's outcome is decided
when `quorum(oracles)` attestations (quorum_bps of the oracles, rounded up)
agree on whether it was completed, never by one oracle; the verified units,
uptime and latency are the medians of what those report, so that a minority of
wrong reports cannot move them. Without such a quorum when the attestation
window closes, the task is refunded unverified. An oracle whose report agrees
with the outcome on every SLA term attested honestly and shares the epoch's
oracle reward; an attestation that arrives after the outcome (until the task
settles) cannot move it, but is scored the same way.

Only oracles that are oracles when the outcome is decided count, toward the quorum
and in the medians (and only they are scored): the authority removes an oracle
because its word is no longer trusted, and that goes for what it said before. The
outcome is decided when an attestation arrives, so a removal alone decides nothing:
the task waits for the next attestation, or its window. Dispute votes are counted the
same way (disputes.py).

An oracle is never a judge in its own case: it may not attest to, or vote on a dispute
of, a task it is the provider or the requester of, nor attest to its own service as a
provider. The quorum is then a fraction of the oracles that may judge the task, so that
an oracle's own tasks can still be decided by the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from cloudchain.chaincode.codes import Code
from cloudchain.chaincode.context import Context, Overlay, StateReader
from cloudchain.chaincode.market import state
from cloudchain.chaincode.market.lifecycle import profit_term, transition, violations_of
from cloudchain.chaincode.market.module import MARKET, bps_arg
from cloudchain.chaincode.market.params import BPS
from cloudchain.chaincode.market.records import Attestation, Outcome, Task
from cloudchain.chaincode.market.tasks import get_task_or_refuse, require_state, task_id_arg
from cloudchain.chaincode.module import TxError, address_arg, bool_arg, int_arg

latency_arg = int_arg(0, 10**9)


def require_oracle(ctx: Context) -> None:
    # Verify that the sender is an oracle.
    if not state.is_oracle(ctx.kv, ctx.sender):
        raise TxError(Code.UNAUTHORIZED, f"{ctx.sender} is not an oracle")


def require_not_a_party(ctx: Context, task: Task) -> None:
    # Verify that the oracle is neither the task's provider nor its requester.
    for role, party in (("provider", task.provider), ("requester", task.requester)):
        if ctx.sender == party:
            raise TxError(
                Code.UNAUTHORIZED,
                f"{ctx.sender} is task {task.id}'s {role}: an oracle may not judge its own task",
            )


def judges(kv: StateReader, task: Task) -> int:
    """The oracles that may attest to (or vote on) the task: all but its parties."""
    parties = {task.provider, task.requester} - {""}
    return state.oracle_count(kv) - sum(state.is_oracle(kv, party) for party in parties)


def current_oracles(kv: StateReader, addresses: Iterable[str]) -> list[str]:
    """Those of `addresses` that are oracles now, in address order."""
    return [address for address in sorted(addresses) if state.is_oracle(kv, address)]


@MARKET.tx(
    "attest",
    task=task_id_arg,
    completed=bool_arg,
    units=int_arg(0, 10**12),
    uptime_bps=bps_arg,
    latency_ms=latency_arg,
)
def process_attest(
    ctx: Context, task: int, completed: bool, units: int, uptime_bps: int, latency_ms: int
) -> None:
    require_oracle(ctx)
    record = get_task_or_refuse(ctx, task)
    require_state(record, "completed", "verified")
    require_not_a_party(ctx, record)
    params = state.get_params(ctx.kv)
    # Verify that the attestation window is still open (a task stays verified only
    # until its dispute window closes).
    if record.state == "completed" and (
        ctx.height >= record.completed_at + params.attestation_blocks
    ):
        raise TxError(Code.DEADLINE_PASSED, f"task {task}'s attestation window has closed")
    # Verify that this oracle has not attested to this task yet.
    if ctx.sender in record.attestations:
        raise TxError(Code.ALREADY_EXISTS, f"{ctx.sender} has already attested to task {task}")
    # Verify that no more units are attested than the task bought.
    if units > record.units:
        raise TxError(Code.OUT_OF_RANGE, f"units {units} exceeds the task's {record.units}")
    attestation = Attestation(completed, units, uptime_bps, latency_ms, at=ctx.height)
    record = record.with_attestation(ctx.sender, attestation)
    ctx.emit("market_attest", task=task, oracle=ctx.sender, completed=completed)
    if record.state == "verified":  # late: it cannot move the outcome, but is scored
        assert record.outcome is not None
        _count_honest(ctx.kv, record, record.outcome, (ctx.sender,))
        state.put_task(ctx.kv, record)
        return
    counted = current_oracles(ctx.kv, record.attestations)
    outcome = decide(record, counted, params.quorum(judges(ctx.kv, record)))
    if outcome is not None:
        record = replace(record, outcome=outcome, verified_at=ctx.height)
        record = transition(ctx.kv, record, "verified", ctx.height)
        _count_honest(ctx.kv, record, outcome, counted)
        ctx.emit(
            "market_verified",
            task=task,
            violations=outcome.violations,
            payment=outcome.payment,
            penalty=outcome.penalty,
        )
    state.put_task(ctx.kv, record)


def decide(task: Task, oracles: Sequence[str], quorum: int) -> Outcome | None:
    """The outcome once `quorum` of the attestations of `oracles` agree on completion
    (None before): the medians of what those report, in oracle address order."""
    reports = [task.attestations[oracle] for oracle in sorted(oracles)]
    done = [r for r in reports if r.completed]
    not_done = [r for r in reports if not r.completed]
    if len(done) >= quorum:
        completed, agreeing = True, done
    elif len(not_done) >= quorum:
        completed, agreeing = False, not_done
    else:
        return None
    # On an even count the tie goes to the provider for the SLA terms (the higher
    # uptime, the lower latency) and to the requester for the units it pays for.
    uptime = _median([r.uptime_bps for r in agreeing], upper=True)
    latency = _median([r.latency_ms for r in agreeing])
    units = 0
    if completed:
        units = min(_median([r.units for r in agreeing]), task.units_used)
    violations = violations_of(task, completed, uptime, latency)
    profit = profit_term(task, units, violations)
    return Outcome(completed, units, uptime, latency, violations, profit.payment, profit.penalty)


def _median(values: list[int], upper: bool = False) -> int:
    """The median, one of the reported values: on an even count the lower of the two
    middle ones, or the upper."""
    ordered = sorted(values)
    return ordered[len(ordered) // 2 if upper else (len(ordered) - 1) // 2]


def _count_honest(kv: Overlay, task: Task, outcome: Outcome, oracles: Sequence[str]) -> None:
    expected = _terms_broken(task, outcome.completed, outcome.uptime_bps, outcome.latency_ms)
    for oracle in oracles:
        report = task.attestations[oracle]
        honest = (
            _terms_broken(task, report.completed, report.uptime_bps, report.latency_ms) == expected
        )
        state.add_stats(kv, "oracle", oracle, attestations=1, honest=int(honest))
        if honest:
            state.add_epoch(kv, state.EPOCH_HONEST, oracle, 1)


def _terms_broken(
    task: Task, completed: bool, uptime: int, latency: int
) -> tuple[bool, bool, bool]:
    return (not completed, uptime < task.min_uptime_bps, latency > task.max_latency_ms)


@MARKET.tx("attest_provider", provider=address_arg, uptime_bps=bps_arg, latency_ms=latency_arg)
def process_attest_provider(ctx: Context, provider: str, uptime_bps: int, latency_ms: int) -> None:
    """An SLA record about a provider outside any task: its reputation moves an eighth of
    the way toward the uptime attested."""
    require_oracle(ctx)
    record = state.get_provider(ctx.kv, provider)
    # Verify that the provider exists.
    if record is None or record.status == "left":
        raise TxError(Code.NOT_FOUND, f"{provider} is not a provider")
    # Verify that the oracle is not attesting to its own service.
    if provider == ctx.sender:
        raise TxError(
            Code.UNAUTHORIZED,
            f"{ctx.sender} is the provider: an oracle may not attest to its own service",
        )
    record = replace(record, reputation=min(BPS, (record.reputation * 7 + uptime_bps) // 8))
    state.put_provider(ctx.kv, provider, record)
    state.add_stats(
        ctx.kv, "provider", provider, attested=1, uptime_sum=uptime_bps, latency_sum=latency_ms
    )
    ctx.emit(
        "market_sla",
        provider=provider,
        oracle=ctx.sender,
        uptime_bps=uptime_bps,
        latency_ms=latency_ms,
        reputation=record.reputation,
    )
