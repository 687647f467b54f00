"""What an agent needs of the chain, through the client only: its transactions sent and
waited for, the market's records read, blobs put and fetched.

`Chain.send` signs with the agent's key, broadcasts with `broadcast_tx_commit`, and
raises TxRefused with the chain's code and log when the transaction is refused or fails
in its block: an agent decides from the code what a refusal means (INVALID_STATE: the
task moved on, which after a restart is how "already done" reads). A nonce conflict
(the agent's own earlier transaction still pending) is retried a few times with the
next nonce the node reports.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cloudchain.chaincode.codes import Code
from cloudchain.client import Client, RPCClientError
from cloudchain.crypto import PrivateKey

NONCE_CODES = frozenset({Code.NONCE_TOO_LOW, Code.NONCE_TOO_HIGH, Code.NONCE_PENDING})
SEND_ATTEMPTS = 5
log = logging.getLogger(__name__)


class TxRefused(Exception):
    """The chain refused the transaction (in the mempool or in its block)."""

    def __init__(self, method: str, code: int, message: str) -> None:
        super().__init__(f"{method}: refused with code {code}: {message}")
        self.method = method
        self.code = code
        self.message = message


class Chain:
    """One agent's view of the network, through one node's RPC."""

    def __init__(self, url: str, key: PrivateKey) -> None:
        self.client = Client(url)
        self.key = key
        self._sending = asyncio.Lock()  # one transaction at a time: nonces in order

    @property
    def address(self) -> str:
        return self.key.address

    async def send(self, module: str, method: str, args: Mapping[str, Any]) -> int:
        """Send `module.method(args)` and wait until it is committed; its height."""
        name = f"{module}.{method}"
        async with self._sending:
            for attempt in range(SEND_ATTEMPTS):
                tx = await self.client.sign_tx(self.key, module, method, dict(args))
                result = await self.client.broadcast_tx_commit(tx.to_bytes())
                check, block = result.check_tx, result.tx_result
                if check.code in NONCE_CODES and attempt + 1 < SEND_ATTEMPTS:
                    log.info("%s: nonce conflict (code %d), signing again", name, check.code)
                    continue
                if check.code:
                    raise TxRefused(name, check.code, check.log)
                if block.code:
                    raise TxRefused(name, block.code, block.log)
                return result.height
        raise AssertionError("unreachable")

    async def send_batch(self, calls: list[tuple[str, str, Mapping[str, Any]]]) -> int:
        """Send several transactions with consecutive nonces, in one or two blocks
        rather than one block each: all but the last with broadcast_tx_sync, the last
        with broadcast_tx_commit; then each earlier one's own result is checked. The
        height of the last."""
        if len(calls) == 1:
            module, method, args = calls[0]
            return await self.send(module, method, args)
        async with self._sending:
            nonce = await self.client.nonce(self.key.address)
            txs = [
                await self.client.sign_tx(self.key, module, method, dict(args), nonce=nonce + i)
                for i, (module, method, args) in enumerate(calls)
            ]
            for (module, method, _), tx in zip(calls[:-1], txs[:-1], strict=True):
                check = await self.client.broadcast_tx_sync(tx.to_bytes())
                if check.code:
                    raise TxRefused(f"{module}.{method}", check.code, check.log)
            module, method, _ = calls[-1]
            result = await self.client.broadcast_tx_commit(txs[-1].to_bytes())
            for code, text in (
                (result.check_tx.code, result.check_tx.log),
                (result.tx_result.code, result.tx_result.log),
            ):
                if code:
                    raise TxRefused(f"{module}.{method}", code, text)
            for (module, method, _), tx in zip(calls[:-1], txs[:-1], strict=True):
                found = await self.client.tx(tx.hash)
                if found.tx_result.code:
                    raise TxRefused(f"{module}.{method}", found.tx_result.code, found.tx_result.log)
            return result.height

    async def query(self, path: str, data: str = "") -> Any:
        return await self.client.query(path, data.encode())

    async def task(self, task_id: int) -> dict[str, Any]:
        return await self.query("/market/task", str(task_id))

    async def tasks(self, **filters: str) -> list[dict[str, Any]]:
        """Every task matching `filters` (requester, provider, state), in id order,
        page after page."""
        found: list[dict[str, Any]] = []
        after = 0
        while True:
            query = "&".join(
                f"{k}={v}" for k, v in sorted({**filters, "after": str(after)}.items())
            )
            page = (await self.query("/market/tasks", query))["tasks"]
            found.extend(page)
            if not page:
                return found
            after = page[-1]["id"]

    async def provider(self, address: str) -> dict[str, Any] | None:
        try:
            return await self.query("/market/provider", address)
        except RPCClientError as exc:
            if exc.code == Code.NOT_FOUND:
                return None
            raise

    async def providers(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        after = ""
        while True:
            page = (await self.query("/market/providers", f"after={after}" if after else ""))[
                "providers"
            ]
            found.extend(page)
            if not page:
                return found
            after = page[-1]["address"]

    async def put_blob(self, path: Path, replicas: int = 1) -> tuple[str, int, tuple[str, ...]]:
        """Upload a file; its (CID, size, the nodes that hold it)."""
        put = await self.client.blob_put(path, replicas=replicas)
        return put.cid, put.size, put.replicas

    async def get_blob(self, cid: str, dest: Path, at_most: int | None = None) -> int:
        """Fetch a blob by CID to `dest`; the bytes written. With `at_most`, no more than
        that is downloaded: a larger blob raises BlobTooLarge (a stranger's CID cannot
        fill this machine's memory or disk)."""
        end = None if at_most is None else at_most + 1
        got = await self.client.blob_get(cid, dest, start=None if end is None else 0, end=end)
        if at_most is not None and got.bytes_written > at_most:
            dest.unlink(missing_ok=True)
            raise BlobTooLarge(f"blob {cid}: more than the {at_most} bytes expected")
        return got.bytes_written


class BlobTooLarge(Exception):
    """A blob past the size its reader allows."""


def is_missing(exc: RPCClientError) -> bool:
    """Whether a failed fetch says the blob is not to be had (the network answered: no
    node holds it), as opposed to the network not answering (try again later)."""
    return exc.code == 404
