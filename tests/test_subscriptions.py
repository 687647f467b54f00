"""The client's subscriptions (async and blocking) against a running node."""

import asyncio
import threading

import pytest

from cloudchain.client import Client, RPCClientError, SyncClient
from cloudchain.subscriptions import SubscriptionEvent, websocket_url
from tests.test_node_network import DEADLINE_S
from tests.test_rpc_websocket import node  # noqa: F401 - the fixture


def url(node):  # noqa: F811 - the fixture's name
    return f"http://{node.config.rpc.listen_address}"


async def test_async_subscription_follows_blocks_in_order(node):  # noqa: F811
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


async def test_refused_subscriptions_and_unreachable_nodes_raise_the_one_error(node):  # noqa: F811
    with pytest.raises(RPCClientError, match="failed to parse query"):
        async with Client(url(node)).subscribe("tm.event = = 'x'"):
            pass
    with pytest.raises(RPCClientError, match="cannot subscribe"):
        async with Client("http://127.0.0.1:1").subscribe("tm.event='NewBlock'"):
            pass


async def test_a_stopped_node_ends_the_stream_with_an_error(node):  # noqa: F811
    async with Client(url(node)).subscribe("tm.event='NewBlock'") as events:
        await node.stop()
        with pytest.raises(RPCClientError, match="closed the event stream"):
            async with asyncio.timeout(DEADLINE_S):
                async for _ in events:
                    pass


async def test_blocking_subscription(node):  # noqa: F811
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
