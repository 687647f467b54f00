"""Which provider takes a task: the market's assignment policy, a chain parameter.

Both policies choose among the same candidates, the providers that could take the task
now (its class offered at no more than its max_price, the units free, the stake, the
per-block cap, a grant if it reads a sealed dataset: assignment.py):

    cheapest (0)  the lowest price; then the highest reputation, the lowest load, the
                  address. Requesters pay least; the work goes to whoever bids lowest,
                  so a market of a few cheap providers leaves the others idle.
    fair (1)      among the candidates priced within `fair_price_slack_bps` of the
                  cheapest (10% by default), the one whose share of the work so far is
                  the smallest for the capacity it offers: its assigned units over its
                  offered units, compared by cross-multiplication (integers only); then
                  the cheapest, the most reputable, the address. A requester pays at
                  most the slack more than the cheapest candidate's price for any task,
                  and work spreads in proportion to capacity among providers that price
                  alike. A provider priced beyond the slack still gets nothing: the
                  slack is the network's choice between fairness and price.

Deterministic: integers, and ties broken by address.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cmp_to_key

BPS = 10_000
CHEAPEST, FAIR = 0, 1
POLICIES = {CHEAPEST: "cheapest", FAIR: "fair"}


@dataclass(frozen=True)
class Candidate:
    address: str
    price: int  # its offer, per unit
    reputation: int  # bps
    load_bps: int  # of its capacity in the class, in flight now
    served_units: int  # assigned to it so far, every class
    capacity: int  # units it offers, every class (at least 1)


def _cheapest_key(c: Candidate) -> tuple[int, int, int, str]:
    return (c.price, -c.reputation, c.load_bps, c.address)


def cheapest(candidates: Sequence[Candidate]) -> Candidate | None:
    return min(candidates, key=_cheapest_key, default=None)


def _by_share(a: Candidate, b: Candidate) -> int:
    """a before b if its served share is smaller: a.served / a.capacity < b.served /
    b.capacity, by cross-multiplication; equal shares by the cheapest order."""
    left, right = a.served_units * b.capacity, b.served_units * a.capacity
    if left != right:
        return -1 if left < right else 1
    ka, kb = _cheapest_key(a), _cheapest_key(b)
    return -1 if ka < kb else (1 if ka > kb else 0)


def fairest(candidates: Sequence[Candidate], slack_bps: int) -> Candidate | None:
    if not candidates:
        return None
    ceiling = min(c.price for c in candidates) * (BPS + slack_bps) // BPS
    within = [c for c in candidates if c.price <= ceiling]
    return min(within, key=cmp_to_key(_by_share))


def choose(candidates: Sequence[Candidate], policy: int, slack_bps: int) -> Candidate | None:
    if policy == FAIR:
        return fairest(candidates, slack_bps)
    return cheapest(candidates)
