"""The market's lifecycle, rule by rule, on a one-validator chain."""

import pytest

from cloudchain.chaincode.codes import Code
from cloudchain.chaincode.market.queries import jain_bps
from cloudchain.chaincode.market.tasks import MAX_DEADLINE_S
from cloudchain.chaincode.module import MAX_AMOUNT
from cloudchain.ledger import Event
from tests.helpers.market import (
    AUTHORITY,
    BALANCE,
    GPU,
    ORACLES,
    PROVIDERS,
    REQUESTERS,
    MarketChain,
    SnapshotApplication,
    changed_beyond_fee_and_nonce,
    market_genesis,
    offer,
    task_args,
)

P0, P1, P2 = PROVIDERS
R0, R1, R2 = REQUESTERS
O0, O1, O2 = ORACLES


# What a requester keeps back from a deposit of nearly all it holds, for the fees of its
# transactions that follow (a submit pays about 1,500 with the default schedule).
FEES_RESERVE = 100_000


def supply(m):
    return m.query("/token/supply")["supply"]


def held(m):
    """Balances of everyone, escrow and stakes: the supply, always."""
    from cloudchain.chaincode.market.state import get_totals

    totals = get_totals(m.app.state())
    balances = sum(
        m.query("/token/balance", k.address)["balance"] for k in (*PROVIDERS, *REQUESTERS, *ORACLES)
    )
    return balances, totals


@pytest.fixture
def m():
    return MarketChain()


def registered(m, *providers, price=10, units=100, stake=5_000):
    for provider in providers:
        m.ok(
            provider,
            "register",
            name=f"node {provider.address[:6]}",
            tier="community",
            offers=offer(units, price),
            stake=stake,
        )


def attest_all(m, task_id, completed=True, units=10, uptime=9_900, latency=100, oracles=ORACLES):
    return [
        m.run(
            o,
            "attest",
            task=task_id,
            completed=completed,
            units=units,
            uptime_bps=uptime,
            latency_ms=latency,
        )
        for o in oracles
    ]


def test_a_task_runs_from_submission_to_settlement(m):
    registered(m, P0)
    assert m.balance(P0) == BALANCE - 5_000 - m.fees(P0)  # every fee is burnt
    m.ok(R0, "submit", **task_args())
    task = m.task(1)
    assert task["state"] == "assigned" and task["provider"] == P0.address and task["price"] == 10
    assert m.balance(R0) == BALANCE - 200 - m.fees(R0)  # max_price 20 x 10 units in escrow
    m.ok(P0, "start", task=1)
    m.ok(P0, "complete", task=1, units_used=8, output=[])
    assert m.task(1)["state"] == "completed"
    results = attest_all(m, 1, units=8, oracles=ORACLES[:2])  # 2 of 3 is the quorum
    assert [r.code for r in results] == [Code.OK, Code.OK]
    task = m.task(1)
    assert task["state"] == "verified" and task["outcome"]["violations"] == 0
    late = attest_all(m, 1, units=8, oracles=ORACLES[2:])[0]
    assert late.code == Code.OK  # scored for honesty, but the outcome stands
    assert m.task(1)["outcome"] == task["outcome"] and len(m.task(1)["attestations"]) == 3
    assert m.query("/market/account", O2.address)["oracle"] == {"attestations": 1, "honest": 1}
    m.tick(2)  # the dispute window closes
    task = m.task(1)
    assert task["state"] == "settled"
    assert task["payout"] == {
        "provider": 80,
        "requester": 120,
        "slashed": 0,
        "at": task["payout"]["at"],
    }
    assert m.balance(R0) == BALANCE - 80 - m.fees(R0)
    assert m.balance(P0) == BALANCE - 5_000 - m.fees(P0) + 80 + m.query(
        "/market/account", P0.address
    )["provider"].get("rewarded", 0)
    account = m.query("/market/account", P0.address)
    assert account["profit"] == 80 and account["provider"]["units"] == 8
    assert m.query("/market/account", R0.address)["utility"] == 20 * 8 - 80
    assert [s for s, _ in task["history"]] == [
        "open",
        "assigned",
        "running",
        "completed",
        "verified",
        "settled",
    ]


def test_sla_violations_cost_the_payment_then_the_stake(m):
    registered(m, P0, stake=1_000)
    m.ok(R0, "submit", **task_args(penalty=100))
    m.ok(P0, "complete", task=1, units_used=10, output=[])
    attest_all(m, 1, uptime=5_000, latency=900)  # two terms broken: R = 2, penalty 200
    m.tick(2)
    task = m.task(1)
    assert task["outcome"]["violations"] == 2 and task["outcome"]["penalty"] == 200
    # payment 10 x 10 = 100 < penalty 200: nothing paid, 100 taken from the stake
    assert task["payout"]["provider"] == 0 and task["payout"]["slashed"] == 100
    assert task["payout"]["requester"] == 200 + 100
    provider = m.query("/market/provider", P0.address)
    assert provider["stake"] == 900 and provider["reputation"] == 5_000 - 2 * 500
    assert m.query("/market/account", P0.address)["profit"] == 100 - 200


def test_an_expired_task_refunds_the_requester_and_penalises_the_provider(m):
    registered(m, P0)
    m.ok(R0, "submit", **task_args(deadline_s=3))
    assert m.task(1)["state"] == "assigned"
    m.tick(3)
    task = m.task(1)
    assert task["state"] == "refunded" and [s for s, _ in task["history"]][-2:] == [
        "expired",
        "refunded",
    ]
    assert task["payout"]["slashed"] == 2 * 50  # not completed, and late
    assert m.balance(R0) == BALANCE + 100 - m.fees(R0)
    late = m.run(P0, "complete", task=1, units_used=1, output=[])
    assert late.code == Code.INVALID_STATE
    assert m.query("/market/provider", P0.address)["in_flight"] == {}


def test_an_open_task_nobody_can_take_expires_without_penalty_and_can_be_cancelled(m):
    registered(m, P0, price=30)  # dearer than the task's max_price
    m.ok(R0, "submit", **task_args(deadline_s=2))
    m.ok(R0, "submit", **task_args())
    assert m.task(1)["state"] == "open"
    assert m.run(R1, "cancel", task=2).code == Code.UNAUTHORIZED
    m.ok(R0, "cancel", task=2)
    m.tick(1)
    assert m.task(1)["state"] == "refunded" and m.task(1)["payout"]["slashed"] == 0
    assert m.balance(R0) == BALANCE - m.fees(R0)


def test_no_quorum_in_time_refunds_unverified(m):
    registered(m, P0)
    m.ok(R0, "submit", **task_args())
    m.ok(P0, "complete", task=1, units_used=10, output=[])
    attest_all(m, 1, oracles=ORACLES[:1])
    m.tick(9)
    assert m.task(1)["state"] == "refunded"
    assert m.balance(R0) == BALANCE - m.fees(R0)


def test_a_minority_of_wrong_reports_does_not_move_the_outcome(m):
    registered(m, P0)
    m.ok(R0, "submit", **task_args())
    m.ok(P0, "complete", task=1, units_used=10, output=[])
    m.ok(O0, "attest", task=1, completed=False, units=0, uptime_bps=0, latency_ms=10_000)
    m.ok(O1, "attest", task=1, completed=True, units=10, uptime_bps=9_900, latency_ms=100)
    assert m.task(1)["state"] == "completed"  # one for, one against: no quorum agrees yet
    m.ok(O2, "attest", task=1, completed=True, units=9, uptime_bps=9_800, latency_ms=120)
    outcome = m.task(1)["outcome"]
    assert outcome["completed"] is True and outcome["violations"] == 0
    # of the two that agree: the lower units, the higher uptime, the lower latency
    assert (outcome["units"], outcome["uptime_bps"], outcome["latency_ms"]) == (9, 9_900, 100)
    honest = [m.query("/market/account", o.address)["oracle"]["honest"] for o in ORACLES]
    assert honest == [0, 1, 1]


def test_disputes_are_voted_and_final(m):
    registered(m, P0)
    m.ok(R0, "submit", **task_args(penalty=20))
    m.ok(P0, "complete", task=1, units_used=10, output=[])
    attest_all(m, 1, uptime=5_000, oracles=ORACLES[:2])  # uptime broken: R = 1
    m.ok(P0, "dispute", task=1, reason="the uptime probe was wrong")
    assert m.run(R1, "dispute", task=1, reason="x").code == Code.UNAUTHORIZED
    assert m.task(1)["state"] == "disputed"
    assert m.run(R0, "vote", task=1, uphold=False).code == Code.UNAUTHORIZED
    m.ok(O0, "vote", task=1, uphold=False)
    assert m.run(O0, "vote", task=1, uphold=False).code == Code.ALREADY_EXISTS
    m.ok(O1, "vote", task=1, uphold=False)
    task = m.task(1)
    assert task["state"] == "resolved" and task["dispute"]["upheld"] is False
    assert task["payout"]["provider"] == 100 and task["payout"]["requester"] == 100
    assert m.run(R0, "dispute", task=1, reason="again").code == Code.INVALID_STATE


def test_a_dispute_without_quorum_upholds_the_outcome(m):
    registered(m, P0)
    m.ok(R0, "submit", **task_args())
    m.ok(P0, "complete", task=1, units_used=10, output=[])
    attest_all(m, 1, oracles=ORACLES[:2])
    m.ok(R0, "dispute", task=1, reason="too slow")
    m.tick(10)
    task = m.task(1)
    assert task["state"] == "resolved" and task["dispute"]["upheld"] is True
    assert task["payout"]["provider"] == 100


def test_assignment_prefers_price_then_reputation_and_shares_across_requesters(m):
    registered(m, P0, price=12)
    registered(m, P1, price=10, units=20)
    # R0 floods the market with four tasks before R1 submits one, in the same block
    txs = [m.tx(R0, "submit", **task_args()) for _ in range(4)] + [
        m.tx(R1, "submit", **task_args())
    ]
    m.block(*txs)
    tasks = [m.task(i) for i in range(1, 6)]
    # turns: R0, R1 (least served first, then address), then R0...; the cheaper P1 first
    # until its 20 units are in flight, then P0
    assert all(t["state"] == "assigned" for t in tasks)
    by_provider = {t["id"]: t["provider"] for t in tasks}
    assert sum(p == P1.address for p in by_provider.values()) == 2
    assert by_provider[5] == P1.address  # R1's one task got the cheap provider in turn


def test_assignment_breaks_price_ties_by_reputation_and_caps_each_provider_per_block():
    m = MarketChain(market_genesis(max_assignments_per_provider=2))
    registered(m, P0, P1, P2)  # the same price and units: reputation decides
    m.block(
        m.tx(O0, "attest_provider", provider=P1.address, uptime_bps=0, latency_ms=1),
        m.tx(O0, "attest_provider", provider=P2.address, uptime_bps=10_000, latency_ms=1),
    )
    reputation = {p: m.query("/market/provider", p.address)["reputation"] for p in PROVIDERS}
    assert reputation[P2] > reputation[P0] > reputation[P1]
    m.block(*[m.tx(R0, "submit", **task_args()) for _ in range(7)])
    assert [m.task(i)["provider"] for i in range(1, 8)] == [
        P2.address,
        P2.address,
        P0.address,
        P0.address,
        P1.address,
        P1.address,
        "",
    ]
    assert m.task(7)["state"] == "open"  # every provider took its two this block
    m.tick()
    assert m.task(7)["provider"] == P2.address  # the cap is per block; P2 has the units


def test_a_named_provider_is_waited_for(m):
    registered(m, P0, price=10)
    registered(m, P1, price=15)
    m.ok(R0, "submit", **task_args(provider=P1.address))
    assert m.task(1)["provider"] == P1.address and m.task(1)["price"] == 15
    assert m.run(R0, "submit", **task_args(provider=R1.address)).code == Code.NOT_FOUND


def test_refusals_say_why_and_change_nothing():
    m = MarketChain(application=SnapshotApplication)
    registered(m, P0)
    m.ok(R0, "submit", **task_args())
    m.ok(P0, "complete", task=1, units_used=10, output=[])
    report = dict(completed=True, units=10, uptime_bps=9_900, latency_ms=100)
    cases = [
        (
            P0,
            "register",
            dict(name="x", tier="community", offers=offer(), stake=5_000),
            Code.ALREADY_EXISTS,
        ),
        (
            P1,
            "register",
            dict(name="x", tier="community", offers=offer(), stake=10),
            Code.OUT_OF_RANGE,
        ),
        (R0, "submit", task_args(max_price=BALANCE), Code.INSUFFICIENT_FUNDS),
        (R0, "submit", task_args(penalty=10**6), Code.OUT_OF_RANGE),
        (R0, "start", dict(task=99), Code.NOT_FOUND),
        (P0, "start", dict(task=1), Code.INVALID_STATE),
        (R0, "attest", dict(task=1, **report), Code.UNAUTHORIZED),
        (R0, "add_oracle", dict(oracle=R1.address), Code.UNAUTHORIZED),
        (P0, "update", dict(offers=offer(units=0 + 1)), Code.OK),
    ]
    for sender, method, args, code in cases:
        result = m.run(sender, method, **args)
        tx, delivered, before, after = m.app.snapshots[-1]
        assert delivered == result and tx.method == method
        assert result.code == code, (method, result.log)
        changed = changed_beyond_fee_and_nonce(tx, before, after)
        if code == Code.OK:
            assert changed
        else:
            assert result.log, method
            fee = Event("fee", (("amount", str(tx.fee)), ("payer", tx.sender_address)))
            assert result.events == (fee,)  # the fee is paid (burnt) all the same
            assert changed == {}, f"refused {method} changed state beyond its fee and nonce"


def test_leaving_returns_the_stake_only_once_no_task_can_still_cost_a_penalty(m):
    registered(m, P0)
    m.ok(R0, "submit", **task_args(deadline_s=30, penalty=150))
    m.ok(P0, "leave")
    assert m.run(P0, "update", offers=offer()).code == Code.INVALID_STATE
    m.tick(4)
    assert m.query("/market/provider", P0.address)["status"] == "unbonding"  # task in flight
    m.ok(P0, "complete", task=1, units_used=10, output=[])
    m.tick(1)  # completed, not yet attested: its outcome may still cost the stake
    assert m.query("/market/provider", P0.address)["status"] == "unbonding"
    attest_all(m, 1, uptime=5_000, latency=900, oracles=ORACLES[:2])  # R = 2: penalty 300
    m.tick(2)
    assert m.task(1)["payout"]["slashed"] == 200  # beyond the payment of 100
    provider = m.query("/market/provider", P0.address)
    assert provider["status"] == "left" and provider["stake"] == 0
    assert m.balance(P0) == BALANCE - 200 - m.fees(P0)  # the stake back, less the slashed
    assert m.query("/market/prices")["classes"][0]["capacity"] == 0


def test_rewards_are_minted_per_epoch_for_verified_work_and_honest_oracles(m):
    registered(m, P0, units=10)  # room for one task: the second goes to P1
    registered(m, P1, price=11)
    start_supply, start_fees = supply(m), sum(m.fees_paid.values())
    m.block(m.tx(R0, "submit", **task_args()), m.tx(R1, "submit", **task_args()))
    by_address = {k.address: k for k in PROVIDERS}
    first, second = (by_address[m.task(i)["provider"]] for i in (1, 2))
    assert {first, second} == {P0, P1}
    m.block(
        m.tx(first, "complete", task=1, units_used=10, output=[]),
        m.tx(second, "complete", task=2, units_used=5, output=[]),
    )
    attest_all(m, 1, units=10)
    m.block(
        m.tx(O2, "attest", task=2, completed=False, units=0, uptime_bps=0, latency_ms=0),
        *[
            m.tx(o, "attest", task=2, completed=True, units=5, uptime_bps=9_900, latency_ms=100)
            for o in (O0, O1)
        ],
    )
    while m.height % 5:
        m.tick()
    rewards = {
        e.attributes[1][1]: int(e.attributes[3][1])
        for e in m.block_events
        if e.type == "market_reward"
    }
    assert rewards[first.address] == 9_000 * 10 // 15
    assert rewards[second.address] == 9_000 * 5 // 15
    burnt = sum(m.fees_paid.values()) - start_fees
    assert sum(rewards.values()) - burnt == supply(m) - start_supply
    dissenter = m.query("/market/account", O2.address)["oracle"]
    # its late report on task 1 agreed with the outcome, its report on task 2 did not
    assert dissenter == {"attestations": 2, "honest": 1, "rewarded": 200}
    assert [rewards.get(o.address, 0) for o in ORACLES] == [400, 400, 200]


def test_reference_prices_step_down_below_target_utilisation_and_never_below_one(m):
    registered(m, P0, units=10, price=100)
    cheap = {"t4-16gb": {"gpu": "T4", "gpus": 1, "memory_gb": 16, "units": 10, "price": 1}}
    m.ok(P1, "register", name="cheap", tier="community", offers=cheap, stake=5_000)
    while m.height % 5:  # nothing in flight all epoch: utilisation 0, below the 70% target
        m.tick()
    prices = {c["resource_class"]: c for c in m.query("/market/prices")["classes"]}
    assert prices[GPU]["price"] == 95 and prices[GPU]["utilisation_bps"] == 0
    assert prices["t4-16gb"]["price"] == 1  # one unit is the floor
    for _ in range(5):
        m.tick()
    prices = {c["resource_class"]: c for c in m.query("/market/prices")["classes"]}
    assert prices[GPU]["price"] == 91  # 95 - 5% of 95 (rounded down to 4)
    assert prices["t4-16gb"]["price"] == 1


def test_reference_prices_move_with_utilisation_by_a_bounded_step(m):
    registered(m, P0, units=10, price=100)
    assert m.query("/market/prices")["classes"][0]["price"] == 100
    m.ok(R0, "submit", **task_args(units=10, max_price=100, deadline_s=300))  # all in flight
    while m.height % 5:
        m.tick()
    price = m.query("/market/prices")["classes"][0]
    assert price["price"] == 105 and price["utilisation_bps"] > 7_000
    for _ in range(5):
        m.tick()
    assert m.query("/market/prices")["classes"][0]["price"] == 110  # 105 + 5% (rounded down)


def test_statistics_and_fairness():
    assert jain_bps([5, 5, 5]) == 10_000 and jain_bps([9, 0, 0]) == 3_333
    assert jain_bps([]) == 10_000
    m = MarketChain()
    registered(m, P0)
    m.ok(R0, "submit", **task_args())
    m.ok(P0, "complete", task=1, units_used=10, output=[])
    attest_all(m, 1)
    m.tick(2)
    stats = m.query("/market/stats")
    assert stats["tasks_settled"] == 1 and stats["sla_compliance_bps"] == 10_000
    assert stats["providers"][0]["earned"] == 100
    assert stats["fairness_requesters_bps"] == 10_000
    assert m.query("/market/tasks", f"requester={R0.address}")["tasks"][0]["id"] == 1
    assert m.query("/market/tasks", "state=open")["tasks"] == []
    assert m.app.query("/market/tasks", b"colour=red").code == Code.INVALID_QUERY
    assert GPU in m.query("/market/stats")["utilisation_bps"]


def test_end_of_block_work_is_bounded_and_the_rest_waits_its_turn():
    m = MarketChain(market_genesis(max_transitions_per_block=2))
    m.block(*[m.tx(R0, "submit", **task_args(deadline_s=2)) for _ in range(5)])
    m.tick(1)
    refunded = []
    for _ in range(3):
        m.tick()
        refunded.append(sum(m.task(i)["state"] == "refunded" for i in range(1, 6)))
    assert refunded == [2, 4, 5]  # earliest due first, two a block
    assert m.balance(R0) == BALANCE - m.fees(R0)


def test_rewards_never_take_the_supply_past_its_maximum(m):
    # Found by test_market_properties: with the supply within an epoch reward of
    # MAX_AMOUNT, minting the reward failed and took the market's whole end-of-block
    # work with it (deadlines, settlement, assignment) at every epoch's last block.
    registered(m, P0)
    m.ok(R0, "submit", **task_args())
    m.ok(P0, "complete", task=1, units_used=10, output=[])
    attest_all(m, 1)
    m.ok(AUTHORITY, "token.mint", to=R2.address, amount=MAX_AMOUNT - supply(m) - 100)
    while m.height % 5:
        m.tick()
    assert [e for e in m.block_events if e.type == "end_block_error"] == []
    assert m.task(1)["state"] == "settled"
    assert MAX_AMOUNT - 100 < supply(m) <= MAX_AMOUNT  # rewards minted, as far as they fit


def test_statistics_of_a_rich_account_never_overflow_and_stall_the_market(m):
    # Found by test_market_properties: a requester's cumulative statistics (refunded,
    # paid...) outgrew the 64-bit range state can hold after three refunds of a deposit
    # near the maximum supply; the third cancel failed as an internal error, and the
    # task's expiry then failed the market's end-of-block work at every block after.
    m.ok(AUTHORITY, "token.mint", to=R0.address, amount=MAX_AMOUNT - supply(m))
    deposit = m.balance(R0) - FEES_RESERVE
    for task_id in (1, 2, 3):
        m.ok(R0, "submit", **task_args(units=1, max_price=deposit, penalty=0))
        m.ok(R0, "cancel", task=task_id)
    m.ok(R0, "submit", **task_args(units=1, max_price=deposit, penalty=0, deadline_s=2))
    registered(m, P0)
    m.ok(R1, "submit", **task_args())
    m.tick(2)
    assert [e for e in m.block_events if e.type == "end_block_error"] == []
    assert m.task(4)["state"] == "refunded" and m.task(5)["state"] == "assigned"
    assert m.query("/market/account", R0.address)["requester"]["refunded"] == MAX_AMOUNT


def test_a_penalty_beyond_the_maximum_amount_is_recorded_as_the_maximum(m):
    # Found while writing test_market_properties (too rare for it to hit): penalty x 3
    # violations outgrew the 64-bit range, so the attestation that decided such an
    # outcome, or the vote that overturned one, failed as an internal error.
    m.ok(AUTHORITY, "token.mint", to=R0.address, amount=MAX_AMOUNT - supply(m))
    registered(m, P0)
    deposit, fees_before = m.balance(R0) - FEES_RESERVE, m.fees(R0)
    m.ok(R0, "submit", **task_args(units=1, max_price=deposit, penalty=deposit))
    m.ok(P0, "complete", task=1, units_used=1, output=[])
    results = attest_all(
        m, 1, completed=False, units=0, uptime=0, latency=10_000, oracles=ORACLES[:2]
    )
    assert [r.code for r in results] == [Code.OK, Code.OK]
    outcome = m.task(1)["outcome"]
    assert outcome["violations"] == 3 and outcome["penalty"] == MAX_AMOUNT
    m.ok(R0, "dispute", task=1, reason="the provider owes more")
    assert [m.run(o, "vote", task=1, uphold=False).code for o in ORACLES[:2]] == [Code.OK] * 2
    task = m.task(1)
    assert task["state"] == "resolved" and task["payout"]["slashed"] == 5_000
    # The deposit back, and the provider's stake, less the fees paid meanwhile.
    assert m.balance(R0) == deposit + FEES_RESERVE + 5_000 - (m.fees(R0) - fees_before)


# --- found by an audit --------------------------------------------------------------------


def test_tasks_of_a_class_nobody_offers_do_not_hold_back_the_others():
    # The audit's attack: only the oldest max_open_tasks_scanned (256) open tasks were
    # looked at, so 256 one-token tasks that nobody could take starved every task after
    # them until their deadline, 400 days on.
    m = MarketChain()
    registered(m, P0)
    junk = task_args(
        resource_class="nobody", units=1, max_price=1, penalty=0, deadline_s=MAX_DEADLINE_S
    )
    for _ in range(8):
        m.block(*[m.tx(R0, "submit", **junk) for _ in range(32)])
    m.ok(R1, "submit", **task_args())
    assert m.task(257)["state"] == "assigned"


@pytest.mark.parametrize(
    "unassignable", ["price below every offer", "named provider busy", "more units than anyone has"]
)
def test_tasks_that_cannot_be_assigned_are_passed_over_in_turn(unassignable):
    m = MarketChain(market_genesis(max_open_tasks_scanned=4))
    registered(m, P0, P1)  # 100 units each, at 10
    m.ok(R2, "submit", **task_args(units=100, provider=P1.address, deadline_s=600))
    assert m.task(1)["provider"] == P1.address  # P1 is busy; P0 has room
    junk = {
        "price below every offer": task_args(max_price=5),
        "named provider busy": task_args(provider=P1.address),
        "more units than anyone has": task_args(units=150),
    }[unassignable]
    m.block(*[m.tx(R0, "submit", **junk) for _ in range(12)])  # tasks 2 to 13
    m.ok(R1, "submit", **task_args())  # task 14, behind twelve that P0 cannot take
    for _ in range(12 // 4):  # four tasks read a block: it comes to task 14 in time
        if m.task(14)["state"] == "assigned":
            break
        m.tick()
    assert m.task(14)["provider"] == P0.address
    assert all(m.task(i)["state"] == "open" for i in range(2, 14))


def test_waiting_tasks_keep_their_order_while_the_class_has_no_room():
    m = MarketChain(market_genesis(max_open_tasks_scanned=4))
    registered(m, P0, units=20)  # room for two tasks at a time
    m.block(*[m.tx(R0, "submit", **task_args()) for _ in range(8)])
    assert [m.task(i)["state"] for i in range(1, 4)] == ["assigned", "assigned", "open"]
    m.tick(3)  # no room: nothing is read, and the oldest waiting task stays first
    m.ok(P0, "complete", task=1, units_used=10, output=[])
    assert m.task(3)["state"] == "assigned"
    m.ok(P0, "complete", task=2, units_used=10, output=[])
    assert m.task(4)["state"] == "assigned" and m.task(5)["state"] == "open"


def test_the_queue_resumes_exactly_where_it_stopped():
    from cloudchain.chaincode.context import Overlay
    from cloudchain.chaincode.market import state

    m = MarketChain()
    kv = Overlay(m.app.state())
    ids = [3, 9, 10, 11, 19, 99, 100, 101, 250, 1_000, 1_234, 5_000]
    for task_id in ids:
        state.set_open(kv, GPU, task_id, True)
    kv.set_value(state.NEXT_TASK, 5_001)
    for after in (0, 2, 3, 10, 98, 100, 1_233, 4_999, 5_000):
        later = [i for i in ids if i > after]
        expected = ids if not after else later + [i for i in ids if i <= after]
        assert list(state.iterate_queue(kv, GPU, after)) == expected, after


def test_a_removed_oracles_attestation_no_longer_counts():
    registered(m := MarketChain(), P0)
    m.ok(R0, "submit", **task_args())
    m.ok(P0, "complete", task=1, units_used=10, output=[])
    failed = dict(completed=False, units=0, uptime_bps=0, latency_ms=10**6)
    m.ok(O0, "attest", task=1, **failed)
    m.ok(AUTHORITY, "remove_oracle", oracle=O0.address)
    assert m.query("/market/oracles")["quorum"] == 2
    m.ok(O1, "attest", task=1, **failed)
    assert m.task(1)["state"] == "completed"  # one of the two oracles: no quorum
    m.ok(O2, "attest", task=1, completed=True, units=10, uptime_bps=9_900, latency_ms=100)
    assert m.task(1)["state"] == "completed"  # one each way
    assert m.run(O0, "attest", task=1, **failed).code == Code.UNAUTHORIZED
    m.tick(10)
    assert m.task(1)["state"] == "refunded"  # unverified: nobody was paid or penalised
    assert m.query("/market/account", O0.address)["oracle"] == {}


def test_a_removed_oracle_is_not_scored_and_a_quorum_of_current_ones_decides():
    registered(m := MarketChain(), P0)
    m.ok(R0, "submit", **task_args())
    m.ok(P0, "complete", task=1, units_used=10, output=[])
    m.ok(O0, "attest", task=1, completed=False, units=0, uptime_bps=0, latency_ms=10**6)
    m.ok(AUTHORITY, "remove_oracle", oracle=O0.address)
    attest_all(m, 1, oracles=(O1, O2))
    task = m.task(1)
    assert task["state"] == "verified" and task["outcome"]["completed"] is True
    assert sorted(task["attestations"]) == sorted(o.address for o in ORACLES)  # on record
    assert m.query("/market/account", O0.address)["oracle"] == {}  # but not scored
    assert m.query("/market/account", O1.address)["oracle"] == {"attestations": 1, "honest": 1}


def test_a_removed_oracles_dispute_vote_no_longer_counts():
    registered(m := MarketChain(), P0)
    m.ok(R0, "submit", **task_args(penalty=20))
    m.ok(P0, "complete", task=1, units_used=10, output=[])
    attest_all(m, 1, uptime=5_000, oracles=ORACLES[:2])
    m.ok(P0, "dispute", task=1, reason="the uptime probe was wrong")
    m.ok(O0, "vote", task=1, uphold=False)
    m.ok(AUTHORITY, "remove_oracle", oracle=O0.address)
    m.ok(O1, "vote", task=1, uphold=False)
    assert m.task(1)["state"] == "disputed"  # O1 alone of two: no quorum yet
    m.ok(O2, "vote", task=1, uphold=False)
    task = m.task(1)
    assert task["state"] == "resolved" and task["dispute"]["upheld"] is False


def test_an_oracle_may_not_judge_its_own_task():
    m = MarketChain(application=SnapshotApplication)
    m.ok(O0, "register", name="judge", tier="community", offers=offer(), stake=5_000)
    m.ok(AUTHORITY, "add_oracle", oracle=R0.address)
    m.ok(R0, "submit", **task_args(penalty=20))
    m.ok(O0, "complete", task=1, units_used=10, output=[])
    report = dict(completed=True, units=10, uptime_bps=10_000, latency_ms=1)
    for oracle, role in ((O0, "provider"), (R0, "requester")):
        result = m.run(oracle, "attest", task=1, **report)
        assert result.code == Code.UNAUTHORIZED and f"task 1's {role}" in result.log
    result = m.run(O0, "attest_provider", provider=O0.address, uptime_bps=10_000, latency_ms=1)
    assert result.code == Code.UNAUTHORIZED and "its own service" in result.log
    assert m.task(1)["attestations"] == {}
    attest_all(m, 1, uptime=5_000, oracles=(O1, O2))  # two of the four, but all that may
    assert m.task(1)["state"] == "verified"  # judge it: the quorum is of those
    m.ok(R0, "dispute", task=1, reason="it was down")
    for oracle in (O0, R0):
        result = m.run(oracle, "vote", task=1, uphold=False)
        assert result.code == Code.UNAUTHORIZED and "its own task" in result.log
        tx, _, before, after = m.app.snapshots[-1]
        assert changed_beyond_fee_and_nonce(tx, before, after) == {}
    assert m.task(1)["dispute"]["votes"] == {}
    m.block(m.tx(O1, "vote", task=1, uphold=False), m.tx(O2, "vote", task=1, uphold=False))
    assert m.task(1)["state"] == "resolved" and m.task(1)["dispute"]["upheld"] is False
