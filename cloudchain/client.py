"""A Python client for a node's JSON-RPC: `Client` (async) and `SyncClient` (blocking).

Every method returns the JSON-RPC `result` as CometBFT shapes it; an error from
the node, or a node that cannot be reached, raises `RPCClientError` with the
code and message.

    client = SyncClient("http://127.0.0.1:26657")
    height = int(client.status()["sync_info"]["latest_block_height"])
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
from typing import Any

import aiohttp

from cloudchain import codec

DEFAULT_NODE = os.environ.get("CLOUDCHAIN_NODE", "http://127.0.0.1:26657")
TIMEOUT_S = 40.0  # a little above the node's broadcast_tx_commit wait


class RPCClientError(Exception):
    def __init__(self, code: int, message: str, data: str = "") -> None:
        super().__init__(f"{message} ({code}){': ' + data if data else ''}")
        self.code, self.message, self.data = code, message, data


class Client:
    def __init__(self, url: str = DEFAULT_NODE) -> None:
        self.url = url.rstrip("/") + "/"
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> Any:
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(self.url, json=body) as response,
            ):
                reply = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise RPCClientError(-1, f"cannot reach {self.url}", str(exc)) from None
        if "error" in reply:
            error = reply["error"]
            raise RPCClientError(error.get("code", 0), error.get("message", ""),
                                 error.get("data", ""))  # fmt: skip
        return reply["result"]

    async def status(self) -> dict[str, Any]:
        return await self.call("status")

    async def block(self, height: int | None = None) -> dict[str, Any]:
        return await self.call("block", **({} if height is None else {"height": str(height)}))

    async def broadcast_tx_sync(self, tx: bytes) -> dict[str, Any]:
        return await self.call("broadcast_tx_sync", tx=base64.b64encode(tx).decode())

    async def broadcast_tx_commit(self, tx: bytes) -> dict[str, Any]:
        return await self.call("broadcast_tx_commit", tx=base64.b64encode(tx).decode())

    async def tx(self, tx_hash: bytes) -> dict[str, Any]:
        return await self.call("tx", hash=base64.b64encode(tx_hash).decode())

    async def abci_query(self, path: str, data: bytes = b"", height: int = 0) -> dict[str, Any]:
        return await self.call("abci_query", path=path, data=data.hex(), height=str(height))

    async def health(self) -> dict[str, Any]:
        return await self.call("health")

    async def net_info(self) -> dict[str, Any]:
        return await self.call("net_info")

    async def genesis(self) -> dict[str, Any]:
        return await self.call("genesis")

    async def blockchain(self, min_height: int = 1, max_height: int = 0) -> dict[str, Any]:
        return await self.call("blockchain", minHeight=str(min_height), maxHeight=str(max_height))

    async def block_by_hash(self, block_hash: bytes) -> dict[str, Any]:
        return await self.call("block_by_hash", hash=base64.b64encode(block_hash).decode())

    async def block_results(self, height: int | None = None) -> dict[str, Any]:
        return await self.call("block_results",
                               **({} if height is None else {"height": str(height)}))  # fmt: skip

    async def commit(self, height: int | None = None) -> dict[str, Any]:
        return await self.call("commit", **({} if height is None else {"height": str(height)}))

    async def validators(self, height: int | None = None) -> dict[str, Any]:
        return await self.call("validators",
                               **({} if height is None else {"height": str(height)}))  # fmt: skip

    async def broadcast_tx_async(self, tx: bytes) -> dict[str, Any]:
        return await self.call("broadcast_tx_async", tx=base64.b64encode(tx).decode())

    async def tx_search(self, query: str, page: int = 1, per_page: int = 30,
                        order_by: str = "asc") -> dict[str, Any]:  # fmt: skip
        return await self.call("tx_search", query=query, page=str(page),
                               per_page=str(per_page), order_by=order_by)  # fmt: skip

    async def abci_info(self) -> dict[str, Any]:
        return await self.call("abci_info")

    async def num_unconfirmed_txs(self) -> dict[str, Any]:
        return await self.call("num_unconfirmed_txs")

    async def unconfirmed_txs(self, limit: int = 30) -> dict[str, Any]:
        return await self.call("unconfirmed_txs", limit=str(limit))

    async def query(self, path: str, data: bytes = b"", height: int = 0) -> Any:
        """An application query, decoded; raises RPCClientError if the query is refused."""
        response = (await self.abci_query(path, data, height))["response"]
        if response["code"] != 0:
            raise RPCClientError(response["code"], "query refused", response["log"])
        return codec.thaw(codec.decode(base64.b64decode(response["value"])))

    async def nonce(self, address: str) -> int:
        return (await self.query("/auth/nonce", address.encode()))["nonce"]


class SyncClient:
    """The same methods, blocking (each call runs its own event loop)."""

    def __init__(self, url: str = DEFAULT_NODE) -> None:
        self._client = Client(url)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def blocking(*args: Any, **kwargs: Any) -> Any:
            return asyncio.run(method(*args, **kwargs))

        return blocking
