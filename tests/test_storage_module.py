"""The storage module: anchors of blobs by CID, owner and replicas; queries; GC's view."""

import pytest

from cloudchain import codec
from cloudchain.blobs import CID, CID_V1_OPTIONS, import_bytes
from cloudchain.blobs.multibase import encode_base58btc
from cloudchain.chaincode.codes import Code
from cloudchain.chaincode.market.module import cid_arg as market_cid_arg
from cloudchain.chaincode.module import ArgError
from cloudchain.chaincode.modules.storage import (
    MAX_LISTED,
    MAX_OWNERS_PER_CID,
    MAX_PART_BYTES,
    MAX_PARTS,
    MAX_REPLICAS,
    anchored_cids,
    cid_arg,
)
from cloudchain.ledger import MAX_TX_BYTES
from tests.helpers.chain import ACCOUNTS, INITIAL_BALANCE, key, make_chain, make_genesis, signed

ALICE, BOB, CAROL = ACCOUNTS[0], ACCOUNTS[1], ACCOUNTS[2]
HELLO_V0 = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"  # "hello world\n", ipfs add
NODE1, NODE2, NODE3 = (key(f"node{i}").address for i in (1, 2, 3))


def cid_of(data: bytes, v1: bool = False) -> str:
    _, result = import_bytes(data, CID_V1_OPTIONS) if v1 else import_bytes(data)
    return str(result.root)


def event(result, type_):
    """The attributes of the one event of `type_` in a transaction's result."""
    (found,) = [dict(e.attributes) for e in result.events if e.type == type_]
    return found


# Owners of one CID, more than it may have: funded in genesis, to pay their fees.
OWNERS = [key(f"owner{i}") for i in range(MAX_OWNERS_PER_CID + 1)]


class Storage:
    """A solo chain and a nonce per account, to send storage transactions."""

    def __init__(self):
        funded = [(k.address, INITIAL_BALANCE) for k in (*ACCOUNTS, *OWNERS)]
        self.chain = make_chain(genesis=make_genesis(funded))
        self.nonces = {}

    def tx(self, sender, method, **args):
        nonce = self.nonces.get(sender.address, 0)
        self.nonces[sender.address] = nonce + 1
        return signed(sender, nonce, "storage", method, args)

    def send(self, sender, method, **args):
        """Run one transaction in a block of its own; its result."""
        produced = self.chain.produce_block([self.tx(sender, method, **args).to_bytes()])
        (result,) = produced.result.tx_results
        return result

    def query(self, path, data=b""):
        result = self.chain.app.query(path, data)
        assert result.code == Code.OK, result.log
        return codec.thaw(codec.decode(result.value))

    def state(self):
        return dict(self.chain.app.state().iterate(b"storage/"))


@pytest.fixture
def storage():
    return Storage()


def test_anchor_records_cid_size_owner_replicas_and_block(storage):
    result = storage.send(ALICE, "anchor", cid=HELLO_V0, size=12, replicas=[NODE1, NODE2])
    assert result.code == Code.OK, result.log
    assert event(result, "anchor") == {
        "cid": HELLO_V0,
        "owner": ALICE.address,
        "size": "12",
        "replicas": "2",
        "updated": "false",
    }
    store = storage.chain.app.store
    blob = storage.query("/storage/blob", HELLO_V0.encode())
    assert blob == {
        "cid": HELLO_V0,
        "anchors": [
            {
                "cid": HELLO_V0,
                "size": 12,
                "owner": ALICE.address,
                "replicas": [NODE1, NODE2],
                "height": store.height,
                "time_ns": store.last_block.header.time_ns,
            }
        ],
    }
    assert list(anchored_cids(storage.chain.app.state())) == [HELLO_V0]


def test_a_cid_is_kept_in_canonical_text():
    v1 = cid_of(b"hello world\n", v1=True)
    assert v1 == "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
    base58 = "z" + encode_base58btc(CID.parse(v1).to_bytes())
    assert cid_arg(v1) == cid_arg(base58) == cid_arg(v1.upper()) == v1  # base32 out
    assert cid_arg(HELLO_V0) == HELLO_V0  # a CIDv0 stays a CIDv0
    assert market_cid_arg(base58) == v1  # the market reads a CID alike


def test_reanchoring_updates_the_replicas_and_keeps_the_size(storage):
    storage.send(ALICE, "anchor", cid=HELLO_V0, size=12, replicas=[NODE1])
    result = storage.send(ALICE, "anchor", cid=HELLO_V0, size=12, replicas=[NODE2, NODE3])
    assert result.code == Code.OK, result.log
    assert event(result, "anchor")["updated"] == "true"
    (record,) = storage.query("/storage/blob", HELLO_V0.encode())["anchors"]
    assert record["replicas"] == [NODE2, NODE3]
    assert record["height"] == storage.chain.app.store.height

    before = storage.state()
    result = storage.send(ALICE, "anchor", cid=HELLO_V0, size=13, replicas=[NODE1])
    assert result.code == Code.OUT_OF_RANGE
    assert "anchored with size 12, not 13" in result.log
    assert storage.state() == before


def test_several_owners_anchor_the_same_cid_each_their_own(storage):
    assert storage.send(ALICE, "anchor", cid=HELLO_V0, size=12, replicas=[NODE1]).code == Code.OK
    assert storage.send(BOB, "anchor", cid=HELLO_V0, size=12, replicas=[NODE2]).code == Code.OK
    anchors = storage.query("/storage/blob", HELLO_V0.encode())["anchors"]
    assert sorted((a["owner"], a["replicas"][0]) for a in anchors) == sorted(
        [(ALICE.address, NODE1), (BOB.address, NODE2)]
    )
    assert list(anchored_cids(storage.chain.app.state())) == [HELLO_V0]  # once

    assert storage.send(BOB, "unanchor", cid=HELLO_V0).code == Code.OK
    (left,) = storage.query("/storage/blob", HELLO_V0.encode())["anchors"]
    assert left["owner"] == ALICE.address  # Bob removed only his own
    assert list(anchored_cids(storage.chain.app.state())) == [HELLO_V0]


def test_unanchor_by_the_owner_removes_the_anchor(storage):
    storage.send(ALICE, "anchor", cid=HELLO_V0, size=12, replicas=[NODE1])
    result = storage.send(ALICE, "unanchor", cid=HELLO_V0)
    assert result.code == Code.OK, result.log
    assert [e.type for e in result.events] == ["fee", "message", "unanchor"]
    assert storage.state() == {}
    assert list(anchored_cids(storage.chain.app.state())) == []
    missing = storage.chain.app.query("/storage/blob", HELLO_V0.encode())
    assert missing.code == Code.NOT_FOUND and "not anchored" in missing.log


def test_unanchor_by_another_account_or_of_nothing_is_refused(storage):
    storage.send(ALICE, "anchor", cid=HELLO_V0, size=12, replicas=[NODE1])
    before = storage.state()
    result = storage.send(BOB, "unanchor", cid=HELLO_V0)
    assert result.code == Code.UNAUTHORIZED
    assert "anchored by others" in result.log
    other = cid_of(b"never anchored")
    result = storage.send(BOB, "unanchor", cid=other)
    assert result.code == Code.NOT_FOUND
    assert f"{other} is not anchored" in result.log
    assert storage.state() == before


@pytest.mark.parametrize(
    "args, log",
    [
        ({"cid": "Qm" + "0" * 44}, "argument cid: invalid CID"),  # 0 is not base58
        ({"cid": "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5"}, "46 characters, not 45"),
        ({"cid": "b" + "c" * 40}, "unsupported CID version"),
        ({"cid": "bafy!"}, "argument cid: invalid CID"),
        ({"cid": ""}, "empty CID"),
        ({"cid": 7}, "expected a CID string"),
        ({"size": -1}, "argument size: -1 is not in [0, 1125899906842624]"),
        ({"size": 2**50 + 1}, "argument size"),
        ({"size": "12"}, "argument size: expected an integer"),
        ({"replicas": []}, "argument replicas: at least one replica"),
        ({"replicas": [NODE1, NODE1]}, "argument replicas: items must be distinct"),
        ({"replicas": [NODE1, "ABCDEF" * 7]}, "item 1: 'ABCDEF"),
        ({"replicas": [key(str(i)).address for i in range(MAX_REPLICAS + 1)]}, "more than 32"),
        ({"replicas": NODE1}, "expected a list"),
    ],
)
def test_malformed_anchors_are_refused_before_any_handler(storage, args, log):
    good = {"cid": HELLO_V0, "size": 12, "replicas": [NODE1]}
    tx = storage.tx(ALICE, "anchor", **{**good, **args})
    check = storage.chain.app.check_tx(tx.to_bytes())
    assert check.code == Code.INVALID_ARGS
    assert log in check.log
    produced = storage.chain.produce_block([tx.to_bytes()])
    assert produced.block.txs == ()  # never proposed
    assert storage.state() == {}


def test_the_most_replicas_and_the_largest_size_are_accepted(storage):
    replicas = [key(str(i)).address for i in range(MAX_REPLICAS)]
    result = storage.send(ALICE, "anchor", cid=HELLO_V0, size=2**50, replicas=replicas)
    assert result.code == Code.OK, result.log


def test_a_cid_has_at_most_max_owners(storage):
    txs = [storage.tx(o, "anchor", cid=HELLO_V0, size=12, replicas=[NODE1]) for o in OWNERS]
    produced = storage.chain.produce_block([tx.to_bytes() for tx in txs])
    codes = [r.code for r in produced.result.tx_results]
    assert codes == [Code.OK] * MAX_OWNERS_PER_CID + [Code.LIMIT_EXCEEDED]
    assert len(storage.query("/storage/blob", HELLO_V0.encode())["anchors"]) == MAX_OWNERS_PER_CID


def test_anchored_pages_in_cid_order_with_owner_and_after(storage):
    cids = sorted(cid_of(b"blob %d" % i, v1=i % 2 == 1) for i in range(MAX_LISTED + 5))
    alice = [storage.tx(ALICE, "anchor", cid=c, size=7, replicas=[NODE1]) for c in cids]
    bob = [storage.tx(BOB, "anchor", cid=c, size=7, replicas=[NODE2]) for c in cids[:3]]
    produced = storage.chain.produce_block([tx.to_bytes() for tx in alice + bob])
    assert all(r.code == Code.OK for r in produced.result.tx_results)

    first = storage.query("/storage/anchored")
    assert first == {"cids": cids[:MAX_LISTED], "more": True}
    rest = storage.query("/storage/anchored", f"after={cids[MAX_LISTED - 1]}".encode())
    assert rest == {"cids": cids[MAX_LISTED:], "more": False}
    assert list(anchored_cids(storage.chain.app.state())) == cids

    assert storage.query("/storage/anchored", f"owner={BOB.address}".encode()) == {
        "cids": cids[:3],
        "more": False,
    }
    data = f"owner={BOB.address}&after={cids[0]}".encode()
    assert storage.query("/storage/anchored", data)["cids"] == cids[1:3]
    carol = storage.query("/storage/anchored", f"owner={CAROL.address}".encode())
    assert carol == {"cids": [], "more": False}


@pytest.mark.parametrize(
    "path, data",
    [
        ("/storage/blob", b""),
        ("/storage/blob", b"Qmnope"),
        ("/storage/blob", b"\xff"),
        ("/storage/anchored", b"owner=nope"),
        ("/storage/anchored", b"after=Qmnope"),
        ("/storage/anchored", b"limit=5"),
        ("/storage/anchored", b"after"),
    ],
)
def test_bad_storage_queries_get_invalid_query(storage, path, data):
    result = storage.chain.app.query(path, data)
    assert result.code == Code.INVALID_QUERY
    assert result.log and result.value == b""


def test_market_cids_are_fully_checked():
    assert market_cid_arg(HELLO_V0) == HELLO_V0
    with pytest.raises(ArgError, match="invalid CID"):
        market_cid_arg("Qm" + "0" * 44)
    with pytest.raises(ArgError, match="unsupported CID version"):
        market_cid_arg("b" + "c" * 40)


# --- on-chain parts: consensus-based storage ----------------------------------------------


def test_parts_are_stored_on_chain_and_read_back(storage):
    parts = [bytes([i]) * (MAX_PART_BYTES if i < 2 else 10) for i in range(3)]
    txs = [
        storage.tx(ALICE, "put_part", object="model-1.bin", index=i, data=part)
        for i, part in enumerate(parts)
    ]
    assert all(len(tx.to_bytes()) <= MAX_TX_BYTES for tx in txs)  # a full part fits a tx
    produced = storage.chain.produce_block([tx.to_bytes() for tx in txs])
    assert [r.code for r in produced.result.tx_results] == [Code.OK] * 3
    assert event(produced.result.tx_results[2], "put_part") == {
        "owner": ALICE.address,
        "object": "model-1.bin",
        "index": "2",
        "bytes": "10",
    }
    owner = f"owner={ALICE.address}&object=model-1.bin"
    assert storage.query("/storage/object", owner.encode()) == {
        "owner": ALICE.address,
        "object": "model-1.bin",
        "parts": 3,
        "bytes": 2 * MAX_PART_BYTES + 10,
    }
    read = [storage.query("/storage/part", f"{owner}&index={i}".encode()) for i in range(3)]
    assert b"".join(p["data"] for p in read) == b"".join(parts)

    # Rewriting a part replaces it; the count stays, the bytes follow.
    assert storage.send(ALICE, "put_part", object="model-1.bin", index=2, data=b"xy").ok
    summary = storage.query("/storage/object", owner.encode())
    assert (summary["parts"], summary["bytes"]) == (3, 2 * MAX_PART_BYTES + 2)
    # Another owner's object of the same name is its own.
    assert storage.send(BOB, "put_part", object="model-1.bin", index=0, data=b"b").ok
    assert storage.query("/storage/object", owner.encode())["parts"] == 3


@pytest.mark.parametrize(
    "args, log",
    [
        ({"data": b""}, "argument data: 0 bytes is not in [1, 64512]"),
        ({"data": b"x" * (MAX_PART_BYTES + 1)}, "64513 bytes is not in"),
        ({"data": "text"}, "argument data: expected bytes, got str"),
        ({"index": -1}, "argument index: -1 is not in"),
        ({"index": MAX_PARTS}, f"argument index: {MAX_PARTS} is not in"),
        ({"object": "../etc"}, "argument object: '../etc' is not of the form"),
        ({"object": "x" * 65}, "argument object: longer than 64 characters"),
    ],
)
def test_malformed_parts_are_refused_and_change_nothing(storage, args, log):
    tx = storage.tx(ALICE, "put_part", **{"object": "o", "index": 0, "data": b"d", **args})
    check = storage.chain.app.check_tx(tx.to_bytes())
    assert check.code == Code.INVALID_ARGS and log in check.log
    storage.chain.produce_block([tx.to_bytes()])
    assert storage.state() == {}


@pytest.mark.parametrize(
    "path, data, code",
    [
        ("/storage/object", b"owner=nope&object=o", Code.INVALID_QUERY),
        ("/storage/object", f"owner={ALICE.address}".encode(), Code.INVALID_QUERY),
        ("/storage/object", f"owner={ALICE.address}&object=none".encode(), Code.NOT_FOUND),
        ("/storage/part", f"owner={ALICE.address}&object=o&index=x".encode(), Code.INVALID_QUERY),
        ("/storage/part", f"owner={ALICE.address}&object=o&index=0".encode(), Code.NOT_FOUND),
        (
            "/storage/part",
            f"owner={ALICE.address}&object=o&index={MAX_PARTS}".encode(),
            Code.INVALID_QUERY,
        ),
    ],
)
def test_bad_part_queries_say_why(storage, path, data, code):
    result = storage.chain.app.query(path, data)
    assert result.code == code and result.log and result.value == b""
