"""The capacity reward (chaincode/market/epoch.py): the share of the providers' epoch
reward paid for capacity offered, by units backed by stake times reputation."""

from __future__ import annotations

import pytest

from cloudchain.chaincode.market.params import MarketParams, params_from_genesis
from tests.helpers.market import (
    ORACLES,
    PROVIDERS,
    REQUESTERS,
    MarketChain,
    market_genesis,
    offer,
    task_args,
)

P0, P1, P2 = PROVIDERS[:3]
# epoch_reward 10,000, oracles 10%: the providers' pool is 9,000, half of it for capacity
HALF = {"capacity_reward_bps": 5_000, "capacity_stake_per_unit": 10}


def rewards(m: MarketChain) -> dict[tuple[str, str], int]:
    """(recipient, basis) -> amount of the market_reward events so far."""
    found: dict[tuple[str, str], int] = {}
    for event in m.block_events:
        if event.type == "market_reward":
            attrs = dict(event.attributes)
            key = (attrs["recipient"], attrs.get("basis", "work"))
            found[key] = found.get(key, 0) + int(attrs["amount"])
    return found


def to_epoch_end(m: MarketChain) -> None:
    while m.height % 5:
        m.tick()


def register(m: MarketChain, provider, units: int, stake: int) -> None:
    m.ok(provider, "register", name="n", tier="community", offers=offer(units), stake=stake)


def test_idle_capacity_is_paid_by_the_units_its_stake_backs():
    m = MarketChain(market_genesis(**HALF))
    supply = m.query("/token/supply")["supply"]
    register(m, P0, units=100, stake=5_000)  # backs 500 units: all 100 count
    register(m, P1, units=300, stake=1_000)  # backs 100 of its 300
    register(m, P2, units=100, stake=5_000)
    m.ok(P2, "leave")  # unbonding: not offered, not paid
    burnt = sum(m.fees_paid.values())
    to_epoch_end(m)
    paid = rewards(m)
    # nobody worked: no work reward and no oracle reward; equal weights 100 x 5,000 bps
    assert paid == {(P0.address, "capacity"): 2_250, (P1.address, "capacity"): 2_250}
    assert m.query("/token/supply")["supply"] == supply - burnt + 4_500
    assert m.query("/market/account", P0.address)["provider"]["rewarded"] == 2_250


def test_the_capacity_reward_follows_reputation_and_the_rest_follows_work():
    m = MarketChain(market_genesis(**HALF))
    register(m, P0, units=100, stake=5_000)
    register(m, P1, units=100, stake=5_000)
    m.ok(ORACLES[0], "attest_provider", provider=P1.address, uptime_bps=0, latency_ms=900)
    m.ok(REQUESTERS[0], "submit", **task_args(units=10))
    worker = m.task(1)["provider"]
    m.ok(next(p for p in (P0, P1) if p.address == worker), "complete", task=1, units_used=10,
         output=[])  # fmt: skip
    for oracle in ORACLES:
        m.ok(oracle, "attest", task=1, completed=True, units=10, uptime_bps=9_900,
             latency_ms=100)  # fmt: skip
    m.tick(3)  # the dispute window closes: the task settles
    assert m.task(1)["state"] == "settled"
    to_epoch_end(m)
    paid = rewards(m)
    assert paid[(worker, "work")] == 4_500  # the only verified work: the whole work pool
    assert [paid[(o.address, "work")] for o in ORACLES] == [1_000 // 3] * 3  # rounded down
    # an epoch of nothing but standing capacity, reputations as they are now
    m.tick(4)
    reputations = {
        p.address: m.query("/market/provider", p.address)["reputation"] for p in (P0, P1)
    }
    assert reputations[P1.address] < reputations[P0.address]  # its probe said it was down
    m.block_events.clear()
    m.tick()
    total = sum(reputations.values())
    assert rewards(m) == {
        (address, "capacity"): 4_500 * reputation // total
        for address, reputation in reputations.items()
    }


def test_a_chain_without_a_capacity_reward_mints_only_for_work():
    m = MarketChain()
    register(m, P0, units=100, stake=5_000)
    to_epoch_end(m)
    assert rewards(m) == {}


@pytest.mark.parametrize(
    ("field", "value"), [("capacity_reward_bps", 10_001), ("capacity_stake_per_unit", 0)]
)
def test_a_bad_capacity_parameter_is_refused_by_name(field, value):
    with pytest.raises(ValueError, match=field):
        params_from_genesis({field: value})
    assert MarketParams(capacity_reward_bps=10_000).to_obj()["capacity_reward_bps"] == 10_000
    assert "capacity_reward_bps" not in MarketParams().to_obj()
