"""The market's end-of-block work, in this order:

0. validators the block proves voted twice lose a share of their stake as providers
   (misbehaviour.py);
1. deadlines and windows, at most max_transitions_per_block of them, earliest due
   first: open or running tasks past their deadline expire and are refunded (an
   assigned provider is penalised for the task it did not complete: R = 2, not
   completed and late); completed tasks without a quorum when the attestation
   window closes are refunded unverified; verified tasks whose dispute window
   closed settle; disputes whose vote closed are upheld;
2. providers whose unbonding is over get their stake back;
3. open tasks are assigned (assignment.py);
4. utilisation is summed, and at the end of an epoch rewards are minted and
   reference prices move (epoch.py).
"""

from __future__ import annotations

import itertools

from cloudchain.chaincode.context import BlockContext
from cloudchain.chaincode.market import state
from cloudchain.chaincode.market.assignment import assign_open_tasks
from cloudchain.chaincode.market.disputes import resolve
from cloudchain.chaincode.market.epoch import accumulate_utilisation, end_epoch
from cloudchain.chaincode.market.lifecycle import pay_out, refund, release_capacity, transition
from cloudchain.chaincode.market.misbehaviour import slash_double_signers
from cloudchain.chaincode.market.module import MARKET
from cloudchain.chaincode.market.params import MarketParams
from cloudchain.chaincode.market.records import Task
from cloudchain.chaincode.market.registry import finish_unbonding

LATE_AND_NOT_COMPLETED = 2  # violations of an assigned task whose deadline passed


@MARKET.end_block
def end_block(ctx: BlockContext) -> None:
    params = state.get_params(ctx.kv)
    slash_double_signers(ctx, params)
    # Only tasks whose deadline or window has come are read; at most
    # max_transitions_per_block of them, earliest due first, the rest next block.
    # Deadlines and windows share the limit, so a backlog of one kind cannot starve the
    # other: each gets half, and what one leaves unused goes to the other.
    limit = params.max_transitions_per_block
    by_time = list(itertools.islice(state.iterate_due(ctx.kv, "t", ctx.time_ns), limit))
    by_height = list(itertools.islice(state.iterate_due(ctx.kv, "h", ctx.height), limit))
    half = (limit + 1) // 2
    take_time = min(len(by_time), max(half, limit - len(by_height)))
    for task_id in [*by_time[:take_time], *by_height[: limit - take_time]]:
        _watch(ctx, params, task_id)
    finish_unbonding(ctx)
    assign_open_tasks(ctx, params)
    accumulate_utilisation(ctx)
    if ctx.height % params.epoch_blocks == 0:
        end_epoch(ctx, params)


def _watch(ctx: BlockContext, params: MarketParams, task_id: int) -> bool:
    """Move the task on if a deadline or window of its state has passed; whether it did."""
    task = state.get_task(ctx.kv, task_id)
    assert task is not None
    moved = _move_on(ctx, params, task)
    if moved is None:
        return False
    state.put_task(ctx.kv, moved)
    return True


def _move_on(ctx: BlockContext, params: MarketParams, task: Task) -> Task | None:
    """The task moved on and paid out, if its deadline or window has passed (None if not)."""
    current = task.state
    if current in ("open", "assigned", "running") and ctx.time_ns >= task.deadline_ns:
        penalise = 0 if current == "open" else LATE_AND_NOT_COMPLETED
        if current != "open":
            release_capacity(ctx.kv, task)
        task = transition(ctx.kv, task, "expired", ctx.height)
        task = transition(ctx.kv, task, "refunded", ctx.height)
        task = refund(ctx.kv, params, task, penalise, ctx.height)
        assert task.payout is not None
        ctx.emit(
            "market_refund",
            task=task.id,
            requester=task.requester,
            amount=task.payout.requester,
            slashed=task.payout.slashed,
            reason="expired",
        )
    elif current == "completed" and ctx.height >= task.completed_at + params.attestation_blocks:
        task = transition(ctx.kv, task, "refunded", ctx.height)
        task = refund(ctx.kv, params, task, 0, ctx.height)
        assert task.payout is not None
        ctx.emit(
            "market_refund",
            task=task.id,
            requester=task.requester,
            amount=task.payout.requester,
            slashed=0,
            reason="unverified",
        )
    elif current == "verified" and ctx.height >= task.verified_at + params.dispute_blocks:
        assert task.outcome is not None
        task = transition(ctx.kv, task, "settled", ctx.height)
        task = pay_out(ctx.kv, params, task, task.outcome, ctx.height)
        assert task.payout is not None
        ctx.emit(
            "market_settle",
            task=task.id,
            provider=task.payout.provider,
            requester=task.payout.requester,
            slashed=task.payout.slashed,
        )
    elif current == "disputed" and ctx.height >= _disputed_at(task) + params.dispute_vote_blocks:
        task = resolve(ctx.kv, params, task, True, ctx.height)
        assert task.payout is not None
        ctx.emit(
            "market_resolved",
            task=task.id,
            upheld=True,
            provider=task.payout.provider,
            requester=task.payout.requester,
        )
    else:
        return None
    return task


def _disputed_at(task: Task) -> int:
    assert task.dispute is not None
    return task.dispute.at
