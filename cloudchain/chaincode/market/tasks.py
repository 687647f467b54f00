"""A requester's task: submitted with its deposit in escrow, then run by a provider.

`submit` locks max_price x units in escrow and opens the task; the end-of-block
work assigns it (assignment.py). The requester may `cancel` it while it is
open; the assigned provider may `start` it and must `complete` it (reporting the
units it used) before the deadline, after which oracles attest (sla.py).

A task that reads a sealed dataset names it (`dataset`), and a DP task declares the ε
it spends of the dataset's budget (`dp_micro_eps`): access.check_task_use says which
the dataset takes; assignment gives such a task only to a provider with a grant for it,
and spends its ε then.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from cloudchain.chaincode.codes import Code
from cloudchain.chaincode.context import Context
from cloudchain.chaincode.market import state
from cloudchain.chaincode.market.lifecycle import refund_open, release_capacity, transition
from cloudchain.chaincode.market.module import (
    KINDS,
    MARKET,
    MAX_UNITS,
    bps_arg,
    choice_arg,
    cid_arg,
    class_name_arg,
    units_arg,
)
from cloudchain.chaincode.market.records import Due, HistoryEntry, Task, frozen_map
from cloudchain.chaincode.module import (
    MAX_AMOUNT,
    Optional,
    TxError,
    amount_arg,
    int_arg,
    list_arg,
    optional_address_arg,
)
from cloudchain.chaincode.modules import access, token

MAX_INPUTS = 16
MAX_DEADLINE_S = 400 * 24 * 3600
task_id_arg = int_arg(1, 2**63 - 1)


def get_task_or_refuse(ctx: Context, task_id: int) -> Task:
    task = state.get_task(ctx.kv, task_id)
    # Verify that the task exists.
    if task is None:
        raise TxError(Code.NOT_FOUND, f"unknown task {task_id}")
    return task


def require_state(task: Task, *states: str) -> None:
    # Verify that the task is in a state that allows this.
    if task.state not in states:
        raise TxError(
            Code.INVALID_STATE, f"task {task.id} is {task.state}, not {' or '.join(states)}"
        )


def _deposit_spent(args: Mapping[str, Any]) -> int:
    """The deposit submit takes into escrow; none if it is too large to be taken (the
    handler then refuses the task before it takes anything)."""
    deposit = args["max_price"] * args["units"]
    return deposit if deposit <= MAX_AMOUNT else 0


@MARKET.tx(
    "submit",
    spends=_deposit_spent,
    kind=choice_arg(*KINDS),
    inputs=list_arg(cid_arg, MAX_INPUTS),
    resource_class=class_name_arg,
    units=units_arg,
    max_price=amount_arg,
    deadline_s=int_arg(1, MAX_DEADLINE_S),
    min_uptime_bps=bps_arg,
    max_latency_ms=int_arg(1, 10**9),
    penalty=int_arg(0, MAX_AMOUNT),
    provider=optional_address_arg,
    dataset=Optional(int_arg(0, 2**63 - 1), 0),
    dp_micro_eps=Optional(int_arg(0, access.MAX_MICRO_EPS), 0),
)
def process_submit(
    ctx: Context,
    kind: str,
    inputs: tuple[str, ...],
    resource_class: str,
    units: int,
    max_price: int,
    deadline_s: int,
    min_uptime_bps: int,
    max_latency_ms: int,
    penalty: int,
    provider: str,
    dataset: int,
    dp_micro_eps: int,
) -> None:
    """A task; with `dataset`, one reading that sealed dataset (access.py), and with
    `dp_micro_eps`, a DP task spending that much of its budget when it is assigned."""
    deposit = max_price * units
    # Verify that the deposit is a representable amount.
    if deposit > MAX_AMOUNT:
        raise TxError(Code.OUT_OF_RANGE, f"max_price x units = {deposit} exceeds {MAX_AMOUNT}")
    # Verify that a penalty per violation is no more than the deposit it is set against.
    if penalty > deposit:
        raise TxError(Code.OUT_OF_RANGE, f"penalty {penalty} exceeds the deposit {deposit}")
    if provider:
        named = state.get_provider(ctx.kv, provider)
        # Verify that a named provider is in the market and sells this class.
        if named is None or named.status != "active":
            raise TxError(Code.NOT_FOUND, f"{provider} is not an active provider")
        if resource_class not in named.offers:
            raise TxError(Code.NOT_FOUND, f"{provider} does not offer {resource_class}")
    access.check_task_use(ctx.kv, dataset, dp_micro_eps, inputs)
    token.debit(ctx.kv, ctx.sender, deposit)
    state.add_totals(ctx.kv, escrow=deposit)
    task_id = state.next_task_id(ctx.kv)
    deadline_ns = ctx.time_ns + deadline_s * 10**9
    task = Task(
        id=task_id,
        requester=ctx.sender,
        kind=kind,
        inputs=inputs,
        resource_class=resource_class,
        units=units,
        max_price=max_price,
        deposit=deposit,
        deadline_ns=deadline_ns,
        min_uptime_bps=min_uptime_bps,
        max_latency_ms=max_latency_ms,
        penalty=penalty,
        named_provider=provider,
        state="open",
        history=(HistoryEntry("open", ctx.height),),
        provider="",
        price=0,
        submitted_at=ctx.height,
        units_used=0,
        output=None,
        completed_at=0,
        attestations=frozen_map({}),
        outcome=None,
        verified_at=0,
        dispute=None,
        payout=None,
        due=Due("t", deadline_ns),
        dataset=dataset or None,
        dp_micro_eps=dp_micro_eps or None,
    )
    state.set_open(ctx.kv, resource_class, task_id, True)
    state.file_due(ctx.kv, task_id, None, task.due)
    state.put_task(ctx.kv, task)
    state.add_stats(ctx.kv, "requester", ctx.sender, submitted=1, requested_units=units)
    ctx.emit(
        "market_submit",
        task=task_id,
        requester=ctx.sender,
        resource_class=resource_class,
        units=units,
        deposit=deposit,
    )


@MARKET.tx("cancel", task=task_id_arg)
def process_cancel(ctx: Context, task: int) -> None:
    record = get_task_or_refuse(ctx, task)
    # Verify that the sender submitted the task.
    if ctx.sender != record.requester:
        raise TxError(Code.UNAUTHORIZED, "only the requester may cancel a task")
    require_state(record, "open")
    refund_open(ctx, state.get_params(ctx.kv), record, "cancelled")


def _assigned_provider_only(ctx: Context, record: Task) -> None:
    # Verify that the sender is the provider the task was assigned to.
    if ctx.sender != record.provider:
        raise TxError(Code.UNAUTHORIZED, f"only the assigned provider may run task {record.id}")
    # Verify that the deadline has not passed.
    if ctx.time_ns >= record.deadline_ns:
        raise TxError(Code.DEADLINE_PASSED, f"task {record.id}'s deadline has passed")


@MARKET.tx("start", task=task_id_arg)
def process_start(ctx: Context, task: int) -> None:
    record = get_task_or_refuse(ctx, task)
    require_state(record, "assigned")
    _assigned_provider_only(ctx, record)
    state.put_task(ctx.kv, transition(ctx.kv, record, "running", ctx.height))
    ctx.emit("market_start", task=task, provider=ctx.sender)


@MARKET.tx(
    "complete",
    task=task_id_arg,
    units_used=int_arg(1, MAX_UNITS),
    output=list_arg(cid_arg, MAX_INPUTS),
)
def process_complete(ctx: Context, task: int, units_used: int, output: tuple[str, ...]) -> None:
    record = get_task_or_refuse(ctx, task)
    require_state(record, "assigned", "running")
    _assigned_provider_only(ctx, record)
    # Verify that the provider claims no more units than the task bought.
    if units_used > record.units:
        raise TxError(
            Code.OUT_OF_RANGE, f"units_used {units_used} exceeds the task's {record.units}"
        )
    release_capacity(ctx.kv, record)
    record = replace(record, units_used=units_used, output=output, completed_at=ctx.height)
    state.put_task(ctx.kv, transition(ctx.kv, record, "completed", ctx.height))
    ctx.emit("market_complete", task=task, provider=ctx.sender, units_used=units_used)
