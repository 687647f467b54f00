"""One client's WebSocket at /websocket: JSON-RPC requests in; replies and events out.

Any RPC method can be called over the socket; `subscribe`, `unsubscribe` and
`unsubscribe_all` exist only here, as in CometBFT. An event reaches the client
as a JSON-RPC response carrying the subscribe request's id:

    {"jsonrpc": "2.0", "id": <subscribe id>, "result": {"query": "tm.event='Tx'",
     "data": {"type": "tendermint/event/Tx", "value": {...}}, "events": {...}}}

Everything the client receives goes through one outbox, written by one task,
so replies and events arrive in the order they were produced. Events are
bounded by `buffer`: a client that does not read them fast enough has all its
subscriptions cancelled, with an error naming the reason, instead of losing
events silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

from cloudchain.logfields import fields
from cloudchain.node.eventbus import EventBus, Subscription, SubscriptionError, Tags
from cloudchain.node.rpc_errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    SERVER_ERROR,
    RPCError,
    error_body,
    result_body,
)

log = logging.getLogger(__name__)

WS_METHODS = ("subscribe", "unsubscribe", "unsubscribe_all")
Handler = Callable[[Any, "WebSocketSession"], Awaitable[Any]]


class WebSocketSession:
    def __init__(self, ws: web.WebSocketResponse, bus: EventBus, handle: Handler,
                 buffer: int) -> None:  # fmt: skip
        self._ws = ws
        self._bus = bus
        self._handle = handle  # the server's request handler: JSON value -> reply body
        self._buffer = buffer
        self._outbox: asyncio.Queue[str] = asyncio.Queue()
        self._queued_events = 0

    async def run(self) -> None:
        writer = asyncio.create_task(self._write_loop())
        try:
            async for message in self._ws:
                if self._outbox.qsize() > 2 * self._buffer:  # requests sent, replies unread
                    await self._ws.close(message=b"client is not reading its replies")
                    break
                if message.type == WSMsgType.TEXT:
                    await self._on_text(message.data)
                elif message.type == WSMsgType.BINARY:
                    binary = RPCError(INVALID_REQUEST, "Invalid Request", "expected text")
                    self._send(error_body(None, binary))
                if writer.done():  # the socket broke under the writer
                    break
        finally:
            with contextlib.suppress(SubscriptionError):
                self._bus.unsubscribe_all(self)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await writer

    async def _on_text(self, text: str) -> None:
        try:
            payload = json.loads(text)
        except ValueError as exc:
            error = RPCError(PARSE_ERROR, "Parse error. Invalid JSON", str(exc))
            self._send(error_body(None, error))
            return
        reply = await self._handle(payload, self)
        if reply is not None:
            self._send(reply)

    # --- the methods that exist only on a socket ------------------------------------------

    def call(self, method: str, request_id: Any, params: dict[str, Any]) -> dict[str, Any]:
        """subscribe / unsubscribe / unsubscribe_all; RPCError if refused."""
        try:
            if method == "unsubscribe_all":
                self._bus.unsubscribe_all(self)
                return {}
            query = params.get("query")
            if not isinstance(query, str):
                raise RPCError(INVALID_PARAMS, "Invalid params", "query must be a string")
            if method == "subscribe":
                self._bus.subscribe(self, query, request_id)
            else:
                self._bus.unsubscribe(self, query)
            return {}
        except SubscriptionError as exc:
            raise RPCError(INTERNAL_ERROR, "Internal error", str(exc)) from None

    # --- the bus's side (Subscriber) ---------------------------------------------------------

    def deliver(self, subscription: Subscription, data: Any, tags: Tags) -> bool:
        if self._queued_events >= self._buffer or self._ws.closed:
            return False
        self._queued_events += 1
        event = {"query": subscription.query, "data": data, "events": dict(tags)}
        self._send(result_body(subscription.request_id, event), event=True)
        return True

    def cancelled(self, subscription: Subscription, reason: str) -> None:
        log.info("subscription cancelled", extra=fields(query=subscription.query, reason=reason))
        why = f"subscription was canceled (reason: {reason})"
        self._send(error_body(subscription.request_id, RPCError(SERVER_ERROR, "Server error", why)))

    # --- the outbox --------------------------------------------------------------------------

    def _send(self, body: dict[str, Any], event: bool = False) -> None:
        self._outbox.put_nowait(("e" if event else "r") + json.dumps(body))

    async def _write_loop(self) -> None:
        while True:
            item = await self._outbox.get()
            if item[0] == "e":
                self._queued_events -= 1
            await self._ws.send_str(item[1:])
