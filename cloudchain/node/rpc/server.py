"""The node's RPC server on its RPC port, in the shapes of CometBFT v0.38's RPC.

JSON-RPC 2.0 over HTTP POST at "/" (one request or a batch of at most
max_request_batch_size; a request without an id is a notification and gets no
reply), the same methods as URI GET (`/status`, `/block?height=5`), a WebSocket
at /websocket (any method, plus subscribe/unsubscribe/unsubscribe_all; see
websocket.py), Prometheus text at /metrics, and the blob store's streamed
POST /blobs, GET and HEAD /blobs/{cid} (blob_http.py), and the web UI at /ui
(ui_http.py, cloudchain/ui), which checks a task manifest with manifest_canonical
(manifest.py). CometBFT's encodings: heights
and counts as decimal strings, hashes as upper-case hex, transactions and query
values as base64, times as RFC 3339 with nanoseconds, public keys as
{"type": "tendermint/PubKeyEd25519", "value": base64}.

Bad requests get JSON-RPC errors (-32700 parse error, -32600 invalid request,
-32601 method not found, -32602 invalid params, -32603 internal error with a
message saying what, e.g. a height above the chain's), never a stack trace; a
path that names no method is a plain 404, as Go's http.NotFound. Params come by
name (an object) or by position (an array, mapped onto the method's parameter
names in params.py's PARAM_NAMES, as CometBFT does). The limits of [rpc] in
config.toml (body size, batch size, open connections, WebSocket subscribers,
subscriptions and bytes queued) protect the node.

What this module owns: the HTTP side (routes, reading bodies and query strings,
the URI form's errors, closing everything on stop) and the table of methods, which
it hands to the JSON-RPC dispatcher (dispatch.py). The methods themselves are
info.py (who the node is), chain.py (blocks and transactions), broadcast.py
(transactions in, the mempool) and admin.py (the blob store's bookkeeping, whose
state-changing methods answer only with [rpc] unsafe = true);
connection counting is connections.py. The node is seen only through its
NodeView (view.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

from cloudchain.ledger import Block
from cloudchain.node.config import RPCConfig
from cloudchain.node.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from cloudchain.node.rpc.admin import OPERATOR_METHODS, BlobAdmin, operator_method_disabled
from cloudchain.node.rpc.blob_http import BlobHTTP
from cloudchain.node.rpc.broadcast import BroadcastMethods
from cloudchain.node.rpc.chain import ChainMethods
from cloudchain.node.rpc.connections import ConnectionGate
from cloudchain.node.rpc.dispatch import CALLER, Dispatcher, Method
from cloudchain.node.rpc.errors import (
    HTTP_PARAMS_PREFIX,
    INVALID_REQUEST,
    JSON_PARAMS_PREFIX,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    RPCError,
    error_body,
)
from cloudchain.node.rpc.eventbus import BusLimits, EventBus
from cloudchain.node.rpc.info import InfoMethods
from cloudchain.node.rpc.manifest import manifest_canonical
from cloudchain.node.rpc.params import PARAM_NAMES, loads, uri_params
from cloudchain.node.rpc.shapes import (
    new_block_event,
    new_block_header_event,
    new_block_header_tags,
    new_block_tags,
    tx_event,
    tx_tags,
)
from cloudchain.node.rpc.ui_http import UIFiles
from cloudchain.node.rpc.view import NodeView
from cloudchain.node.rpc.websocket import WS_METHODS, EncodedEvent, WebSocketSession
from cloudchain.storage.chain import BlockResults

NOT_FOUND = "404 page not found\n"  # Go's http.NotFound
CLOSE_WAIT_S = 5.0  # stop(): the longest the WebSockets may take to close, all together
READ_TIMEOUT_S = 10.0  # CometBFT's ReadTimeout: a new connection's first request head; a body
IDLE_TIMEOUT_S = 10.0  # aiohttp's keep-alive: the longest wait for a connection's next request


class RPCServer:
    def __init__(self, node: NodeView, limits: RPCConfig) -> None:
        self._node = node
        self._limits = limits
        self.bus = EventBus(
            BusLimits(limits.max_subscription_clients, limits.max_subscriptions_per_client)
        )
        # The blob store's HTTP routes (blob_http.py), whose threads admin.py's calls share.
        self.blob_http = BlobHTTP(node)
        self.ui = UIFiles()
        info, chain = InfoMethods(node), ChainMethods(node)
        txs, blobs = BroadcastMethods(node, self.bus), BlobAdmin(node, self.blob_http)
        methods: dict[str, Method] = {
            "status": info.status,
            "block": chain.block,
            "broadcast_tx_sync": txs.broadcast_tx_sync,
            "broadcast_tx_commit": txs.broadcast_tx_commit,
            "tx": chain.tx,
            "abci_query": info.abci_query,
            "health": info.health,
            "genesis": info.genesis,
            "abci_info": info.abci_info,
            "validators": chain.validators,
            "commit": chain.commit,
            "block_by_hash": chain.block_by_hash,
            "block_results": chain.block_results,
            "broadcast_tx_async": txs.broadcast_tx_async,
            "broadcast_evidence": txs.broadcast_evidence,
            "num_unconfirmed_txs": txs.num_unconfirmed_txs,
            "unconfirmed_txs": txs.unconfirmed_txs,
            "net_info": info.net_info,
            "blockchain": chain.blockchain,
            "tx_search": chain.tx_search,
            "blob_stat": blobs.blob_stat,
            "blob_dag": blobs.blob_dag,
            "manifest_canonical": manifest_canonical,
            "blob_pin": blobs.blob_pin,
            "blob_unpin": blobs.blob_unpin,
            "blob_gc": blobs.blob_gc,
        }
        assert set(methods) | set(WS_METHODS) == set(PARAM_NAMES)
        # The operator's methods answer only with [rpc] unsafe = true (admin.py).
        disabled = (
            {} if limits.unsafe else {m: operator_method_disabled(m) for m in OPERATOR_METHODS}
        )
        self._dispatch = Dispatcher(methods, limits.max_request_batch_size, disabled)
        self._runner: web.AppRunner | None = None
        self._gate: ConnectionGate | None = None
        self._listener: asyncio.Server | None = None
        self.sessions: set[WebSocketSession] = set()  # the open WebSockets

    @property
    def open_connections(self) -> int:
        return 0 if self._gate is None else self._gate.open_count

    async def start(self, host: str, port: int) -> None:
        app = web.Application(
            client_max_size=self._limits.max_body_bytes, middlewares=[self._note_request]
        )
        app.router.add_post("/", self._post)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/websocket", self._websocket)
        self.blob_http.add_routes(app)  # streamed: client_max_size does not bound them
        self.ui.add_routes(app)  # the web UI at /ui (ui_http.py)
        app.router.add_get("/{method}", self._get)
        app.router.add_post("/{method}", self._get)  # Go's mux routes any verb to the URI form
        self._runner = web.AppRunner(
            app, access_log=None, keepalive_timeout=IDLE_TIMEOUT_S, shutdown_timeout=CLOSE_WAIT_S
        )
        await self._runner.setup()
        assert self._runner.server is not None
        # Connections are counted where they are accepted (see connections.py).
        self._gate = ConnectionGate(
            self._runner.server, self._limits.max_open_connections, READ_TIMEOUT_S
        )
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(self._gate, host, port)

    async def stop(self) -> None:
        """Stop listening, close the WebSockets (concurrently, within CLOSE_WAIT_S; those
        that do not finish are aborted), then every other connection; never hangs."""
        if self._listener is not None:
            self._listener.close()
        sessions = list(self.sessions)
        closing = [asyncio.create_task(session.close()) for session in sessions]
        if closing:
            _, pending = await asyncio.wait(closing, timeout=CLOSE_WAIT_S)
            for session, task in zip(sessions, closing, strict=True):
                if task in pending:
                    task.cancel()
                    session.abort()
            await asyncio.gather(*closing, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
        await self.blob_http.stop()
        if self._gate is not None:
            self._gate.abort_all()  # what cleanup could not close gracefully

    def publish_block(self, block: Block, results: BlockResults) -> None:
        """Offer a committed block's events to the WebSocket subscribers, in CometBFT's
        order: NewBlock, NewBlockHeader, then one Tx event per transaction. Each event is
        built and serialised once, however many subscriptions take it."""
        if not self.bus.has_subscribers:
            return
        validators = self._node.validators
        self._publish(
            new_block_tags(block, results), lambda: new_block_event(block, results, validators)
        )
        self._publish(
            new_block_header_tags(block.header), lambda: new_block_header_event(block.header)
        )
        height = block.height
        for tx, result in zip(block.txs, results.tx_results, strict=True):
            self._publish(
                tx_tags(height, tx, result),
                lambda tx=tx, result=result: tx_event(height, tx, result),
            )

    def _publish(self, tags: dict[str, list[str]], build: Callable[[], Any]) -> None:
        self.bus.publish(tags, lambda: EncodedEvent.of(build(), tags))

    # --- transport ----------------------------------------------------------------------------

    @web.middleware
    async def _note_request(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """A request head arrived: its connection is no longer a silent one."""
        if self._gate is not None:
            self._gate.note_request(request.transport)
        return await handler(request)

    async def _post(self, request: web.Request) -> web.Response:
        # A request that cannot be read is an HTTP 500, as in CometBFT's WriteRPCResponseHTTPError.
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            too_large = (
                f"error reading request body: request body larger than "
                f"{self._limits.max_body_bytes} bytes"
            )
            return _json(
                error_body(None, RPCError(INVALID_REQUEST, "Invalid Request", too_large)), 500
            )
        except TimeoutError:
            return _json(
                error_body(
                    None,
                    RPCError(
                        INVALID_REQUEST, "Invalid Request", "error reading request body: timeout"
                    ),
                ),
                500,
            )
        try:
            payload = loads(body)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
            return _json(
                error_body(
                    None,
                    RPCError(
                        PARSE_ERROR,
                        "Parse error. Invalid JSON",
                        f"error unmarshaling request: {exc}",
                    ),
                ),
                500,
            )
        CALLER.set(_remote_address(request))
        reply = await self.handle(payload)
        if reply is None:  # only notifications: JSON-RPC sends nothing back
            return web.Response(status=200)
        return _json(reply)

    async def handle(self, payload: Any, session: WebSocketSession | None = None) -> Any:
        """One JSON-RPC request object or a batch of them -> the reply body (None when
        there is nothing to answer: a request without an id is a notification)."""
        return await self._dispatch.handle(payload, session)

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=self._limits.max_body_bytes, heartbeat=30.0)
        await ws.prepare(request)

        def abort() -> None:
            if request.transport is not None:
                request.transport.abort()

        limits = self._limits
        session = WebSocketSession(
            ws,
            self.bus,
            self.handle,
            limits.subscription_buffer_size,
            limits.max_websocket_outbox_bytes,
            abort,
        )
        self.sessions.add(session)
        try:
            await session.run()
        finally:
            self.sessions.discard(session)
        return ws

    async def _metrics(self, request: web.Request) -> web.Response:
        self._node.refresh_metrics()
        return web.Response(
            body=self._node.metrics.render(), headers={"Content-Type": METRICS_CONTENT_TYPE}
        )

    async def _get(self, request: web.Request) -> web.Response:
        """The URI form; its errors are HTTP 500 and its bad params say "http", as CometBFT's.
        A path that names no method is Go's plain 404; a WebSocket-only method a 404 with
        "Method not found", as CometBFT's makeHTTPHandler answers it, and so is a disabled
        operator method, with the data that names [rpc] unsafe (before any param is read)."""
        method = request.match_info["method"]
        if method in WS_METHODS:
            return _json(error_body(-1, RPCError(METHOD_NOT_FOUND, "Method not found")), 404)
        if method not in self._dispatch:
            return web.Response(status=404, text=NOT_FOUND)
        refused = self._dispatch.refusal(method)
        if refused is not None:
            return _json(error_body(-1, refused), 404)
        CALLER.set(_remote_address(request))
        try:
            params = uri_params(method, request.query)
        except RPCError as exc:
            body = error_body(-1, exc)
        else:
            body = await self._dispatch.call(-1, method, params)
        error = body.get("error")
        if error is None:
            return _json(body)
        if "data" in error and error["data"].startswith(JSON_PARAMS_PREFIX):
            error["data"] = HTTP_PARAMS_PREFIX + error["data"].removeprefix(JSON_PARAMS_PREFIX)
        return _json(body, 500)


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def _remote_address(request: web.Request) -> str:
    """An HTTP caller's "host:port", CometBFT's name for it as a subscriber."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(request.remote)
