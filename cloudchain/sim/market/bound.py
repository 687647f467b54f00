"""What fairness costs, estimated: the least a split of a run's settled work among the providers
could pay while Jain's index over their capacity-normalised rewards is at least a target.

An assignment policy can only choose who does the work; the work itself (the units
settled in each resource class) is the requesters'. So take a run's settled work, in
lots of one class and a range of task sizes, and ask for the split that minimises what
requesters pay, the sum of price x units, subject to J(x) >= target, where x_i is
provider i's reward over its capacity: its units in each class times (its base price
there + the tokens minted per verified unit in the run), plus what was minted for its
capacity (a reward no split changes: market/epoch.py), over the units it offers; to
each lot going only to offers that can hold its smallest task; and to each offer's
capacity over the run: a unit of a lot holds a unit of capacity for the lot's mean
blocks per unit (a task of u units holds u for ceil(u / 10) + 1 blocks, from its
assignment to its completion), and an offer of c units has c x the run's blocks to give.
Without the target the same problem gives each lot to its cheapest offers (a linear
program), so the ratio of the two minima is the price of fairness in this market, like
for like: both splits are as free as each other of what a real assignment also meets
(arrivals in time, deadlines, packing, penalties, prices that rise with load; a
provider's base price is its floor, sim/market/world.py), so the ratio is an estimate of
what the target costs any policy, not a proof; what the policies actually paid is in the
same summary beside it.

J(x) >= t is (sum x)^2 >= t n (sum x^2): a second-order cone for sum x >= 0, so the
problem is convex and a local solver's minimum (SLSQP, exact gradients), where it converges,
is the global one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cloudchain.sim.market.scenario import ProviderSpec


@dataclass(frozen=True)
class Lot:
    """Settled work of one class, of tasks in one range of sizes."""

    resource_class: str
    units: int
    smallest: int  # the units of its smallest task: a smaller offer can take none of it
    blocks_per_unit: float  # the blocks a unit of it holds a unit of capacity, on average


@dataclass(frozen=True)
class Work:
    lots: tuple[Lot, ...]
    blocks: int = 0  # of the run, each offer's capacity over it the limit (0: none)


@dataclass(frozen=True)
class FairnessPrice:
    target: float  # Jain's index asked for
    cheapest: float  # what the work costs at its cheapest offers, without the target
    fair: float  # the least it costs with J >= target (inf: no split found reaches it)
    jain: float  # J of the split found (below the target when fair is inf)
    limited: bool = True  # the offers' capacities held (False: mean occupancy too tight)

    @property
    def ratio(self) -> float:
        return self.fair / self.cheapest if self.cheapest else math.inf


@dataclass
class _Split:
    """The problem in matrices: a variable per (offer, lot), the share of the lot it takes."""

    n: int  # providers
    owner: Any  # (n, pairs): provider i's capacity-normalised reward per share
    fixed: Any  # (n,): provider i's capacity-normalised reward whatever the split
    share_of: Any  # (lots, pairs): each lot's shares sum to 1
    held: Any  # (offers, pairs): each offer's capacity-blocks per share
    room: Any  # (offers,): each offer's capacity-blocks over the run
    limited: bool  # whether `held` @ f <= `room` holds (the run's length is known)
    cost_per_share: Any  # (pairs,)
    cheapest: float  # the least cost without the target (a linear program)
    plan: Any  # (pairs,): that split


def _split(
    providers: Sequence[ProviderSpec],
    work: Work,
    minted_per_unit: float,
    fixed: Sequence[float] = (),
) -> _Split | None:
    import numpy as np
    from scipy.optimize import linprog

    lots = [lot for lot in work.lots if lot.units > 0]
    pairs = [
        (i, g, spec.offers[lot.resource_class][1])
        for g, lot in enumerate(lots)
        for i, spec in enumerate(providers)
        if spec.offers.get(lot.resource_class, (0, 0))[0] >= lot.smallest
    ]
    if not pairs:
        return None
    n = len(providers)
    capacity = [float(spec.capacity) for spec in providers]
    share_of = np.zeros((len(lots), len(pairs)))
    owner = np.zeros((n, len(pairs)))
    offers = sorted({(i, lots[g].resource_class) for i, g, _ in pairs})
    held = np.zeros((len(offers), len(pairs)))
    for k, (i, g, p) in enumerate(pairs):
        lot = lots[g]
        share_of[g, k] = 1.0
        owner[i, k] = (p + minted_per_unit) * lot.units / capacity[i]
        held[offers.index((i, lot.resource_class)), k] = lot.units * lot.blocks_per_unit
    room = np.array([providers[i].offers[name][0] * float(work.blocks) for i, name in offers])
    cost_per_share = np.array([p * lots[g].units for _, g, p in pairs])
    ones = np.ones(len(lots))
    limited = bool(work.blocks)
    limits: dict[str, Any] = {"A_ub": held, "b_ub": room} if limited else {}
    plan = linprog(cost_per_share, A_eq=share_of, b_eq=ones, bounds=(0, 1), method="highs",
                   **limits)  # fmt: skip
    if plan.status != 0:  # mean occupancy is an estimate: too tight to hold the work
        limited = False
        plan = linprog(cost_per_share, A_eq=share_of, b_eq=ones, bounds=(0, 1), method="highs")
    if plan.status != 0:  # a lot no offer can hold: no split of this work at all
        return None
    base = np.array(list(fixed) or [0.0] * n) / np.array(capacity)
    # rewards scaled so that the cheapest split's sum to 1: the solvers' tolerances are
    # absolute, and raw rewards run to millions
    scale = float((owner @ plan.x).sum() + base.sum()) or 1.0
    return _Split(n, owner / scale, base / scale, share_of, held, room, limited,
                  cost_per_share, float(plan.fun), np.asarray(plan.x))  # fmt: skip


def price_of_fairness(
    providers: Sequence[ProviderSpec],
    work: Work,
    minted_per_unit: float,
    target: float,
    fixed: Sequence[float] = (),
) -> FairnessPrice:
    """The least cost of `work` split so that J >= `target`, and its cheapest cost;
    `fixed`: each provider's rewards whatever the split (its capacity reward)."""

    from threadpoolctl import threadpool_limits

    split = _split(providers, work, minted_per_unit, fixed)
    with threadpool_limits(1):  # small dense problems: BLAS threads only contend
        return _price_of_fairness(split, target, both_starts=True)


def _price_of_fairness(split: _Split | None, target: float, both_starts: bool) -> FairnessPrice:
    import numpy as np
    from scipy.optimize import minimize

    if split is None:  # nothing settled, or work no offer could have taken
        return FairnessPrice(target, 0.0, math.inf, math.nan, limited=False)
    n, owner, fixed = split.n, split.owner, split.fixed
    share_of, held, room = split.share_of, split.held, split.room
    limited, cheapest = split.limited, split.cheapest
    cost_of = split.cost_per_share / cheapest

    def fairness_slack(shares: np.ndarray) -> float:  # 1 - t / J(x): >= 0 iff J >= t
        x = owner @ shares + fixed
        return 1.0 - target * n * float(x @ x) / max(float(x.sum()), 1e-300) ** 2

    def fairness_gradient(shares: np.ndarray) -> np.ndarray:
        x = owner @ shares + fixed
        total_x = max(float(x.sum()), 1e-300)
        by_x = -2.0 * target * n * (x / total_x**2 - float(x @ x) / total_x**3)
        return np.asarray(owner.T @ by_x)

    constraints = [
        {"type": "eq", "fun": lambda f: share_of @ f - 1.0, "jac": lambda f: share_of},
        {"type": "ineq", "fun": fairness_slack, "jac": fairness_gradient},
    ]
    if limited:
        scale = np.maximum(room, 1.0)
        constraints.append({"type": "ineq", "fun": lambda f: (room - held @ f) / scale,
                            "jac": lambda f: -held / scale[:, None]})  # fmt: skip

    def solve(start: np.ndarray) -> Any:
        return minimize(
            lambda f: float(cost_of @ f),
            start,
            jac=lambda f: cost_of,
            method="SLSQP",
            bounds=[(0.0, 1.0)] * len(cost_of),
            constraints=constraints,
            options={"maxiter": 500, "ftol": 1e-12},
        )

    def feasible(f: np.ndarray) -> bool:
        fits = not limited or bool(np.all(held @ f <= room * (1 + 1e-6) + 1e-6))
        return fits and fairness_slack(f) > -1e-6 and bool(np.allclose(share_of @ f, 1, atol=1e-6))

    # two starts: the cheapest split, and each lot spread evenly over the offers that can
    # take it; the better of those that meet every constraint (the problem is convex)
    evenly = 1.0 / (share_of.T @ share_of.sum(axis=1))
    found = [solve(split.plan), solve(evenly)] if both_starts else [solve(evenly)]
    good = [r for r in found if feasible(np.clip(r.x, 0, 1))]
    shares = np.clip(min(good or found, key=lambda r: r.fun).x, 0.0, 1.0)
    x = owner @ shares + fixed
    jain = float(x.sum() ** 2 / (n * (x @ x))) if x @ x else 1.0
    if not good:  # neither start found a split that even (the capacities forbid it)
        return FairnessPrice(target, cheapest, math.inf, jain, split.limited)
    return FairnessPrice(target, cheapest, float(cost_of @ shares) * cheapest, jain, split.limited)


def best_fairness(
    providers: Sequence[ProviderSpec],
    work: Work,
    minted_per_unit: float,
    cost_ratio: float,
    tolerance: float = 0.005,
    fixed: Sequence[float] = (),
) -> float:
    """The highest Jain's index any split of `work` reaches for at most `cost_ratio`
    times its cheapest cost (to `tolerance`): bisection on the target, as the least
    cost grows with it."""
    from threadpoolctl import threadpool_limits

    split = _split(providers, work, minted_per_unit, fixed)
    if split is None:
        return math.nan
    low, high = 1.0 / max(1, len(providers)), 1.0
    with threadpool_limits(1):  # small dense problems: BLAS threads only contend
        if _price_of_fairness(split, high, False).ratio <= cost_ratio:
            return high
        while high - low > tolerance:
            middle = (low + high) / 2
            found = _price_of_fairness(split, middle, False)
            if found.ratio <= cost_ratio:
                low = middle
            else:
                high = middle
    return low
