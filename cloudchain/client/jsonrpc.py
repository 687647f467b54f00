"""A Python client for a node's JSON-RPC: `Client` (async) and `SyncClient` (blocking).

Every method but `call` returns its result parsed into a frozen dataclass of
`cloudchain/client/results.py` (heights as int, hashes as bytes, times as integer
nanoseconds), each keeping the node's JSON in `raw`; `call(method, **params)`
returns the raw `result` of any method. There is one error, `RPCClientError`: the
node refused the call (its JSON-RPC code, message and data), could not be reached
("cannot reach URL", code -1), or answered with something that is not a CometBFT
reply ("malformed reply from the node", code -1, naming the field).

    client = SyncClient("http://127.0.0.1:26657")
    height = client.status().latest_block_height
    balance = client.query("/token/balance", address.encode())["balance"]

Transactions are built, priced and signed here too: `sign_tx(key, module, method,
args)` asks the node for the chain id, the account's next nonce and the fee schedule
(`/fees/params`, read once per client) and pays the minimum fee of the transaction's
own bytes, unless `fee=` says otherwise.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import itertools
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import aiohttp

from cloudchain import codec
from cloudchain.client import tasks as _tasks
from cloudchain.client.blobs import BlobGot, Progress, Source
from cloudchain.client.blobs import get_blob as _get_blob
from cloudchain.client.blobs import put_blob as _put_blob
from cloudchain.client.errors import CLIENT_ERROR, RPCClientError, malformed
from cloudchain.client.results import (
    ABCIInfo,
    BlobGC,
    BlobPut,
    BlobStat,
    Block,
    BlockchainInfo,
    BlockResults,
    BroadcastCommitResult,
    BroadcastResult,
    Commit,
    Genesis,
    NetInfo,
    QueryResponse,
    Status,
    TxResponse,
    TxSearch,
    UnconfirmedTxs,
    Validators,
)
from cloudchain.client.subscriptions import EventStream, SubscriptionEvent, iterate_blocking
from cloudchain.client.task_terms import FINAL_STATES, DataArg, StrPath, TaskRecord
from cloudchain.client.tasks import FetchedResult, SubmittedTask
from cloudchain.crypto import PrivateKey
from cloudchain.fees import FeeSchedule, FeeScheduleError, priced_transaction
from cloudchain.ledger import MalformedError, Transaction

__all__ = [
    "DEFAULT_NODE",
    "Client",
    "RPCClientError",
    "SubscriptionEvent",
    "SyncClient",
    "decode_query_value",
]

DEFAULT_NODE = os.environ.get("CLOUDCHAIN_NODE", "http://127.0.0.1:26657")
TIMEOUT_S = 40.0  # a little above the node's broadcast_tx_commit wait


def _height(height: int | None) -> dict[str, str]:
    return {} if height is None else {"height": str(height)}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


class Client:
    def __init__(self, url: str = DEFAULT_NODE) -> None:
        self.url = url.rstrip("/") + "/"
        self._ids = itertools.count(1)
        self._fees: FeeSchedule | None = None  # fixed at genesis: read once

    async def call(self, method: str, **params: Any) -> Any:
        """The raw `result` of any JSON-RPC method, as the node's JSON."""
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(self.url, json=body) as response,
            ):
                text = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RPCClientError(
                CLIENT_ERROR, f"cannot reach {self.url}", str(exc) or type(exc).__name__
            ) from None
        try:
            reply = json.loads(text, parse_constant=_not_json)  # NaN, Infinity: not JSON
        except ValueError:
            raise malformed(method, f"not JSON: {text[:60]!r}") from None
        if not isinstance(reply, dict) or ("result" not in reply and "error" not in reply):
            raise malformed(method, "expected a JSON-RPC response with a result or an error")
        error = reply.get("error")
        if error is not None:
            if not isinstance(error, dict):
                raise malformed(f"{method}.error", "expected an object")
            code = error.get("code")
            message, data = str(error.get("message", "")), str(error.get("data") or "")
            raise RPCClientError(code if isinstance(code, int) else 0, message, data)
        return reply["result"]

    async def status(self) -> Status:
        return Status.from_json(await self.call("status"))

    async def block(self, height: int | None = None) -> Block:
        return Block.from_json(await self.call("block", **_height(height)))

    async def broadcast_tx_sync(self, tx: bytes) -> BroadcastResult:
        return BroadcastResult.from_json(await self.call("broadcast_tx_sync", tx=_b64(tx)))

    async def broadcast_tx_commit(self, tx: bytes) -> BroadcastCommitResult:
        result = await self.call("broadcast_tx_commit", tx=_b64(tx))
        return BroadcastCommitResult.from_json(result)

    async def tx(self, tx_hash: bytes) -> TxResponse:
        return TxResponse.from_json(await self.call("tx", hash=_b64(tx_hash)))

    async def abci_query(self, path: str, data: bytes = b"", height: int = 0) -> QueryResponse:
        """The query's response whether the application answered or refused (`code`)."""
        result = await self.call("abci_query", path=path, data=data.hex(), height=str(height))
        return QueryResponse.from_json(result)

    async def health(self) -> None:
        """Returns when the node answers; raises RPCClientError when it does not."""
        await self.call("health")

    async def net_info(self) -> NetInfo:
        return NetInfo.from_json(await self.call("net_info"))

    async def genesis(self) -> Genesis:
        return Genesis.from_json(await self.call("genesis"))

    async def blockchain(self, min_height: int = 1, max_height: int = 0) -> BlockchainInfo:
        result = await self.call("blockchain", minHeight=str(min_height), maxHeight=str(max_height))
        return BlockchainInfo.from_json(result)

    async def block_by_hash(self, block_hash: bytes) -> Block | None:
        """The block with this hash, or None if the node has none (CometBFT answers an
        unknown hash with a null block, not an error)."""
        result = await self.call("block_by_hash", hash=_b64(block_hash))
        if isinstance(result, dict) and result.get("block") is None:
            return None
        return Block.from_json(result)

    async def block_results(self, height: int | None = None) -> BlockResults:
        return BlockResults.from_json(await self.call("block_results", **_height(height)))

    async def commit(self, height: int | None = None) -> Commit:
        return Commit.from_json(await self.call("commit", **_height(height)))

    async def validators(
        self, height: int | None = None, page: int | None = None, per_page: int | None = None
    ) -> Validators:
        """One page of the validator set at `height` (default: the next height's, as
        CometBFT), `per_page` of them (default 30, at most 100); `total` says how many
        there are in all. A page beyond the last is an RPCClientError (-32603)."""
        paging = {
            name: str(value)
            for name, value in (("page", page), ("per_page", per_page))
            if value is not None
        }
        return Validators.from_json(await self.call("validators", **_height(height), **paging))

    async def broadcast_tx_async(self, tx: bytes) -> BroadcastResult:
        return BroadcastResult.from_json(await self.call("broadcast_tx_async", tx=_b64(tx)))

    async def broadcast_evidence(self, evidence: bytes) -> str:
        """Hand the node evidence of a double vote (its canonical bytes); the evidence's
        hash (hex) once the node keeps it, an RPCClientError (-32602) saying why not."""
        result = await self.call("broadcast_evidence", evidence=_b64(evidence))
        if not isinstance(result, dict) or not isinstance(result.get("hash"), str):
            raise malformed("broadcast_evidence", "expected {hash}")
        return result["hash"]

    async def tx_search(
        self, query: str, page: int = 1, per_page: int = 30, order_by: str = "asc"
    ) -> TxSearch:
        result = await self.call(
            "tx_search", query=query, page=str(page), per_page=str(per_page), order_by=order_by
        )
        return TxSearch.from_json(result)

    async def abci_info(self) -> ABCIInfo:
        return ABCIInfo.from_json(await self.call("abci_info"))

    async def num_unconfirmed_txs(self) -> UnconfirmedTxs:
        return UnconfirmedTxs.from_json(await self.call("num_unconfirmed_txs"))

    async def unconfirmed_txs(self, limit: int = 30) -> UnconfirmedTxs:
        return UnconfirmedTxs.from_json(await self.call("unconfirmed_txs", limit=str(limit)))

    async def query(self, path: str, data: bytes = b"", height: int = 0) -> Any:
        """An application query's answer, decoded from msgpack into plain dicts and lists;
        raises RPCClientError (the application's code, "query refused", its log) if the
        application refuses the query."""
        response = await self.abci_query(path, data, height)
        if not response.ok:
            raise RPCClientError(response.code, "query refused", response.log)
        return decode_query_value(response)

    async def nonce(self, address: str) -> int:
        """The nonce the account's next transaction must carry."""
        answer = await self.query("/auth/nonce", address.encode())
        nonce = answer.get("nonce") if isinstance(answer, dict) else None
        if not isinstance(nonce, int) or isinstance(nonce, bool):
            raise malformed("/auth/nonce", f"expected {{'nonce': int}}, got {answer!r:.60}")
        return nonce

    async def fee_schedule(self) -> FeeSchedule:
        """The chain's fee schedule (`/fees/params`); fixed at genesis, so asked once."""
        if self._fees is None:
            answer = await self.query("/fees/params")
            try:
                self._fees = FeeSchedule.from_obj(answer, where="/fees/params")
            except FeeScheduleError as exc:
                raise malformed("/fees/params", str(exc)) from None
        return self._fees

    async def sign_tx(
        self,
        key: PrivateKey,
        module: str,
        method: str,
        args: dict[str, Any],
        *,
        fee: int | None = None,
        nonce: int | None = None,
        chain_id: str | None = None,
    ) -> Transaction:
        """`module.method(args)` signed with `key`: the node's chain id and the account's
        next nonce unless given, and the minimum fee of the transaction's own bytes by
        the node's schedule unless `fee` is given (a fee below the minimum is refused by
        the node with code 10, FEE_TOO_LOW)."""
        if chain_id is None:
            chain_id = (await self.status()).network
        if nonce is None:
            nonce = await self.nonce(key.address)
        try:
            if fee is not None:
                return Transaction.create(key, chain_id, nonce, module, method, args, fee=fee)
            schedule = await self.fee_schedule()
            return priced_transaction(key, chain_id, nonce, module, method, args, schedule)
        except (MalformedError, codec.CodecError) as exc:
            raise RPCClientError(CLIENT_ERROR, "cannot build the transaction", str(exc)) from None

    # --- blobs (streamed over HTTP; see client/blobs.py) ----------------------------------

    async def blob_put(
        self,
        path_or_stream: Source,
        replicas: int = 1,
        progress: Progress | None = None,
        cid_version: int = 0,
    ) -> BlobPut:
        """Upload a file (a path or a binary stream); returns once `replicas` nodes hold it.
        `progress(bytes_sent, bytes_total or None)` is called as it goes."""
        return await _put_blob(
            self.url, path_or_stream, replicas=replicas, cid_version=cid_version, progress=progress
        )

    async def blob_get(
        self,
        cid: str,
        dest_path: str | os.PathLike[str],
        progress: Progress | None = None,
        start: int | None = None,
        end: int | None = None,
    ) -> BlobGot:
        """Download the blob's bytes [start, end) (default: all) to `dest_path`."""
        return await _get_blob(
            self.url, str(cid), dest_path, start=start, end=end, progress=progress
        )

    async def blob_stat(self, cid: str) -> BlobStat:
        return BlobStat.from_json(await self.call("blob_stat", cid=str(cid)))

    async def blob_pin(self, cid: str) -> bool:
        """Pin the blob on this node; True if it was not pinned before."""
        return bool((await self.call("blob_pin", cid=str(cid)))["changed"])

    async def blob_unpin(self, cid: str) -> bool:
        """Unpin the blob on this node; True if it was pinned."""
        return bool((await self.call("blob_unpin", cid=str(cid)))["changed"])

    async def blob_gc(self) -> BlobGC:
        return BlobGC.from_json(await self.call("blob_gc"))

    # --- a requester's tasks (see client/tasks.py) -----------------------------------------

    async def submit_task(
        self,
        key: PrivateKey,
        manifest: StrPath | Mapping[str, Any],
        data: DataArg = None,
        *,
        resource_class: str | None = None,
        units: int | None = None,
        budget: int | None = None,
        max_price: int | None = None,
        deadline_s: int | None = None,
        min_uptime_bps: int = _tasks.DEFAULT_MIN_UPTIME_BPS,
        max_latency_ms: int = _tasks.DEFAULT_MAX_LATENCY_MS,
        penalty: int = 0,
        provider: str = "",
        replicas: int = 2,
        anchor: bool = True,
    ) -> SubmittedTask:
        """Upload the manifest's data files (`{name: path}`, or one path for its only
        dataset) and the manifest, anchor them and submit the task, paying at most
        `budget` in all (or `max_price` a unit; default twice the reference price).
        ManifestError names a bad field before anything is uploaded; `warnings` says
        when the balance will not cover the next such task."""
        return await _tasks.submit_task(
            self,
            key,
            manifest,
            data,
            resource_class=resource_class,
            units=units,
            budget=budget,
            max_price=max_price,
            deadline_s=deadline_s,
            min_uptime_bps=min_uptime_bps,
            max_latency_ms=max_latency_ms,
            penalty=penalty,
            provider=provider,
            replicas=replicas,
            anchor=anchor,
        )

    async def task(self, task_id: int) -> TaskRecord:
        """The task as the chain has it now."""
        return await _tasks.read_task(self, task_id)

    async def wait_task(
        self,
        task_id: int,
        states: Sequence[str] = FINAL_STATES,
        timeout_s: float = _tasks.DEFAULT_WAIT_S,
    ) -> TaskRecord:
        """The task once it is in one of `states` (default: settled, refunded or resolved),
        checked at each new block; TaskTimeout after `timeout_s`."""
        return await _tasks.wait_task(self, task_id, states, timeout_s)

    async def fetch_result(self, task_id: int, out_dir: StrPath) -> FetchedResult:
        """The completed task's output files and result index, written into `out_dir`."""
        return await _tasks.fetch_result(self, task_id, out_dir)

    async def fetch_logs(self, task_id: int) -> bytes:
        """The completed task's job log."""
        return await _tasks.fetch_logs(self, task_id)

    def subscribe(self, *queries: str) -> EventStream:
        """Follow the node's events matching any of `queries` over its WebSocket:
        `async with client.subscribe("tm.event='Tx'") as events: async for e in events`.
        The stream's `subscribe`, `unsubscribe` and `unsubscribe_all` change its queries
        while it runs."""
        return EventStream(self.url, queries, TIMEOUT_S)


def decode_query_value(response: QueryResponse) -> Any:
    """An answered query's value (canonical msgpack) as plain dicts and lists."""
    try:
        return codec.thaw(codec.decode(response.value))
    except codec.CodecError as exc:
        raise malformed("QueryResponse.response.value", str(exc)) from None


class SyncClient:
    """The same methods, blocking (each call runs its own event loop)."""

    def __init__(self, url: str = DEFAULT_NODE) -> None:
        self._client = Client(url)

    def subscribe(self, *queries: str) -> Iterator[SubscriptionEvent]:
        """The events, as a blocking iterator; closing it (or breaking out) unsubscribes."""
        return iterate_blocking(self._client.subscribe(*queries))

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not inspect.iscoroutinefunction(method):
            return method

        def blocking(*args: Any, **kwargs: Any) -> Any:
            return asyncio.run(method(*args, **kwargs))

        return blocking
