"""JSON-RPC 2.0 as CometBFT v0.38 answers it: a request or a batch in, the reply body out.

One request object, or a batch of at most `max_batch` of them; a request without
an id is a notification and gets no reply. What is not a request gets -32600
(invalid request), an unknown method -32601, params that cannot be read -32602
(params.py), and a method that fails -32603 with a message saying what, never a
stack trace. A method the server names as disabled (an operator method while
[rpc] unsafe is false) gets the error it was given for it, whatever the params and
however it is called, before anything else is read. The methods are the table
the server gives (server.py); `subscribe`,
`unsubscribe` and `unsubscribe_all` go to the WebSocket session a request came
over (websocket.py).

What this module does not know: HTTP (the server reads the bodies and sets the
caller), and what any method does.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Any

from cloudchain.logfields import fields
from cloudchain.node.rpc.errors import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    RPCError,
    error_body,
    result_body,
)
from cloudchain.node.rpc.params import is_request_id, params_object
from cloudchain.node.rpc.websocket import WS_METHODS, WebSocketSession

log = logging.getLogger(__name__)

Method = Callable[[dict[str, Any]], Awaitable[Any]]  # params by name -> the result
# Who is calling, as CometBFT's subscriber id (ctx.RemoteAddr()): an HTTP connection's
# "host:port", or the WebSocket session a request came over. broadcast_tx_commit
# subscribes under it.
CALLER: contextvars.ContextVar[Hashable] = contextvars.ContextVar("rpc_caller")


class Dispatcher:
    def __init__(
        self,
        methods: Mapping[str, Method],
        max_batch: int,
        disabled: Mapping[str, RPCError] | None = None,
    ) -> None:
        """`disabled`: methods of the table that answer only with the given error."""
        self._methods = methods
        self._max_batch = max_batch
        self._disabled = dict(disabled or {})
        assert set(self._disabled) <= set(methods), "only a method of the table is disabled"

    def __contains__(self, method: str) -> bool:
        return method in self._methods

    def refusal(self, method: str) -> RPCError | None:
        """The error a disabled method answers with, or None if it is enabled."""
        return self._disabled.get(method)

    async def handle(self, payload: Any, session: WebSocketSession | None = None) -> Any:
        """One JSON-RPC request object or a batch of them -> the reply body (None when
        there is nothing to answer: a request without an id is a notification)."""
        if session is not None:
            CALLER.set(session)
        if isinstance(payload, list):
            if not payload:
                return error_body(None, RPCError(INVALID_REQUEST, "Invalid Request", "empty batch"))
            if len(payload) > self._max_batch:
                return error_body(
                    None,
                    RPCError(
                        INVALID_REQUEST,
                        "Invalid Request",
                        f"batch request exceeds maximum ({self._max_batch}) "
                        "allowed number of requests",
                    ),
                )
            replies = [r for r in [await self._handle_one(p, session) for p in payload] if r]
            return replies or None
        return await self._handle_one(payload, session)

    async def _handle_one(self, payload: Any, session: WebSocketSession | None) -> Any:
        if not isinstance(payload, dict):
            return error_body(
                None,
                RPCError(INVALID_REQUEST, "Invalid Request", "expected a JSON-RPC request object"),
            )
        request_id = payload.get("id")
        if not is_request_id(request_id):
            return error_body(
                None,
                RPCError(INVALID_REQUEST, "Invalid Request", "id must be a string or a number"),
            )
        if payload.get("jsonrpc") != "2.0" or not isinstance(payload.get("method"), str):
            return error_body(
                request_id,
                RPCError(
                    INVALID_REQUEST, "Invalid Request", 'jsonrpc must be "2.0" and method a string'
                ),
            )
        if "id" not in payload:
            return None  # a notification: CometBFT skips it, and so do we
        method = payload["method"]
        refused = self.refusal(method)
        if refused is not None:
            return error_body(request_id, refused)
        try:
            params = params_object(method, payload.get("params"))
        except RPCError as exc:
            return error_body(request_id, exc)
        if session is not None and method in WS_METHODS:
            try:
                return result_body(request_id, session.call(method, request_id, params))
            except RPCError as exc:
                return error_body(request_id, exc)
        return await self.call(request_id, method, params)

    async def call(self, request_id: Any, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Run one method -> its reply body, a result or an error."""
        handler = self._methods.get(method)
        if handler is None:
            return error_body(request_id, RPCError(METHOD_NOT_FOUND, "Method not found"))
        refused = self.refusal(method)
        if refused is not None:
            return error_body(request_id, refused)
        try:
            return result_body(request_id, await handler(params))
        except RPCError as exc:
            return error_body(request_id, exc)
        except Exception as exc:  # never a stack trace to the client
            log.exception("RPC method failed", extra=fields(method=method))
            return error_body(
                request_id, RPCError(INTERNAL_ERROR, "Internal error", type(exc).__name__)
            )
