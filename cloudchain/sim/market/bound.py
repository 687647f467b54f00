"""What fairness costs: the least any assignment of a run's settled work could pay while
Jain's index over the providers' capacity-normalised rewards is at least a target.

An assignment policy can only choose who does the work; the work itself (the units
settled in each resource class) is the requesters'. So take a run's settled units per
class and ask for the split among the providers that minimises what requesters pay,
the sum of price x units, subject to J(x) >= target, where x_i is provider i's reward over its
capacity: its units in each class times (its base price there + the tokens minted per
verified unit in the run), over the units it offers. The minimum is a lower bound on
what any policy would pay for the same work at that fairness, because every constraint
a real assignment meets besides these is dropped: capacity in flight, deadlines, the
order of arrivals, penalties, prices that rise with load (a provider's base price is
its floor, sim/market/world.py). Without the fairness constraint the same relaxation
gives each class's work to its cheapest offer, so the ratio of the two minima is the
price of fairness in this market, measured like for like.

J(x) >= t is (Σx)^2 >= t·n·Σx^2: a second-order cone for Σx >= 0, so the problem is
convex and a local solver's minimum (SLSQP) is the global one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cloudchain.sim.market.scenario import ProviderSpec


@dataclass(frozen=True)
class FairnessPrice:
    target: float  # Jain's index asked for
    cheapest: float  # what the work costs at its cheapest offers, without the target
    fair: float  # the least it costs with J >= target
    jain: float  # J of the split found (>= target, up to the solver's tolerance)

    @property
    def ratio(self) -> float:
        return self.fair / self.cheapest if self.cheapest else 1.0


def price_of_fairness(
    providers: Sequence[ProviderSpec],
    work: Mapping[str, int],
    minted_per_unit: float,
    target: float,
) -> FairnessPrice:
    """The least cost of `work` (units settled, by class) split so that J >= `target`."""
    import numpy as np
    from scipy.optimize import minimize

    pairs = [
        (i, name, spec.offers[name][1])
        for i, spec in enumerate(providers)
        for name in sorted(spec.offers)
        if work.get(name, 0) > 0
    ]
    if not pairs:
        return FairnessPrice(target, 0.0, 0.0, 1.0)
    n = len(providers)
    classes = sorted({name for _, name, _ in pairs})
    capacity = [float(spec.capacity) for spec in providers]
    # the variables: of each class's work, the share each offer of it takes
    share_of = np.zeros((len(classes), len(pairs)))
    owner = np.zeros((n, len(pairs)))  # provider i's capacity-normalised reward per share
    for k, (i, name, p) in enumerate(pairs):
        share_of[classes.index(name), k] = 1.0
        owner[i, k] = (p + minted_per_unit) * work[name] / capacity[i]
    cheapest = float(sum(work[c] * min(p for _, n_, p in pairs if n_ == c) for c in classes))
    cost_of = np.array([p * work[name] for _, name, p in pairs]) / cheapest

    def fairness_slack(shares: np.ndarray) -> float:  # 1 - t / J(x): >= 0 iff J >= t
        x = owner @ shares
        return 1.0 - target * n * float(x @ x) / max(float(x.sum()), 1e-300) ** 2

    def fairness_gradient(shares: np.ndarray) -> np.ndarray:
        x = owner @ shares
        total_x = max(float(x.sum()), 1e-300)
        by_x = -2.0 * target * n * (x / total_x**2 - float(x @ x) / total_x**3)
        return np.asarray(owner.T @ by_x)

    def solve(start: np.ndarray) -> Any:
        return minimize(
            lambda f: float(cost_of @ f),
            start,
            jac=lambda f: cost_of,
            method="SLSQP",
            bounds=[(0.0, 1.0)] * len(pairs),
            constraints=[
                {"type": "eq", "fun": lambda f: share_of @ f - 1.0, "jac": lambda f: share_of},
                {"type": "ineq", "fun": fairness_slack, "jac": fairness_gradient},
            ],
            options={"maxiter": 2_000, "ftol": 1e-12},
        )

    # two starts, each class's work in proportion to capacity and evenly; the better
    # of those that meet the constraints (the problem is convex: they agree when both do)
    by_capacity = np.array([capacity[i] for i, _, _ in pairs])
    by_capacity /= share_of.T @ (share_of @ by_capacity)
    evenly = 1.0 / (share_of.T @ share_of.sum(axis=1))
    found = [solve(by_capacity), solve(evenly)]
    good = [r for r in found if fairness_slack(np.clip(r.x, 0, 1)) > -1e-6] or found
    shares = np.clip(min(good, key=lambda r: r.fun).x, 0.0, 1.0)
    x = owner @ shares
    jain = float(x.sum() ** 2 / (n * (x @ x))) if x @ x else 1.0
    units_cost = float(cost_of @ shares) * cheapest
    return FairnessPrice(target, cheapest, units_cost, jain)
