"""The client's subscriptions (async and blocking) against a running node."""

import asyncio
import contextlib
import threading

import pytest
from aiohttp import web

from cloudchain.client import Client, RPCClientError, SyncClient
from cloudchain.client.subscriptions import SubscriptionEvent, websocket_url
from tests.helpers.network import DEADLINE_S


@pytest.fixture
def node_rpc_limits():
    """The `node` fixture's node (tests/conftest.py) takes two subscribing clients."""
    return {"max_subscription_clients": 2}


def url(node):
    return f"http://{node.config.rpc.listen_address}"


async def test_async_subscription_follows_blocks_in_order(node):
    client = Client(url(node))
    heights = []
    async with client.subscribe("tm.event='NewBlock'", "tm.event='NewBlockHeader'") as events:
        async with asyncio.timeout(DEADLINE_S):
            async for event in events:
                heights.append((event.height, event.kind))
                if len(heights) == 6:
                    break
    blocks = [h for h, kind in heights if kind == "NewBlock"]
    assert blocks == list(range(blocks[0], blocks[0] + len(blocks)))
    assert heights[0][1] == "NewBlock"  # NewBlock first, then its header, at every height
    assert heights == [(h, k) for h in blocks for k in ("NewBlock", "NewBlockHeader")][:6]


async def test_a_stream_changes_its_queries_while_it_runs(node):
    blocks, headers = "tm.event='NewBlock'", "tm.event='NewBlockHeader'"
    async with Client(url(node)).subscribe(blocks) as events:
        assert events.subscribed == (blocks,)
        async with asyncio.timeout(DEADLINE_S):
            assert (await anext(events)).kind == "NewBlock"
            await events.subscribe(headers)
            assert events.subscribed == (blocks, headers)
            kinds = [(await anext(events)).kind for _ in range(4)]
            assert "NewBlockHeader" in kinds
            await events.unsubscribe(blocks)  # nothing of it yielded from here on
            assert events.subscribed == (headers,)
            after = [await anext(events) for _ in range(3)]
            assert [e.kind for e in after] == ["NewBlockHeader"] * 3
            assert [e.height for e in after] == list(range(after[0].height, after[0].height + 3))
            with pytest.raises(RPCClientError, match="subscription not found") as raised:
                await events.unsubscribe(blocks)
            assert raised.value.code == -32603
            await events.unsubscribe_all()
            assert events.subscribed == ()
            assert [e async for e in events] == []  # following nothing, the stream ends
        assert not node.rpc.bus.has_subscribers


@contextlib.asynccontextmanager
async def scripted_node(on_subscribe):
    """A WebSocket server on a free loopback port that answers each subscribe request with
    what `on_subscribe(request)` returns: the messages to send, in order."""

    async def websocket(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            for reply in on_subscribe(message.json()):
                await ws.send_json(reply)
        return ws

    app = web.Application()
    app.router.add_get("/websocket", websocket)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def test_an_event_arriving_before_the_next_subscribe_reply_is_kept():
    def event(request_id, height):
        return {
            "jsonrpc": "2.0",
            "id": request_id,
            "result": {
                "query": "tm.event='NewBlock'",
                "events": {"tm.event": ["NewBlock"]},
                "data": {
                    "type": "tendermint/event/NewBlock",
                    "value": {"block": {"header": {"height": str(height)}}},
                },
            },
        }

    def on_subscribe(request):
        replies = [event(1, 7)] if request["id"] == 2 else []  # the first one's event first
        return [*replies, {"jsonrpc": "2.0", "id": request["id"], "result": {}}]

    async with scripted_node(on_subscribe) as url:
        queries = ("tm.event='NewBlock'", "tm.event='Tx'")
        async with Client(url).subscribe(*queries) as events:
            first = await asyncio.wait_for(anext(events), DEADLINE_S)
    assert (first.kind, first.height, first.query) == ("NewBlock", 7, "tm.event='NewBlock'")


async def test_an_event_larger_than_aiohttps_default_message_bound_is_read_whole():
    """A full block's NewBlock event is more than aiohttp's default 4 MiB a message."""
    padding = "A" * (5 * 1024 * 1024)

    def on_subscribe(request):
        big = {
            "jsonrpc": "2.0",
            "id": request["id"],
            "result": {
                "query": "tm.event='NewBlock'",
                "events": {"tm.event": ["NewBlock"]},
                "data": {
                    "type": "tendermint/event/NewBlock",
                    "value": {"block": {"header": {"height": "3"}, "data": {"txs": [padding]}}},
                },
            },
        }
        return [{"jsonrpc": "2.0", "id": request["id"], "result": {}}, big]

    async with (
        scripted_node(on_subscribe) as url,
        Client(url).subscribe("tm.event='NewBlock'") as events,
    ):
        event = await asyncio.wait_for(anext(events), DEADLINE_S)
    assert event.height == 3 and event.value["block"]["data"]["txs"] == [padding]


async def test_a_reply_to_no_subscription_is_still_an_error():
    def on_subscribe(request):
        return [{"jsonrpc": "2.0", "id": 99, "result": {}}]

    async with scripted_node(on_subscribe) as url:
        with pytest.raises(RPCClientError, match="unexpected reply to subscribe"):
            async with Client(url).subscribe("tm.event='NewBlock'"):
                pass


async def test_refused_subscriptions_and_unreachable_nodes_raise_the_one_error(node):
    with pytest.raises(RPCClientError, match="failed to parse query"):
        async with Client(url(node)).subscribe("tm.event = = 'x'"):
            pass
    with pytest.raises(RPCClientError, match="cannot subscribe"):
        async with Client("http://127.0.0.1:1").subscribe("tm.event='NewBlock'"):
            pass


async def test_a_stopped_node_ends_the_stream_with_an_error(node):
    async with Client(url(node)).subscribe("tm.event='NewBlock'") as events:
        await node.stop()
        with pytest.raises(RPCClientError, match="closed the event stream"):
            async with asyncio.timeout(DEADLINE_S):
                async for _ in events:
                    pass


async def test_blocking_subscription(node):
    got: list[SubscriptionEvent] = []

    def follow():
        for event in SyncClient(url(node)).subscribe("tm.event='NewBlockHeader'"):
            got.append(event)
            if len(got) == 2:
                break

    thread = threading.Thread(target=follow)
    thread.start()
    await asyncio.to_thread(thread.join, DEADLINE_S)
    assert not thread.is_alive()
    assert got[1].height == got[0].height + 1 and got[0].kind == "NewBlockHeader"


def test_websocket_url():
    assert websocket_url("http://h:1/") == "ws://h:1/websocket"
    assert websocket_url("https://h") == "wss://h/websocket"
