"""Matching open tasks to providers, at the end of every block.

Deterministic and bounded: at most `max_open_tasks_scanned` open tasks are
considered, oldest first, and at most `max_assignments_per_block` assigned.

Fairness across requesters: requesters take turns, least served first (by
units assigned to them so far, then address), one task per turn, so that a
requester with many tasks cannot starve one with a few. No provider is flooded:
it takes at most `max_assignments_per_provider` tasks in one block, and never
more units than its free capacity in the class.

For each task the provider is the one that offers its class at no more than its
max_price, has the free units and a stake of at least `min_stake`, ordered by
price (lowest first), then reputation (highest), then load (lowest share of
its capacity in flight), then address. A task that names a provider waits for
that one. A task nobody can take stays open until its deadline.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from cloudchain.chaincode.context import BlockContext
from cloudchain.chaincode.market import state
from cloudchain.chaincode.market.lifecycle import transition
from cloudchain.chaincode.market.params import BPS, MarketParams


def assign_open_tasks(ctx: BlockContext, params: MarketParams) -> None:
    queues: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for count, task_id in enumerate(state.iterate_ids(ctx.kv, state.OPEN)):
        if count >= params.max_open_tasks_scanned:
            break
        task = state.get_task(ctx.kv, task_id)
        assert task is not None and task["state"] == "open"
        if ctx.time_ns < task["deadline_ns"]:
            queues[task["requester"]].append(task)
    if not queues:
        return
    providers = {address: record for address, record in state.iterate_records(
        ctx.kv, state.PROVIDER) if _assignable(record, params)}  # fmt: skip
    taken: dict[str, int] = defaultdict(int)
    served = {r: state.get_stats(ctx.kv, "requester", r).get("served_units", 0) for r in queues}
    turn = sorted(queues, key=lambda r: (served[r], r))
    assigned = 0
    while turn and assigned < params.max_assignments_per_block:
        still_waiting = []
        for requester in turn:
            if assigned >= params.max_assignments_per_block:
                break
            queue = queues[requester]
            task = queue.pop(0)
            address = _best_provider(task, providers, taken, params)
            if address is not None:
                _assign(ctx, task, address, providers[address])
                taken[address] += 1
                assigned += 1
            if queue:
                still_waiting.append(requester)
        turn = still_waiting


def _assignable(provider: dict[str, Any], params: MarketParams) -> bool:
    return provider["status"] == "active" and provider["stake"] >= params.min_stake


def _best_provider(task: dict[str, Any], providers: dict[str, dict[str, Any]],
                   taken: dict[str, int], params: MarketParams) -> str | None:  # fmt: skip
    name, units = task["resource_class"], task["units"]
    named = task["named_provider"]
    best: tuple[Any, ...] | None = None
    for address, provider in providers.items():
        if named and address != named:
            continue
        offer = provider["offers"].get(name)
        if offer is None or offer["price"] > task["max_price"]:
            continue
        in_flight = provider["in_flight"].get(name, 0)
        if offer["units"] - in_flight < units or taken[address] >= (
                params.max_assignments_per_provider):  # fmt: skip
            continue
        load_bps = in_flight * BPS // offer["units"]
        key = (offer["price"], -provider["reputation"], load_bps, address)
        if best is None or key < best:
            best = key
    return None if best is None else best[-1]


def _assign(ctx: BlockContext, task: dict[str, Any], address: str,
            provider: dict[str, Any]) -> None:  # fmt: skip
    name, units = task["resource_class"], task["units"]
    price = provider["offers"][name]["price"]
    provider["in_flight"][name] = provider["in_flight"].get(name, 0) + units
    provider["tasks_pending"] += 1  # until the task's final state: its stake answers for it
    state.put_provider(ctx.kv, address, provider)
    state.add_class(ctx.kv, name, in_flight=units)
    task.update(provider=address, price=price)
    transition(ctx.kv, task, "assigned", ctx.height)
    state.put_task(ctx.kv, task)
    state.add_stats(ctx.kv, "requester", task["requester"], served_units=units)
    state.add_stats(ctx.kv, "provider", address, assigned_units=units)
    ctx.emit("market_assign", task=task["id"], provider=address, price=price, units=units)
