"""One slashing rule: a violation costs the provider the same whichever way it comes.

A provider that breaks two SLA terms pays λ·2 from its stake (its payment being 0),
given to the requester: whether the oracles decide it (the task settles with R = 2)
or the deadline does (an assigned task expires: R = 2, not completed and late). Both
paths go through lifecycle.slash and leave the same balances, stakes, supply and books
(balances and supply counted before fees, which differ: the paths send different
transactions).
"""

from __future__ import annotations

import pytest

from cloudchain.chaincode.market import state
from tests.helpers.market import (
    BALANCE,
    EVERYONE,
    ORACLES,
    PROVIDERS,
    REQUESTERS,
    MarketChain,
    market_genesis,
    offer,
    task_args,
)

P0 = PROVIDERS[0]
R0 = REQUESTERS[0]
GENESIS_SUPPLY = BALANCE * len(EVERYONE)


def _chain(stake: int) -> MarketChain:
    m = MarketChain(market_genesis(epoch_reward=0))  # nothing minted: the supply is fixed
    m.ok(P0, "register", name="p0", tier="community", offers=offer(100, 10), stake=stake)
    return m


def _by_the_oracles(stake: int, **task: int) -> MarketChain:
    """Completed, but the oracles find it was not, and too slow: R = 2."""
    m = _chain(stake)
    m.ok(R0, "submit", **task_args(deadline_s=600, **task))
    m.ok(P0, "complete", task=1, units_used=10, output=[])
    report = dict(completed=False, units=0, uptime_bps=9_900, latency_ms=900)
    m.block(*[m.tx(o, "attest", task=1, **report) for o in ORACLES[:2]])
    assert m.task(1)["outcome"]["violations"] == 2
    while m.task(1)["state"] != "settled":
        m.tick()
    return m


def _by_the_deadline(stake: int, **task: int) -> MarketChain:
    """Assigned, and never completed before its deadline: R = 2."""
    m = _chain(stake)
    m.ok(R0, "submit", **task_args(deadline_s=3, **task))
    assert m.task(1)["state"] == "assigned"
    while m.task(1)["state"] != "refunded":
        m.tick()
    return m


def _books(m: MarketChain) -> dict[str, object]:
    reader = m.app.state()
    totals = state.get_totals(reader)
    # Balances with the fees each paid given back: the two paths send different
    # transactions (the oracles attest in one), so they pay different fees.
    balances = {k.address: m.balance(k) + m.fees(k) for k in EVERYONE}
    supply = m.query("/token/supply")["supply"]
    fees = sum(m.fees(k) for k in EVERYONE)
    assert fees > 0
    # balances + escrow + stakes = supply = genesis - fees (nothing minted, fees burnt)
    assert sum(balances.values()) - fees + totals.escrow + totals.stake == supply
    assert supply + fees == GENESIS_SUPPLY
    supply += fees
    provider = m.query("/market/account", P0.address)
    requester = m.query("/market/account", R0.address)
    return {
        "balances": balances,
        "supply": supply,
        "totals": totals,
        "stake": m.query("/market/provider", P0.address)["stake"],
        "reputation": m.query("/market/provider", P0.address)["reputation"],
        "slashed": m.task(1)["payout"]["slashed"],
        "to the requester": m.task(1)["payout"]["requester"],
        "provider slashed": provider["provider"]["slashed"],
        "provider penalties": provider["provider"]["penalties"],
        "profit": provider["profit"],
        "requester paid": requester["requester"].get("paid", 0),
        "requester refunded": requester["requester"]["refunded"],
        "utility": requester["utility"],
    }


@pytest.mark.parametrize(
    ("stake", "task", "slashed"),
    [
        (5_000, dict(penalty=50), 100),  # λ·R = 100, all of it from the stake
        (1_000, dict(max_price=100, penalty=1_000), 1_000),  # λ·R = 2,000: the whole stake
    ],
    ids=["the stake covers the penalty", "the penalty takes the whole stake"],
)
def test_a_violation_slashes_the_same_by_settlement_and_by_expiry(stake, task, slashed):
    settled, expired = _by_the_oracles(stake, **task), _by_the_deadline(stake, **task)
    assert _books(settled) == _books(expired)
    books = _books(settled)
    deposit = 10 * task.get("max_price", 20)
    assert books["slashed"] == slashed and books["stake"] == stake - slashed
    assert books["to the requester"] == deposit + slashed
    assert books["balances"][R0.address] == BALANCE + slashed  # the deposit back, and more
    assert books["balances"][P0.address] == BALANCE - stake
    assert books["provider penalties"] == 2 * task["penalty"]
    assert books["profit"] == -2 * task["penalty"]  # Π_p: 0 - λ·R
    # The requester paid -slashed, a price below zero: U_r counts the compensation.
    assert books["requester paid"] == -slashed and books["utility"] == slashed
