"""The assignment policies (chaincode/market/policy.py): properties of the choice, and
the fair policy on chain as a parameter."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cloudchain.chaincode.market.policy import (
    BPS,
    CHEAPEST,
    FAIR,
    Budget,
    Candidate,
    cheapest,
    choose,
    fairest,
)

candidates = st.lists(
    st.builds(
        Candidate,
        address=st.text("0123456789abcdef", min_size=40, max_size=40),
        price=st.integers(1, 1_000),
        reputation=st.integers(0, BPS),
        load_bps=st.integers(0, BPS),
        served=st.integers(0, 10**9),
        capacity=st.integers(1, 10**6),
        meets_terms=st.booleans(),
        violated_bps=st.integers(0, BPS),
    ),
    min_size=1,
    max_size=12,
    unique_by=lambda c: c.address,
)


@given(st.lists(st.tuples(candidates, st.integers(1, 10_000)), min_size=1, max_size=30),
       st.integers(0, 5 * BPS))  # fmt: skip
@settings(max_examples=300)
def test_over_any_run_of_tasks_the_fair_premium_stays_within_the_slack(tasks, slack):
    """Whatever the candidates of each task, what the fair choices cost beyond each task's
    cheapest candidate is at most the slack of what those cheapest would have cost."""
    budget = Budget()
    for found, units in tasks:
        chosen = fairest(found, slack, units, budget)
        floor = min(c.price for c in found)
        assert chosen is not None
        budget = budget.after((chosen.price - floor) * units, floor * units)
        assert budget.premium * BPS <= budget.base * slack


@given(candidates, st.integers(0, 5 * BPS), st.integers(1, 10_000),
       st.integers(0, 10**9), st.integers(0, 10**9))  # fmt: skip
@settings(max_examples=300)
def test_no_candidate_the_budget_allows_has_a_smaller_share_than_the_fair_choice(
    found, slack, units, base, spent
):
    """Of the candidates the budget allows whose record of violations is no worse than the
    cheapest candidate's, those that meet the task's terms come first, if any: none of
    that set has a smaller share than the choice, which is in it."""
    budget = Budget(base, min(spent, base * slack // BPS))
    chosen = fairest(found, slack, units, budget)
    first = cheapest(found)
    assert chosen is not None and first is not None
    floor = first.price
    assert chosen.violated_bps <= first.violated_bps  # SLAs kept no less often
    allowed = [c for c in found if c.violated_bps <= first.violated_bps
               and budget.allows((c.price - floor) * units, floor * units, slack)]  # fmt: skip
    keeping = [c for c in allowed if c.meets_terms]
    pool = keeping or allowed
    assert chosen in pool
    for other in pool:
        # other's share is not below chosen's: served/capacity by cross-multiplication
        assert other.served * chosen.capacity >= chosen.served * other.capacity


@given(candidates, st.integers(0, 5 * BPS), st.randoms(use_true_random=False))
@settings(max_examples=200)
def test_the_choice_does_not_depend_on_the_order_candidates_come_in(found, slack, rng):
    shuffled = list(found)
    rng.shuffle(shuffled)
    for policy in (CHEAPEST, FAIR):
        assert choose(found, policy, slack) == choose(shuffled, policy, slack)


@given(candidates)
def test_the_cheapest_choice_is_a_lowest_price(found):
    chosen = cheapest(found)
    assert chosen is not None and chosen.price == min(c.price for c in found)


def test_with_no_slack_and_one_price_work_goes_where_the_share_is_smallest():
    a = Candidate("a" * 40, 10, 5_000, 0, served=100, capacity=100)  # share 1
    b = Candidate("b" * 40, 10, 5_000, 0, served=150, capacity=300)  # share 0.5
    c = Candidate("c" * 40, 9, 5_000, 0, served=0, capacity=10)  # cheaper, share 0
    assert fairest([a, b], 0) == b
    assert fairest([a, b, c], 0) == c  # only c is within 0% of the cheapest
    assert fairest([a, b, c], 2_000) == c  # within 20% all three: c's share is 0
    assert cheapest([a, b]) == a  # same price and reputation: the address
    assert fairest([], 1_000) is None and cheapest([]) is None


def test_the_fair_choice_never_moves_work_to_a_record_of_more_violations():
    cheap = Candidate("a" * 40, 10, 5_000, 0, served=900, capacity=100, violated_bps=200)
    idle = Candidate("b" * 40, 10, 5_000, 0, served=0, capacity=100, violated_bps=300)
    fresh = Candidate("c" * 40, 10, 5_000, 0, served=10, capacity=100)  # no violations
    assert fairest([cheap, idle], 1_000) == cheap  # idle breaks more of its SLAs
    assert fairest([cheap, idle, fresh], 1_000) == fresh


def _market(policy: int, slack_bps: int = 1_000):
    from tests.helpers.market import PROVIDERS, MarketChain, market_genesis, offer

    chain = MarketChain(market_genesis(assignment_policy=policy, fair_price_slack_bps=slack_bps,
                                       max_assignments_per_provider=64))  # fmt: skip
    small, large, dear = PROVIDERS
    for provider, units, price in ((small, 100, 10), (large, 300, 10), (dear, 300, 12)):
        chain.ok(provider, "register", name="p", tier="community", offers=offer(units, price),
                 stake=5_000)  # fmt: skip
    return chain, (small, large, dear)


def _assigned_units(chain, providers) -> list[int]:
    return [
        chain.query("/market/account", p.address).get("provider", {}).get("assigned_units", 0)
        for p in providers
    ]


def test_on_chain_the_fair_policy_spreads_rewards_by_capacity_within_its_budget():
    """Twenty tasks of 10 units: providers of 100 and 300 units at 10, and one of 300 at
    12. Cheapest never pays 12; fair pays it while the premium (2 a unit) stays within
    the slack of the cheapest cost (10 a unit, 2,000 in all), and spreads rewards in
    proportion to capacity: 10 x small / 100 = 10 x large / 300 = 12 x dear / 300."""
    from tests.helpers.market import REQUESTERS, task_args

    for policy, slack in ((CHEAPEST, 1_000), (FAIR, 500), (FAIR, 2_500)):
        chain, providers = _market(policy, slack)
        chain.block(*[chain.tx(REQUESTERS[0], "submit", **task_args(units=10, max_price=20))
                      for _ in range(20)])  # fmt: skip
        small, large, dear = _assigned_units(chain, providers)
        assert small + large + dear == 200
        if policy == CHEAPEST:  # only the cheapest two, spread by load between them
            assert dear == 0 and small + large == 200
            continue
        assert abs(small * 3 - large) <= 30  # 1:3 by capacity, to a task
        if slack == 500:  # the premium may be 5% of 2,000: 50 units at 12
            assert dear == 50
        else:  # the budget does not bind: rewards per unit of capacity alike, to a task
            assert 0 < 2 * dear <= 500 and abs(12 * dear - 10 * large) <= 120
        budget = chain.query("/market/stats")["fair_budget"]
        assert budget == {"base": 2_000, "premium": 2 * dear}


def test_a_policy_the_chain_does_not_have_is_refused_in_genesis():
    import pytest

    from cloudchain.chaincode.market.params import MarketParams

    with pytest.raises(ValueError, match="assignment_policy"):
        MarketParams(assignment_policy=2)
    assert "assignment_policy" not in MarketParams().to_obj()  # the default stores as before
    assert MarketParams(assignment_policy=1).to_obj()["assignment_policy"] == 1
