"""The JSON-RPC server of a running one-validator node, over HTTP on loopback."""

import base64
from urllib.parse import quote

import aiohttp
import pytest

from cloudchain import codec
from tests.helpers.network import wait_for_height
from tests.helpers.rpc import call, transfer


async def test_status_and_block_in_cometbft_shapes(node):
    status = (await call(node, "status"))["result"]
    sync = status["sync_info"]
    assert int(sync["latest_block_height"]) >= 1 and isinstance(sync["latest_block_height"], str)
    assert sync["latest_block_hash"] == sync["latest_block_hash"].upper()
    assert sync["latest_block_time"].endswith("Z") and len(sync["latest_block_time"]) == 30
    assert status["node_info"]["network"] == node.chain_id
    assert status["validator_info"]["pub_key"]["type"] == "tendermint/PubKeyEd25519"
    block = (await call(node, "block", {"height": "1"}))["result"]
    header = block["block"]["header"]
    assert header["height"] == "1" and header["chain_id"] == node.chain_id
    assert block["block_id"]["hash"] == node.store.block(1).hash.hex().upper()
    for field in (
        "last_block_id",
        "last_commit_hash",
        "data_hash",
        "validators_hash",
        "next_validators_hash",
        "consensus_hash",
        "app_hash",
        "last_results_hash",
        "evidence_hash",
        "proposer_address",
        "version",
        "time",
    ):
        assert field in header


async def test_broadcast_commit_then_tx_and_abci_query(node, tmp_path):
    tx, recipient = transfer(tmp_path, node, 0, 25)
    encoded = base64.b64encode(tx.to_bytes()).decode()
    committed = (await call(node, "broadcast_tx_commit", {"tx": encoded}))["result"]
    assert committed["check_tx"]["code"] == 0 and committed["tx_result"]["code"] == 0
    assert committed["hash"] == tx.hash.hex().upper() and int(committed["height"]) >= 1
    found = (await call(node, "tx", {"hash": base64.b64encode(tx.hash).decode()}))["result"]
    assert found["height"] == committed["height"] and found["index"] == 0
    assert base64.b64decode(found["tx"]) == tx.to_bytes()
    result = found["tx_result"]
    # CometBFT's ExecTxResult shape: a code, strings for gas, and events whose
    # attributes are strings (the fee's amount too), as its clients decode them.
    assert result["code"] == 0 and isinstance(result["log"], str) and result["data"] is None
    assert (result["gas_wanted"], result["gas_used"]) == ("0", "0")
    assert [e["type"] for e in result["events"]] == ["fee", "message", "transfer"]
    assert result["events"][0]["attributes"] == [
        {"key": "amount", "value": str(tx.fee), "index": True},
        {"key": "payer", "value": tx.sender_address, "index": True},
    ]
    for event in result["events"]:
        for attribute in event["attributes"]:
            assert isinstance(attribute["key"], str) and isinstance(attribute["value"], str)
    query = await call(
        node, "abci_query", {"path": "/token/balance", "data": recipient.address.encode().hex()}
    )
    answer = codec.decode(base64.b64decode(query["result"]["response"]["value"]))
    assert answer["balance"] == 1_000_000_025
    replay = (await call(node, "broadcast_tx_sync", {"tx": encoded}))["result"]
    assert replay["code"] == 5 and "already used" in replay["log"]  # nonce too low


@pytest.mark.parametrize(
    "method, params, raw, code, data",
    [
        (None, None, b"{not json", -32700, ""),
        (None, None, b"7", -32600, "request object"),
        (None, None, b"[" * 100_000, -32700, "error unmarshaling request"),  # too deep
        (None, None, b'{"jsonrpc": "2.0", "id": [1], "method": "health"}', -32600, "id must"),
        ("nosuch", {}, None, -32601, ""),
        ("block", {"height": "abc"}, None, -32602, "height"),
        ("block", {"height": "999999"}, None, -32603, "must be less than or equal"),
        ("block", {"height": "\u00b2"}, None, -32602, "height"),  # "²".isdigit() is True
        ("block", {"height": "\u0661"}, None, -32602, "height"),  # an Arabic-Indic one
        ("block", {"height": "9" * 30}, None, -32602, "int64"),
        ("block", {"height": "9223372036854775808"}, None, -32602, "int64"),  # int64 max + 1
        ("block", {"height": 2**70}, None, -32602, "int64"),
        ("block", ["1", "2"], None, -32602, "expected 1 parameters ([height]), got 2"),
        ("block", 5, None, -32602, "object or an array"),
        ("tx", {"hash": "00" * 32}, None, -32603, "not found"),
        ("tx", {"hash": "xyz"}, None, -32602, "hash"),
        ("broadcast_tx_sync", {"tx": "%%%"}, None, -32602, "base64"),
        ("abci_query", {"path": "/token/supply", "data": "zz"}, None, -32602, "hex"),
        # NaN and Infinity are not JSON (Python's json module would take them).
        (None, None, b'{"jsonrpc": "2.0", "id": NaN, "method": "health"}', -32700, "'N'"),
        (None, None, b'{"jsonrpc": "2.0", "id": Infinity, "method": "health"}', -32700, ""),
        (None, None, b'{"jsonrpc": "2.0", "id": -Infinity, "method": "health"}', -32700, ""),
        (None, None, b'{"jsonrpc": "2.0", "id": 1e999, "method": "health"}', -32700, ""),
        (
            None,
            None,
            b'{"jsonrpc": "2.0", "id": 1, "method": "block", "params": {"height": NaN}}',
            -32700,
            "error unmarshaling request",
        ),
        ("block", {"height": "-1"}, None, -32603, "height must be greater than 0, but got -1"),
        ("block_results", {"height": -5}, None, -32603, "greater than 0, but got -5"),
        ("commit", {"height": "-1"}, None, -32603, "greater than 0, but got -1"),
        ("validators", {"height": "-1"}, None, -32603, "greater than 0, but got -1"),
        ("blockchain", {"minHeight": "-1"}, None, -32603, "heights must be non-negative"),
        ("blockchain", {"maxHeight": -3}, None, -32603, "heights must be non-negative"),
        ("validators", {"page": "2"}, None, -32603, "page should be within [1, 1] range, given 2"),
        ("validators", {"page": "0"}, None, -32603, "page should be within [1, 1] range, given 0"),
        ("validators", {"page": "x"}, None, -32602, "page"),
    ],
)
async def test_bad_requests_get_json_rpc_errors(node, method, params, raw, code, data):
    reply = await call(node, method, params, raw)
    assert reply["error"]["code"] == code
    assert data in reply["error"].get("data", "")
    assert "Traceback" not in str(reply)
    if raw is not None and code == -32700:
        assert "id" not in reply  # nothing of the request is echoed


async def get(node, path, method="GET"):
    url = f"http://{node.config.rpc.listen_address}/{path}"
    async with aiohttp.ClientSession() as session, session.request(method, url) as response:
        if response.content_type != "application/json":
            return response.status, await response.text()
        return response.status, await response.json()


async def test_uri_get_form(node, tmp_path):
    _, reply = await get(node, "block?height=1")
    assert reply["result"]["block"]["header"]["height"] == "1"
    _, reply = await get(node, 'block?height="1"')
    assert reply["result"]["block"]["header"]["height"] == "1"
    # tx is bytes, as CometBFT's http_uri_handler reads them: 0x-hex, or a quoted string.
    tx, _ = transfer(tmp_path, node, 0, 5)
    _, reply = await get(node, f"broadcast_tx_sync?tx=0x{tx.to_bytes().hex()}")
    assert reply["result"]["code"] == 0 and reply["result"]["hash"] == tx.hash.hex().upper()
    _, reply = await get(node, 'broadcast_tx_sync?tx="hello"')
    assert reply["result"]["hash"] == codec.sha256(b"hello").hex().upper()
    status, reply = await get(node, "broadcast_tx_sync?tx=0xZZ")
    assert status == 500 and reply["error"]["code"] == -32602
    assert reply["error"]["data"].startswith("error converting http params to arguments: ")


def test_uri_params_follow_cometbfts_rules_per_go_type():
    from multidict import MultiDict

    from cloudchain.node.rpc.params import uri_params

    # The method's own params only, the first value of each, an empty one absent.
    assert uri_params("block", MultiDict([("height", "5"), ("height", "6"), ("x", "1")])) == {
        "height": "5"
    }
    assert uri_params("block", MultiDict(height="")) == {}
    given = MultiDict(path='"/a b"', data='"ab"', height='"3"', prove="true")
    assert uri_params("abci_query", given) == {
        "path": "/a b",
        "data": "6162",
        "height": "3",
        "prove": True,
    }
    assert uri_params("abci_query", MultiDict(data="0xAB01")) == {"data": "ab01"}
    assert uri_params("tx", MultiDict(hash="0x" + "ab" * 32)) == {
        "hash": base64.b64encode(bytes.fromhex("ab" * 32)).decode()
    }
    assert uri_params("tx_search", MultiDict(query="0x" + b"a.b EXISTS".hex())) == {
        "query": "a.b EXISTS"
    }
    assert uri_params("broadcast_tx_sync", MultiDict(tx='"hi"')) == {"tx": "aGk="}


async def test_uri_form_reads_each_param_by_its_go_type(node, tmp_path):
    """CometBFT's http_uri_handler: a "quoted" value is a JSON string (for bytes, the raw
    bytes of the text), 0x... is hex-decoded for strings and bytes and refused for
    numbers, and the reply's id is -1."""
    status, reply = await get(node, "status")
    assert status == 200 and reply["id"] == -1
    assert reply["result"]["node_info"]["network"] == node.chain_id
    tx, recipient = transfer(tmp_path, node, 0, 25)
    _, reply = await get(node, f"broadcast_tx_commit?tx=0x{tx.to_bytes().hex()}")
    height = reply["result"]["height"]
    address = recipient.address
    for data in (f'"{address}"', f"0x{address.encode().hex()}"):
        status, reply = await get(node, f'abci_query?path="/token/balance"&data={data}')
        assert status == 200, reply
        value = reply["result"]["response"]["value"]
        assert codec.decode(base64.b64decode(value))["balance"] == 1_000_000_025
    supply_path = "0x" + b"/token/supply".hex()  # a string param may be hex too
    _, reply = await get(node, f"abci_query?path={supply_path}")
    assert reply["result"]["response"]["code"] == 0 and reply["result"]["response"]["value"]
    _, reply = await get(node, f"tx?hash=0x{tx.hash.hex()}")
    assert reply["result"]["height"] == height
    query = quote(f"\"transfer.recipient = '{address}' AND tx.height >= {height}\"")
    _, reply = await get(node, f'tx_search?query={query}&order_by="desc"&per_page=5')
    assert [t["hash"] for t in reply["result"]["txs"]] == [tx.hash.hex().upper()]
    status, reply = await get(node, 'tx_search?query="tx.height>0"&order_by="sideways"')
    assert status == 500 and reply["error"]["code"] == -32603
    _, reply = await get(node, "validators?height=1&page=1&per_page=1")
    assert reply["result"]["block_height"] == "1" and reply["result"]["count"] == "1"
    assert reply["result"]["total"] == "1"
    status, reply = await get(node, 'validators?height="1"')
    assert status == 200 and reply["result"]["block_height"] == "1"
    status, reply = await get(node, "block?height=0x1")
    assert status == 500 and reply["error"]["code"] == -32602
    assert reply["error"]["data"] == (
        "error converting http params to arguments: got a hex string arg, but expected 'int64'"
    )
    status, reply = await get(node, "validators?page=0x1")
    assert "expected 'int'" in reply["error"]["data"]
    status, reply = await get(node, "status", method="POST")  # Go's mux: any verb
    assert status == 200 and "node_info" in reply["result"]


async def test_a_path_that_names_no_method_is_a_plain_404(node):
    for path in ("nosuch", "nosuch?height=1", "blobs"):
        status, text = await get(node, path)
        assert (status, text) == (404, "404 page not found\n")
    status, reply = await get(node, "nosuch", method="POST")
    assert (status, reply) == (404, "404 page not found\n")
    status, reply = await get(node, "unsubscribe_all")  # exists, but only on the socket
    assert status == 404 and reply["error"] == {"code": -32601, "message": "Method not found"}


async def test_positional_params_map_onto_the_names_in_order(node):
    await wait_for_height([node], 2)
    block = (await call(node, "block", ["1"]))["result"]
    assert block["block"]["header"]["height"] == "1"
    chain = (await call(node, "blockchain", ["1", "2"]))["result"]
    assert [m["header"]["height"] for m in chain["block_metas"]] == ["2", "1"]
    assert (await call(node, "health", []))["result"] == {}
    tx_hash = base64.b64encode(bytes(32)).decode()
    missing = await call(node, "tx", [tx_hash, False])  # hash, prove
    assert missing["error"]["code"] == -32603 and "not found" in missing["error"]["data"]


async def test_the_other_read_methods(node, tmp_path):
    await wait_for_height([node], 2)
    assert (await call(node, "health"))["result"] == {}
    genesis = (await call(node, "genesis"))["result"]["genesis"]
    assert genesis["chain_id"] == node.chain_id and genesis["validators"][0]["power"] == "10"
    info = (await call(node, "abci_info"))["result"]["response"]
    assert int(info["last_block_height"]) >= 2
    validators = (await call(node, "validators", {"height": "1"}))["result"]
    assert validators["count"] == "1" and validators["validators"][0]["voting_power"] == "10"
    commit = (await call(node, "commit", {"height": "1"}))["result"]
    assert commit["canonical"] is True
    assert commit["signed_header"]["commit"]["block_id"]["hash"] == (
        node.store.block(1).hash.hex().upper()
    )
    block_hash = base64.b64encode(node.store.block(1).hash).decode()
    by_hash = (await call(node, "block_by_hash", {"hash": block_hash}))["result"]
    assert by_hash["block"]["header"]["height"] == "1"
    missing = await call(node, "block_by_hash", {"hash": base64.b64encode(bytes(32)).decode()})
    assert missing["result"]["block"] is None  # as CometBFT: an empty result, not an error
    tx, _ = transfer(tmp_path, node, 0, 3)
    encoded = base64.b64encode(tx.to_bytes()).decode()
    committed = (await call(node, "broadcast_tx_commit", {"tx": encoded}))["result"]
    results = (await call(node, "block_results", {"height": committed["height"]}))["result"]
    assert results["txs_results"][0]["code"] == 0
    later, _ = transfer(tmp_path, node, 1, 4)
    encoded = base64.b64encode(later.to_bytes()).decode()
    accepted = (await call(node, "broadcast_tx_async", {"tx": encoded}))["result"]
    assert accepted["hash"] == later.hash.hex().upper()
    pending = (await call(node, "num_unconfirmed_txs"))["result"]
    assert pending["n_txs"].isdigit() and pending["total_bytes"].isdigit()
    listed = (await call(node, "unconfirmed_txs", {"limit": "5"}))["result"]
    assert all(base64.b64decode(t) for t in listed["txs"])
    assert (await call(node, "net_info"))["result"]["n_peers"] == "0"


async def test_blockchain_and_metrics(node, tmp_path):
    await wait_for_height([node], 3)
    chain = (await call(node, "blockchain", {"minHeight": "1", "maxHeight": "3"}))["result"]
    assert [m["header"]["height"] for m in chain["block_metas"]] == ["3", "2", "1"]
    assert all(m["num_txs"].isdigit() for m in chain["block_metas"])
    bad = await call(node, "blockchain", {"minHeight": "3", "maxHeight": "2"})
    assert bad["error"]["code"] == -32603
    tx, _ = transfer(tmp_path, node, 0, 3)
    await call(node, "broadcast_tx_commit", {"tx": base64.b64encode(tx.to_bytes()).decode()})
    url = f"http://{node.config.rpc.listen_address}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        text = await response.text()
        assert response.headers["Content-Type"].startswith("text/plain")
    values = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    assert float(values["cloudchain_consensus_height"]) >= 3
    assert float(values["cloudchain_consensus_txs_committed_total"]) >= 1
    assert "cloudchain_mempool_size" in values and "cloudchain_p2p_peers" in values
    # Alone, the node queues nothing for peers, but the series of what it sent exist.
    assert values['cloudchain_p2p_message_send_bytes_total{channel="tx"}'] == "0.0"
    assert values['cloudchain_p2p_message_send_bytes_total{channel="consensus"}'] == "0.0"
    assert values["cloudchain_p2p_refused_messages_total"] == "0.0"


async def test_tx_search_pages_and_errors(node, tmp_path):
    hashes = []
    for nonce in range(3):
        tx, recipient = transfer(tmp_path, node, nonce, 10 + nonce)
        await call(node, "broadcast_tx_commit", {"tx": base64.b64encode(tx.to_bytes()).decode()})
        hashes.append(tx.hash.hex().upper())
    query = f"transfer.recipient = '{recipient.address}'"
    page = (await call(node, "tx_search", {"query": query, "per_page": "2"}))["result"]
    assert page["total_count"] == "3" and [t["hash"] for t in page["txs"]] == hashes[:2]
    last = await call(node, "tx_search", {"query": query, "per_page": "2", "page": "2"})
    assert [t["hash"] for t in last["result"]["txs"]] == hashes[2:]
    desc = (await call(node, "tx_search", {"query": query, "order_by": "desc"}))["result"]
    assert [t["hash"] for t in desc["txs"]] == hashes[::-1]
    bad = await call(node, "tx_search", {"query": "tx.height ="})
    assert bad["error"] == {
        "code": -32603,
        "message": "Internal error",
        "data": "offset 11: EOF (= needs an operand)",
    }
    for order_by in ("ascending", "DESC", " asc"):
        wrong = await call(node, "tx_search", {"query": query, "order_by": order_by})
        assert wrong["error"] == {
            "code": -32603,
            "message": "Internal error",
            "data": "expected order_by to be either `asc` or `desc` or empty",
        }
    empty = (await call(node, "tx_search", {"query": query, "order_by": ""}))["result"]
    assert [t["hash"] for t in empty["txs"]] == hashes  # "" is ascending
    long = await call(node, "tx_search", {"query": "a.b EXISTS" + " " * 600})
    assert long["error"]["data"] == "maximum query length exceeded"
    assert (await call(node, "tx_search", {"query": 5}))["error"]["code"] == -32602
    for per_page in ("0", "-1"):  # below 1: the default, 30 (CometBFT's validatePerPage)
        every = await call(node, "tx_search", {"query": query, "per_page": per_page})
        assert [t["hash"] for t in every["result"]["txs"]] == hashes
    for page in ("0", "9", "-1"):
        beyond = await call(node, "tx_search", {"query": query, "page": page})
        assert beyond["error"] == {
            "code": -32603,
            "message": "Internal error",
            "data": f"page should be within [1, 1] range, given {page}",
        }
    pending = await call(node, "unconfirmed_txs", {"limit": "-1"})  # the default, too
    assert pending["result"]["total"].isdigit()
