"""The market's queries (`abci_query` paths under /market/).

    /market/params                     the parameters
    /market/provider   ADDRESS         a provider
    /market/providers  [after=ADDRESS] providers in address order, a page
    /market/oracles                    the oracles
    /market/task       ID              a task
    /market/tasks      [requester=A&provider=A&state=S&after=ID]   tasks in id order, a page
    /market/prices                     reference prices and utilisation by resource class
    /market/account    ADDRESS         what an account earned and paid: the provider's
                                       profit Π_p = Σ(P_i·C_i - λ_i·R_i) and the
                                       requester's utility U_r = Σ(Q_i - P_i)
    /market/stats                      utilisation, SLA compliance, tokens earned by
                                       provider, Jain's fairness index J = (Σx)²/(n·Σx²)

Ratios are basis points (integers), as everywhere in state.
"""

from __future__ import annotations

from typing import Any

from cloudchain.chaincode.codes import Code
from cloudchain.chaincode.context import StateReader
from cloudchain.chaincode.market import state
from cloudchain.chaincode.market.economics import (
    ProfitTerm,
    UtilityTerm,
    provider_profit,
    requester_utility,
)
from cloudchain.chaincode.market.lifecycle import TRANSITIONS
from cloudchain.chaincode.market.module import MARKET
from cloudchain.chaincode.market.params import BPS
from cloudchain.chaincode.market.records import ReferencePrice, ResourceClass
from cloudchain.chaincode.module import QueryError, query_address, query_filters
from cloudchain.crypto import is_address

STATES = sorted({s for pair in TRANSITIONS for s in pair})


@MARKET.query("params")
def query_params(reader: StateReader, data: bytes) -> dict[str, Any]:
    return state.get_params(reader).to_obj()


@MARKET.query("provider")
def query_provider(reader: StateReader, data: bytes) -> dict[str, Any]:
    address = query_address(data)
    provider = state.get_provider(reader, address)
    if provider is None:
        raise QueryError(Code.NOT_FOUND, f"{address} is not a provider")
    return {
        "address": address,
        **provider.to_obj(),
        "endpoint": state.get_endpoint(reader, address),
    }


@MARKET.query("providers")
def query_providers(reader: StateReader, data: bytes) -> dict[str, Any]:
    filters = query_filters(data, ("after",))
    after = filters.get("after", "")
    limit = state.get_params(reader).max_tasks_listed
    listed = []
    for address, provider in state.iterate_providers(reader):
        if address > after:
            endpoint = state.get_endpoint(reader, address)
            listed.append({"address": address, **provider.to_obj(), "endpoint": endpoint})
            if len(listed) == limit:
                break
    return {"providers": listed}


@MARKET.query("oracles")
def query_oracles(reader: StateReader, data: bytes) -> dict[str, Any]:
    oracles = list(state.iterate_oracles(reader))
    return {"oracles": oracles, "quorum": state.get_params(reader).quorum(len(oracles))}


@MARKET.query("task")
def query_task(reader: StateReader, data: bytes) -> dict[str, Any]:
    task = state.get_task(reader, _task_id(data.decode("ascii", "replace")))
    if task is None:
        raise QueryError(Code.NOT_FOUND, f"unknown task {data[:32]!r}")
    return task.to_obj()


@MARKET.query("tasks")
def query_tasks(reader: StateReader, data: bytes) -> dict[str, Any]:
    filters = query_filters(data, ("requester", "provider", "state", "after"))
    for role in ("requester", "provider"):
        if role in filters and not is_address(filters[role]):
            raise QueryError(Code.INVALID_QUERY, f"{role} must be an address")
    if "state" in filters and filters["state"] not in STATES:
        raise QueryError(Code.INVALID_QUERY, f"state must be one of {', '.join(STATES)}")
    after = _task_id(filters["after"]) if "after" in filters else 0
    wanted = [(name, value) for name, value in filters.items() if name != "after"]
    limit = state.get_params(reader).max_tasks_listed
    listed = []
    for task in state.iterate_tasks(reader, after):
        if all(getattr(task, name) == value for name, value in wanted):
            listed.append(task.to_obj())
            if len(listed) == limit:
                break
    return {"tasks": listed}


@MARKET.query("prices")
def query_prices(reader: StateReader, data: bytes) -> dict[str, Any]:
    classes = dict(state.iterate_classes(reader))
    prices = dict(state.iterate_prices(reader))
    return {
        "classes": [
            _price_row(name, classes.get(name), prices.get(name))
            for name in sorted(set(classes) | set(prices))
        ]
    }


def _price_row(
    name: str, record: ResourceClass | None, price: ReferencePrice | None
) -> dict[str, Any]:
    return {
        "resource_class": name,
        **({} if price is None else price.to_obj()),
        "capacity": 0 if record is None else record.capacity,
        "in_flight": 0 if record is None else record.in_flight,
    }


@MARKET.query("account")
def query_account(reader: StateReader, data: bytes) -> dict[str, Any]:
    address = query_address(data)
    provider = state.get_provider_stats(reader, address)
    requester = state.get_requester_stats(reader, address)
    oracle = state.get_oracle_stats(reader, address)
    # The statistics hold the sums of the terms of every task so far (economics.py).
    return {
        "address": address,
        "provider": provider.to_obj(),
        "requester": requester.to_obj(),
        "oracle": oracle.to_obj(),
        "profit": provider_profit([ProfitTerm(provider.gross, provider.penalties)]),
        "utility": requester_utility([UtilityTerm(requester.worth, requester.paid)]),
    }


@MARKET.query("stats")
def query_stats(reader: StateReader, data: bytes) -> dict[str, Any]:
    totals = state.get_global(reader)
    settled = totals.tasks_settled
    classes = dict(state.iterate_classes(reader))
    providers, provider_x = [], []
    for address, record in state.iterate_providers(reader):
        stats = state.get_provider_stats(reader, address)
        capacity = record.capacity
        providers.append(
            {
                "address": address,
                "name": record.name,
                "tier": record.tier,
                "earned": stats.earned,
                "rewarded": stats.rewarded,
                "tokens": stats.earned + stats.rewarded,
                "capacity": capacity,
            }
        )
        if capacity:
            provider_x.append(stats.rewarded * BPS // capacity)
    requester_x = []
    for _, stats in state.iterate_requester_stats(reader):
        if stats.requested_units:
            requester_x.append(stats.served_units * BPS // stats.requested_units)
    answer = {
        "utilisation_bps": {
            name: (c.in_flight * BPS // c.capacity if c.capacity else 0)
            for name, c in sorted(classes.items())
        },
        "tasks_settled": settled,
        "sla_compliance_bps": totals.tasks_compliant * BPS // settled if settled else 0,
        "providers": providers,
        "fairness_providers_bps": jain_bps(provider_x),
        "fairness_requesters_bps": jain_bps(requester_x),
    }
    if "fair_base" in totals.stored:  # the fair policy's budget, once it has assigned
        answer["fair_budget"] = {"base": totals.fair_base, "premium": totals.fair_premium}
    return answer


def jain_bps(values: list[int]) -> int:
    """Jain's fairness index J = (Σx)² / (n·Σx²), in basis points: 10,000 when all are
    equal, 10,000/n when one has everything; 10,000 for nobody (nothing is unfair)."""
    squares = sum(x * x for x in values)
    if not values or squares == 0:
        return BPS
    return sum(values) ** 2 * BPS // (len(values) * squares)


def _task_id(text: str) -> int:
    if not text.isdigit() or len(text) > 18:
        raise QueryError(Code.INVALID_QUERY, f"{text[:32]!r} is not a task id")
    return int(text)
