"""The privacy budget the chain enforces (market submit and assignment with the access
module): a task reading a sealed dataset goes only to a grantee, a DP task's ε is spent
at assignment, and every way a task can fail the budget is refused."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cloudchain.chaincode.codes import Code
from cloudchain.privacy.wrapping import public_bytes
from tests.helpers.market import PROVIDERS, REQUESTERS, MarketChain, offer, task_args

P0, P1, _ = PROVIDERS
OWNER, R1, _ = REQUESTERS
CIPHERTEXT = "Qm" + "c" * 44
MANIFEST = "Qm" + "a" * 44
BUDGET = 3_000_000  # ε = 3
WRAPPED = bytes(80)  # the chain keeps it, and cannot open it


@pytest.fixture
def m():
    chain = MarketChain()
    for provider in (P0, P1):
        chain.ok(
            provider,
            "register",
            name="node",
            tier="community",
            offers=offer(100, 10),
            stake=5_000,
        )
        key = public_bytes(X25519PrivateKey.generate().public_key())
        chain.ok(provider, "access.publish_key", key=key)
    return chain


@pytest.fixture
def dataset(m):
    m.ok(
        OWNER,
        "access.add_dataset",
        cid=CIPHERTEXT,
        size=4_096,
        delta_e12=10_000_000,
        budget_micro_eps=BUDGET,
    )
    return 1


def grant(m, dataset, provider, task=0, until=0):
    until = until or (0 if task else m.height + 1_000)
    m.ok(
        OWNER,
        "access.grant",
        dataset=dataset,
        grantee=provider.address,
        task=task,
        until=until,
        wrapped_key=WRAPPED,
    )


def private_task(dataset, micro_eps, **overrides):
    return task_args(
        inputs=[MANIFEST, CIPHERTEXT], dataset=dataset, dp_micro_eps=micro_eps, **overrides
    )


def remaining(m, dataset):
    return m.query("/access/dataset", str(dataset))["remaining_micro_eps"]


def test_a_dp_task_goes_to_a_grantee_and_spends_its_epsilon_at_assignment(m, dataset):
    # equal in price, reputation and load, the lower address would win: grant the other
    grantee = max(P0, P1, key=lambda k: k.address)
    grant(m, dataset, grantee)
    result = m.ok(OWNER, "submit", **private_task(dataset, 1_250_000))
    task = m.task(1)
    assert task["state"] == "assigned" and task["provider"] == grantee.address
    assert task["dataset"] == dataset and task["dp_micro_eps"] == 1_250_000
    assert remaining(m, dataset) == BUDGET - 1_250_000
    spends = [dict(e.attributes) for e in m.block_events if e.type == "access_spend"]
    assert spends == [
        {"dataset": "1", "task": "1", "spent": "1250000", "remaining": str(BUDGET - 1_250_000)}
    ]
    assert result.code == Code.OK


def test_a_task_waits_open_until_a_provider_has_a_grant_for_it(m, dataset):
    m.ok(OWNER, "submit", **private_task(dataset, 1_000_000))
    m.tick(3)
    assert m.task(1)["state"] == "open" and remaining(m, dataset) == BUDGET
    grant(m, dataset, P0, task=1)  # a grant for this task alone
    task = m.task(1)
    assert task["state"] == "assigned" and task["provider"] == P0.address
    assert remaining(m, dataset) == BUDGET - 1_000_000


def test_a_task_naming_an_ungranted_provider_is_never_assigned_to_it(m, dataset):
    grant(m, dataset, P0)
    m.ok(OWNER, "submit", **private_task(dataset, 1_000_000, provider=P1.address))
    m.tick(3)
    assert m.task(1)["state"] == "open" and remaining(m, dataset) == BUDGET


def test_a_revoked_grant_no_longer_takes_tasks(m, dataset):
    grant(m, dataset, P0)
    m.ok(OWNER, "access.revoke", dataset=dataset, grantee=P0.address)
    m.ok(OWNER, "submit", **private_task(dataset, 1_000_000))
    assert m.task(1)["state"] == "open"


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        (dict(dp_micro_eps=0), Code.UNAUTHORIZED, "only a DP task"),
        (dict(dp_micro_eps=BUDGET + 1), Code.LIMIT_EXCEEDED, "3000000 of 3000000"),
        (dict(dataset=9), Code.NOT_FOUND, "no dataset 9"),
        (dict(inputs=[MANIFEST]), Code.OUT_OF_RANGE, "not among the task's inputs"),
        (dict(dataset=0), Code.OUT_OF_RANGE, "against a dataset"),
    ],
)
def test_a_task_the_dataset_cannot_take_is_refused_at_submit(m, dataset, args, code, said):
    before, fees = m.balance(OWNER), m.fees(OWNER)
    base = private_task(dataset, 1_000_000)
    result = m.run(OWNER, "submit", **{**base, **args})
    assert result.code == code and said in result.log, result.log
    assert m.balance(OWNER) == before - (m.fees(OWNER) - fees)  # nothing in escrow
    assert remaining(m, dataset) == BUDGET


def test_a_revoked_dataset_takes_no_task(m, dataset):
    m.ok(OWNER, "access.revoke", dataset=dataset, grantee="")
    result = m.run(OWNER, "submit", **private_task(dataset, 1_000_000))
    assert result.code == Code.INVALID_STATE and "revoked" in result.log


def test_a_task_past_what_is_left_at_assignment_is_refunded(m, dataset):
    """Two tasks each within the budget at submit, not both: the second assigned finds
    too little left and its deposit comes back at once."""
    grant(m, dataset, P0)
    first = m.tx(OWNER, "submit", **private_task(dataset, 2_000_000))
    second = m.tx(OWNER, "submit", **private_task(dataset, 2_000_000))
    before = m.balance(OWNER)
    codes = [r.code for r in m.block(first, second)]
    assert codes == [Code.OK, Code.OK]
    states = {m.task(1)["state"], m.task(2)["state"]}
    assert states == {"assigned", "refunded"}
    refunded = 1 if m.task(1)["state"] == "refunded" else 2
    assert m.task(refunded)["payout"]["requester"] == 200
    refunds = [dict(e.attributes) for e in m.block_events if e.type == "market_refund"]
    assert refunds[-1]["reason"] == "privacy_budget"
    assert remaining(m, dataset) == BUDGET - 2_000_000
    # one deposit still in escrow, the other back
    fees = first.fee + second.fee
    assert m.balance(OWNER) == before - fees - 200


def test_an_unbudgeted_dataset_takes_any_task_and_counts_dp_spending(m):
    m.ok(OWNER, "access.add_dataset", cid=CIPHERTEXT, size=10, delta_e12=1, budget_micro_eps=0)
    grant(m, 1, P0)
    m.ok(OWNER, "submit", **private_task(1, 0))
    m.ok(OWNER, "submit", **private_task(1, 5_000_000))
    assert m.task(1)["state"] == m.task(2)["state"] == "assigned"
    assert m.query("/access/dataset", "1")["spent_micro_eps"] == 5_000_000


def test_a_task_reading_no_dataset_is_stored_as_before(m):
    m.ok(OWNER, "submit", **task_args())
    task = m.task(1)
    assert "dataset" not in task and "dp_micro_eps" not in task
