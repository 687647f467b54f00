"""Disputes: the requester or the provider contests a decided outcome; oracles vote.

Within `dispute_blocks` of the outcome, either party may dispute it. Oracles
(other than the task's provider and requester) then vote to uphold it or overturn
it; the first side to reach the quorum (of the oracles that may judge the task,
sla.py) wins, and if neither does within `dispute_vote_blocks` the outcome stands.
As with attestations, only the votes of those that are oracles when a vote arrives
count: a removed oracle's vote no longer does, and a removal alone decides nothing.
The result is final and moves the escrowed deposit:

    upheld                         the outcome as decided
    overturned, for the requester  the provider is paid nothing and answers for at least
                                   one violation from its stake
    overturned, for the provider   paid for the units it reported, no penalty
"""

from __future__ import annotations

from dataclasses import replace

from cloudchain.chaincode.codes import Code
from cloudchain.chaincode.context import Context, Overlay
from cloudchain.chaincode.market import state
from cloudchain.chaincode.market.lifecycle import pay_out, profit_term, transition
from cloudchain.chaincode.market.module import MARKET
from cloudchain.chaincode.market.params import MarketParams
from cloudchain.chaincode.market.records import Dispute, Task, frozen_map
from cloudchain.chaincode.market.sla import (
    current_oracles,
    judges,
    require_not_a_party,
    require_oracle,
)
from cloudchain.chaincode.market.tasks import get_task_or_refuse, require_state, task_id_arg
from cloudchain.chaincode.module import TxError, bool_arg, text_arg


@MARKET.tx("dispute", task=task_id_arg, reason=text_arg(256))
def process_dispute(ctx: Context, task: int, reason: str) -> None:
    record = get_task_or_refuse(ctx, task)
    # Verify that the sender is a party to the task.
    if ctx.sender not in (record.requester, record.provider):
        raise TxError(Code.UNAUTHORIZED, "only the requester or the provider may dispute")
    require_state(record, "verified")
    # Verify that the dispute window is still open.
    if ctx.height >= record.verified_at + state.get_params(ctx.kv).dispute_blocks:
        raise TxError(Code.DEADLINE_PASSED, f"task {task}'s dispute window has closed")
    party = "requester" if ctx.sender == record.requester else "provider"
    record = replace(record, dispute=Dispute(party, reason, ctx.height, votes=frozen_map({})))
    state.put_task(ctx.kv, transition(ctx.kv, record, "disputed", ctx.height))
    ctx.emit("market_dispute", task=task, by=party)


@MARKET.tx("vote", task=task_id_arg, uphold=bool_arg)
def process_vote(ctx: Context, task: int, uphold: bool) -> None:
    require_oracle(ctx)
    record = get_task_or_refuse(ctx, task)
    require_state(record, "disputed")
    require_not_a_party(ctx, record)
    params = state.get_params(ctx.kv)
    dispute = record.dispute
    assert dispute is not None
    # Verify that the voting window is still open.
    if ctx.height >= dispute.at + params.dispute_vote_blocks:
        raise TxError(Code.DEADLINE_PASSED, f"task {task}'s dispute vote has closed")
    # Verify that this oracle has not voted on this dispute yet.
    if ctx.sender in dispute.votes:
        raise TxError(Code.ALREADY_EXISTS, f"{ctx.sender} has already voted on task {task}")
    dispute = dispute.with_vote(ctx.sender, uphold)
    record = replace(record, dispute=dispute)
    ctx.emit("market_vote", task=task, oracle=ctx.sender, uphold=uphold)
    need = params.quorum(judges(ctx.kv, record))
    counted = [dispute.votes[o] for o in current_oracles(ctx.kv, dispute.votes)]
    for side in (True, False):
        if sum(v == side for v in counted) >= need:
            record = resolve(ctx.kv, params, record, side, ctx.height)
            assert record.payout is not None
            ctx.emit(
                "market_resolved",
                task=task,
                upheld=side,
                provider=record.payout.provider,
                requester=record.payout.requester,
            )
            break
    state.put_task(ctx.kv, record)


def resolve(kv: Overlay, params: MarketParams, task: Task, upheld: bool, height: int) -> Task:
    """Close a dispute and move the funds: the task resolved, for the caller to store."""
    assert task.outcome is not None and task.dispute is not None
    outcome = task.outcome
    if not upheld and task.dispute.by == "requester":
        violations = max(outcome.violations, 1)
        profit = profit_term(task, 0, violations)
        outcome = replace(
            outcome, units=0, violations=violations, payment=profit.payment, penalty=profit.penalty
        )
    elif not upheld:
        units = task.units_used
        profit = profit_term(task, units, 0)
        outcome = replace(
            outcome,
            completed=True,
            units=units,
            violations=0,
            payment=profit.payment,
            penalty=profit.penalty,
        )
    task = replace(task, dispute=replace(task.dispute, upheld=upheld), outcome=outcome)
    task = transition(kv, task, "resolved", height)
    return pay_out(kv, params, task, outcome, height)
