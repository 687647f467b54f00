"""The fair assignment policy meets its bound on small markets of generated providers,
each run on the real chain (sim/market/) under both policies side by side.

The bound, as the issue states it: Jain's index over the providers' rewards normalised by
the capacity they offered at least 0.89, a price paid per unit at most 10% over what the
cheapest-bid policy paid, and SLA compliance at least as high. It is reachable only where
the offers lie within the policy's price slack of one another (docs/PAPER.md shows why no
policy reaches it on the paper's list prices): so the providers here are priced within
10% of the cheapest, with any capacities and reliabilities alike, and a demand that
leaves room (in an overloaded market every task goes to whoever has units free, and no
policy chooses): that is what is generated.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloudchain.chaincode.market.policy import CHEAPEST, FAIR
from cloudchain.sim.market.report import FAIRNESS_CLAIM, summary
from cloudchain.sim.market.scenario import CPU, GPU, ProviderSpec
from cloudchain.sim.market.world import SimConfig, simulate

SLACK_BPS = 1_000


@st.composite
def markets(draw: st.DrawFn) -> tuple[ProviderSpec, ...]:
    """3 to 6 providers, the GPU prices within the slack of the cheapest; capacities
    from what one training task needs (1,200 units) to five times it."""
    count = draw(st.integers(3, 6))
    floor = draw(st.integers(100, 400))
    ceiling = floor * (10_000 + SLACK_BPS) // 10_000
    prices = [floor] + [draw(st.integers(floor, ceiling)) for _ in range(count - 1)]
    providers = []
    for i, price in enumerate(prices):
        gpu = draw(st.integers(1_200, 6_000))
        cpu = draw(st.integers(300, 1_500))
        providers.append(
            ProviderSpec(
                name=f"p{i}",
                tier=draw(st.sampled_from(("enterprise", "community"))),
                offers={GPU: (gpu, price), CPU: (cpu, max(1, price // 5))},
                uptime_bps=9_990,
                latency_ms=50,
                reliability_bps=10_000,
            )
        )
    return tuple(providers)


def _run(providers: tuple[ProviderSpec, ...], policy: int, seed: int) -> dict:
    config = SimConfig(
        providers,
        days=2,  # a day's ~120 tasks, a third of them large, leave shares too lumpy
        block_s=60,
        requesters=20,
        tasks_per_day=6,  # about 40% of the smallest market's GPU capacity in flight
        seed=seed,
        policy=policy,
        fair_slack_bps=SLACK_BPS,
    )
    return summary(simulate(config))


@given(markets(), st.integers(1, 1_000))
@settings(
    max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)  # the same markets in every run
def test_the_fair_policy_meets_its_bound_where_offers_lie_within_its_slack(providers, seed):
    cheap, fair = _run(providers, CHEAPEST, seed), _run(providers, FAIR, seed)
    assert fair["tasks"] > 160 and fair["outcomes"].get("settle", 0) > 160
    assert fair["jain_normalised"] >= FAIRNESS_CLAIM, (fair, providers)
    assert fair["paid_per_unit"] <= cheap["paid_per_unit"] * 1.10
    assert fair["sla_compliance_bps"] >= cheap["sla_compliance_bps"]
