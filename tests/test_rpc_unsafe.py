"""`[rpc] unsafe`: the operator's methods refuse by default, the same over every transport.

blob_pin, blob_unpin and blob_gc (node/rpc/admin.py's OPERATOR_METHODS) answer only on a
node whose config.toml says `[rpc] unsafe = true`; otherwise POST, the URI form, a batch
and the WebSocket all get -32601 with data naming the setting, and nothing changes.
blob_stat, which only reads, answers either way; so do the CLI verbs, with a clear error.
"""

import io
import json
import tomllib

import aiohttp
import pytest

from cloudchain.blobs import import_bytes
from cloudchain.client import Client
from cloudchain.node.config import ConfigError, NodeConfig
from cloudchain.node.rpc.admin import OPERATOR_METHODS
from cloudchain.node.testnet import init_testnet
from tests.helpers.cli import run_main, verbs
from tests.helpers.network import DEADLINE_S, start_node, wait_for_height
from tests.helpers.rpc import call, ws_url

DATA = b"kept by the node whatever an anonymous caller asks\n"
ROOT = import_bytes(DATA)[1].root
SETTING = "set [rpc] unsafe = true in config.toml to enable it"


def url_of(node) -> str:
    return f"http://{node.config.rpc.listen_address}"


def params_of(method: str) -> dict[str, str]:
    return {} if method == "blob_gc" else {"cid": str(ROOT)}


def refused_as_disabled(error: dict, method: str) -> bool:
    return error == {
        "code": -32601,
        "message": "Method not found",
        "data": f"{method} is an operator method: {SETTING}",
    }


@pytest.fixture
async def unsafe_node(tmp_path):
    """A running one-validator node with `[rpc] unsafe = true`."""
    running = await start_node(tmp_path, unsafe=True)
    try:
        await wait_for_height([running], 1)
        yield running
    finally:
        await running.stop()


async def uri_get(node, method: str, query: str = "") -> tuple[int, dict]:
    url = f"{url_of(node)}/{method}{query}"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


async def over_websocket(node, requests: list[dict]) -> list[dict]:
    """Send each request over one WebSocket; the replies, in order."""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(ws_url(node)) as ws,
    ):
        replies = []
        for body in requests:
            await ws.send_json(body)
            replies.append(await ws.receive_json(timeout=DEADLINE_S))
        return replies


def request(method: str, request_id: int, params=None) -> dict:
    body = params_of(method) if params is None else params
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": body}


# --- off by default ---------------------------------------------------------------------------


def test_unsafe_is_off_by_default_and_a_bool(tmp_path):
    assert NodeConfig().rpc.unsafe is False
    (home,) = init_testnet(tmp_path / "net", 1)
    text = (home / "config" / "config.toml").read_text()
    assert tomllib.loads(text)["rpc"]["unsafe"] is False  # written out, for the operator to see
    assert NodeConfig.from_dict({"rpc": {"unsafe": True}}).rpc.unsafe is True
    with pytest.raises(ConfigError, match=r"\[rpc\] unsafe: expected bool"):
        NodeConfig.from_dict({"rpc": {"unsafe": 1}})
    (opened,) = init_testnet(tmp_path / "open", 1, rpc_unsafe=True)
    assert NodeConfig.load(opened / "config" / "config.toml").rpc.unsafe is True
    cli_home = tmp_path / "cli"
    code, _, err = run_main(
        "testnet",
        "init",
        "--validators",
        "1",
        "--base-port",
        "0",
        "--home",
        str(cli_home),
        "--rpc-unsafe",
    )
    assert code == 0, err
    assert NodeConfig.load(cli_home / "node0" / "config" / "config.toml").rpc.unsafe


async def test_each_operator_method_refuses_over_post_uri_batch_and_websocket(node):
    await Client(url_of(node)).blob_put(io.BytesIO(DATA))
    pins_before = node.blobs.pins()
    for method in OPERATOR_METHODS:
        posted = await call(node, method, params_of(method))
        assert refused_as_disabled(posted["error"], method), posted
        # Refused before its params are read: a malformed CID gets the same answer.
        malformed = await call(node, method, {"cid": "QmNotACid"})
        assert refused_as_disabled(malformed["error"], method), malformed
        status, got = await uri_get(node, method, f'?cid="{ROOT}"' if method != "blob_gc" else "")
        assert status == 404 and refused_as_disabled(got["error"], method), got
        assert got["id"] == -1
    batch = [request(method, i) for i, method in enumerate(OPERATOR_METHODS)]
    batch.append(request("blob_stat", 99))
    replies = await call(node, None, raw=json.dumps(batch).encode())
    by_id = {reply["id"]: reply for reply in replies}
    for i, method in enumerate(OPERATOR_METHODS):
        assert refused_as_disabled(by_id[i]["error"], method)
    assert by_id[99]["result"]["cid"] == str(ROOT)  # the read-only method answers
    ws_replies = await over_websocket(node, batch)
    for i, method in enumerate(OPERATOR_METHODS):
        assert ws_replies[i]["id"] == i and refused_as_disabled(ws_replies[i]["error"], method)
    assert ws_replies[-1]["result"]["size"] == len(DATA)
    # Nothing changed: the blob is here, whole, and its pins are as they were.
    assert node.blobs.pins() == pins_before and node.blobs.stat(ROOT).complete


async def test_the_cli_admin_verbs_name_the_setting(node):
    url = url_of(node)
    await Client(url).blob_put(io.BytesIO(DATA))
    pin, unpin, gc, stat = await verbs(
        url,
        ("blob", "pin", str(ROOT)),
        ("blob", "unpin", str(ROOT)),
        ("blob", "gc"),
        ("blob", "stat", str(ROOT)),
    )
    for (code, out, err), verb in ((pin, "pin"), (unpin, "unpin"), (gc, "gc")):
        assert code == 1 and out == ""
        assert err == (
            f"error: the node at {url} refuses `blob {verb}`: "
            f"blob_{verb} is an operator method: {SETTING}\n"
        )
    assert stat[0] == 0 and "complete" in stat[1]


# --- on ---------------------------------------------------------------------------------------


async def test_with_unsafe_each_operator_method_answers_on_every_transport(unsafe_node):
    node = unsafe_node
    await Client(url_of(node)).blob_put(io.BytesIO(DATA))
    pinned = await call(node, "blob_pin", {"cid": str(ROOT)})
    assert pinned["result"]["pinned"] is True and ROOT in node.blobs.pins()
    status, unpinned = await uri_get(node, "blob_unpin", f'?cid="{ROOT}"')
    assert status == 200 and unpinned["result"] == {
        "cid": str(ROOT),
        "pinned": False,
        "changed": True,
    }
    assert ROOT not in node.blobs.pins()
    (gc,) = await over_websocket(node, [request("blob_gc", 5)])
    assert gc["id"] == 5 and gc["result"]["blocks_removed"] >= 1
    assert not node.blobs.has(ROOT)  # neither pinned nor anchored: collected
    malformed = await call(node, "blob_pin", {"cid": "QmNotACid"})
    assert malformed["error"]["code"] == -32602  # enabled: its params are read as usual
    pin, gc_out = await verbs(url_of(node), ("blob", "pin", str(ROOT)), ("blob", "gc", "--json"))
    assert pin[0] == 0 and "pinned" in pin[1]
    assert gc_out[0] == 0 and json.loads(gc_out[1])["blocks_removed"] == 0
