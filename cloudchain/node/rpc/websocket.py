"""One client's WebSocket at /websocket: JSON-RPC requests in; replies and events out.

Any RPC method can be called over the socket; `subscribe`, `unsubscribe` and
`unsubscribe_all` exist only here, as in CometBFT. An event reaches the client
as a JSON-RPC response carrying the subscribe request's id:

    {"jsonrpc": "2.0", "id": <subscribe id>, "result": {"query": "tm.event='Tx'",
     "data": {"type": "tendermint/event/Tx", "value": {...}}, "events": {...}}}

Everything the client receives goes through one outbox, written by one task,
so replies and events arrive in the order they were produced. The outbox is
bounded twice, and a client that does not read meets one bound or the other:

- replies: while the replies queued exceed `max_outbox_bytes`, the session
  reads no more of the client's requests (CometBFT's blocking write channel);
  one reply, however large, is always taken.
- events: at most `buffer` events and `max_outbox_bytes` of them (one event,
  however large, always fits an empty buffer); beyond that, the bus cancels all
  the client's subscriptions with an error naming the reason, instead of losing
  events silently.

Each send must finish within WRITE_WAIT_S (CometBFT's writeWait); a client that
stops reading altogether is hung up on: the transport is aborted, since a
graceful close would wait on the same full buffers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from cloudchain.logfields import fields
from cloudchain.node.rpc.errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    SERVER_ERROR,
    RPCError,
    error_body,
)
from cloudchain.node.rpc.eventbus import EventBus, Subscription, SubscriptionError, Tags
from cloudchain.node.rpc.params import loads

log = logging.getLogger(__name__)

WS_METHODS = ("subscribe", "unsubscribe", "unsubscribe_all")
WRITE_WAIT_S = 10.0  # CometBFT's writeWait: the longest one message may take to send
Handler = Callable[[Any, "WebSocketSession"], Awaitable[Any]]


@dataclass(frozen=True)
class EncodedEvent:
    """An event's `data` and `events` (its tags) as JSON text, serialised once for all
    the subscriptions it goes to; each reply splices in only its id and query."""

    data: str
    events: str

    @classmethod
    def of(cls, data: Any, tags: Tags) -> EncodedEvent:
        return cls(json.dumps(data), json.dumps(dict(tags)))

    def reply(self, request_id: Any, query: str) -> str:
        """The JSON text of result_body(request_id, {"query", "data", "events"})."""
        return (
            '{"jsonrpc": "2.0", "id": '
            + json.dumps(request_id)
            + ', "result": {"query": '
            + json.dumps(query)
            + ', "data": '
            + self.data
            + ', "events": '
            + self.events
            + "}}"
        )


class WebSocketSession:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        bus: EventBus,
        handle: Handler,
        buffer: int,
        max_outbox_bytes: int,
        abort: Callable[[], None],
    ) -> None:
        assert buffer >= 1 and max_outbox_bytes >= 1
        self._ws = ws
        self._bus = bus
        self._handle = handle  # the server's request handler: JSON value -> reply body
        self._buffer = buffer
        self._max_outbox_bytes = max_outbox_bytes
        self._abort = abort  # drop the connection at once, unsent bytes and all
        self._outbox: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()  # (text, is_event)
        self._room = asyncio.Event()  # set whenever the writer has sent something
        self.queued_reply_bytes = 0  # queued or being sent
        self.queued_event_bytes = 0
        self.queued_events = 0
        self.waiting_for_writer = False  # reading no requests until replies drain

    async def run(self) -> None:
        writer = asyncio.create_task(self._write_loop())
        try:
            async for message in self._ws:
                try:
                    await self._on_message(message)
                except Exception as exc:  # our bug, not the client's: answer, keep the session
                    log.exception("WebSocket request failed")
                    self._send(
                        error_body(
                            None, RPCError(INTERNAL_ERROR, "Internal error", type(exc).__name__)
                        )
                    )
                await self._wait_for_writer(writer)
                if writer.done():  # the socket broke under the writer, or it hung up
                    break
        finally:
            with contextlib.suppress(SubscriptionError):
                self._bus.unsubscribe_all(self)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def close(self) -> None:
        """Close gracefully (it may wait on a client that does not read: bound it)."""
        await self._ws.close(code=WSCloseCode.GOING_AWAY, message=b"node stopping")

    def abort(self) -> None:
        self._abort()

    async def _on_message(self, message: Any) -> None:
        if message.type == WSMsgType.TEXT:
            await self._on_text(message.data)
        elif message.type == WSMsgType.BINARY:
            binary = RPCError(INVALID_REQUEST, "Invalid Request", "expected text")
            self._send(error_body(None, binary))

    async def _on_text(self, text: str) -> None:
        try:
            payload = loads(text)  # as Go reads JSON: no NaN or Infinity
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
            error = RPCError(PARSE_ERROR, "Parse error. Invalid JSON", str(exc))
            self._send(error_body(None, error))
            return
        reply = await self._handle(payload, self)
        if reply is not None:
            self._send(reply)

    async def _wait_for_writer(self, writer: asyncio.Task[None]) -> None:
        """While the replies queued exceed the bound, read no more requests."""
        while self.queued_reply_bytes > self._max_outbox_bytes and not writer.done():
            self.waiting_for_writer = True
            self._room.clear()
            await self._room.wait()
        self.waiting_for_writer = False

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
        if self._ws.closed or self.queued_events >= self._buffer:
            return False
        event = data if isinstance(data, EncodedEvent) else EncodedEvent.of(data, tags)
        text = event.reply(subscription.request_id, subscription.query)
        if self.queued_events and self.queued_event_bytes + len(text) > self._max_outbox_bytes:
            return False
        self.queued_events += 1
        self.queued_event_bytes += len(text)
        self._outbox.put_nowait((text, True))
        return True

    def cancelled(self, subscription: Subscription, reason: str) -> None:
        log.info("subscription cancelled", extra=fields(query=subscription.query, reason=reason))
        why = f"subscription was canceled (reason: {reason})"
        self._send(error_body(subscription.request_id, RPCError(SERVER_ERROR, "Server error", why)))

    # --- the outbox --------------------------------------------------------------------------

    def _send(self, body: dict[str, Any]) -> None:
        text = json.dumps(body)  # ASCII (ensure_ascii): its length is its size in bytes
        self.queued_reply_bytes += len(text)
        self._outbox.put_nowait((text, False))

    async def _write_loop(self) -> None:
        try:
            while True:
                text, is_event = await self._outbox.get()
                try:
                    async with asyncio.timeout(WRITE_WAIT_S):
                        await self._ws.send_str(text)
                except TimeoutError:
                    log.info(
                        "WebSocket client is not reading; hanging up",
                        extra=fields(write_wait_s=WRITE_WAIT_S),
                    )
                    self._abort()
                    return
                except Exception as exc:  # the connection is gone: nothing more to send
                    log.debug("WebSocket send failed", extra=fields(error=repr(exc)))
                    return
                if is_event:
                    self.queued_events -= 1
                    self.queued_event_bytes -= len(text)
                else:
                    self.queued_reply_bytes -= len(text)
                self._room.set()
        finally:
            self._room.set()  # a reader waiting for room must see that the writer is done
