"""The price of fairness (sim/market/bound.py): the least cost of a market's work at a
Jain's index target, checked against cases solved by hand."""

from __future__ import annotations

import pytest

from cloudchain.sim.market.bound import price_of_fairness
from cloudchain.sim.market.scenario import CPU, GPU, ProviderSpec, paper_scenario


def provider(name: str, units: int, price: int, cpu: tuple[int, int] | None = None):
    offers = {GPU: (units, price)} | ({CPU: cpu} if cpu else {})
    return ProviderSpec(name, "community", offers, 9_900, 50, 9_900)


def test_perfect_fairness_between_a_cheap_and_a_dear_provider_costs_what_algebra_says():
    # equal capacity, prices 1 and 10, nothing minted: equal rewards need w1 = 10 w2, so
    # the work W costs 10 w2 + 10 w2 = 20 W / 11 against W at the cheap one alone
    found = price_of_fairness([provider("a", 100, 1), provider("b", 100, 10)], {GPU: 1_100}, 0, 1)
    assert found.cheapest == 1_100
    assert found.ratio == pytest.approx(20 / 11, rel=1e-4)
    assert found.jain == pytest.approx(1.0, abs=1e-6)


def test_fairness_is_free_where_every_offer_is_priced_alike():
    market = [provider(f"p{i}", units, 40) for i, units in enumerate((10, 200, 3_000))]
    found = price_of_fairness(market, {GPU: 50_000}, 7, 0.89)
    assert found.ratio == pytest.approx(1.0, abs=1e-6) and found.jain >= 0.89 - 1e-6


def test_a_target_no_higher_than_one_over_n_leaves_the_work_at_the_cheapest_offer():
    market = [provider("a", 100, 5), provider("b", 100, 50), provider("c", 100, 500)]
    found = price_of_fairness(market, {GPU: 900}, 0, 1 / 3)
    assert found.ratio == pytest.approx(1.0, abs=1e-6)


def test_on_the_papers_list_prices_fairness_costs_several_times_the_cheapest():
    """The five clouds and 23 community nodes, GPU and CPU work: J >= 0.89 costs at least
    twice what the cheapest offers would, at any mint per unit (docs/PAPER.md)."""
    work = {GPU: 2_000_000, CPU: 300_000}
    for minted in (0, 50, 200):
        found = price_of_fairness(paper_scenario(1), work, minted, 0.89)
        assert found.jain == pytest.approx(0.89, abs=1e-4)
        assert found.ratio > 2
