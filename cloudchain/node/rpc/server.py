"""The node's RPC server, in the shapes of CometBFT v0.38's RPC.

JSON-RPC 2.0 over HTTP POST at "/" (one request or a batch of at most
max_request_batch_size; a request without an id is a notification and gets no
reply), the same methods as URI GET (`/status`, `/block?height=5`), a WebSocket
at /websocket (any method, plus subscribe/unsubscribe/unsubscribe_all; see
rpc_websocket.py), Prometheus text at /metrics, and the blob store's streamed
POST /blobs, GET and HEAD /blobs/{cid} (blob_http.py). CometBFT's encodings: heights
and counts as decimal strings, hashes as upper-case hex, transactions and query
values as base64, times as RFC 3339 with nanoseconds, public keys as
{"type": "tendermint/PubKeyEd25519", "value": base64}.

Bad requests get JSON-RPC errors (-32700 parse error, -32600 invalid request,
-32601 method not found, -32602 invalid params, -32603 internal error with a
message saying what, e.g. a height above the chain's), never a stack trace; a
path that names no method is a plain 404, as Go's http.NotFound.
Params come by name (an object) or by position (an array, mapped onto the
method's parameter names in PARAM_NAMES, as CometBFT does). The limits of
[rpc] in config.toml (body size, batch size, open connections, WebSocket
subscribers, subscriptions and bytes queued) protect the node. Reading params is
rpc_params.py, the JSON shapes rpc_shapes.py, connection counting
rpc_connections.py, one WebSocket rpc_websocket.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from cloudchain import codec
from cloudchain.crypto import PUBKEY_TYPE
from cloudchain.ledger import Block, TxResult
from cloudchain.logfields import fields
from cloudchain.node.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from cloudchain.node.rpc import txquery
from cloudchain.node.rpc.blob_http import BlobHTTP
from cloudchain.node.rpc.connections import ConnectionGate
from cloudchain.node.rpc.errors import (
    HTTP_PARAMS_PREFIX,
    INTERNAL_ERROR,
    INVALID_REQUEST,
    JSON_PARAMS_PREFIX,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    RPCError,
    error_body,
    result_body,
)
from cloudchain.node.rpc.eventbus import (
    MAX_QUERY_LENGTH,
    BusLimits,
    EventBus,
    Subscription,
    SubscriptionError,
    Tags,
)
from cloudchain.node.rpc.params import (
    PARAM_NAMES,
    bad_params,
    hash_param,
    height_param,
    int_param,
    is_request_id,
    loads,
    page_param,
    params_object,
    per_page_param,
    tx_param,
    uri_params,
)
from cloudchain.node.rpc.shapes import (
    b64,
    block_id_json,
    block_json,
    commit_json,
    events_json,
    header_json,
    hex_upper,
    new_block_event,
    new_block_header_event,
    new_block_header_tags,
    new_block_tags,
    tx_event,
    tx_result_json,
    tx_tags,
)
from cloudchain.node.rpc.websocket import WS_METHODS, EncodedEvent, WebSocketSession
from cloudchain.storage.chain import BlockResults
from cloudchain.timefmt import format_rfc3339_ns

if TYPE_CHECKING:
    from cloudchain.node.config import RPCConfig
    from cloudchain.node.runtime import Node

log = logging.getLogger(__name__)

BROADCAST_COMMIT_TIMEOUT_S = 30.0
NOT_FOUND = "404 page not found\n"  # Go's http.NotFound
# Who is calling, as CometBFT's subscriber id (ctx.RemoteAddr()): an HTTP connection's
# "host:port", or the WebSocket session a request came over. broadcast_tx_commit
# subscribes under it.
_CALLER: contextvars.ContextVar[Hashable] = contextvars.ContextVar("rpc_caller")
VERSION = "0.38.0-cloudchain"
CLOSE_WAIT_S = 5.0  # stop(): the longest the WebSockets may take to close, all together
READ_TIMEOUT_S = 10.0  # CometBFT's ReadTimeout: a new connection's first request head; a body
IDLE_TIMEOUT_S = 10.0  # aiohttp's keep-alive: the longest wait for a connection's next request


class RPCServer:
    def __init__(self, node: Node, limits: RPCConfig) -> None:
        self._node = node
        self._methods: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = {
            "status": self.status,
            "block": self.block,
            "broadcast_tx_sync": self.broadcast_tx_sync,
            "broadcast_tx_commit": self.broadcast_tx_commit,
            "tx": self.tx,
            "abci_query": self.abci_query,
            "health": self.health,
            "genesis": self.genesis,
            "abci_info": self.abci_info,
            "validators": self.validators,
            "commit": self.commit,
            "block_by_hash": self.block_by_hash,
            "block_results": self.block_results,
            "broadcast_tx_async": self.broadcast_tx_async,
            "num_unconfirmed_txs": self.num_unconfirmed_txs,
            "unconfirmed_txs": self.unconfirmed_txs,
            "net_info": self.net_info,
            "blockchain": self.blockchain,
            "tx_search": self.tx_search,
        }
        # The blob store's HTTP routes and JSON-RPC methods (blob_http.py).
        self.blob_http = BlobHTTP(node)
        self._methods.update(self.blob_http.rpc_methods())
        assert set(self._methods) | set(WS_METHODS) == set(PARAM_NAMES)
        self._limits = limits
        self.bus = EventBus(
            BusLimits(limits.max_subscription_clients, limits.max_subscriptions_per_client)
        )
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
        app.router.add_get("/{method}", self._get)
        app.router.add_post("/{method}", self._get)  # Go's mux routes any verb to the URI form
        self._runner = web.AppRunner(
            app, access_log=None, keepalive_timeout=IDLE_TIMEOUT_S, shutdown_timeout=CLOSE_WAIT_S
        )
        await self._runner.setup()
        assert self._runner.server is not None
        # Connections are counted where they are accepted (see rpc_connections.py).
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
        _CALLER.set(_remote_address(request))
        reply = await self.handle(payload)
        if reply is None:  # only notifications: JSON-RPC sends nothing back
            return web.Response(status=200)
        return _json(reply)

    async def handle(self, payload: Any, session: WebSocketSession | None = None) -> Any:
        """One JSON-RPC request object or a batch of them -> the reply body (None when
        there is nothing to answer: a request without an id is a notification)."""
        if session is not None:
            _CALLER.set(session)
        if isinstance(payload, list):
            if not payload:
                return error_body(None, RPCError(INVALID_REQUEST, "Invalid Request", "empty batch"))
            if len(payload) > self._limits.max_request_batch_size:
                return error_body(
                    None,
                    RPCError(
                        INVALID_REQUEST,
                        "Invalid Request",
                        "batch request exceeds maximum "
                        f"({self._limits.max_request_batch_size}) "
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
        try:
            params = params_object(method, payload.get("params"))
        except RPCError as exc:
            return error_body(request_id, exc)
        if session is not None and method in WS_METHODS:
            try:
                return result_body(request_id, session.call(method, request_id, params))
            except RPCError as exc:
                return error_body(request_id, exc)
        return await self._call(request_id, method, params)

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
        "Method not found", as CometBFT's makeHTTPHandler answers it."""
        method = request.match_info["method"]
        if method in WS_METHODS:
            return _json(error_body(-1, RPCError(METHOD_NOT_FOUND, "Method not found")), 404)
        if method not in self._methods:
            return web.Response(status=404, text=NOT_FOUND)
        _CALLER.set(_remote_address(request))
        try:
            params = uri_params(method, request.query)
        except RPCError as exc:
            body = error_body(-1, exc)
        else:
            body = await self._call(-1, method, params)
        error = body.get("error")
        if error is None:
            return _json(body)
        if "data" in error and error["data"].startswith(JSON_PARAMS_PREFIX):
            error["data"] = HTTP_PARAMS_PREFIX + error["data"].removeprefix(JSON_PARAMS_PREFIX)
        return _json(body, 500)

    async def _call(self, request_id: Any, method: str, params: dict[str, Any]) -> dict[str, Any]:
        handler = self._methods.get(method)
        if handler is None:
            return error_body(request_id, RPCError(METHOD_NOT_FOUND, "Method not found"))
        try:
            return result_body(request_id, await handler(params))
        except RPCError as exc:
            return error_body(request_id, exc)
        except Exception as exc:  # never a stack trace to the client
            log.exception("RPC method failed", extra=fields(method=method))
            return error_body(
                request_id, RPCError(INTERNAL_ERROR, "Internal error", type(exc).__name__)
            )

    # --- methods -------------------------------------------------------------------------------

    async def status(self, params: dict[str, Any]) -> dict[str, Any]:
        node = self._node
        store = node.store
        latest = store.last_block
        first = store.block(1) if store.height >= 1 else None
        key = node.key
        power = next(
            (
                v.power
                for v in node.validators
                if key is not None and v.public_key == key.public_key
            ),
            0,
        )
        return {
            "node_info": {
                "protocol_version": {"p2p": "8", "block": "11", "app": "0"},
                "id": node.peers.node_id,
                "listen_addr": f"tcp://{node.config.p2p.listen_address}",
                "network": node.chain_id,
                "version": VERSION,
                "channels": "",
                "moniker": node.config.moniker,
                "other": {
                    "tx_index": "on",
                    "rpc_address": f"tcp://{node.config.rpc.listen_address}",
                },
            },
            "sync_info": {
                # app hashes as in the headers (the state before that block), as CometBFT
                "latest_block_hash": hex_upper(latest.hash) if latest else "",
                "latest_app_hash": hex_upper(latest.header.app_hash) if latest else "",
                "latest_block_height": str(store.height),
                "latest_block_time": format_rfc3339_ns(
                    latest.header.time_ns if latest else node.app.genesis.genesis_time_ns
                ),
                "earliest_block_hash": hex_upper(first.hash) if first else "",
                "earliest_app_hash": hex_upper(first.header.app_hash) if first else "",
                "earliest_block_height": "1" if first else "0",
                "earliest_block_time": format_rfc3339_ns(
                    first.header.time_ns if first else node.app.genesis.genesis_time_ns
                ),
                "catching_up": node.catching_up,
            },
            "validator_info": {
                "address": hex_upper(bytes.fromhex(key.address)) if key else "",
                "pub_key": {"type": PUBKEY_TYPE, "value": b64(key.public_key) if key else ""},
                "voting_power": str(power),
            },
        }

    async def block(self, params: dict[str, Any]) -> dict[str, Any]:
        store = self._node.store
        height = height_param(params.get("height"), store.height)
        block = store.block(height)
        if block is None:
            raise RPCError(INTERNAL_ERROR, "Internal error", f"height {height} is not available")
        return block_json(block, self._node.validators)

    async def broadcast_tx_sync(self, params: dict[str, Any]) -> dict[str, Any]:
        raw = tx_param(params)
        admission = self._node.submit_tx(raw)
        return {
            "code": int(admission.code),
            "data": "",
            "log": admission.log,
            "codespace": admission.codespace,
            "hash": hex_upper(codec.sha256(raw)),
        }

    async def broadcast_tx_commit(self, params: dict[str, Any]) -> dict[str, Any]:
        """CometBFT's: subscribe to the transaction's Tx event under the caller's name, so
        that the subscription limits bound the waiters too (over them, its errors), then
        check it into the mempool and wait for the block that commits it."""
        raw = tx_param(params)
        tx_hash = codec.sha256(raw)
        node = self._node
        waiter = _CommitWaiter()
        query = f"tm.event='Tx' AND tx.hash='{hex_upper(tx_hash)}'"  # its EventQueryTxFor
        client = _CALLER.get(None) or waiter
        try:
            self.bus.subscribe(waiter, query, None, client=client)
        except SubscriptionError as exc:
            why = str(exc)
            raise RPCError(
                INTERNAL_ERROR,
                "Internal error",
                why if why.startswith("max_") else f"failed to subscribe to tx: {why}",
            ) from None
        try:
            admission = node.submit_tx(raw)
            check = {
                "code": int(admission.code),
                "data": None,
                "log": admission.log,
                "info": "",
                "gas_wanted": "0",
                "gas_used": "0",
                "events": [],
                "codespace": admission.codespace,
            }
            if not admission.ok:
                empty = tx_result_json(TxResult(0, "", "", (), 1, 0))
                return {
                    "check_tx": check,
                    "tx_result": empty,
                    "hash": hex_upper(tx_hash),
                    "height": "0",
                }
            try:
                height = await asyncio.wait_for(waiter.committed, BROADCAST_COMMIT_TIMEOUT_S)
            except TimeoutError:
                raise RPCError(
                    INTERNAL_ERROR,
                    "Internal error",
                    "timed out waiting for tx to be included in a block",
                ) from None
        finally:
            # (already gone if the bus cancelled it, with the client's other subscriptions)
            with contextlib.suppress(SubscriptionError):
                self.bus.unsubscribe(client, query)
        result = node.store.tx_result(tx_hash)
        assert result is not None
        return {
            "check_tx": check,
            "tx_result": tx_result_json(result),
            "hash": hex_upper(tx_hash),
            "height": str(height),
        }

    async def tx(self, params: dict[str, Any]) -> dict[str, Any]:
        tx_hash = hash_param(params.get("hash"))
        location = self._node.store.tx_location(tx_hash)
        if location is None:
            raise RPCError(INTERNAL_ERROR, "Internal error", f"tx ({hex_upper(tx_hash)}) not found")
        return self._tx_json(*location)

    def _tx_json(self, height: int, index: int) -> dict[str, Any]:
        store = self._node.store
        block = store.block(height)
        assert block is not None
        tx = block.txs[index]
        result = store.tx_result(tx.hash)
        assert result is not None
        return {
            "hash": hex_upper(tx.hash),
            "height": str(height),
            "index": index,
            "tx_result": tx_result_json(result),
            "tx": b64(tx.to_bytes()),
        }

    async def tx_search(self, params: dict[str, Any]) -> dict[str, Any]:
        """CometBFT's order of checks: the query's length, the query, then order_by
        ("asc", "desc" or "", which is "asc"), then the page."""
        query = params.get("query", "")
        if not isinstance(query, str):
            raise bad_params("query must be a string")
        order_by = params.get("order_by", "")
        if not isinstance(order_by, str):
            raise bad_params("order_by must be a string")
        if len(query) > MAX_QUERY_LENGTH:
            raise RPCError(INTERNAL_ERROR, "Internal error", "maximum query length exceeded")
        try:
            found = txquery.search(self._node.store, txquery.parse(query))
        except txquery.QueryError as exc:
            raise RPCError(INTERNAL_ERROR, "Internal error", str(exc)) from None
        if order_by not in ("asc", "desc", ""):
            raise RPCError(
                INTERNAL_ERROR,
                "Internal error",
                "expected order_by to be either `asc` or `desc` or empty",
            )
        per_page = per_page_param(params.get("per_page"), "per_page")
        page = page_param(params.get("page"), per_page, len(found))
        if order_by == "desc":
            found.reverse()
        chosen = found[(page - 1) * per_page : page * per_page]
        return {"txs": [self._tx_json(h, i) for h, i in chosen], "total_count": str(len(found))}

    async def blockchain(self, params: dict[str, Any]) -> dict[str, Any]:
        """Block metas from max_height down to min_height, at most 20, as CometBFT's
        filterMinMax: a negative height is an error, 0 or absent means the chain's ends,
        and max is clamped to the chain."""
        store = self._node.store
        latest = store.height
        max_raw = params.get("maxHeight") or params.get("max_height") or 0
        min_raw = params.get("minHeight") or params.get("min_height") or 0
        max_height = int_param(max_raw, "maxHeight", signed=True)
        min_height = int_param(min_raw, "minHeight", signed=True)
        if min_height < 0 or max_height < 0:
            raise RPCError(INTERNAL_ERROR, "Internal error", "heights must be non-negative")
        max_height = min(max_height or latest, latest)
        min_height = max(min_height, max_height - 19, 1)
        if min_height > max_height:
            raise RPCError(
                INTERNAL_ERROR,
                "Internal error",
                f"min height {min_height} can't be greater than max height {max_height}",
            )
        metas = []
        for height in range(max_height, min_height - 1, -1):
            block = store.block(height)
            assert block is not None
            metas.append(
                {
                    "block_id": block_id_json(block.hash),
                    "block_size": str(len(block.to_bytes())),
                    "header": header_json(block.header),
                    "num_txs": str(len(block.txs)),
                }
            )
        return {"last_height": str(latest), "block_metas": metas}

    async def health(self, params: dict[str, Any]) -> dict[str, Any]:
        return {}

    async def genesis(self, params: dict[str, Any]) -> dict[str, Any]:
        """The genesis document in CometBFT's GenesisDoc shape (int64s as strings)."""
        genesis = self._node.app.genesis
        document = genesis.to_obj()
        for validator, listed in zip(genesis.validators, document["validators"], strict=True):
            listed["address"] = hex_upper(validator.address)
            listed["power"] = str(listed["power"])
        # What CometBFT's params would say of us: no gas, no evidence, Ed25519 keys, no
        # vote extensions; max_txs is ours and has no CometBFT counterpart.
        document["consensus_params"] = {
            "block": {
                "max_bytes": str(genesis.max_block_bytes),
                "max_gas": "-1",
                "max_txs": str(genesis.max_block_txs),
            },
            "evidence": {"max_age_num_blocks": "0", "max_age_duration": "0", "max_bytes": "0"},
            "validator": {"pub_key_types": ["ed25519"]},
            "version": {"app": "0"},
            "abci": {"vote_extensions_enable_height": "0"},
        }
        return {"genesis": dict(document, initial_height="1", app_hash="")}

    async def abci_info(self, params: dict[str, Any]) -> dict[str, Any]:
        info = self._node.app.info()
        return {
            "response": {
                "data": "cloudchain",
                "version": VERSION,
                "app_version": "0",
                "last_block_height": str(info.height),
                "last_block_app_hash": b64(info.app_hash),
            }
        }

    async def validators(self, params: dict[str, Any]) -> dict[str, Any]:
        """The set at `height`, a page of it: CometBFT's, whose latest is the next height's
        set (the one after the last block; the last block's while catching up)."""
        node = self._node
        latest = node.store.height if node.catching_up else node.store.height + 1
        height = height_param(params.get("height"), latest)
        every = node.validators
        per_page = per_page_param(params.get("per_page"), "per_page")
        page = page_param(params.get("page"), per_page, len(every))
        listed = [
            {
                "address": hex_upper(v.address),
                "pub_key": {"type": PUBKEY_TYPE, "value": b64(v.public_key)},
                "voting_power": str(v.power),
                "proposer_priority": "0",
            }
            for v in every[(page - 1) * per_page : page * per_page]
        ]
        return {
            "block_height": str(height),
            "validators": listed,
            "count": str(len(listed)),
            "total": str(len(every)),
        }

    async def commit(self, params: dict[str, Any]) -> dict[str, Any]:
        """The header at `height` and the commit that finalised it: the next block's
        last commit, or, for the latest height, the node's own (canonical: false)."""
        node = self._node
        height = height_param(params.get("height"), node.store.height)
        block = node.store.block(height)
        following = node.store.block(height + 1)
        if following is not None:
            commit, canonical = following.last_commit, True
        else:
            decided = node.decided.get(height)
            commit, canonical = (None if decided is None else decided.commit), False
        assert block is not None
        return {
            "signed_header": {
                "header": header_json(block.header),
                "commit": commit_json(commit, node.validators),
            },
            "canonical": canonical,
        }

    async def block_by_hash(self, params: dict[str, Any]) -> dict[str, Any]:
        block_hash = hash_param(params.get("hash"))
        height = self._node.store.block_height(block_hash)
        if height is None:  # not an error in CometBFT: an empty block id and a null block
            return {"block_id": block_id_json(b""), "block": None}
        block = self._node.store.block(height)
        assert block is not None
        return block_json(block, self._node.validators)

    async def block_results(self, params: dict[str, Any]) -> dict[str, Any]:
        store = self._node.store
        height = height_param(params.get("height"), store.height)
        results = store.block_results(height)
        assert results is not None
        return {
            "height": str(height),
            "txs_results": [tx_result_json(r) for r in results.tx_results] or None,
            "finalize_block_events": events_json(results.block_events),
            "validator_updates": None,
            "consensus_param_updates": None,
            "app_hash": b64(store.app_hash_at(height) or b""),
        }

    async def broadcast_tx_async(self, params: dict[str, Any]) -> dict[str, Any]:
        raw = tx_param(params)
        self._node.submit_tx(raw)  # the result is not awaited, as CometBFT's async
        return {
            "code": 0,
            "data": "",
            "log": "",
            "codespace": "",
            "hash": hex_upper(codec.sha256(raw)),
        }

    async def num_unconfirmed_txs(self, params: dict[str, Any]) -> dict[str, Any]:
        mempool = self._node.mempool
        return {
            "n_txs": str(len(mempool)),
            "total": str(len(mempool)),
            "total_bytes": str(mempool.size_bytes),
            "txs": None,
        }

    async def unconfirmed_txs(self, params: dict[str, Any]) -> dict[str, Any]:
        limit = per_page_param(params.get("limit"), "limit")
        mempool = self._node.mempool
        return {
            "n_txs": str(min(limit, len(mempool))),
            "total": str(len(mempool)),
            "total_bytes": str(mempool.size_bytes),
            "txs": [b64(raw) for raw in mempool.pending(limit)],
        }

    async def net_info(self, params: dict[str, Any]) -> dict[str, Any]:
        """Our peers in CometBFT's shape. We learn no NodeInfo in our handshake, so a peer's
        is what we know of it: its id, our chain, and the address we dial it at, if any;
        what we cannot know is empty. No connection_status: we keep no flow monitors."""
        node = self._node
        dialed = dict(p.lower().partition("@")[::2] for p in node.config.p2p.persistent_peers)
        peers = []
        for peer_id in node.peers.connected:
            host_port = dialed.get(peer_id, "")
            info = {
                "protocol_version": {"p2p": "8", "block": "11", "app": "0"},
                "id": peer_id,
                "listen_addr": f"tcp://{host_port}" if host_port else "",
                "network": node.chain_id,
                "version": "",
                "channels": "",
                "moniker": "",
                "other": {"tx_index": "", "rpc_address": ""},
            }
            peers.append(
                {
                    "node_info": info,
                    "is_outbound": peer_id > node.peers.node_id,
                    "remote_ip": host_port.rpartition(":")[0],
                }
            )
        return {
            "listening": True,
            "listeners": [f"tcp://{node.config.p2p.listen_address}"],
            "n_peers": str(len(peers)),
            "peers": peers,
        }

    async def abci_query(self, params: dict[str, Any]) -> dict[str, Any]:
        path = params.get("path")
        if not isinstance(path, str):
            raise bad_params("path must be a string")
        data_hex = params.get("data", "") or ""
        try:
            data = bytes.fromhex(data_hex.removeprefix("0x"))
        except (ValueError, AttributeError):
            raise bad_params("data must be hex") from None
        height = int_param(params.get("height", "0"), "height")
        answer = self._node.app.query(path, data, height)
        return {
            "response": {
                "code": int(answer.code),
                "log": answer.log,
                "info": "",
                "index": "0",
                "key": None,
                "value": b64(answer.value) or None,
                "proofOps": None,
                "height": str(answer.height),
                "codespace": "" if answer.code == 0 else "query",
            }
        }


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def _remote_address(request: web.Request) -> str:
    """An HTTP caller's "host:port", CometBFT's name for it as a subscriber."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(request.remote)


class _CommitWaiter:
    """broadcast_tx_commit's subscriber: takes its transaction's Tx event (the height
    it was committed at), or learns that the bus cancelled it."""

    def __init__(self) -> None:
        self.committed: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def deliver(self, subscription: Subscription, data: Any, tags: Tags) -> bool:
        if not self.committed.done():
            self.committed.set_result(int(tags["tx.height"][0]))
        return True

    def cancelled(self, subscription: Subscription, reason: str) -> None:
        if not self.committed.done():
            self.committed.set_exception(
                RPCError(
                    INTERNAL_ERROR,
                    "Internal error",
                    f"deliverTxSub was canceled (reason: {reason})",
                )
            )
