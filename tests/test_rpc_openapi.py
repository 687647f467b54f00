"""Every RPC result, field by field, against CometBFT v0.38's OpenAPI schema.

The descriptions below are written by hand from `rpc/openapi/openapi.yaml` (cometbft,
v0.38.x) and the Go types it documents (`rpc/core/types/responses.go`, encoded by
`libs/json`: int64/uint64/int as decimal strings, int32/uint32 as JSON numbers,
[]byte as base64, HexBytes as upper-case hex, time.Time as RFC 3339 with up to nine
fractional digits; ABCI results by jsonpb with defaults emitted). Where the YAML is
stale and the Go wire format disagrees with it, the wire format wins, since that is
what clients parse; each such place says "schema:" in a comment. Where our node
knowingly differs from CometBFT, the comment says "ours:".

A description is a leaf name (see LEAVES), a dict (an object with exactly these keys;
a value wrapped in Optional may be absent), a one-item list (an array of that item),
Null(x) (null or x), Const(v), OneOf(x, y, ...) (the first that fits), or ANY_OBJECT
(any object: app-defined JSON).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from cloudchain.node.testnet import init_testnet
from cloudchain.timefmt import parse_rfc3339_ns
from tests.helpers.network import fast_node, wait_for_height
from tests.helpers.rpc import call, transfer

INT64_MAX = 2**63 - 1
_DECIMAL = re.compile(r"^(0|-?[1-9][0-9]*)$")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")


@dataclass(frozen=True)
class Null:
    inner: Any


@dataclass(frozen=True)
class Optional:
    inner: Any


@dataclass(frozen=True)
class Const:
    value: Any


class OneOf:
    def __init__(self, *choices: Any) -> None:
        self.choices = choices


ANY_OBJECT = "object"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_decimal(value: Any) -> bool:
    return isinstance(value, str) and bool(_DECIMAL.match(value)) and abs(int(value)) <= INT64_MAX


def _is_hex(value: Any, chars: int | None = None, lower: bool = False) -> bool:
    if not isinstance(value, str) or (chars is not None and len(value) != chars):
        return False
    digits = "0-9a-f" if lower else "0-9A-F"
    return re.fullmatch(f"(?:[{digits}]{{2}})*", value) is not None


def _b64_bytes(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _is_time(value: Any) -> bool:
    if not isinstance(value, str) or not _TIME.match(value):
        return False
    parse_rfc3339_ns(value)
    return True


LEAVES: dict[str, Callable[[Any], bool]] = {
    "str": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "uint": lambda v: _is_int(v) and v >= 0,  # uint32 / int32 / byte: a JSON number
    "int64": _is_decimal,  # int64, uint64 and Go int: a decimal string
    "hash": lambda v: _is_hex(v, 64),  # SHA-256, upper-case hex
    "hash/empty": lambda v: v == "" or _is_hex(v, 64),
    "addr": lambda v: _is_hex(v, 40),  # first 20 bytes of SHA-256(pubkey)
    "addr/empty": lambda v: v == "" or _is_hex(v, 40),
    "hex": lambda v: _is_hex(v),  # HexBytes of any length, "" when empty
    "node_id": lambda v: _is_hex(v, 40, lower=True),  # p2p IDs are lower-case
    "b64": lambda v: _b64_bytes(v) is not None,
    "b64:32": lambda v: (raw := _b64_bytes(v)) is not None and len(raw) == 32,
    "sig": lambda v: (raw := _b64_bytes(v)) is not None and len(raw) == 64,
    "time": _is_time,
    ANY_OBJECT: lambda v: isinstance(v, dict),
}


def check(value: Any, schema: Any, path: str = "$") -> None:
    """Fail with the JSON path of the first place `value` departs from `schema`."""
    if isinstance(schema, Null):
        if value is None:
            return
        schema = schema.inner
    if isinstance(schema, Const):
        if value != schema.value or type(value) is not type(schema.value):
            raise AssertionError(f"{path}: {value!r} is not {schema.value!r}")
        return
    if isinstance(schema, OneOf):
        misses = []
        for choice in schema.choices:
            try:
                return check(value, choice, path)
            except AssertionError as exc:
                misses.append(str(exc))
        raise AssertionError(f"{path}: fits no choice ({'; '.join(misses)})")
    if value is None:
        raise AssertionError(f"{path}: null where the schema wants {_name(schema)}")
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            raise AssertionError(f"{path}: {type(value).__name__} where the schema wants object")
        for key, sub in schema.items():
            if key not in value:
                if isinstance(sub, Optional):
                    continue
                raise AssertionError(f"{path}: missing required field {key!r}")
            check(value[key], sub.inner if isinstance(sub, Optional) else sub, f"{path}.{key}")
        extra = sorted(set(value) - set(schema))
        if extra:
            raise AssertionError(f"{path}: unexpected field {extra[0]!r}")
    elif isinstance(schema, list):
        if not isinstance(value, list):
            raise AssertionError(f"{path}: {type(value).__name__} where the schema wants array")
        for i, item in enumerate(value):
            check(item, schema[0], f"{path}[{i}]")
    elif not LEAVES[schema](value):
        raise AssertionError(f"{path}: {value!r} is not {schema}")


def _name(schema: Any) -> str:
    return {dict: "object", list: "array"}.get(type(schema), str(schema))


# --- descriptions -----------------------------------------------------------------------------

PUB_KEY = {"type": Const("tendermint/PubKeyEd25519"), "value": "b64:32"}
# ours: one part per block whose hash is the block's (we do not split blocks into parts).
BLOCK_ID = {"hash": "hash/empty", "parts": {"total": "uint", "hash": "hash/empty"}}
HEADER = {
    "version": {"block": "int64", "app": "int64"},
    "chain_id": "str",
    "height": "int64",
    "time": "time",
    "last_block_id": BLOCK_ID,  # empty at height 1, as CometBFT
    # ours: "" at height 1; CometBFT hashes the empty first commit (SHA-256 of "").
    "last_commit_hash": "hash/empty",
    "data_hash": "hash",
    "validators_hash": "hash",
    "next_validators_hash": "hash",
    # ours: always ""; our header does not commit to consensus params (fixed at genesis).
    "consensus_hash": "hash/empty",
    "app_hash": "hex",  # app-defined length; ours SHA-256
    "last_results_hash": "hash/empty",
    "evidence_hash": "hash",  # we carry no evidence: the empty Merkle root, as CometBFT
    "proposer_address": "addr",
}
# One per validator of the set, in the set's order: BLOCK_ID_FLAG_COMMIT with the
# signer's address, time and signature, or BLOCK_ID_FLAG_ABSENT with Go's zero values
# (types.NewCommitSigAbsent). We record no nil precommits, so never flag 3 (NIL).
COMMIT_SIG = OneOf(
    {
        "block_id_flag": Const(2),
        "validator_address": "addr",
        "timestamp": "time",
        "signature": "sig",
    },
    {
        "block_id_flag": Const(1),
        "validator_address": Const(""),
        "timestamp": Const("0001-01-01T00:00:00Z"),
        "signature": Const(None),
    },
)
COMMIT = {
    "height": "int64",  # schema: integer under Block.last_commit; int64 is a string on the wire
    "round": "uint",
    "block_id": BLOCK_ID,
    "signatures": [COMMIT_SIG],
}
BLOCK = {
    "block_id": BLOCK_ID,
    "block": {
        "header": HEADER,
        "data": {"txs": ["b64"]},  # schema: a bare array; Go's Data is {"txs": [...]}
        "evidence": {"evidence": [ANY_OBJECT]},
        "last_commit": COMMIT,
    },
}
EVENT = {"type": "str", "attributes": [{"key": "str", "value": "str", "index": "bool"}]}
# ExecTxResult / ResponseCheckTx. schema: code as a string and "tags" instead of events
# (Tendermint 0.32); jsonpb gives uint32 code as a number and int64 gas as strings.
TX_RESULT = {
    "code": "uint",
    "data": Null("b64"),
    "log": "str",
    "info": "str",
    "gas_wanted": "int64",
    "gas_used": "int64",
    "events": [EVENT],
    "codespace": "str",
}
TX = {"hash": "hash", "height": "int64", "index": "uint", "tx_result": TX_RESULT, "tx": "b64"}
BROADCAST = {"code": "uint", "data": "hex", "log": "str", "codespace": "str", "hash": "hash"}
NODE_INFO = {
    "protocol_version": {"p2p": "int64", "block": "int64", "app": "int64"},
    "id": "node_id",
    "listen_addr": "str",
    "network": "str",
    "version": "str",
    "channels": "hex",
    "moniker": "str",
    "other": {"tx_index": "str", "rpc_address": "str"},
}
# schema: block.time_iota_ms and evidence.max_age are Tendermint 0.34's; v0.38 has these.
CONSENSUS_PARAMS = {
    # ours: max_txs, a limit CometBFT does not have.
    "block": {"max_bytes": "int64", "max_gas": "int64", "max_txs": Optional("int64")},
    "evidence": {"max_age_num_blocks": "int64", "max_age_duration": "int64", "max_bytes": "int64"},
    "validator": {"pub_key_types": ["str"]},
    "version": {"app": "int64"},
    "abci": {"vote_extensions_enable_height": "int64"},
}
UNCONFIRMED = {"n_txs": "int64", "total": "int64", "total_bytes": "int64", "txs": Null(["b64"])}

RESULTS: dict[str, Any] = {
    "health": {},
    "status": {
        "node_info": NODE_INFO,
        "sync_info": {
            "latest_block_hash": "hash/empty",
            "latest_app_hash": "hex",
            "latest_block_height": "int64",
            "latest_block_time": "time",
            "earliest_block_hash": "hash/empty",
            "earliest_app_hash": "hex",
            "earliest_block_height": "int64",
            "earliest_block_time": "time",
            "catching_up": "bool",
        },
        "validator_info": {"address": "addr", "pub_key": PUB_KEY, "voting_power": "int64"},
    },
    "net_info": {
        "listening": "bool",
        "listeners": ["str"],
        "n_peers": "int64",
        # ours: no connection_status; we keep no per-connection flow-rate monitors.
        "peers": [
            {
                "node_info": NODE_INFO,
                "is_outbound": "bool",
                "connection_status": Optional(ANY_OBJECT),
                "remote_ip": "str",
            }
        ],
    },
    "genesis": {
        "genesis": {
            "genesis_time": "time",
            "chain_id": "str",
            "initial_height": "int64",
            "consensus_params": CONSENSUS_PARAMS,
            "validators": [
                {"address": "addr", "pub_key": PUB_KEY, "power": "int64", "name": "str"}
            ],
            "app_hash": "hex",
            "app_state": ANY_OBJECT,
        },
    },
    "blockchain": {
        "last_height": "int64",
        # schema: block_size integer; Go's int is a string on the wire.
        "block_metas": [
            {"block_id": BLOCK_ID, "block_size": "int64", "header": HEADER, "num_txs": "int64"}
        ],
    },
    "block": BLOCK,
    "block_by_hash": BLOCK,
    "block_results": {
        "height": "int64",
        "txs_results": Null([TX_RESULT]),
        "finalize_block_events": Null([EVENT]),
        "validator_updates": Null([{"pub_key": PUB_KEY, "power": "int64"}]),
        "consensus_param_updates": Null(CONSENSUS_PARAMS),
        "app_hash": "b64",
    },
    "commit": {"signed_header": {"header": HEADER, "commit": COMMIT}, "canonical": "bool"},
    "validators": {
        "block_height": "int64",
        "validators": [
            {
                "address": "addr",
                "pub_key": PUB_KEY,
                "voting_power": "int64",
                "proposer_priority": "int64",
            }
        ],
        "count": "int64",
        "total": "int64",
    },
    "broadcast_tx_async": BROADCAST,
    "broadcast_tx_sync": BROADCAST,
    # schema: deliver_tx (Tendermint 0.34); v0.38 names it tx_result.
    "broadcast_tx_commit": {
        "check_tx": TX_RESULT,
        "tx_result": TX_RESULT,
        "hash": "hash",
        "height": "int64",
    },
    "tx": TX,  # no "proof" unless prove=true (omitempty)
    "tx_search": {"txs": [TX], "total_count": "int64"},
    "abci_info": {
        "response": {
            "data": "str",
            "version": "str",
            "app_version": "int64",
            "last_block_height": "int64",
            "last_block_app_hash": "b64",
        }
    },
    # schema: "proof" and code as a string (Tendermint 0.32); jsonpb gives these.
    "abci_query": {
        "response": {
            "code": "uint",
            "log": "str",
            "info": "str",
            "index": "int64",
            "key": Null("b64"),
            "value": Null("b64"),
            "proofOps": Null(ANY_OBJECT),
            "height": "int64",
            "codespace": "str",
        }
    },
    "num_unconfirmed_txs": UNCONFIRMED,
    "unconfirmed_txs": UNCONFIRMED,
}


# --- the checker checks -----------------------------------------------------------------------

SHORT_KEY = base64.b64encode(bytes(31)).decode()  # an Ed25519 key is 32 bytes


@pytest.mark.parametrize(
    "value, schema, where",
    [
        ({"a": {"height": 5}}, {"a": {"height": "int64"}}, r"\$\.a\.height: 5 is not int64"),
        ({"a": {}}, {"a": {"hash": "hash"}}, r"\$\.a: missing required field 'hash'"),
        ({"h": "ab" * 32}, {"h": "hash"}, r"\$\.h: 'abab.*' is not hash"),
        ({"h": "AB" * 31}, {"h": "hash"}, r"\$\.h: .* is not hash"),
        ({"t": "2026-01-01T00:00:00.1234567890Z"}, {"t": "time"}, r"\$\.t"),
        ({"l": [{"x": True}, {"x": 1}]}, {"l": [{"x": "bool"}]}, r"\$\.l\[1\]\.x"),
        ({"k": {"type": PUB_KEY["type"].value, "value": SHORT_KEY}}, {"k": PUB_KEY}, r"\.k\.value"),
        ({"n": None}, {"n": ["str"]}, r"\$\.n: null where the schema wants array"),
        ({"o": 1, "p": 2}, {"o": "uint"}, r"\$: unexpected field 'p'"),
        ({"b": "%%"}, {"b": "b64"}, r"\$\.b"),
        (
            {
                "s": {
                    "block_id_flag": 1,
                    "validator_address": "",
                    "timestamp": "0001-01-01T00:00:00Z",
                    "signature": "c2ln",
                }
            },
            {"s": COMMIT_SIG},
            r"\$\.s: fits no choice",
        ),
        ({"f": True}, {"f": Const(1)}, r"\$\.f: True is not 1"),
    ],
)
def test_the_checker_names_the_first_mismatch(value, schema, where):
    with pytest.raises(AssertionError, match=where):
        check(value, schema)


def test_the_checker_accepts_what_cometbft_sends():
    check(
        {
            "t": "2019-04-22T17:00:00Z",
            "u": "2019-08-05T11:28:49.21730864Z",
            "n": None,
            "h": "",
            "o": {"x": 1},
        },
        {"t": "time", "u": "time", "n": Null(["b64"]), "h": "hash/empty", "o": ANY_OBJECT},
    )


# --- against a running node -------------------------------------------------------------------


async def result_of(node, method: str, params: dict[str, Any] | None = None) -> Any:
    reply = await call(node, method, params)
    assert "error" not in reply, (method, reply)
    assert reply["jsonrpc"] == "2.0" and reply["id"] == 7
    return reply["result"]


async def test_every_method_matches_the_schema(node, tmp_path):
    checked: set[str] = set()

    async def conforms(method: str, params: dict[str, Any] | None = None) -> Any:
        result = await result_of(node, method, params)
        check(result, RESULTS[method], f"{method}.result")
        checked.add(method)
        return result

    tx, _ = transfer(tmp_path, node, 0, 5)
    encoded = base64.b64encode(tx.to_bytes()).decode()
    committed = await conforms("broadcast_tx_commit", {"tx": encoded})
    assert committed["tx_result"]["code"] == 0
    height = committed["height"]
    await wait_for_height([node], int(height) + 1)  # so commit(height) is canonical
    # Nonces 2 and 3 leave a gap after 0: they wait in the mempool, never in a block.
    for method, nonce in (("broadcast_tx_sync", 2), ("broadcast_tx_async", 3)):
        waiting, _ = transfer(tmp_path, node, nonce, 1)
        sent = await conforms(method, {"tx": base64.b64encode(waiting.to_bytes()).decode()})
        assert sent["code"] == 0 and sent["hash"] == waiting.hash.hex().upper()
    found = await conforms("tx", {"hash": base64.b64encode(tx.hash).decode()})
    assert found["tx_result"]["events"] and found["tx"] == encoded
    query = f"tx.height = {height}"
    assert (await conforms("tx_search", {"query": query}))["total_count"] == "1"
    results = await conforms("block_results", {"height": height})
    assert results["txs_results"] and results["txs_results"][0]["events"]
    block = await conforms("block", {"height": height})
    assert block["block"]["data"]["txs"] == [encoded]
    await conforms("block", {"height": "1"})  # the empty last commit and last block id
    block_hash = base64.b64encode(bytes.fromhex(block["block_id"]["hash"])).decode()
    assert (await conforms("block_by_hash", {"hash": block_hash})) == block
    assert (await conforms("commit", {"height": height}))["canonical"] is True
    assert (await conforms("commit"))["canonical"] is False  # the latest: our own commit
    await conforms("blockchain", {"minHeight": "1", "maxHeight": height})
    assert (await conforms("unconfirmed_txs"))["txs"]
    assert (await conforms("num_unconfirmed_txs"))["n_txs"] == "2"
    answer = await conforms("abci_query", {"path": "/token/supply"})
    assert answer["response"]["value"]
    for method in ("health", "status", "net_info", "genesis", "validators", "abci_info"):
        await conforms(method)
    assert checked == set(RESULTS)


async def test_net_info_peers_match_the_schema(tmp_path):
    """Two validators, so that there is a peer to describe: a commit needs them both."""
    nodes = [fast_node(home) for home in init_testnet(tmp_path / "net", 2)]
    try:
        for running in nodes:
            await running.start()
        await wait_for_height(nodes, 1)
        result = await result_of(nodes[0], "net_info")
    finally:
        for running in nodes:
            await running.stop()
    check(result, RESULTS["net_info"], "net_info.result")
    assert [p["node_info"]["id"] for p in result["peers"]] == [nodes[1].peers.node_id]


async def test_block_by_hash_unknown_is_an_empty_result(node):
    """CometBFT answers an unknown block hash with an empty block, not an error."""
    unknown = base64.b64encode(bytes(32)).decode()
    result = await result_of(node, "block_by_hash", {"hash": unknown})
    assert result == {"block_id": {"hash": "", "parts": {"total": 0, "hash": ""}}, "block": None}


async def test_error_shapes_are_cometbfts(node):
    """Texts from rpc/jsonrpc/types/types.go, rpc/core/env.go and rpc/core/tx.go."""
    await wait_for_height([node], 2)
    # The node keeps committing blocks while the test runs: the height it names
    # is the one of the moment it answered, between the two read here.
    before = node.store.height
    error = (await call(node, "block", {"height": "100"}))["error"]
    after = node.store.height
    prefix = "height 100 must be less than or equal to the current blockchain height "
    assert (error["code"], error["message"]) == (-32603, "Internal error")
    assert error["data"].startswith(prefix)
    assert before <= int(error["data"].removeprefix(prefix)) <= after
    internal = [
        ("block", {"height": "0"}, "height must be greater than 0, but got 0"),
        ("tx", {"hash": "AB" * 32}, f"tx ({'AB' * 32}) not found"),
    ]
    for method, params, data in internal:
        error = (await call(node, method, params))["error"]
        assert error == {"code": -32603, "message": "Internal error", "data": data}
    for method, params in (("block", {"height": "abc"}), ("tx", {"hash": "xyz"})):
        error = (await call(node, method, params))["error"]
        assert (error["code"], error["message"]) == (-32602, "Invalid params")
        assert error["data"].startswith("error converting json params to arguments: ")
    unknown = (await call(node, "nosuch"))["error"]
    assert (unknown["code"], unknown["message"]) == (-32601, "Method not found")
    malformed = (await call(node, None, raw=b"{not json"))["error"]
    assert (malformed["code"], malformed["message"]) == (-32700, "Parse error. Invalid JSON")


async def test_transport_error_details_are_cometbfts(node):
    unknown = await call(node, "nosuch")
    assert unknown["error"] == {"code": -32601, "message": "Method not found"}
    malformed = await call(node, None, raw=b"{not json")
    assert "id" not in malformed
    assert malformed["error"]["data"].startswith("error unmarshaling request: ")
    url = f"http://{node.config.rpc.listen_address}"
    async with aiohttp.ClientSession() as session:
        async with session.post(url + "/", data=b"{not json") as response:
            assert response.status == 500  # a request that cannot be read: HTTP 500
        async with session.get(url + "/block?height=abc") as response:
            assert response.status == 500  # the URI form answers every error with HTTP 500
            error = (await response.json())["error"]
        assert error["data"].startswith("error converting http params to arguments: ")
        async with session.get(url + "/subscribe?query=x") as response:
            assert (await response.json())["error"]["code"] == -32601  # only on the socket
    for query in ("tx.height =", "nosuch ~ 1"):
        error = (await call(node, "tx_search", {"query": query}))["error"]
        assert (error["code"], error["message"]) == (-32603, "Internal error")


# --- commits: one signature per validator of the set ----------------------------------------


def test_a_commit_lists_every_validator_in_set_order_the_absent_ones_as_cometbft():
    from cloudchain.ledger import Commit, CommitSig, Validator
    from cloudchain.node.rpc.shapes import commit_json
    from tests.helpers.chain import ACCOUNTS

    validators = [Validator(k.public_key, 10) for k in ACCOUNTS[:3]]
    signed = [
        CommitSig(v.address, 1_767_225_600_123_456_789 + k, bytes([k]) * 64)
        for k, v in enumerate(validators)
        if k != 1
    ]
    commit = Commit(7, 1, b"\xab" * 32, tuple(reversed(signed)))  # the order they came in
    listed = commit_json(commit, validators)
    check(listed, COMMIT, "commit")
    assert [s["block_id_flag"] for s in listed["signatures"]] == [2, 1, 2]
    assert [s["validator_address"] for s in listed["signatures"]] == [
        validators[0].address.hex().upper(),
        "",
        validators[2].address.hex().upper(),
    ]
    assert listed["signatures"][1] == {
        "block_id_flag": 1,
        "validator_address": "",
        "timestamp": "0001-01-01T00:00:00Z",
        "signature": None,
    }
    assert listed["signatures"][2]["timestamp"] == "2026-01-01T00:00:00.123456791Z"
    assert base64.b64decode(listed["signatures"][2]["signature"]) == bytes([2]) * 64
    assert commit_json(None, validators)["signatures"] == []  # before height 1: no commit


async def test_a_stopped_validator_is_absent_from_the_commits_of_a_running_network(tmp_path):
    """Four validators, one never started: 3/4 of the power commits, and every commit lists
    all four in genesis order, the fourth absent."""
    homes = init_testnet(tmp_path / "net", 4)
    nodes = [fast_node(home) for home in homes[:3]]
    try:
        for running in nodes:
            await running.start()
        await wait_for_height(nodes, 3)
        block = await result_of(nodes[0], "block", {"height": "3"})
        commit = await result_of(nodes[0], "commit", {"height": "2"})
        chain = await result_of(nodes[0], "blockchain", {"minHeight": "1", "maxHeight": "3"})
    finally:
        for running in nodes:
            await running.stop()
    check(block, RESULTS["block"], "block.result")
    check(commit, RESULTS["commit"], "commit.result")
    check(chain, RESULTS["blockchain"], "blockchain.result")
    genesis = [v.address.hex().upper() for v in nodes[0].app.genesis.validators]
    for listed in (block["block"]["last_commit"], commit["signed_header"]["commit"]):
        # +2/3 of the power needs all three running validators; the fourth is absent
        assert [s["block_id_flag"] for s in listed["signatures"]] == [2, 2, 2, 1]
        assert [s["validator_address"] for s in listed["signatures"]] == [*genesis[:3], ""]


# --- the WebSocket's events ------------------------------------------------------------------

# EventDataNewBlock: its ResponseFinalizeBlock is written by CometBFT's encoder with Go's
# omitempty (no jsonpb MarshalJSON), so what is nil in Go is absent; the ExecTxResults in
# it are jsonpb's, every field present. An abci.Event there is omitempty as well.
FINALIZE_EVENT = {"type": "str", "attributes": Optional(EVENT["attributes"])}
FINALIZE_BLOCK = {
    "events": Optional([FINALIZE_EVENT]),
    "tx_results": Optional([TX_RESULT]),
    "validator_updates": Optional([{"pub_key": PUB_KEY, "power": "int64"}]),
    "consensus_param_updates": Optional(CONSENSUS_PARAMS),
    "app_hash": Optional("b64"),
}
EVENTS: dict[str, Any] = {
    "NewBlock": dict(BLOCK, result_finalize_block=FINALIZE_BLOCK),
    "NewBlockHeader": {"header": HEADER},
    # EventDataTx embeds an abci.TxResult: omitempty, so index 0 is absent.
    "Tx": {
        "TxResult": {"height": "int64", "index": Optional("uint"), "tx": "b64", "result": TX_RESULT}
    },
}


def event_reply(kind: str) -> dict[str, Any]:
    """A WebSocket event message: a JSON-RPC response carrying CometBFT's ResultEvent."""
    return {
        "jsonrpc": Const("2.0"),
        "id": "uint",
        "result": {
            "query": "str",
            "events": ANY_OBJECT,
            "data": {"type": Const(f"tendermint/event/{kind}"), "value": EVENTS[kind]},
        },
    }


async def test_websocket_events_match_cometbfts_shapes_field_by_field(node, tmp_path):
    queries = {
        "NewBlock": "tm.event='NewBlock'",
        "NewBlockHeader": "tm.event='NewBlockHeader'",
        "Tx": "tm.event='Tx'",
    }
    url = f"ws://{node.config.rpc.listen_address}/websocket"
    got: dict[str, list[dict[str, Any]]] = {kind: [] for kind in queries}
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        for number, query in enumerate(queries.values(), start=1):
            await ws.send_json(
                {"jsonrpc": "2.0", "id": number, "method": "subscribe", "params": {"query": query}}
            )
        sent = [transfer(tmp_path, node, nonce, 1 + nonce)[0] for nonce in range(3)]
        for tx in sent:  # sent together, so that a block holds more than one
            await ws.send_json(
                {
                    "jsonrpc": "2.0",
                    "id": 100,
                    "method": "broadcast_tx_async",
                    "params": {"tx": base64.b64encode(tx.to_bytes()).decode()},
                }
            )
        async with asyncio.timeout(30):
            while len(got["Tx"]) < len(sent):  # a block's NewBlock comes before its Txs
                message = await ws.receive_json()
                if "query" in message.get("result", {}):
                    kind = message["result"]["data"]["type"].removeprefix("tendermint/event/")
                    check(message, event_reply(kind), f"{kind} event")
                    got[kind].append(message["result"]["data"]["value"])
    assert got["NewBlock"] and got["NewBlockHeader"]
    for value in got["NewBlock"]:
        stored = node.store.block(int(value["block"]["header"]["height"]))
        assert len(value["block"]["last_commit"]["signatures"]) == len(node.validators)
        assert len(value["result_finalize_block"]["tx_results"]) == len(stored.txs)
    txs = [value["TxResult"] for value in got["Tx"]]
    assert [base64.b64decode(t["tx"]) for t in txs] == [tx.to_bytes() for tx in sent]
    for t in txs:
        stored = node.store.block(int(t["height"]))
        index = [x.hash for x in stored.txs].index(
            next(tx.hash for tx in sent if tx.to_bytes() == base64.b64decode(t["tx"]))
        )
        assert ("index" in t) == (index != 0) and t.get("index", 0) == index
