"""Which provider takes a task: the market's assignment policy, a chain parameter.

Both policies choose among the same candidates, the providers that could take the task
now (its class offered at no more than its max_price, the units free, the stake, the
per-block cap, a grant if it reads a sealed dataset: assignment.py):

    cheapest (0)  the lowest price; then the highest reputation, the lowest load, the
                  address. Requesters pay least; the work goes to whoever bids lowest,
                  so a market of a few cheap providers leaves the others idle.
    fair (1)      the candidate whose rewards so far are the smallest for the capacity
                  it offers, of those the fair budget allows; then the cheapest, the
                  most reputable, the address. Its rewards: the value of the tasks it
                  was given (price x units, counted at assignment rather than
                  settlement, so that what it was just given counts at once) and the
                  epoch rewards minted for it, over its offered units, compared by
                  cross-multiplication (integers only): the fairness the market
                  measures (Jain's index over rewards per unit of capacity offered).
                  The budget: over the tasks the policy assigned, what requesters paid
                  beyond the cheapest candidate's price (the premium) stays within
                  `fair_price_slack_bps` of what the cheapest candidates would have
                  cost (10% by default). So what requesters pay in all is at most the
                  slack over the cheapest candidates' prices, and the premium is spent
                  on the tasks where the least-served candidate is a dear one, first come
                  first served, not spread thin over tasks whose candidates all price
                  alike. The bound is an aggregate: one task may cost its requester more
                  than the slack over its cheapest candidate (up to its max_price) when
                  the budget has room. The cheapest candidate is always allowed, and
                  no candidate whose share of tasks ended with a violation
                  (`violated_bps`) is larger than the cheapest one's: the work moves
                  only to providers that broke their SLAs no more often. Of those
                  allowed, only the ones that meet the task's SLA terms by their
                  record, if there are any (`meets_terms`: the mean uptime and latency
                  the oracles attested of their service do): spreading work must not
                  move it to providers that keep their SLAs less often.

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
    served: int  # its rewards so far: the value of the tasks it was given, and the mint
    capacity: int  # units it offers, every class (at least 1)
    meets_terms: bool = True  # by its record it meets the task's SLA terms (assignment.py)
    violated_bps: int = 0  # of its tasks that ended, the share with a violation


def _cheapest_key(c: Candidate) -> tuple[int, int, int, str]:
    return (c.price, -c.reputation, c.load_bps, c.address)


def cheapest(candidates: Sequence[Candidate]) -> Candidate | None:
    return min(candidates, key=_cheapest_key, default=None)


def _by_share(a: Candidate, b: Candidate) -> int:
    """a before b if its served share is smaller: a.served / a.capacity < b.served /
    b.capacity, by cross-multiplication; equal shares by the cheapest order."""
    left, right = a.served * b.capacity, b.served * a.capacity
    if left != right:
        return -1 if left < right else 1
    ka, kb = _cheapest_key(a), _cheapest_key(b)
    return -1 if ka < kb else (1 if ka > kb else 0)


@dataclass(frozen=True)
class Budget:
    """The fair policy's account, over the tasks it assigned: what the cheapest candidate
    of each would have cost (`base`), and what requesters paid beyond it (`premium`)."""

    base: int = 0
    premium: int = 0

    def allows(self, extra: int, base: int, slack_bps: int) -> bool:
        """Whether a task whose cheapest candidate costs `base` may cost `extra` more."""
        return (self.premium + extra) * BPS <= (self.base + base) * slack_bps

    def after(self, extra: int, base: int) -> Budget:
        return Budget(self.base + base, self.premium + extra)


def fairest(
    candidates: Sequence[Candidate], slack_bps: int, units: int = 1, budget: Budget = Budget()
) -> Candidate | None:
    """The fair choice for a task of `units`, the budget as it is before it."""
    if not candidates:
        return None
    first = cheapest(candidates)
    assert first is not None
    floor = first.price
    allowed = [
        c
        for c in candidates
        if c.violated_bps <= first.violated_bps
        and budget.allows((c.price - floor) * units, floor * units, slack_bps)
    ]
    keeping = [c for c in allowed if c.meets_terms]
    return min(keeping or allowed or [first], key=cmp_to_key(_by_share))


def choose(
    candidates: Sequence[Candidate],
    policy: int,
    slack_bps: int,
    units: int = 1,
    budget: Budget = Budget(),
) -> Candidate | None:
    if policy == FAIR:
        return fairest(candidates, slack_bps, units, budget)
    return cheapest(candidates)
