"""The paper's eq. 2 and eq. 3, on worked examples computed by hand.

    Π_p = Σ_i (P_i·C_i - λ_i·R_i)        U_r = Σ_i (Q_i - P_i)

One provider, one requester, three tasks:

    i  P_i  C_i  λ_i  R_i   P_i·C_i  λ_i·R_i   term of Π_p
    1   10    8   50    0        80        0            80
    2   10   10  100    2       100      200          -100
    3   12    5   20    1        60       20            40
                                               Π_p =    20

Q_i = max_price_i x C_i x quality_i (quality: 100%, less 25% a violation), rounded
down; the price the requester paid, eq. 3's P_i, is the payment less the penalty (on
task 2 the penalty is more than the payment: 100 of the provider's stake goes to the
requester, a price of -100):

    i  max_price  quality  Q_i    price paid   Q_i - P_i
    1         20     100%  160            80          80
    2         20      50%  100          -100         200
    3         15      75%   56            40          16
                                            U_r =    296
"""

from __future__ import annotations

from cloudchain.chaincode.market.economics import (
    ProfitTerm,
    UtilityTerm,
    payment,
    penalty,
    provider_profit,
    quality_bps,
    quality_value,
    requester_utility,
)
from cloudchain.chaincode.module import MAX_AMOUNT
from tests.helpers.market import ORACLES, PROVIDERS, REQUESTERS, MarketChain, offer, task_args

P0, R0 = PROVIDERS[0], REQUESTERS[0]
# (P_i, C_i, λ_i, R_i) and the requester's max_price of each task of the table above
TASKS = [(10, 8, 50, 0, 20), (10, 10, 100, 2, 20), (12, 5, 20, 1, 15)]


def test_provider_profit_is_eq_2():
    terms = [ProfitTerm.of(p, c, lam, r) for p, c, lam, r, _ in TASKS]
    assert [(t.payment, t.penalty) for t in terms] == [(80, 0), (100, 200), (60, 20)]
    assert [provider_profit([t]) for t in terms] == [80, -100, 40]
    assert provider_profit(terms) == 20
    # The chain keeps Σ P_i·C_i and Σ λ_i·R_i: one term of the sums is the same profit.
    assert provider_profit([ProfitTerm(80 + 100 + 60, 0 + 200 + 20)]) == 20
    assert provider_profit([]) == 0


def test_requester_utility_is_eq_3():
    assert [quality_bps(r) for *_, r, _ in TASKS] == [10_000, 5_000, 7_500]
    quality = [quality_value(mp, c, quality_bps(r)) for _, c, _, r, mp in TASKS]
    assert quality == [160, 100, 56]  # 15 x 5 x 0.75 = 56.25, rounded down
    paid = [payment(p, c) - penalty(lam, r) for p, c, lam, r, _ in TASKS]
    assert paid == [80, -100, 40]
    terms = [UtilityTerm(q, p) for q, p in zip(quality, paid, strict=True)]
    assert [requester_utility([t]) for t in terms] == [80, 200, 16]
    assert requester_utility(terms) == 296
    assert requester_utility([UtilityTerm(sum(quality), sum(paid))]) == 296


def test_a_task_s_terms_split_its_money_as_the_worked_example_does():
    # The provider is paid its term of Π_p where positive, owes it from its stake where
    # negative; the requester's P_i is what the provider was paid, less what was slashed.
    profits = [ProfitTerm.of(p, c, lam, r) for p, c, lam, r, _ in TASKS]
    assert [(t.earned, t.owed) for t in profits] == [(80, 0), (0, 100), (40, 0)]
    slashed = [t.owed for t in profits]  # stakes large enough for every penalty
    utilities = [
        UtilityTerm.of(mp, c, r, t.earned, s)
        for (_, c, _, r, mp), t, s in zip(TASKS, profits, slashed, strict=True)
    ]
    assert utilities == [UtilityTerm(160, 80), UtilityTerm(100, -100), UtilityTerm(56, 40)]
    assert requester_utility(utilities) == 296
    # A stake of 30 where 100 is owed: the requester gets 30 of it, a price of -30.
    assert UtilityTerm.of(20, 10, 2, 0, 30) == UtilityTerm(100, -30)
    # A task refunded with a penalty: nothing delivered, Q_i = 0; P_i = -slashed.
    assert ProfitTerm.of(10, 0, 50, 2) == ProfitTerm(0, 100)
    assert UtilityTerm.of(20, 0, 2, 0, 100) == UtilityTerm(0, -100)


def test_a_penalty_is_at_most_an_amount_and_quality_never_below_zero():
    assert penalty(MAX_AMOUNT, 3) == MAX_AMOUNT
    assert quality_bps(3) == 2_500 and quality_bps(4) == 0 and quality_bps(5) == 0


def test_settlement_pays_each_term_and_the_account_query_answers_the_worked_example():
    m = MarketChain()
    m.ok(P0, "register", name="p0", tier="community", offers=offer(100, 10), stake=5_000)
    m.block(
        m.tx(R0, "submit", **task_args(max_price=20, units=8, penalty=50)),
        m.tx(R0, "submit", **task_args(max_price=20, units=10, penalty=100)),
    )
    m.ok(P0, "update", offers=offer(100, 12))  # task 3 is assigned at the new price
    m.ok(R0, "submit", **task_args(max_price=15, units=5, penalty=20))
    assert [m.task(i)["price"] for i in (1, 2, 3)] == [10, 10, 12]
    m.block(
        *[
            m.tx(P0, "complete", task=i, units_used=c, output=[])
            for i, c in ((1, 8), (2, 10), (3, 5))
        ]
    )
    reports = {  # (units, uptime, latency): R_1 = 0; R_2 = 2 (both terms); R_3 = 1 (uptime)
        1: (8, 9_900, 100),
        2: (10, 5_000, 900),
        3: (5, 5_000, 100),
    }
    m.block(
        *[
            m.tx(o, "attest", task=i, completed=True, units=u, uptime_bps=up, latency_ms=lat)
            for i, (u, up, lat) in reports.items()
            for o in ORACLES[:2]
        ]
    )
    m.tick(2)  # the dispute windows close: all three settle
    payouts = [m.task(i)["payout"] for i in (1, 2, 3)]
    assert [(p["provider"], p["slashed"]) for p in payouts] == [(80, 0), (0, 100), (40, 0)]
    assert [p["requester"] for p in payouts] == [160 - 80, 200 + 100, 75 - 40]
    provider = m.query("/market/account", P0.address)
    requester = m.query("/market/account", R0.address)
    assert provider["profit"] == 20 and requester["utility"] == 296
    # The books are the sums of the tasks' terms: Σ P_i·C_i, Σ λ_i·R_i and what was
    # earned for the provider; Σ Q_i and Σ P_i (80 - 100 + 40) for the requester.
    books = provider["provider"]
    assert (books["gross"], books["penalties"], books["earned"]) == (240, 220, 120)
    assert (requester["requester"]["worth"], requester["requester"]["paid"]) == (316, 20)
