"""The WebSocket at /websocket, JSON-RPC batches and the RPC's limits, on a running node."""

import asyncio
import base64
import json
from types import SimpleNamespace

import aiohttp
import pytest

from cloudchain.crypto import read_key_file
from cloudchain.fees import priced_transaction
from cloudchain.node.rpc.eventbus import NOT_PULLING, BusLimits, EventBus, SubscriptionError
from cloudchain.node.rpc.websocket import WebSocketSession
from tests.helpers.network import DEADLINE_S, wait_for_height
from tests.helpers.rpc import ws_url


@pytest.fixture
def node_rpc_limits():
    """The `node` fixture's node (tests/conftest.py) takes two subscribing clients."""
    return {"max_subscription_clients": 2}


class Socket:
    """A WebSocket client that keeps every message it receives, in order."""

    def __init__(self, ws):
        self.ws = ws
        self.received = []
        self._ids = iter(range(1, 1_000_000))

    async def request(self, method, **params):
        request_id = next(self._ids)
        await self.ws.send_json(
            {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        )
        return await self.until(
            lambda m: m.get("id") == request_id and "query" not in m.get("result", {})
        )

    async def until(self, predicate):
        """Receive until a message satisfies `predicate`; return it (it is kept too)."""
        async with asyncio.timeout(DEADLINE_S):
            while True:
                message = await self.ws.receive_json()
                self.received.append(message)
                if predicate(message):
                    return message

    def events(self, query):
        return [
            m["result"]
            for m in self.received
            if "result" in m and m["result"].get("query") == query
        ]


async def transfer(session, node, tmp_path, nonce, recipient):
    sender = read_key_file(tmp_path / "net" / "accounts" / "account0.json")
    args = {"to": recipient, "amount": 1 + nonce}
    tx = priced_transaction(sender, node.chain_id, nonce, "token", "transfer", args, node.app.fees)
    body = {
        "jsonrpc": "2.0",
        "id": nonce,
        "method": "broadcast_tx_sync",
        "params": {"tx": base64.b64encode(tx.to_bytes()).decode()},
    }
    async with session.post(f"http://{node.config.rpc.listen_address}/", json=body) as response:
        assert (await response.json())["result"]["code"] == 0
    return tx


async def test_every_block_and_every_matching_tx_exactly_once_in_order(node, tmp_path):
    accounts = tmp_path / "net" / "accounts"
    watched = read_key_file(accounts / "account1.json").address
    other = read_key_file(accounts / "account2.json").address
    blocks, headers = "tm.event='NewBlock'", "tm.event = 'NewBlockHeader'"
    to_watched = f"tm.event='Tx' AND transfer.recipient='{watched}'"
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url(node)) as ws:
        socket = Socket(ws)
        for query in (blocks, headers, to_watched):
            assert (await socket.request("subscribe", query=query))["result"] == {}
        first_height = node.store.height + 1  # subscribed before this block was committed
        sent = [
            await transfer(session, node, tmp_path, nonce, watched if nonce % 3 else other)
            for nonce in range(12)
        ]
        last = max([await _committed_height(node, tx) for tx in sent])

        def is_block(height):
            return lambda m: (
                m.get("result", {}).get("query") == blocks
                and int(m["result"]["data"]["value"]["block"]["header"]["height"]) >= height
            )

        await socket.until(is_block(last + 1))  # events come in order: all before it are here
        await socket.until(
            lambda m: (
                m.get("result", {}).get("query") == headers
                and int(m["result"]["data"]["value"]["header"]["height"]) >= last + 1
            )
        )  # and its header

    new_blocks = [e["data"]["value"] for e in socket.events(blocks)]
    heights = [int(b["block"]["header"]["height"]) for b in new_blocks]
    assert heights[0] <= first_height and heights == list(range(heights[0], heights[-1] + 1))
    for value in new_blocks:
        stored = node.store.block(int(value["block"]["header"]["height"]))
        assert value["block_id"]["hash"] == stored.hash.hex().upper()
        assert len(value["result_finalize_block"]["tx_results"]) == len(stored.txs)
    header_heights = [int(e["data"]["value"]["header"]["height"]) for e in socket.events(headers)]
    assert header_heights == heights  # each NewBlock's header follows it, before the next block
    assert all(
        e["data"]["type"] == "tendermint/event/NewBlockHeader" for e in socket.events(headers)
    )

    txs = socket.events(to_watched)
    expected = [tx.hash.hex().upper() for tx in sent if tx.args["to"] == watched]
    assert [e["events"]["tx.hash"][0] for e in txs] == expected  # each once, in block order
    positions = [
        (
            int(e["data"]["value"]["TxResult"]["height"]),
            e["data"]["value"]["TxResult"].get("index", 0),
        )
        for e in txs
    ]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    for event in txs:
        assert event["data"]["type"] == "tendermint/event/Tx"
        assert event["events"]["tm.event"] == ["Tx"]
        assert event["events"]["transfer.recipient"] == [watched]
        result = event["data"]["value"]["TxResult"]["result"]
        assert result["code"] == 0 and {e["type"] for e in result["events"]} >= {"transfer"}


async def _committed_height(node, tx):
    async with asyncio.timeout(DEADLINE_S):
        while (location := node.store.tx_location(tx.hash)) is None:
            await wait_for_height([node], node.store.height + 1)
    return location[0]


async def test_subscription_errors_and_unsubscribe(node):
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url(node)) as ws:
        socket = Socket(ws)
        assert "result" in await socket.request("subscribe", query="tm.event='NewBlock'")
        again = await socket.request("subscribe", query="tm.event='NewBlock'")
        assert again["error"]["code"] == -32603 and again["error"]["data"] == "already subscribed"
        bad = await socket.request("subscribe", query="tm.event = = 'x'")
        assert "failed to parse query" in bad["error"]["data"]
        missing = await socket.request("subscribe")
        assert missing["error"]["code"] == -32602
        for k in range(4):
            ok = await socket.request("subscribe", query=f"tx.height > {k}")
            assert ok["result"] == {}
        sixth = await socket.request("subscribe", query="tx.height > 9")
        assert sixth["error"]["data"] == "max_subscriptions_per_client 5 reached"
        unknown = await socket.request("unsubscribe", query="tx.height > 9")
        assert unknown["error"]["data"] == "subscription not found"
        assert (await socket.request("unsubscribe", query="tm.event='NewBlock'"))["result"] == {}
        cut = len(socket.received)
        await wait_for_height([node], node.store.height + 2)
        assert (await socket.request("unsubscribe_all"))["result"] == {}
        # after the unsubscribe reply, no NewBlock for that query, while the socket still works
        assert not [m for m in socket.received[cut:] if m.get("result", {}).get("query")]
        assert (await socket.request("unsubscribe_all"))["error"]["data"] == (
            "subscription not found"
        )


async def test_subscribe_exists_only_on_the_socket_and_clients_are_limited(node):
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "subscribe",
        "params": {"query": "tm.event='NewBlock'"},
    }
    async with aiohttp.ClientSession() as session:
        async with session.post(f"http://{node.config.rpc.listen_address}/", json=body) as r:
            assert (await r.json())["error"]["code"] == -32601
        sockets = [Socket(await session.ws_connect(ws_url(node))) for _ in range(3)]
        try:
            for socket in sockets[:2]:
                assert "result" in await socket.request("subscribe", query="tm.event='Tx'")
            third = await sockets[2].request("subscribe", query="tm.event='Tx'")
            assert third["error"]["data"] == "max_subscription_clients 2 reached"
            await sockets[0].ws.close()  # a closed socket frees its place
            async with asyncio.timeout(DEADLINE_S):
                while "error" in (
                    reply := await sockets[2].request("subscribe", query="tm.event='Tx'")
                ):
                    await wait_for_height([node], node.store.height + 1)
            assert reply["result"] == {}
        finally:
            for socket in sockets:
                await socket.ws.close()


async def test_bad_socket_messages_get_errors_and_the_socket_goes_on(node):
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url(node)) as ws:
        socket = Socket(ws)
        await ws.send_str("{not json")
        parse = await socket.until(lambda m: "error" in m)
        assert parse["error"]["code"] == -32700 and "id" not in parse
        await ws.send_bytes(b"\x00")
        binary = await socket.until(lambda m: "error" in m and m is not parse)
        assert binary["error"]["code"] == -32600
        assert (await socket.request("nosuch"))["error"]["code"] == -32601
        assert "node_info" in (await socket.request("status"))["result"]
        await ws.send_str("[" * 100_000)  # nested too deep for json.loads: RecursionError
        deep = await socket.until(lambda m: "error" in m and m is not parse and m is not binary)
        assert deep["error"]["code"] == -32700 and "id" not in deep
        assert "node_info" in (await socket.request("status"))["result"]  # still served


async def test_a_request_that_fails_unexpectedly_costs_one_error_not_the_session(node, monkeypatch):
    handle = node.rpc.handle

    async def failing(payload, session=None):
        if isinstance(payload, dict) and payload.get("method") == "explode":
            raise RuntimeError("a bug")
        return await handle(payload, session)

    monkeypatch.setattr(node.rpc, "handle", failing)  # sessions opened from now on use it
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url(node)) as ws:
        socket = Socket(ws)
        await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "explode"})
        error = await socket.until(lambda m: "error" in m)
        assert error["error"] == {
            "code": -32603,
            "message": "Internal error",
            "data": "RuntimeError",
        }
        assert "node_info" in (await socket.request("status"))["result"]


async def test_positional_params_on_the_socket(node):
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url(node)) as ws:
        socket = Socket(ws)
        await ws.send_json(
            {"jsonrpc": "2.0", "id": "s", "method": "subscribe", "params": ["tm.event='NewBlock'"]}
        )
        assert (await socket.until(lambda m: m.get("id") == "s"))["result"] == {}
        event = await socket.until(lambda m: m.get("result", {}).get("query"))
        assert event["id"] == "s" and event["result"]["query"] == "tm.event='NewBlock'"
        block = await socket.request("block", height="1")
        assert block["result"]["block"]["header"]["height"] == "1"


async def post(node, payload):
    url = f"http://{node.config.rpc.listen_address}/"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=json.dumps(payload)) as response,
    ):
        text = await response.text()
        return json.loads(text) if text else None


async def test_batches_and_notifications(node):
    replies = await post(
        node,
        [
            {"jsonrpc": "2.0", "id": 1, "method": "health"},
            {"jsonrpc": "2.0", "id": "two", "method": "nosuch"},
            {"jsonrpc": "2.0", "method": "health"},  # a notification
            "junk",
        ],
    )
    assert [r.get("id") for r in replies] == [1, "two", None]
    assert replies[0]["result"] == {}
    assert replies[1]["error"]["code"] == -32601 and replies[2]["error"]["code"] == -32600
    assert await post(node, {"jsonrpc": "2.0", "method": "health"}) is None
    empty = await post(node, [])
    assert empty["error"]["code"] == -32600
    too_many = await post(
        node, [{"jsonrpc": "2.0", "id": k, "method": "health"} for k in range(11)]
    )
    assert too_many["error"]["code"] == -32600
    assert "exceeds maximum (10)" in too_many["error"]["data"]


class FakeSubscriber:
    def __init__(self, capacity):
        self.capacity = capacity
        self.got, self.cancelled_with = [], []

    def deliver(self, subscription, data, tags):
        if len(self.got) >= self.capacity:
            return False
        self.got.append((subscription.query, data))
        return True

    def cancelled(self, subscription, reason):
        self.cancelled_with.append((subscription.query, reason))


def test_a_subscriber_that_cannot_keep_up_is_cancelled_not_thinned():
    bus = EventBus()
    slow, fast = FakeSubscriber(2), FakeSubscriber(100)
    for subscriber in (slow, fast):
        bus.subscribe(subscriber, "tm.event='Tx'", 1)
        bus.subscribe(subscriber, "tx.height >= 2", 2)
    built = []
    for height in range(1, 4):
        tags = {"tm.event": ["Tx"], "tx.height": [str(height)]}
        bus.publish(tags, lambda h=height: built.append(h) or h)
    assert built == [1, 2, 3]  # each payload built once, however many subscribers take it
    assert slow.got == [("tm.event='Tx'", 1), ("tm.event='Tx'", 2)]
    assert sorted(slow.cancelled_with) == [
        ("tm.event='Tx'", NOT_PULLING),
        ("tx.height >= 2", NOT_PULLING),
    ]
    assert bus.subscription_count(slow) == 0
    assert [d for _, d in fast.got] == [1, 2, 2, 3, 3]
    assert bus.publish({"tm.event": ["NewBlock"]}, lambda: pytest.fail("nobody wants it")) == 0
    with pytest.raises(SubscriptionError, match="maximum query length"):
        bus.subscribe(fast, "tx.height > 1" + " " * 600, 3)


def test_subscriptions_are_counted_per_client_and_cancelled_together():
    """A broadcast_tx_commit waiter subscribes under its caller (here a socket's session):
    it counts against that client's limits and goes with the client's subscriptions."""
    bus = EventBus(BusLimits(max_clients=1, max_per_client=2))
    session, waiter = FakeSubscriber(0), FakeSubscriber(100)
    bus.subscribe(session, "tm.event='Tx'", 1)
    bus.subscribe(waiter, "tx.hash = 'AB'", None, client=session)
    assert bus.subscription_count(session) == 2 and bus.subscription_count(waiter) == 0
    with pytest.raises(SubscriptionError, match="max_subscriptions_per_client 2 reached"):
        bus.subscribe(waiter, "tx.height > 1", None, client=session)
    with pytest.raises(SubscriptionError, match="max_subscription_clients 1 reached"):
        bus.subscribe(FakeSubscriber(9), "tm.event='Tx'", 2)
    assert bus.publish({"tm.event": ["Tx"], "tx.hash": ["AB"]}, dict) == 0  # session is full
    assert session.cancelled_with == [("tm.event='Tx'", NOT_PULLING)]
    assert waiter.cancelled_with == [("tx.hash = 'AB'", NOT_PULLING)] and not waiter.got
    assert not bus.has_subscribers


async def test_a_session_refuses_events_beyond_its_buffer():
    class IdleSocket:
        closed = False

    bus = EventBus()
    session = WebSocketSession(
        IdleSocket(), bus, handle=None, buffer=2, max_outbox_bytes=1_000, abort=lambda: None
    )
    subscription = bus.subscribe(session, "tm.event='NewBlock'", 9)
    assert session.deliver(subscription, {}, {}) and session.deliver(subscription, {}, {})
    assert not session.deliver(subscription, {}, {})  # nobody writes: the buffer is full
    assert session.queued_events == 2
    assert bus.publish({"tm.event": ["NewBlock"]}, dict) == 0
    assert bus.subscription_count(session) == 0  # cancelled, and told why


def test_a_session_bounds_the_bytes_of_its_events_too():
    class IdleSocket:
        closed = False

    bus = EventBus()
    session = WebSocketSession(
        IdleSocket(), bus, handle=None, buffer=100, max_outbox_bytes=1_000, abort=lambda: None
    )
    subscription = bus.subscribe(session, "tm.event='NewBlock'", 9)
    assert session.deliver(subscription, {"blob": "x" * 5_000}, {})  # one always fits
    assert not session.deliver(subscription, {"blob": "x" * 10}, {})  # beyond 1000 bytes
    assert session.queued_events == 1 and session.queued_event_bytes > 5_000


def test_a_block_event_is_serialised_once_for_all_its_subscribers(monkeypatch):
    from cloudchain.node.config import RPCConfig
    from cloudchain.node.rpc import websocket as rpc_websocket
    from cloudchain.node.rpc.errors import result_body
    from cloudchain.node.rpc.server import RPCServer
    from cloudchain.node.rpc.shapes import new_block_event, new_block_tags
    from tests.helpers.chain import ACCOUNTS, make_chain, transfer

    chain = make_chain()
    txs = [transfer(ACCOUNTS[0], nonce, ACCOUNTS[1].address, 1).to_bytes() for nonce in range(20)]
    block = chain.produce_block(txs).block
    results = chain.app.store.block_results(block.height)
    validators = chain.app.genesis.validators
    server = RPCServer(node=SimpleNamespace(validators=validators), limits=RPCConfig())

    class OpenSocket:
        closed = False

    sessions = [
        WebSocketSession(
            OpenSocket(),
            server.bus,
            handle=None,
            buffer=10,
            max_outbox_bytes=1 << 20,
            abort=lambda: None,
        )
        for _ in range(100)
    ]
    for k, session in enumerate(sessions):
        server.bus.subscribe(session, "tm.event='NewBlock'", k)
    serialised = []
    dumps = rpc_websocket.json.dumps
    monkeypatch.setattr(
        rpc_websocket.json,
        "dumps",
        lambda value, **kw: serialised.append(dumps(value, **kw)) or serialised[-1],
    )
    server.publish_block(block, results)
    monkeypatch.undo()
    event = new_block_event(block, results, validators)
    one = len(json.dumps(event))
    assert one > 20_000  # a block worth not serialising a hundred times
    assert sum(len(text) for text in serialised) < one + 100 * 100  # once, plus ids and queries
    for k, session in enumerate(sessions):
        text, is_event = session._outbox.get_nowait()
        tags = new_block_tags(block, results)
        assert is_event and json.loads(text) == result_body(
            k, {"query": "tm.event='NewBlock'", "data": event, "events": tags}
        )
