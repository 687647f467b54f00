"""Opening a sealed dataset for a task: only under a grant the chain says holds.

An agent (a provider running the task, an oracle re-running it) with an encryption key
opens the manifest's sealed dataset like this:

1. the dataset's record on chain must be the one the task names and the manifest reads
   (the same id, the same ciphertext: a dataset rotated since is not opened);
2. the agent's grant is read from the chain, and `access.open` is sent for the task: the
   chain refuses it (UNAUTHORIZED, with its reason) unless the grant holds now, and
   records it in the dataset's audit trail if it does. Nothing is decrypted before;
3. the data key is unwrapped from the grant with the agent's X25519 key, and the
   ciphertext fetched and decrypted (privacy/sealed.py: a chunk tampered with fails
   loudly). The plaintext is returned to be written only into the job's private
   directory, which is removed when the job is done; it is never uploaded.

A refusal at any step is NotGranted (a JobInputError: the job is not run, and its log
says why); the data key comes back so that a DP job's noise seed can be drawn from it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cloudchain.agents.chain import BlobTooLarge, Chain, TxRefused, is_missing
from cloudchain.agents.job_errors import NotGranted
from cloudchain.client import RPCClientError
from cloudchain.privacy.sealed import SealError, open_stream
from cloudchain.privacy.wrapping import GrantContext, WrapError, public_bytes, unwrap_key
from cloudchain.workload.manifest import Dataset


@dataclass(frozen=True)
class Opened:
    plaintext: bytes
    data_key: bytes


class SealedInputs:
    """One agent's means of opening sealed datasets: its chain client and its key."""

    def __init__(self, chain: Chain, key: X25519PrivateKey | None) -> None:
        self.chain = chain
        self.key = key

    @property
    def public_key(self) -> bytes | None:
        return None if self.key is None else public_bytes(self.key.public_key())

    async def publish(self) -> None:
        """Publish this agent's encryption key, unless the chain has it already."""
        if self.public_key is None:
            return
        try:
            published = await self.chain.query("/access/key", self.chain.address)
        except RPCClientError:
            published = None
        if published is None or published["key"] != self.public_key:
            await self.chain.send("access", "publish_key", {"key": self.public_key})

    async def open(self, task: dict[str, Any], name: str, entry: Dataset, scratch: Path) -> Opened:
        dataset = entry.sealed
        assert dataset is not None
        where = f"dataset {name} (sealed dataset {dataset})"
        if self.key is None:
            raise NotGranted(f"{where}: this agent has no encryption key (--encryption-key)")
        # Verify that the task, the manifest and the chain name the same ciphertext.
        if task.get("dataset") != dataset:
            raise NotGranted(f"{where}: the task names dataset {task.get('dataset')}")
        try:
            record = await self.chain.query("/access/dataset", str(dataset))
        except RPCClientError as exc:
            raise NotGranted(f"{where}: not on chain ({exc})") from None
        if (record["cid"], record["size"]) != (entry.cid, entry.bytes):
            raise NotGranted(
                f"{where}: the chain's ciphertext is {record['cid']} ({record['size']} bytes), "
                f"the manifest's {entry.cid} ({entry.bytes} bytes): rotated since?"
            )
        grant = await self._grant(dataset)
        if grant is None:
            raise NotGranted(f"{where}: {self.chain.address} has no grant on it")
        try:
            await self.chain.send("access", "open", {"dataset": dataset, "task": task["id"]})
        except TxRefused as exc:
            raise NotGranted(f"{where}: the chain refuses the opening: {exc.message}") from None
        scope = f"task:{grant['task']}" if grant["task"] else f"until:{grant['until']}"
        status = await self.chain.client.status()
        context = GrantContext(status.network, str(dataset), self.chain.address, scope)
        try:
            data_key = unwrap_key(grant["wrapped_key"], self.key, context)
        except WrapError as exc:
            raise NotGranted(f"{where}: {exc}") from None
        ciphertext = scratch / f"{name}.sealed"
        try:
            await self.chain.get_blob(record["cid"], ciphertext, entry.bytes)
        except BlobTooLarge:
            raise NotGranted(f"{where}: a ciphertext of more than {entry.bytes} bytes") from None
        except RPCClientError as exc:
            if is_missing(exc):
                raise NotGranted(f"{where}: the ciphertext cannot be fetched: {exc}") from None
            raise
        plain = io.BytesIO()
        try:
            with ciphertext.open("rb") as src:
                open_stream(src, plain, data_key)
        except SealError as exc:
            raise NotGranted(f"{where}: the ciphertext does not decrypt: {exc}") from None
        finally:
            ciphertext.unlink(missing_ok=True)
        return Opened(plain.getvalue(), data_key)

    async def _grant(self, dataset: int) -> dict[str, Any] | None:
        found = await self.chain.query("/access/grants", f"grantee={self.chain.address}")
        for grant in found["grants"]:
            if grant["dataset"] == dataset:
                return grant
        return None
