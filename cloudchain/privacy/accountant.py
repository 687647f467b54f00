"""The privacy accountant of DP-SGD (the paper's Algorithm 2), from Google's
`dp-accounting`: an accountant independent of the trainer's (Opacus keeps its own, which
the training must agree with, within AGREEMENT).

DP-SGD's steps are a Poisson-subsampled Gaussian mechanism composed `steps` times:
sampling rate q, noise multiplier sigma (the noise's standard deviation over the clip norm
C). Its Rényi DP at each order is summed over the steps and converted to (ε, δ) with
dp-accounting's conversion (the tighter one of Canonne, Kamath and Steinke, and Balle
et al., not the classic ε = RDP(order) + log(1/δ)/(order - 1)). `check_budget` refuses a job whose
ε exceeds its target before any step runs, naming both numbers.

The chain keeps ε in integer micro-ε (`micro_epsilon`, rounded up: a budget is never
spent by less than was used).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from cloudchain.privacy.units import MICRO_EPS

# The orders the RDP curve is evaluated at: dense near 1, then every integer to 63, then
# a few large ones (as dp-accounting's and Opacus's defaults go).
ORDERS: tuple[float, ...] = (
    *(1 + x / 10.0 for x in range(1, 100)),
    *range(12, 64),
    128,
    256,
    512,
)
AGREEMENT = 0.03  # the relative difference allowed between this ε and Opacus's


class PrivacyBudgetError(ValueError):
    """A DP job that would spend more ε than its target."""


@dataclass(frozen=True)
class DPSGD:
    noise_multiplier: float  # sigma
    sampling_rate: float  # q: each example is in a step's batch with this probability
    steps: int
    delta: float

    def __post_init__(self) -> None:
        if not (self.noise_multiplier > 0 and 0 < self.sampling_rate <= 1 and self.steps >= 1):
            raise ValueError(f"not a DP-SGD run: {self}")
        if not 0 < self.delta < 1:
            raise ValueError(f"δ {self.delta}: expected strictly between 0 and 1")


def _accountant(run: DPSGD, orders: Sequence[float]):  # type: ignore[no-untyped-def]
    import dp_accounting
    from dp_accounting import rdp

    accountant = rdp.RdpAccountant(list(orders))
    step = dp_accounting.PoissonSampledDpEvent(
        run.sampling_rate, dp_accounting.GaussianDpEvent(run.noise_multiplier)
    )
    accountant.compose(dp_accounting.SelfComposedDpEvent(step, run.steps))
    return accountant


def epsilon_spent(run: DPSGD, orders: Sequence[float] = ORDERS) -> float:
    """ε of the whole run at its δ."""
    return float(_accountant(run, orders).get_epsilon(run.delta))


def classic_epsilon(run: DPSGD, orders: Sequence[float]) -> float:
    """ε by the classic conversion, the least over the orders of RDP(order) +
    log(1/δ)/(order - 1): what the published figures of Abadi et al. and TF Privacy's
    early tools give. It reads dp-accounting's per-order RDP of one step, a private
    function of that library (pinned by its release range)."""
    from dp_accounting.rdp import rdp_privacy_accountant as rdp_module

    curve = [
        float(rdp_module._compute_rdp_poisson_subsampled_gaussian(
            run.sampling_rate, run.noise_multiplier, [order])[0]) * run.steps
        for order in orders
    ]  # fmt: skip
    return min(r + math.log(1 / run.delta) / (a - 1) for r, a in zip(curve, orders, strict=True))


def check_budget(run: DPSGD, target_epsilon: float) -> float:
    """ε of `run`, if it is within `target_epsilon`; else PrivacyBudgetError."""
    spent = epsilon_spent(run)
    if spent > target_epsilon:
        raise PrivacyBudgetError(
            f"the run would spend ε = {spent:.4f} at δ = {run.delta:g}, more than its target "
            f"ε = {target_epsilon:g} (sigma {run.noise_multiplier}, q {run.sampling_rate:g}, "
            f"{run.steps} steps)"
        )
    return spent


def micro_epsilon(epsilon: float) -> int:
    return math.ceil(epsilon * MICRO_EPS)
