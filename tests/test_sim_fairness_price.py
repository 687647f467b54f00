"""The price of fairness (sim/market/bound.py): the least cost of a market's work at a
Jain's index target, checked against cases solved by hand."""

from __future__ import annotations

import math

import pytest

from cloudchain.sim.market.bound import Lot, Work, best_fairness, price_of_fairness
from cloudchain.sim.market.scenario import CPU, GPU, ProviderSpec, paper_scenario


def gpu(units: int, blocks: int = 0, smallest: int = 1, per_unit: float = 1.0) -> Work:
    return Work((Lot(GPU, units, smallest, per_unit),), blocks)


def provider(name: str, units: int, price: int, cpu: tuple[int, int] | None = None):
    offers = {GPU: (units, price)} | ({CPU: cpu} if cpu else {})
    return ProviderSpec(name, "community", offers, 9_900, 50, 9_900)


def test_perfect_fairness_between_a_cheap_and_a_dear_provider_costs_what_algebra_says():
    # equal capacity, prices 1 and 10, nothing minted: equal rewards need w1 = 10 w2, so
    # the work W costs 10 w2 + 10 w2 = 20 W / 11 against W at the cheap one alone
    found = price_of_fairness([provider("a", 100, 1), provider("b", 100, 10)], gpu(1_100), 0, 1)
    assert found.cheapest == 1_100
    assert found.ratio == pytest.approx(20 / 11, rel=1e-4)
    assert found.jain == pytest.approx(1.0, abs=1e-6)


def test_a_reward_no_split_changes_counts_toward_fairness():
    # as above, but the dear provider was minted 1,100 for its capacity: the cheapest split
    # pays the cheap one 1,100 for the work, so it is already perfectly fair
    market = [provider("a", 100, 1), provider("b", 100, 10)]
    found = price_of_fairness(market, gpu(1_100), 0, 1, fixed=[0, 1_100])
    assert found.ratio == pytest.approx(1.0, abs=1e-6)
    assert found.jain == pytest.approx(1.0, abs=1e-6)
    assert best_fairness(market, gpu(1_100), 0, 1.0, fixed=[0, 1_100]) == 1.0
    assert best_fairness(market, gpu(1_100), 0, 1.0) < 0.6  # without it: J = 1/2


def test_fairness_is_free_where_every_offer_is_priced_alike():
    market = [provider(f"p{i}", units, 40) for i, units in enumerate((10, 200, 3_000))]
    found = price_of_fairness(market, gpu(50_000), 7, 0.89)
    assert found.ratio == pytest.approx(1.0, abs=1e-6) and found.jain >= 0.89 - 1e-6


def test_a_target_no_higher_than_one_over_n_leaves_the_work_at_the_cheapest_offer():
    market = [provider("a", 100, 5), provider("b", 100, 50), provider("c", 100, 500)]
    found = price_of_fairness(market, gpu(900), 0, 1 / 3)
    assert found.ratio == pytest.approx(1.0, abs=1e-6)


def test_on_the_papers_list_prices_fairness_costs_several_times_the_cheapest():
    """The five clouds and 23 community nodes, GPU and CPU work: J >= 0.89 costs at least
    twice what the cheapest offers would, at any mint per unit (docs/PAPER.md)."""
    work = Work((Lot(GPU, 2_000_000, 1, 1.0), Lot(CPU, 300_000, 1, 1.0)))
    for minted in (0, 50, 200):
        found = price_of_fairness(paper_scenario(1), work, minted, 0.89)
        assert found.jain == pytest.approx(0.89, abs=1e-4)
        assert found.ratio > 2


def test_the_best_fairness_within_a_cost_is_the_highest_target_that_cost_buys():
    market = [provider("a", 100, 10), provider("b", 100, 12), provider("c", 300, 40)]
    work = gpu(10_000)
    best = best_fairness(market, work, 0, 1.10)
    assert 1 / 3 < best < 1
    assert price_of_fairness(market, work, 0, best).ratio <= 1.10 + 1e-6
    assert price_of_fairness(market, work, 0, best + 0.01).ratio > 1.10
    alike = [provider("a", 100, 10), provider("b", 50, 10)]
    assert best_fairness(alike, work, 0, 1.0) == 1.0


def test_capacity_sends_the_work_past_the_cheapest_offer_so_fairness_costs_less():
    """A cheap offer that can hold a tenth of the work: the cheapest split already pays
    the dearer one for the rest, and is already fair enough for 0.9; perfect fairness,
    which needs a sixth of the work at the cheap one, no split reaches."""
    market = [provider("a", 10, 10), provider("b", 100, 20)]
    # 1,000 units holding 5 blocks each over 50 blocks: a can take 10 x 50 / 5,000 = 10%
    work = gpu(1_000, blocks=50, per_unit=5.0)
    limited = price_of_fairness(market, work, 0, 0.9)
    assert limited.cheapest == pytest.approx(100 * 10 + 900 * 20)
    assert limited.ratio == pytest.approx(1.0, abs=1e-6) and limited.jain >= 0.9
    free = price_of_fairness(market, gpu(1_000), 0, 0.9)
    assert free.cheapest == pytest.approx(1_000 * 10) and free.ratio > 1.5
    assert price_of_fairness(market, work, 0, 0.99).fair == math.inf


def test_a_lot_goes_only_to_offers_that_can_hold_its_smallest_task():
    """Tasks of 500 units or more: the cheap node of 100 units can take none of them, so
    the cheapest split is the dear one's, and no split spreads it at all."""
    market = [provider("small", 100, 1), provider("big", 1_000, 10)]
    found = price_of_fairness(market, gpu(5_000, smallest=500), 0, 0.9)
    assert found.cheapest == pytest.approx(50_000)
    assert found.fair == math.inf and found.jain == pytest.approx(0.5)
