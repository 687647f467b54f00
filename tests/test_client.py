"""The client's typed results: parsed from CometBFT's shapes, against a running node,
and the one error (RPCClientError) for every way a reply can be wrong."""

import asyncio
import base64
import copy
import dataclasses
import json

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from cloudchain import codec
from cloudchain.client import Client, RPCClientError, SyncClient
from cloudchain.client.results import (
    Block,
    BroadcastCommitResult,
    Header,
    QueryResponse,
    Status,
    TxResponse,
    TxSearch,
    Validators,
)
from cloudchain.crypto import PrivateKey
from cloudchain.timefmt import parse_rfc3339_ns
from tests.helpers.network import wait_for_height
from tests.helpers.rpc import transfer

# Replies as a CometBFT v0.38 node writes them (its docs' examples, shortened).
STATUS = {
    "node_info": {
        "protocol_version": {"p2p": "8", "block": "11", "app": "0"},
        "id": "5576458aef205977e18fd50b274e9b5d9014525a",
        "listen_addr": "tcp://0.0.0.0:26656",
        "network": "cosmoshub-4",
        "version": "0.38.2",
        "channels": "40202122233038606100",
        "moniker": "moniker-node",
        "other": {"tx_index": "on", "rpc_address": "tcp://0.0.0.0:26657"},
    },
    "sync_info": {
        "latest_block_hash": "790BA84C3545FCCC49A5C629CEE6EA58A6E875C3862175BDC11EE7AF54703501",
        "latest_app_hash": "C9AEBB441B787D9F1D846DE51F3826F4FD386108B59B08239653ABF59455C3F8",
        "latest_block_height": "1262196",
        "latest_block_time": "2019-08-01T11:52:22.818762194Z",
        "earliest_block_hash": "790BA84C3545FCCC49A5C629CEE6EA58A6E875C3862175BDC11EE7AF54703501",
        "earliest_app_hash": "C9AEBB441B787D9F1D846DE51F3826F4FD386108B59B08239653ABF59455C3F8",
        "earliest_block_height": "1262196",
        "earliest_block_time": "2019-08-01T11:52:22.818762194Z",
        "catching_up": False,
    },
    "validator_info": {
        "address": "5D6A51A8E9899C44079C6AF90618BA0369070E6E",
        "pub_key": {
            "type": "tendermint/PubKeyEd25519",
            "value": "A6DoBUypNtUAyEHWtQ9bFjfNg8Bo9CrnkUGl6k6OHN4=",
        },
        "voting_power": "0",
    },
}

HASH = "790BA84C3545FCCC49A5C629CEE6EA58A6E875C3862175BDC11EE7AF54703501"
TX = base64.b64encode(b"a transaction").decode()
HEADER = {
    "version": {"block": "11", "app": "0"},
    "chain_id": "cosmoshub-4",
    "height": "12",
    "time": "2019-08-01T11:52:22.818762194Z",
    "last_block_id": {"hash": HASH, "parts": {"total": 1, "hash": HASH}},
    "last_commit_hash": HASH,
    "data_hash": HASH,
    "validators_hash": HASH,
    "next_validators_hash": HASH,
    "consensus_hash": HASH,
    "app_hash": HASH,
    "last_results_hash": "",
    "evidence_hash": "",
    "proposer_address": "5D6A51A8E9899C44079C6AF90618BA0369070E6E",
}
BLOCK = {
    "block_id": {"hash": HASH, "parts": {"total": 1, "hash": HASH}},
    "block": {
        "header": HEADER,
        "data": {"txs": [TX]},
        "evidence": {"evidence": []},
        "last_commit": {
            "height": "11",
            "round": 0,
            "block_id": {"hash": HASH, "parts": {"total": 1, "hash": HASH}},
            "signatures": [
                {
                    "block_id_flag": 2,
                    "validator_address": "5D6A51A8E9899C44079C6AF90618BA0369070E6E",
                    "timestamp": "2019-08-01T11:52:22.1Z",
                    "signature": "c2ln",
                },
                # A validator that did not vote: CometBFT's "absent" flag, no address, null.
                {
                    "block_id_flag": 1,
                    "validator_address": "",
                    "timestamp": "0001-01-01T00:00:00Z",
                    "signature": None,
                },
            ],
        },
    },
}
TX_RESPONSE = {
    "hash": HASH,
    "height": "12",
    "index": 0,
    "tx_result": {
        "code": 0,
        "data": None,
        "log": "",
        "info": "",
        "gas_wanted": "0",
        "gas_used": "0",
        "events": [
            {
                "type": "transfer",
                "attributes": [
                    {"key": "recipient", "value": "ab12", "index": True},
                    {"key": "amount", "value": "5", "index": True},
                ],
            }
        ],
    },  # no codespace: left out, as CometBFT does with empty fields
    "tx": TX,
}
VALIDATORS = {
    "block_height": "55",
    "validators": [
        {
            "address": "5D6A51A8E9899C44079C6AF90618BA0369070E6E",
            "pub_key": {
                "type": "tendermint/PubKeyEd25519",
                "value": "A6DoBUypNtUAyEHWtQ9bFjfNg8Bo9CrnkUGl6k6OHN4=",
            },
            "voting_power": "7",
            "proposer_priority": "-14",
        }
    ],
    "count": "1",
    "total": "1",
}


def test_status_parses_cometbft_shapes_into_python_types():
    status = Status.from_json(STATUS)
    assert status.network == status.chain_id == "cosmoshub-4"
    assert status.latest_block_height == 1262196 and status.earliest_block_height == 1262196
    assert status.latest_block_hash == bytes.fromhex(HASH)
    assert status.latest_block_time_ns == parse_rfc3339_ns("2019-08-01T11:52:22.818762194Z")
    assert status.latest_block_time_ns % 1_000_000_000 == 818762194  # every nanosecond kept
    assert status.catching_up is False and status.voting_power == 0
    pub_key = STATUS["validator_info"]["pub_key"]["value"]
    assert status.validator_pub_key == base64.b64decode(pub_key)
    assert status.raw is STATUS  # what --json prints, and fields we do not know yet


def test_block_tx_and_validators_parse():
    block = Block.from_json(BLOCK)
    assert block.height == 12 and block.hash == bytes.fromhex(HASH)
    assert block.txs == (b"a transaction",)
    assert block.header.last_results_hash == b"" and block.header.last_block_id.parts_total == 1
    signed, absent = block.last_commit.signatures
    assert signed.signature == b"sig" and signed.block_id_flag == 2
    assert absent.validator_address == b"" and absent.signature == b""
    found = TxResponse.from_json(TX_RESPONSE)
    assert found.height == 12 and found.index == 0 and found.tx == b"a transaction"
    assert found.tx_result.ok and found.tx_result.codespace == "" and found.tx_result.data == b""
    assert found.tx_result.events[0].type == "transfer"
    assert found.tx_result.events[0].attributes == (("recipient", "ab12"), ("amount", "5"))
    search = TxSearch.from_json({"txs": [TX_RESPONSE], "total_count": "7"})
    assert search.total_count == 7 and search.txs == (found,)
    validators = Validators.from_json(VALIDATORS)
    assert validators.block_height == 55 and validators.total_power == 7
    assert validators.validators[0].proposer_priority == -14


def test_results_are_frozen_hashable_and_compare_without_raw():
    first = Header.from_json(HEADER)
    second = Header.from_json(copy.deepcopy(HEADER) | {"extra": "a field from a newer node"})
    assert first == second and hash(first) == hash(second)
    assert second.raw["extra"] == "a field from a newer node"
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.height = 13  # type: ignore[misc]


def _with(obj, path, value):
    """A deep copy of `obj` with the field at `path` (keys and indexes) replaced, or
    removed when `value` is ...; `path` () replaces the whole object."""
    if not path:
        return value
    changed = copy.deepcopy(obj)
    *parents, last = path
    target = changed
    for key in parents:
        target = target[key]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return changed


@pytest.mark.parametrize(
    "kind, obj, path, value, message",
    [
        (Status, STATUS, (), None, "Status: expected an object, got None"),
        (Status, STATUS, (), [], "Status: expected an object, got []"),
        (Status, STATUS, ("sync_info",), ..., "Status.sync_info: expected an object, got nothing"),
        (
            Status,
            STATUS,
            ("sync_info", "latest_block_height"),
            "abc",
            "Status.sync_info.latest_block_height: expected an integer, got 'abc'",
        ),
        (
            Status,
            STATUS,
            ("sync_info", "latest_block_height"),
            True,
            "latest_block_height: expected an integer, got True",
        ),
        (
            Status,
            STATUS,
            ("sync_info", "latest_block_hash"),
            "XYZ",
            "Status.sync_info.latest_block_hash: expected hex",
        ),
        (
            Status,
            STATUS,
            ("sync_info", "latest_block_time"),
            "yesterday",
            "latest_block_time: expected an RFC 3339 time",
        ),
        (Status, STATUS, ("sync_info", "catching_up"), "no", "catching_up: expected true or false"),
        (
            Status,
            STATUS,
            ("node_info", "network"),
            5,
            "Status.node_info.network: expected a string",
        ),
        (
            Block,
            BLOCK,
            ("block", "data", "txs", 0),
            "%%%",
            "Block.block.data.txs[0]: expected base64",
        ),
        (
            Block,
            BLOCK,
            ("block", "header", "height"),
            ...,
            "Block.block.header.height: expected an integer, got nothing",
        ),
        (
            Block,
            BLOCK,
            ("block", "last_commit", "signatures"),
            {},
            "Block.block.last_commit.signatures: expected a list",
        ),
        (TxResponse, TX_RESPONSE, ("hash",), "zz", "TxResponse.hash: expected hex"),
        (
            TxResponse,
            TX_RESPONSE,
            ("tx_result", "events", 0, "attributes", 0, "key"),
            7,
            "TxResponse.tx_result.events[0].attributes[0].key: expected a string",
        ),
        (
            Validators,
            VALIDATORS,
            ("validators",),
            None,
            "Validators.validators: expected a list, got None",
        ),
        (
            Validators,
            VALIDATORS,
            ("validators", 0, "pub_key"),
            "A6Do",
            "Validators.validators[0].pub_key: expected an object",
        ),
        (
            QueryResponse,
            {"response": {"code": 0, "value": "!!"}},
            (),
            ...,
            "QueryResponse.response.value: expected base64",
        ),
        (
            BroadcastCommitResult,
            {"check_tx": {}, "tx_result": {}, "hash": HASH},
            (),
            ...,
            "BroadcastCommitResult.height: expected an integer, got nothing",
        ),
    ],
)
def test_a_malformed_reply_raises_the_one_error_naming_the_field(kind, obj, path, value, message):
    bad = obj if value is ... and not path else _with(obj, path, value)
    with pytest.raises(RPCClientError, match="malformed reply from the node") as raised:
        kind.from_json(bad)
    assert message in raised.value.data
    assert raised.value.code == -1


@pytest.fixture
async def scripted():
    """A server that answers every POST with the next body of `replies` (a list)."""
    replies: list[bytes] = []

    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=replies.pop(0), content_type="application/json")

    app = web.Application()
    app.router.add_post("/", answer)
    server = TestServer(app)
    await server.start_server()
    try:
        yield Client(str(server.make_url("/"))), replies
    finally:
        await server.close()


def reply(result=None, error=None) -> bytes:
    body = {"jsonrpc": "2.0", "id": 1}
    body |= {"error": error} if error is not None else {"result": result}
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    "body, message",
    [
        (b"<html>Bad Gateway</html>", "status: not JSON"),
        (b'{"jsonrpc": "2.0", "id": 1, "result": NaN}', "status: not JSON"),
        (b"", "status: not JSON"),
        (b"[1, 2]", "status: expected a JSON-RPC response"),
        (b'{"jsonrpc": "2.0", "id": 1}', "status: expected a JSON-RPC response"),
        (b'{"jsonrpc": "2.0", "id": 1, "error": "boom"}', "status.error: expected an object"),
        (reply({"node_info": {}}), "Status.node_info.id: expected a string, got nothing"),
        (reply(None), "Status: expected an object, got None"),
    ],
)
async def test_a_malformed_json_rpc_reply_raises_the_one_error(scripted, body, message):
    client, replies = scripted
    replies.append(body)
    with pytest.raises(RPCClientError, match="malformed reply from the node") as raised:
        await client.status()
    assert message in raised.value.data


async def test_error_replies_bad_query_values_and_unreachable_nodes(scripted):
    client, replies = scripted
    replies.append(reply(error={"code": -32603, "message": "Internal error", "data": "gone"}))
    with pytest.raises(RPCClientError) as raised:
        await client.block(5)
    assert (raised.value.code, raised.value.message, raised.value.data) == (
        -32603,
        "Internal error",
        "gone",
    )
    not_msgpack = base64.b64encode(b"\xc1").decode()
    replies.append(reply({"response": {"code": 0, "value": not_msgpack, "height": "3"}}))
    with pytest.raises(RPCClientError, match="QueryResponse.response.value"):
        await client.query("/token/supply")
    no_nonce = base64.b64encode(codec.encode({"count": 1})).decode()
    replies.append(reply({"response": {"code": 0, "value": no_nonce, "height": "3"}}))
    with pytest.raises(RPCClientError, match="/auth/nonce: expected"):
        await client.nonce("ab" * 20)
    replies.append(reply({"response": {"code": 3, "log": "unknown path", "codespace": "query"}}))
    with pytest.raises(RPCClientError, match="query refused .3.: unknown path"):
        await client.query("/no/such")
    with pytest.raises(RPCClientError, match="cannot reach http://127.0.0.1:1/") as raised:
        await Client("http://127.0.0.1:1").status()
    assert raised.value.code == -1


async def test_every_method_returns_its_typed_result_from_a_running_node(node, tmp_path):
    client = Client(f"http://{node.config.rpc.listen_address}")
    status = await client.status()
    assert status.network == node.chain_id and status.latest_block_height >= 1
    assert status.validator_address == bytes.fromhex(node.key.address)
    assert status.validator_pub_key == node.key.public_key and status.voting_power == 10
    assert status.raw["node_info"]["moniker"] == status.moniker

    tx, recipient = transfer(tmp_path, node, 0, 25)
    committed = await client.broadcast_tx_commit(tx.to_bytes())
    assert committed.ok and committed.failure is None
    assert committed.hash == tx.hash and committed.height >= 1
    height = committed.height
    found = await client.tx(tx.hash)
    assert (found.hash, found.height, found.index, found.tx) == (tx.hash, height, 0, tx.to_bytes())
    fee_event, transfer_event = found.tx_result.events[0], found.tx_result.events[2]
    assert [e.type for e in found.tx_result.events] == ["fee", "message", "transfer"]
    assert fee_event.attributes == (("amount", str(tx.fee)), ("payer", tx.sender_address))
    assert ("recipient", recipient.address) in transfer_event.attributes

    block = await client.block(height)
    stored = node.store.block(height)
    assert block.hash == stored.hash and block.txs == (tx.to_bytes(),)
    assert block.header.time_ns == stored.header.time_ns
    assert block.header.app_hash == stored.header.app_hash
    assert await client.block_by_hash(block.hash) == block
    assert await client.block_by_hash(b"\x01" * 32) is None
    assert (await client.block_results(height)).txs_results[0] == found.tx_result
    await wait_for_height([node], height + 1)  # so that the next block holds its commit
    commit = await client.commit(height)
    assert commit.header == block.header and commit.commit.block_id.hash == block.hash
    assert commit.commit.signatures[0].validator_address == status.validator_address
    chain = await client.blockchain(1, height)
    assert chain.block_metas[0].header == block.header and chain.block_metas[0].num_txs == 1
    search = await client.tx_search(f"transfer.recipient = '{recipient.address}'")
    assert search.total_count == 1 and search.txs == (found,)

    before = node.store.height
    validators = await client.validators()
    assert validators.total_power == 10 and validators.validators[0].pub_key == node.key.public_key
    # CometBFT's latest is the next height's set: one above the chain when it was asked
    assert before + 1 <= validators.block_height <= node.store.height + 1
    paged = await client.validators(1, page=1, per_page=1)
    assert (paged.block_height, paged.count, paged.total) == (1, 1, 1)
    assert paged.validators == validators.validators
    with pytest.raises(RPCClientError) as beyond:
        await client.validators(page=2, per_page=1)
    assert (beyond.value.code, beyond.value.data) == (
        -32603,
        "page should be within [1, 1] range, given 2",
    )
    assert (await client.abci_info()).last_block_height >= height
    assert (await client.genesis()).chain_id == node.chain_id
    assert (await client.net_info()).n_peers == 0
    assert await client.health() is None
    assert (await client.num_unconfirmed_txs()).txs == ()

    replay = await client.broadcast_tx_sync(tx.to_bytes())
    assert not replay.ok and replay.code == 5 and replay.hash == tx.hash
    later, _ = transfer(tmp_path, node, 7, 1)  # a nonce gap: it waits in the mempool
    accepted = await client.broadcast_tx_async(later.to_bytes())
    assert accepted.ok and accepted.hash == later.hash and accepted.data == b""
    pending = await client.unconfirmed_txs(limit=5)
    assert pending.txs == (later.to_bytes(),) and (pending.n_txs, pending.total) == (1, 1)
    assert pending.total_bytes == len(later.to_bytes())
    assert (await client.num_unconfirmed_txs()).total == 1
    assert (await client.unconfirmed_txs(limit=0)).txs == (later.to_bytes(),)  # 0: default
    assert (await client.query("/token/balance", recipient.address.encode()))["balance"] == (
        1_000_000_025
    )
    assert await client.nonce(tx.sender_address) == 1
    refused = await client.abci_query("/no/such/path")
    assert not refused.ok and refused.log
    with pytest.raises(RPCClientError) as raised:
        await client.block(10**6)
    assert raised.value.code == -32603 and "must be less than or equal" in raised.value.data
    # The blocking client wraps the same methods (in a thread: this one runs a loop).
    blocking = SyncClient(client.url)
    assert (await asyncio.to_thread(blocking.tx, tx.hash)) == found
    assert blocking.url == client.url


def query_reply(value) -> bytes:
    encoded = base64.b64encode(codec.encode(value)).decode()
    return reply({"response": {"code": 0, "value": encoded, "height": "3"}})


async def test_sign_tx_pays_the_minimum_of_the_nodes_schedule_unless_a_fee_is_given(scripted):
    client, replies = scripted
    key = PrivateKey(bytes(range(32)))
    schedule = {"base": 7, "per_byte": 2, "surcharges": {"token.burn": 50}}
    # Asked in this order: the chain id (status), the next nonce, the schedule.
    replies += [reply(STATUS), query_reply({"nonce": 4}), query_reply(schedule)]
    tx = await client.sign_tx(key, "token", "burn", {"amount": 1})
    assert not replies  # each was asked once
    assert (tx.chain_id, tx.nonce) == ("cosmoshub-4", 4) and tx.verify_signature()
    assert tx.fee == 7 + 2 * len(tx.to_bytes()) + 50  # exactly the minimum of its own bytes

    # The schedule is fixed at genesis: a second transaction does not ask for it again,
    # and one without a surcharge pays base and bytes alone.
    again = await client.sign_tx(
        key, "token", "transfer", {"to": "ab" * 20, "amount": 1}, nonce=5, chain_id="cosmoshub-4"
    )
    assert again.fee == 7 + 2 * len(again.to_bytes())
    # --fee's path: the given fee, whatever the schedule says (the node judges it).
    given = await client.sign_tx(
        key, "token", "burn", {"amount": 1}, fee=1, nonce=5, chain_id="cosmoshub-4"
    )
    assert given.fee == 1


async def test_a_malformed_fee_schedule_or_transaction_is_one_client_error(scripted):
    client, replies = scripted
    key = PrivateKey(bytes(range(32)))
    replies.append(query_reply({"base": -1}))
    with pytest.raises(RPCClientError, match="malformed reply from the node") as raised:
        await client.sign_tx(key, "token", "burn", {"amount": 1}, nonce=0, chain_id="c")
    assert "/fees/params" in raised.value.data and "base" in raised.value.data
    with pytest.raises(RPCClientError, match="cannot build the transaction") as raised:
        await client.sign_tx(key, "token", "burn", {"amount": 1}, fee=-1, nonce=0, chain_id="c")
    assert "fee" in raised.value.data
