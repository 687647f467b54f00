"""Following a node's events over its WebSocket: what `Client.subscribe` returns.

    async with client.subscribe("tm.event='Tx' AND transfer.recipient='ab12...'") as events:
        async for event in events:
            print(event.kind, event.height, event.tags)

The node sends every matching event once, in commit order. If it cannot (this
client read too slowly and the node cancelled the subscription) or the
connection drops, iteration raises RPCClientError: a gap is never silent.

The stream's queries can change while it runs, between two events (from the task
that iterates): `await events.subscribe(query)`, `await events.unsubscribe(query)`
(no event of that query is yielded after it returns) and `await
events.unsubscribe_all()`; a stream left with no subscription ends.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp

from cloudchain.client.errors import RPCClientError

_EVENT_TYPE_PREFIX = "tendermint/event/"
# The largest message read from the node. aiohttp's default, 4 MiB, is less than one
# NewBlock event of a full block (4 MiB of transactions in base64, and their results),
# and a message past it ends the stream; the node bounds what it sends by the block size.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class SubscriptionEvent:
    """One event: `kind` is NewBlock, NewBlockHeader or Tx; `value` is CometBFT's
    payload for it; `tags` the composite keys it matched on ("tx.hash": [...]); `raw`
    the node's JSON {"query", "data", "events"}."""

    query: str
    kind: str
    value: Mapping[str, Any]
    tags: Mapping[str, list[str]]
    raw: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def height(self) -> int:
        """The height the event belongs to."""
        if self.kind == "Tx":
            return int(self.value["TxResult"]["height"])
        header = (
            self.value["header"] if self.kind == "NewBlockHeader" else self.value["block"]["header"]
        )
        return int(header["height"])

    @classmethod
    def from_json(cls, result: Mapping[str, Any]) -> SubscriptionEvent:
        try:
            data = result["data"]
            kind = data["type"].removeprefix(_EVENT_TYPE_PREFIX)
            return cls(result["query"], kind, data["value"], result.get("events") or {}, raw=result)
        except (KeyError, TypeError, AttributeError) as exc:
            raise RPCClientError(-1, "malformed event from the node", repr(exc)) from None


def websocket_url(url: str) -> str:
    """http://host:port -> ws://host:port/websocket (https -> wss)."""
    base = url.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base.removeprefix("https://")
    elif base.startswith("http://"):
        base = "ws://" + base.removeprefix("http://")
    return base + "/websocket"


class EventStream:
    """Subscriptions on one WebSocket; an async context manager and async iterator."""

    def __init__(self, url: str, queries: tuple[str, ...], timeout_s: float) -> None:
        if not queries:
            raise ValueError("subscribe to at least one query")
        self.url = websocket_url(url)
        self.queries = queries
        self._timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._subscriptions: dict[str, int] = {}  # query -> the id of its subscribe request
        self._early: deque[dict[str, Any]] = deque()  # received while awaiting a reply

    async def __aenter__(self) -> EventStream:
        # A bounded connect; no total, since a subscription lasts as long as the caller wants.
        timeout = aiohttp.ClientTimeout(total=None, connect=self._timeout_s)
        self._session = aiohttp.ClientSession(timeout=timeout)
        try:
            try:
                self._ws = await self._session.ws_connect(self.url, max_msg_size=MAX_MESSAGE_BYTES)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise RPCClientError(-1, f"cannot subscribe at {self.url}", str(exc)) from None
            for query in self.queries:
                await self.subscribe(query)
        except BaseException:
            await self.close()
            raise
        return self

    @property
    def subscribed(self) -> tuple[str, ...]:
        """The queries this stream follows now."""
        return tuple(self._subscriptions)

    async def subscribe(self, query: str) -> None:
        """Follow `query` too; its events join the stream from the node's next one."""
        self._subscriptions[query] = await self._request("subscribe", {"query": query})

    async def unsubscribe(self, query: str) -> None:
        """Stop following `query`: no event of it is yielded after this returns (those
        received but not yet yielded are dropped). RPCClientError if not subscribed."""
        await self._request("unsubscribe", {"query": query})
        self._forget(self._subscriptions.pop(query, None))

    async def unsubscribe_all(self) -> None:
        """Stop following every query; the stream then ends."""
        await self._request("unsubscribe_all", {})
        for request_id in list(self._subscriptions.values()):
            self._forget(request_id)
        self._subscriptions.clear()

    def _forget(self, request_id: int | None) -> None:
        self._early = deque(m for m in self._early if m.get("id") != request_id)

    async def _request(self, method: str, params: dict[str, Any]) -> int:
        """Send one request on the socket and wait for its reply; returns its id."""
        assert self._ws is not None, "use `async with` first"
        request_id = next(self._ids)
        try:
            await self._ws.send_json(
                {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
            )
            reply = await asyncio.wait_for(self._reply_to(request_id, method), self._timeout_s)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise RPCClientError(
                -1, f"cannot {method} at {self.url}", str(exc) or type(exc).__name__
            ) from None
        _raise_for_error(reply)
        return request_id

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> SubscriptionEvent:
        if not self._early and not self._subscriptions:
            raise StopAsyncIteration  # nothing followed any more: nothing will come
        message = self._early.popleft() if self._early else await self._receive()
        _raise_for_error(message)
        return SubscriptionEvent.from_json(message["result"])

    async def _reply_to(self, request_id: int, method: str) -> dict[str, Any]:
        """The reply to a request; what the subscriptions receive meanwhile (their events,
        or their cancellation) is kept, in order, for iteration."""
        while True:
            message = await self._receive()
            if message.get("id") == request_id:
                return message
            if message.get("id") not in self._subscriptions.values():
                raise RPCClientError(-1, f"unexpected reply to {method}", str(message)[:200])
            self._early.append(message)

    async def _receive(self) -> dict[str, Any]:
        assert self._ws is not None, "use `async with` first"
        message = await self._ws.receive()
        if message.type != aiohttp.WSMsgType.TEXT:
            raise RPCClientError(
                -1, "the node closed the event stream", str(message.extra or message.type)
            )
        try:
            body = message.json()
        except ValueError:
            text = message.data[:200]
            raise RPCClientError(-1, "malformed message from the node", text) from None
        if not isinstance(body, dict):
            raise RPCClientError(-1, "malformed message from the node", str(body)[:200])
        return body


def _raise_for_error(body: Mapping[str, Any]) -> None:
    error = body.get("error")
    if error is not None:
        if not isinstance(error, Mapping):
            raise RPCClientError(-1, "malformed error from the node", str(error)[:200])
        raise RPCClientError(error.get("code", 0), error.get("message", ""), error.get("data", ""))
    if not isinstance(body.get("result"), Mapping):
        raise RPCClientError(-1, "malformed reply from the node", str(body)[:200])


def iterate_blocking(stream: EventStream) -> Iterator[SubscriptionEvent]:
    """The same events for code without an event loop (SyncClient.subscribe)."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(stream.__aenter__())
        try:
            while True:
                yield loop.run_until_complete(stream.__anext__())
        finally:
            loop.run_until_complete(stream.close())
    finally:
        loop.close()
