"""Matching open tasks to providers, at the end of every block.

Open tasks wait in one queue per resource class, oldest first (state.OPEN). Only
the queues of classes in which some provider could take a task now (active, with
`min_stake`, free units, and under its per-block cap) are read: tasks of a class
nobody offers, or whose providers are all busy, cost nothing.

Bounded: at most `max_open_tasks_scanned` open tasks are read a block, shared
evenly between those classes (what one class does not use goes to the others; if
there are more classes than that, which come first turns with the height), and at
most `max_assignments_per_block` assigned.

No head-of-line blocking: each queue is read from a cursor, where the last block
stopped in it. The cursor moves past the tasks that were looked at and not assigned
although the class still had room after the block (a max_price below every offer,
a named provider that is busy, more units than anyone has free): the next block
looks at the tasks behind them, so a task waiting in a class with room is looked at
in its turn, however many tasks that cannot be assigned came before it. When the
class has run out of room, the cursor stays, and the same tasks come first again
when units are free; a queue read whole in one block starts from its oldest again.

Fairness across requesters: requesters take turns, least served first (by
units assigned to them so far, then address), one task per turn, so that a
requester with many tasks cannot starve one with a few. No provider is flooded:
it takes at most `max_assignments_per_provider` tasks in one block, and never
more units than its free capacity in the class.

For each task the provider is, of those that offer its class at no more than its
max_price and have the free units and a stake of at least `min_stake`, the one the
market's policy chooses (policy.py, the chain parameter `assignment_policy`): by
default the cheapest, then reputation (highest), then load (lowest share of its
capacity in flight), then address; or the fair one. A task that names a provider waits for
that one. A task nobody can take stays open until its deadline.

A task that reads a sealed dataset goes only to a provider whose grant opens it for
that task now (access.grant_opens): without one it waits, as for a provider with free
units. A DP task's ε is spent from the dataset's budget when it is assigned; one that
what is left no longer covers (tasks before it spent it) is refunded at once, since a
budget never grows back.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace

from cloudchain.chaincode.context import BlockContext, Overlay
from cloudchain.chaincode.market import policy, state
from cloudchain.chaincode.market.lifecycle import refund_open, transition
from cloudchain.chaincode.market.params import BPS, MarketParams
from cloudchain.chaincode.market.records import Provider, ProviderStats, Task
from cloudchain.chaincode.modules import access


@dataclass
class _Window:
    """What one block read of a class's queue, in the order it read it."""

    ids: list[int] = field(default_factory=list)
    whole: bool = False  # read to its end and round to where it began: every task in it


def assign_open_tasks(ctx: BlockContext, params: MarketParams) -> None:
    if next(ctx.kv.iterate(state.OPEN), None) is None:
        return  # no task waits: no provider need be read (most blocks of a quiet market)
    providers = {
        address: record
        for address, record in state.iterate_providers(ctx.kv)
        if _assignable(record, params)
    }
    taken: dict[str, int] = defaultdict(int)
    windows = _read_queues(ctx, _classes_with_room(providers, taken, params), params)
    queues, looked_at = _queues_by_requester(ctx, windows)
    looked_at |= _take_turns(ctx, params, queues, providers, taken)
    room = _classes_with_room(providers, taken, params)
    for name, window in sorted(windows.items()):
        _move_cursor(ctx.kv, name, window, looked_at, name in room)


def _assignable(provider: Provider, params: MarketParams) -> bool:
    return provider.status == "active" and provider.stake >= params.min_stake


def _classes_with_room(
    providers: Mapping[str, Provider], taken: Mapping[str, int], params: MarketParams
) -> list[str]:
    """The classes in which some provider could still take a task in this block."""
    names = set()
    for address, provider in providers.items():
        if taken.get(address, 0) >= params.max_assignments_per_provider:
            continue
        for name, offer in provider.offers.items():
            if provider.in_flight.get(name, 0) < offer.units:
                names.add(name)
    return sorted(names)


def _read_queues(ctx: BlockContext, classes: list[str], params: MarketParams) -> dict[str, _Window]:
    """Up to `max_open_tasks_scanned` ids from the queues of `classes`, each read from
    its cursor: an even share each, then what is left between those that had more."""
    if not classes:
        return {}
    first = ctx.height % len(classes)
    order = classes[first:] + classes[:first]
    readers: dict[str, Iterator[int]] = {}
    windows = {name: _Window() for name in order}
    budget, hungry = params.max_open_tasks_scanned, order
    while budget and hungry:
        share = max(1, budget // len(hungry))
        still_hungry = []
        for name in hungry:
            if name not in readers:
                readers[name] = state.iterate_queue(ctx.kv, name, state.get_cursor(ctx.kv, name))
            want = min(share, budget)
            read = list(itertools.islice(readers[name], want))
            windows[name].ids.extend(read)
            budget -= len(read)
            if len(read) < want:
                windows[name].whole = True
            else:
                still_hungry.append(name)
            if not budget:
                break
        hungry = still_hungry
    return {name: window for name, window in windows.items() if window.ids or window.whole}


def _queues_by_requester(
    ctx: BlockContext, windows: Mapping[str, _Window]
) -> tuple[dict[str, list[Task]], set[int]]:
    """Each requester's tasks in the order the queues were read (the first of each
    class's window, then the second...), and the ids of those past their deadline (not
    queued: the deadline work of the next block refunds them)."""
    queues: dict[str, list[Task]] = defaultdict(list)
    expired = set()
    read = sorted(
        (position, name, task_id)
        for name, window in windows.items()
        for position, task_id in enumerate(window.ids)
    )
    for _, _, task_id in read:
        task = state.get_task(ctx.kv, task_id)
        assert task is not None and task.state == "open"
        if ctx.time_ns < task.deadline_ns:
            queues[task.requester].append(task)
        else:
            expired.add(task_id)
    return queues, expired


def _take_turns(
    ctx: BlockContext,
    params: MarketParams,
    queues: dict[str, list[Task]],
    providers: dict[str, Provider],
    taken: dict[str, int],
) -> set[int]:
    """Requesters take turns, least served first; the ids of the tasks looked at."""
    looked_at = set()
    served = {r: state.get_requester_stats(ctx.kv, r).served_units for r in queues}
    turn = sorted(queues, key=lambda r: (served[r], r))
    assigned = 0
    while turn and assigned < params.max_assignments_per_block:
        still_waiting = []
        for requester in turn:
            if assigned >= params.max_assignments_per_block:
                break
            queue = queues[requester]
            task = queue.pop(0)
            looked_at.add(task.id)
            best = _best_provider(ctx, task, providers, taken, params, _reader_of(ctx, task))
            if best is not None and not _spend_budget(ctx, task):
                refund_open(ctx, params, task, "privacy_budget")
            elif best is not None:
                address, floor = best
                fair_floor = floor if params.assignment_policy == policy.FAIR else None
                providers[address] = _assign(ctx, task, address, providers[address], fair_floor)
                taken[address] += 1
                assigned += 1
            if queue:
                still_waiting.append(requester)
        turn = still_waiting
    return looked_at


def _reader_of(ctx: BlockContext, task: Task) -> Callable[[str], bool] | None:
    """Who may take `task`, if it reads a sealed dataset: a provider with a grant for it."""
    dataset = task.dataset
    if dataset is None:
        return None
    return lambda address: access.grant_opens(ctx.kv, dataset, address, task.id, ctx.height)


def _spend_budget(ctx: BlockContext, task: Task) -> bool:
    """A DP task's ε spent from its dataset's budget; False if what is left is less."""
    if task.dataset is None or task.dp_micro_eps is None:
        return True
    return access.debit(ctx, task.dataset, task.dp_micro_eps, task.id)


def _move_cursor(
    kv: Overlay, name: str, window: _Window, looked_at: set[int], room_left: bool
) -> None:
    """Past the tasks read in a row from the cursor and looked at, if the class still has
    room they could not use; back to the oldest task if the whole queue was read."""
    if window.whole:
        state.set_cursor(kv, name, 0)
        return
    if not room_left:
        return  # what was passed over waited for units: it comes first again
    passed = list(itertools.takewhile(looked_at.__contains__, window.ids))
    if passed:
        state.set_cursor(kv, name, passed[-1])


def _best_provider(
    ctx: BlockContext,
    task: Task,
    providers: dict[str, Provider],
    taken: dict[str, int],
    params: MarketParams,
    may_read: Callable[[str], bool] | None = None,
) -> tuple[str, int] | None:
    """The provider the market's policy (policy.py) gives the task, of those that
    could take it now, and the cheapest of their prices."""
    name, units = task.resource_class, task.units
    named = task.named_provider
    fair = params.assignment_policy == policy.FAIR
    candidates = []
    for address, provider in providers.items():
        if named and address != named:
            continue
        offer = provider.offers.get(name)
        if offer is None or offer.price > task.max_price:
            continue
        in_flight = provider.in_flight.get(name, 0)
        if offer.units - in_flight < units or taken[address] >= (
            params.max_assignments_per_provider
        ):
            continue
        if may_read is not None and not may_read(address):
            continue
        served, meets_terms, violated_bps = 0, True, 0
        if fair:  # its rewards so far: the value of the work it was given, and the mint
            stats = state.get_provider_stats(ctx.kv, address)
            served = stats.assigned_value + stats.rewarded
            meets_terms = _meets_terms(stats, task)
            violated_bps = stats.violated * BPS // stats.tasks if stats.tasks else 0
        candidates.append(
            policy.Candidate(
                address=address,
                price=offer.price,
                reputation=provider.reputation,
                load_bps=in_flight * BPS // offer.units,
                served=served,
                capacity=max(1, provider.capacity),
                meets_terms=meets_terms,
                violated_bps=violated_bps,
            )
        )
    budget = policy.Budget()
    if fair:
        counts = state.get_global(ctx.kv)
        budget = policy.Budget(counts.fair_base, counts.fair_premium)
    chosen = policy.choose(
        candidates, params.assignment_policy, params.fair_price_slack_bps, units, budget
    )
    if chosen is None:
        return None
    return chosen.address, min(c.price for c in candidates)


def _meets_terms(stats: ProviderStats, task: Task) -> bool:
    """Whether by its record the provider meets the task's SLA terms: the mean uptime and
    latency the oracles attested of its service do. Without a record it is not held
    against it: a newcomer competes for work as well as any."""
    if not stats.attested:
        return True
    uptime, latency = stats.uptime_sum // stats.attested, stats.latency_sum // stats.attested
    return uptime >= task.min_uptime_bps and latency <= task.max_latency_ms


def _assign(
    ctx: BlockContext, task: Task, address: str, provider: Provider, fair_floor: int | None
) -> Provider:
    """Give the task to the provider; the provider as it is now. Under the fair policy
    (`fair_floor`: the cheapest candidate's price) it also keeps the provider's assigned
    value and the policy's budget (policy.Budget), which only that policy reads."""
    name, units = task.resource_class, task.units
    price = provider.offers[name].price
    provider = provider.with_in_flight(name, units)
    # until the task's final state: its stake answers for it
    provider = replace(provider, tasks_pending=provider.tasks_pending + 1)
    state.put_provider(ctx.kv, address, provider)
    state.add_class(ctx.kv, name, in_flight=units)
    task = transition(ctx.kv, replace(task, provider=address, price=price), "assigned", ctx.height)
    state.put_task(ctx.kv, task)
    state.add_stats(ctx.kv, "requester", task.requester, served_units=units)
    fair = {} if fair_floor is None else {"assigned_value": price * units}
    state.add_stats(ctx.kv, "provider", address, assigned_units=units, **fair)
    if fair_floor is not None:
        state.add_global(ctx.kv, fair_base=fair_floor * units,
                         fair_premium=(price - fair_floor) * units)  # fmt: skip
    ctx.emit("market_assign", task=task.id, provider=address, price=price, units=units)
    return provider
