"""The DP-SGD accountant (cloudchain/privacy/accountant.py) against published figures
and against Opacus's own accountant."""

from __future__ import annotations

import math

import pytest

from cloudchain.privacy.accountant import (
    AGREEMENT,
    DPSGD,
    ORDERS,
    PrivacyBudgetError,
    check_budget,
    classic_epsilon,
    epsilon_spent,
    micro_epsilon,
)

# Opacus's scripts/compute_dp_sgd_privacy.py (after TF Privacy's): MNIST-sized, N = 60,000,
# batch 256, sigma = 1.12, 60 epochs, δ = 1e-5, orders 10, 20, 100 "satisfies (2.95, 1e-5)-DP"
# by the classic RDP conversion.
MNIST = DPSGD(1.12, 256 / 60_000, math.ceil(60 * 60_000 / 256), 1e-5)


def test_the_published_mnist_figure_is_reproduced_by_the_classic_conversion() -> None:
    assert classic_epsilon(MNIST, (10, 20, 100)) == pytest.approx(2.95, abs=0.02)


def test_the_tighter_conversion_spends_less_and_opacus_agrees() -> None:
    from opacus.accountants.analysis import rdp as opacus_rdp

    ours = epsilon_spent(MNIST)
    assert ours < classic_epsilon(MNIST, ORDERS)
    curve = opacus_rdp.compute_rdp(
        q=MNIST.sampling_rate, noise_multiplier=MNIST.noise_multiplier, steps=MNIST.steps,
        orders=list(ORDERS),
    )  # fmt: skip
    theirs, _ = opacus_rdp.get_privacy_spent(orders=list(ORDERS), rdp=curve, delta=MNIST.delta)
    assert abs(ours - theirs) <= AGREEMENT * theirs


def test_more_noise_spends_less_and_more_steps_spend_more() -> None:
    def eps(sigma: float, steps: int) -> float:
        return epsilon_spent(DPSGD(sigma, 0.01, steps, 1e-5))

    assert eps(2.0, 1_000) < eps(1.0, 1_000) < eps(1.0, 4_000)


def test_a_run_over_its_target_is_refused_naming_both_numbers() -> None:
    spent = check_budget(MNIST, 3.0)
    assert spent == epsilon_spent(MNIST) and micro_epsilon(spent) >= spent * 10**6
    with pytest.raises(PrivacyBudgetError, match=r"ε = 2\.5\d+ .* target ε = 1\b"):
        check_budget(MNIST, 1.0)
    with pytest.raises(ValueError):
        DPSGD(0.0, 0.1, 10, 1e-5)
