"""The RPC's protections against clients that hold on: open connections, silent
connections, request bodies, WebSocket clients that do not read, and stopping the
server whatever the clients do. Each test runs a one-validator node on loopback."""

import asyncio
import base64
import json
import os
import socket

import aiohttp
import pytest

from cloudchain.client import Client, RPCClientError
from cloudchain.node.rpc import broadcast, server, websocket
from cloudchain.node.rpc.eventbus import NOT_PULLING
from cloudchain.node.rpc.shapes import event_json
from tests.helpers.network import start_node, wait_for_height
from tests.helpers.rpc import transfer, ws_url
from tests.helpers.waiting import give_other_tasks_a_turn, wait_until

LIMIT_DEADLINE_S = 10  # these tests wait for the node's own timeouts, patched to fractions


def host_port(node):
    host, _, port = node.config.rpc.listen_address.rpartition(":")
    return host, int(port)


async def health(node):
    """The HTTP status of GET /health, on a new connection."""
    url = f"http://{node.config.rpc.listen_address}/health"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status


async def closed_by_peer(reader, deadline_s=LIMIT_DEADLINE_S):
    """True once the other end has closed or reset the connection (what it sent is read)."""
    try:
        async with asyncio.timeout(deadline_s):
            while await reader.read(65536):
                pass
    except ConnectionResetError:
        pass
    return True


class RawWebSocket:
    """A WebSocket client on a plain socket with a small receive buffer: it sends what
    it is told and reads nothing unless asked, as a client that ignores its replies."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, host, port):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /websocket HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    def send_text(self, text):
        payload = text.encode()
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            length = bytes([0x80 | n])
        elif n < 65536:
            length = bytes([0x80 | 126]) + n.to_bytes(2, "big")
        else:
            length = bytes([0x80 | 127]) + n.to_bytes(8, "big")
        key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
        masked = (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")
        self.writer.write(bytes([0x81]) + length + mask + masked)  # FIN, text; masked


def block_batches(count):
    """`count` batches of 100 `block` requests: many large replies from small requests."""
    batch = json.dumps(
        [
            {"jsonrpc": "2.0", "id": k, "method": "block", "params": {"height": "1"}}
            for k in range(100)
        ]
    )
    return [batch] * count


@pytest.fixture
async def unread_node(tmp_path):
    node = await start_node(
        tmp_path, max_websocket_outbox_bytes=16 * 1024, max_request_batch_size=100
    )
    try:
        await wait_for_height([node], 1)
        yield node
    finally:
        async with asyncio.timeout(LIMIT_DEADLINE_S):
            await node.stop()


@pytest.fixture
def quick_close(monkeypatch):
    """stop() gives the WebSockets a fraction of a second to close (read at start too)."""
    monkeypatch.setattr(server, "CLOSE_WAIT_S", 0.2)


async def test_replies_beyond_the_outbox_stop_the_reading_and_stop_still_returns(
    quick_close, unread_node
):
    node = unread_node
    one_reply = len(json.dumps(await node.rpc.handle(json.loads(block_batches(1)[0]))))
    client = await RawWebSocket.connect(*host_port(node))
    for batch in block_batches(400):  # ~60 MB of replies: more than any socket buffers
        client.send_text(batch)
    # what is queued, read in the same step as the wait is seen (an await between the two
    # would let the writer move on), while replies are still held back
    queued = await wait_until(
        lambda: next(
            (
                s.queued_reply_bytes
                for s in node.rpc.sessions
                if s.waiting_for_writer and s.queued_reply_bytes
            ),
            None,
        ),
        LIMIT_DEADLINE_S,
    )
    assert queued <= 16 * 1024 + one_reply  # bytes, not messages
    # The writer is stuck on a client that does not read: a graceful close would wait on
    # it forever; stop() gives up on it after CLOSE_WAIT_S and aborts the connection.
    async with asyncio.timeout(5):
        await node.stop()
    assert not node.rpc.sessions and node.rpc.open_connections == 0
    assert await closed_by_peer(client.reader)


async def test_a_client_that_stops_reading_is_hung_up_on_after_the_write_wait(
    monkeypatch, unread_node
):
    monkeypatch.setattr(websocket, "WRITE_WAIT_S", 0.2)
    node = unread_node
    client = await RawWebSocket.connect(*host_port(node))
    for batch in block_batches(400):
        client.send_text(batch)
    await wait_until(lambda: node.rpc.sessions, LIMIT_DEADLINE_S)
    await wait_until(lambda: not node.rpc.sessions, LIMIT_DEADLINE_S)  # it ended by itself...
    assert await closed_by_peer(client.reader)  # ...and hung up on the client
    assert await health(node) == 200  # the node serves the others as before


async def test_a_subscriber_that_does_not_read_is_cancelled_and_told_why(tmp_path):
    node = await start_node(tmp_path, subscription_buffer_size=1)
    try:
        query = "tm.event='Test'"
        url = f"http://{node.config.rpc.listen_address}"
        async with Client(url).subscribe(query) as events:
            assert node.rpc.bus.has_query(query)
            blob = "x" * 256 * 1024
            published = 0
            async with asyncio.timeout(LIMIT_DEADLINE_S):
                while node.rpc.bus.has_query(query):  # until the socket's buffers are full
                    node.rpc.bus.publish(
                        {"tm.event": ["Test"]}, lambda: event_json("Test", {"blob": blob})
                    )
                    published += 1
                    await give_other_tasks_a_turn()  # the writer's turn: only the client is slow
            received = 0
            with pytest.raises(RPCClientError) as raised:
                async with asyncio.timeout(LIMIT_DEADLINE_S):
                    async for event in events:  # every event before the cut, then the error
                        assert event.kind == "Test"
                        received += 1
        assert raised.value.code == -32000
        assert raised.value.data == f"subscription was canceled (reason: {NOT_PULLING})"
        assert received == published - 1  # the one refused is the one that cancelled it
    finally:
        await node.stop()


async def test_broadcast_tx_commit_waiters_are_bounded_by_the_subscription_limits(
    tmp_path, monkeypatch
):
    """As CometBFT's: a waiting broadcast_tx_commit holds a subscription under its caller's
    name, so max_subscription_clients bounds the waiters (and the WebSocket subscribers
    with them), and over a socket max_subscriptions_per_client counts its subscriptions."""
    monkeypatch.setattr(broadcast, "BROADCAST_COMMIT_TIMEOUT_S", 1.0)
    node = await start_node(tmp_path, max_subscription_clients=1)
    try:
        await wait_for_height([node], 1)
        client = Client(f"http://{node.config.rpc.listen_address}")
        stuck, _ = transfer(tmp_path, node, 5, 1)  # a nonce gap: never in a block
        ready, _ = transfer(tmp_path, node, 0, 1)
        waiting = asyncio.create_task(client.broadcast_tx_commit(stuck.to_bytes()))
        await wait_until(lambda: node.rpc.bus.has_subscribers, LIMIT_DEADLINE_S)
        with pytest.raises(RPCClientError) as refused:
            await client.broadcast_tx_commit(ready.to_bytes())
        assert (refused.value.code, refused.value.data) == (
            -32603,
            "max_subscription_clients 1 reached",
        )
        with pytest.raises(RPCClientError, match="max_subscription_clients 1 reached"):
            async with client.subscribe("tm.event='NewBlock'"):
                pass
        with pytest.raises(RPCClientError, match="timed out waiting for tx"):
            await waiting
        assert not node.rpc.bus.has_subscribers  # the waiter let go of its place
        assert (await client.broadcast_tx_commit(ready.to_bytes())).ok

        async with aiohttp.ClientSession() as session, session.ws_connect(ws_url(node)) as ws:
            for k in range(5):  # max_subscriptions_per_client
                await ws.send_json(
                    {
                        "jsonrpc": "2.0",
                        "id": k,
                        "method": "subscribe",
                        "params": {"query": f"tx.height > {k}"},
                    }
                )
            tx = base64.b64encode(transfer(tmp_path, node, 1, 1)[0].to_bytes()).decode()
            await ws.send_json(
                {"jsonrpc": "2.0", "id": "c", "method": "broadcast_tx_commit", "params": {"tx": tx}}
            )
            async with asyncio.timeout(LIMIT_DEADLINE_S):
                while (reply := await ws.receive_json()).get("id") != "c":
                    pass
        assert reply["error"] == {
            "code": -32603,
            "message": "Internal error",
            "data": "max_subscriptions_per_client 5 reached",
        }
    finally:
        await node.stop()


async def test_connections_are_counted_not_requests_and_a_freed_one_is_taken_again(tmp_path):
    node = await start_node(tmp_path, max_open_connections=2)
    opened = []
    try:
        for _ in range(3):  # connections that never send a byte
            opened.append(await asyncio.open_connection(*host_port(node)))
        assert await closed_by_peer(opened[2][0])  # the third: closed at once by the node
        assert node.rpc.open_connections == 2
        opened[0][1].close()
        await wait_until(lambda: node.rpc.open_connections < 2, LIMIT_DEADLINE_S)
        assert await health(node) == 200
    finally:
        for _, writer in opened:
            writer.close()
        await node.stop()


async def test_a_connection_without_a_complete_request_in_time_is_cut(tmp_path, monkeypatch):
    monkeypatch.setattr(server, "READ_TIMEOUT_S", 0.3)
    node = await start_node(tmp_path)
    opened = []
    try:
        silent = await asyncio.open_connection(*host_port(node))
        trickling = await asyncio.open_connection(*host_port(node))
        opened += [silent, trickling]
        trickling[1].write(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # a head that never ends
        assert await closed_by_peer(silent[0]) and await closed_by_peer(trickling[0])
        await wait_until(lambda: node.rpc.open_connections == 0, LIMIT_DEADLINE_S)
        assert await health(node) == 200
    finally:
        for _, writer in opened:
            writer.close()
        await node.stop()


async def test_bodies_and_socket_messages_above_max_body_bytes_are_refused(tmp_path):
    node = await start_node(tmp_path, max_body_bytes=1_000)
    try:
        url = f"http://{node.config.rpc.listen_address}/"
        big = {"jsonrpc": "2.0", "id": 1, "method": "health", "params": {"pad": "x" * 2_000}}
        async with aiohttp.ClientSession() as http:
            async with http.post(url, data=json.dumps(big)) as response:
                assert response.status == 500
                reply = await response.json()
            assert reply["error"]["code"] == -32600
            assert "request body larger than 1000 bytes" in reply["error"]["data"]
            async with http.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "health"}) as r:
                assert (await r.json())["result"] == {}  # below the limit: served
            async with http.ws_connect(ws_url(node)) as ws:
                await ws.send_str(json.dumps(big))
                message = await asyncio.wait_for(ws.receive(), LIMIT_DEADLINE_S)
                assert message.type == aiohttp.WSMsgType.CLOSE
                assert message.data == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    finally:
        await node.stop()


def test_the_outbox_bound_is_a_validated_setting():
    from cloudchain.node.config import ConfigError, NodeConfig

    config = NodeConfig.from_dict({"rpc": {"max_websocket_outbox_bytes": 1_024}})
    assert config.rpc.max_websocket_outbox_bytes == 1_024
    assert NodeConfig().rpc.max_websocket_outbox_bytes == 4 * 1024 * 1024
    with pytest.raises(ConfigError, match=r"\[rpc\] max_websocket_outbox_bytes must be at least 1"):
        NodeConfig.from_dict({"rpc": {"max_websocket_outbox_bytes": 0}})
