"""The access module (chaincode/modules/access.py): datasets, grants, revocation,
rotation and the audit trail, with every refusal."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cloudchain import codec
from cloudchain.chaincode.codes import Code
from cloudchain.privacy.sealed import new_data_key
from cloudchain.privacy.wrapping import GrantContext, public_bytes, unwrap_key, wrap_key
from tests.helpers.chain import ACCOUNTS, make_chain, signed

OWNER, PROVIDER, STRANGER, OTHER = ACCOUNTS
CID = "Qm" + "a" * 44
NEW_CID = "Qm" + "b" * 44


def event(result, type_):
    (found,) = [dict(e.attributes) for e in result.events if e.type == type_]
    return found


class Access:
    """A solo chain and a nonce per account, to send access transactions."""

    def __init__(self):
        self.chain = make_chain()
        self.nonces = {}

    def send(self, sender, method, **args):
        nonce = self.nonces.get(sender.address, 0)
        self.nonces[sender.address] = nonce + 1
        tx = signed(sender, nonce, "access", method, args)
        produced = self.chain.produce_block([tx.to_bytes()])
        (result,) = produced.result.tx_results
        return result

    def check(self, sender, method, **args):
        """check_tx's answer: what the mempool says before any block."""
        tx = signed(sender, self.nonces.get(sender.address, 0), "access", method, args)
        return self.chain.app.check_tx(tx.to_bytes())

    def ok(self, sender, method, **args):
        result = self.send(sender, method, **args)
        assert result.code == Code.OK, result.log
        return result

    def query(self, path, data=b""):
        result = self.chain.app.query(path, data)
        assert result.code == Code.OK, result.log
        return codec.thaw(codec.decode(result.value))

    def query_code(self, path, data=b""):
        return self.chain.app.query(path, data).code

    @property
    def height(self):
        return self.chain.app.info().height


@pytest.fixture
def access():
    return Access()


@pytest.fixture
def dataset(access):
    access.ok(PROVIDER, "publish_key", key=public_bytes(PROVIDER_KEY.public_key()))
    result = access.ok(
        OWNER, "add_dataset", cid=CID, size=1_000, delta_e12=10_000_000, budget_micro_eps=8_000_000
    )
    return int(event(result, "access_dataset")["dataset"])


PROVIDER_KEY = X25519PrivateKey.generate()
DATA_KEY = new_data_key()


def wrapped(dataset: int, scope: str, grantee=PROVIDER) -> bytes:
    context = GrantContext("test", str(dataset), grantee.address, scope)
    return wrap_key(DATA_KEY, public_bytes(PROVIDER_KEY.public_key()), context)


def test_a_dataset_is_recorded_with_its_budget(access, dataset):
    record = access.query("/access/dataset", str(dataset).encode())
    assert record["owner"] == OWNER.address and record["cid"] == CID
    assert record["budget_micro_eps"] == 8_000_000 and record["remaining_micro_eps"] == 8_000_000
    assert record["key_version"] == 1 and record["status"] == "active"
    key = access.query("/access/key", PROVIDER.address.encode())["key"]
    assert key == public_bytes(PROVIDER_KEY.public_key())


def test_a_task_grant_opens_for_that_task_only_and_every_opening_is_audited(access, dataset):
    access.ok(OWNER, "grant", dataset=dataset, grantee=PROVIDER.address, task=5, until=0,
              wrapped_key=wrapped(dataset, "task:5"))  # fmt: skip
    (grant,) = access.query("/access/grants", f"dataset={dataset}".encode())["grants"]
    context = GrantContext("test", str(dataset), PROVIDER.address, "task:5")
    assert unwrap_key(grant["wrapped_key"], PROVIDER_KEY, context) == DATA_KEY
    assert access.query("/access/grants", f"grantee={PROVIDER.address}".encode())["grants"] == [
        grant
    ]
    opened = access.ok(PROVIDER, "open", dataset=dataset, task=5)
    assert event(opened, "access_open") == {
        "dataset": str(dataset),
        "grantee": PROVIDER.address,
        "task": "5",
    }
    wrong_task = access.send(PROVIDER, "open", dataset=dataset, task=6)
    assert wrong_task.code == Code.UNAUTHORIZED and "for task 5" in wrong_task.log
    stranger = access.send(STRANGER, "open", dataset=dataset, task=5)
    assert stranger.code == Code.UNAUTHORIZED and "no grant" in stranger.log
    (opening,) = access.query("/access/audit", str(dataset).encode())["openings"]
    assert opening["grantee"] == PROVIDER.address and opening["task"] == 5
    by_task = access.query("/access/audit", f"dataset={dataset}&task=5".encode())["openings"]
    other = access.query("/access/audit", f"dataset={dataset}&task=6".encode())["openings"]
    assert by_task == [opening] and other == []


def test_a_period_grant_ends_at_its_height(access, dataset):
    until = access.height + 2
    access.ok(OWNER, "grant", dataset=dataset, grantee=PROVIDER.address, task=0, until=until,
              wrapped_key=wrapped(dataset, f"until:{until}"))  # fmt: skip
    access.ok(PROVIDER, "open", dataset=dataset, task=1)  # the grant's block is until - 1
    assert access.height == until
    late = access.send(PROVIDER, "open", dataset=dataset, task=2)
    assert late.code == Code.UNAUTHORIZED and f"ended at height {until}" in late.log


@pytest.mark.parametrize(
    ("sender", "changes", "code", "said"),
    [
        (STRANGER, {}, Code.UNAUTHORIZED, "owner"),
        (OWNER, {"task": 0, "until": 0}, Code.OUT_OF_RANGE, "one of them"),
        (OWNER, {"task": 3, "until": 99}, Code.OUT_OF_RANGE, "one of them"),
        (OWNER, {"task": 0, "until": 1}, Code.OUT_OF_RANGE, "not after"),
        (OWNER, {"grantee": OTHER.address}, Code.NOT_FOUND, "no encryption key"),
        (OWNER, {"dataset": 99}, Code.NOT_FOUND, "no dataset 99"),
    ],
)
def test_a_grant_that_cannot_hold_is_refused(access, dataset, sender, changes, code, said):
    args = {"dataset": dataset, "grantee": PROVIDER.address, "task": 5, "until": 0,
            "wrapped_key": wrapped(dataset, "task:5"), **changes}  # fmt: skip
    result = access.send(sender, "grant", **args)
    assert result.code == code and said in result.log


def test_malformed_arguments_are_refused_before_the_handler(access, dataset):
    short = access.check(OWNER, "grant", dataset=dataset, grantee=PROVIDER.address, task=5,
                         until=0, wrapped_key=b"x" * 79)  # fmt: skip
    assert short.code == Code.INVALID_ARGS and "80 bytes" in short.log
    bad_key = access.check(PROVIDER, "publish_key", key=b"k" * 31)
    assert bad_key.code == Code.INVALID_ARGS and "32 bytes" in bad_key.log
    no_owner = access.check(OWNER, "revoke", dataset=dataset, grantee="nope")
    assert no_owner.code == Code.INVALID_ARGS


def test_revoking_a_grantee_or_the_dataset_stops_what_comes_next(access, dataset):
    grant = {"dataset": dataset, "grantee": PROVIDER.address, "task": 5, "until": 0,
             "wrapped_key": wrapped(dataset, "task:5")}  # fmt: skip
    access.ok(OWNER, "grant", **grant)
    access.ok(OWNER, "revoke", dataset=dataset, grantee=PROVIDER.address)
    assert access.send(PROVIDER, "open", dataset=dataset, task=5).code == Code.UNAUTHORIZED
    assert access.query("/access/grants", f"dataset={dataset}".encode())["grants"] == []
    again = access.send(OWNER, "revoke", dataset=dataset, grantee=PROVIDER.address)
    assert again.code == Code.NOT_FOUND
    access.ok(OWNER, "grant", **grant)
    assert access.send(STRANGER, "revoke", dataset=dataset, grantee="").code == Code.UNAUTHORIZED
    access.ok(OWNER, "revoke", dataset=dataset, grantee="")
    assert access.query("/access/dataset", str(dataset).encode())["status"] == "revoked"
    assert access.send(PROVIDER, "open", dataset=dataset, task=5).code == Code.UNAUTHORIZED
    refused = access.send(OWNER, "grant", **grant)
    assert refused.code == Code.INVALID_STATE and "no new grants" in refused.log
    rotate = access.send(OWNER, "rotate", dataset=dataset, cid=NEW_CID, size=1_000)
    assert rotate.code == Code.INVALID_STATE


def test_rotation_voids_the_grants_of_the_old_key(access, dataset):
    access.ok(OWNER, "grant", dataset=dataset, grantee=PROVIDER.address, task=5, until=0,
              wrapped_key=wrapped(dataset, "task:5"))  # fmt: skip
    assert access.send(STRANGER, "rotate", dataset=dataset, cid=NEW_CID, size=9).code == (
        Code.UNAUTHORIZED
    )
    rotated = access.ok(OWNER, "rotate", dataset=dataset, cid=NEW_CID, size=2_000)
    assert event(rotated, "access_rotate")["key_version"] == "2"
    record = access.query("/access/dataset", str(dataset).encode())
    assert (record["cid"], record["size"], record["key_version"]) == (NEW_CID, 2_000, 2)
    assert access.send(PROVIDER, "open", dataset=dataset, task=5).code == Code.UNAUTHORIZED
    assert access.query("/access/grants", f"grantee={PROVIDER.address}".encode())["grants"] == []


@pytest.mark.parametrize(
    ("path", "data", "code"),
    [
        ("/access/dataset", b"0", Code.INVALID_QUERY),
        ("/access/dataset", b"x", Code.INVALID_QUERY),
        ("/access/dataset", b"42", Code.NOT_FOUND),
        ("/access/grants", b"", Code.INVALID_QUERY),
        ("/access/grants", b"grantee=nope", Code.INVALID_QUERY),
        ("/access/key", b"nope", Code.NOT_FOUND),
        ("/access/audit", b"task=5", Code.INVALID_QUERY),
        ("/access/audit", b"dataset=1&who=5", Code.INVALID_QUERY),
    ],
)
def test_bad_access_queries_are_refused(access, path, data, code):
    assert access.query_code(path, data) == code


def test_a_bad_task_id_in_an_audit_query_is_named_as_a_task(access):
    answer = access.chain.app.query("/access/audit", b"dataset=1&task=x")
    assert answer.code == Code.INVALID_QUERY and "is not a task id" in answer.log
