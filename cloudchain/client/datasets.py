"""A data owner's side of sealed datasets: seal and upload, record on chain, grant,
revoke, rotate, and read the budget and the audit trail.

The data key never leaves the owner's machine but wrapped: it is kept in a key store of
files of mode 0600 (`DataKeyStore`, by default ~/.cloudchain/datasets), one per dataset,
with the key version the chain has for it. What goes to the network is ciphertext
(privacy/sealed.py) and keys wrapped to a grantee (privacy/wrapping.py).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudchain.client.errors import RPCClientError
from cloudchain.client.results import Event
from cloudchain.crypto import PrivateKey
from cloudchain.privacy.sealed import new_data_key, seal_file
from cloudchain.privacy.units import DELTA_SCALE, MICRO_EPS
from cloudchain.privacy.wrapping import GrantContext, wrap_key

DEFAULT_STORE = Path.home() / ".cloudchain" / "datasets"


class DatasetError(Exception):
    """What a dataset command cannot do, said plainly (a refusal carries the chain's
    code and log)."""


@dataclass(frozen=True)
class StoredKey:
    dataset: int
    key_version: int
    data_key: bytes


class DataKeyStore:
    def __init__(self, directory: Path = DEFAULT_STORE) -> None:
        self.directory = directory

    def path(self, dataset: int) -> Path:
        return self.directory / f"{dataset}.json"

    def save(self, stored: StoredKey) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        body = {
            "dataset": stored.dataset,
            "key_version": stored.key_version,
            "data_key": stored.data_key.hex(),
        }
        partial = self.path(stored.dataset).with_suffix(".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            json.dump(body, file)
        os.replace(partial, self.path(stored.dataset))

    def load(self, dataset: int) -> StoredKey:
        try:
            body = json.loads(self.path(dataset).read_text())
            return StoredKey(
                int(body["dataset"]), int(body["key_version"]), bytes.fromhex(body["data_key"])
            )
        except FileNotFoundError:
            raise DatasetError(
                f"no data key for dataset {dataset} in {self.directory} (only its owner, on "
                "the machine that added it, has one)"
            ) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"{self.path(dataset)}: not a data key file ({exc})") from None


def epsilon_to_micro(epsilon: float) -> int:
    """ε as the chain keeps it: an integer of micro-ε, rounded down."""
    if not 0 <= epsilon <= 10**6:
        raise DatasetError(f"ε {epsilon}: expected 0 to 1,000,000")
    return int(epsilon * MICRO_EPS)


def delta_to_e12(delta: float) -> int:
    if not 0 < delta < 1:
        raise DatasetError(f"δ {delta}: expected strictly between 0 and 1")
    scaled = round(delta * DELTA_SCALE)
    if scaled < 1:
        raise DatasetError(f"δ {delta}: below the chain's resolution of 1e-12")
    return scaled


async def _send(
    client: Any, key: PrivateKey, method: str, args: Mapping[str, Any]
) -> Sequence[Event]:
    tx = await client.sign_tx(key, "access", method, dict(args))
    committed = await client.broadcast_tx_commit(tx.to_bytes())
    failure = committed.failure
    if failure is not None:
        raise DatasetError(f"access.{method} refused with code {failure.code}: {failure.log}")
    return committed.tx_result.events


async def _seal_and_put(
    client: Any, key: PrivateKey, path: Path, data_key: bytes, replicas: int
) -> tuple[str, int]:
    """Seal `path`, upload only the ciphertext, and anchor it: (CID, size)."""
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    with tempfile.TemporaryDirectory(prefix="cloudchain-seal-") as scratch:
        sealed = Path(scratch) / "sealed"
        seal_file(path, sealed, data_key)
        put = await client.blob_put(sealed, replicas=replicas)
    anchor = {"cid": put.cid, "size": put.size, "replicas": list(put.replicas)}
    tx = await client.sign_tx(key, "storage", "anchor", anchor)
    committed = await client.broadcast_tx_commit(tx.to_bytes())
    if committed.failure is not None:
        raise DatasetError(f"storage.anchor refused: {committed.failure.log}")
    return put.cid, put.size


async def add_dataset(
    client: Any,
    key: PrivateKey,
    path: Path,
    *,
    epsilon: float,
    delta: float,
    store: DataKeyStore,
    replicas: int = 1,
) -> tuple[int, str]:
    """Seal `path` under a fresh data key, upload the ciphertext and anchor it, record
    the dataset with its (ε, δ) budget, and keep its key: (dataset id, ciphertext CID)."""
    budget, delta_e12 = epsilon_to_micro(epsilon), delta_to_e12(delta)
    data_key = new_data_key()
    cid, size = await _seal_and_put(client, key, path, data_key, replicas)
    events = await _send(
        client,
        key,
        "add_dataset",
        {"cid": cid, "size": size, "delta_e12": delta_e12, "budget_micro_eps": budget},
    )
    (created,) = [dict(e.attributes) for e in events if e.type == "access_dataset"]
    dataset = int(created["dataset"])
    store.save(StoredKey(dataset, 1, data_key))
    return dataset, cid


async def grant(
    client: Any,
    key: PrivateKey,
    dataset: int,
    grantee: str,
    *,
    task: int = 0,
    until: int = 0,
    store: DataKeyStore,
) -> str:
    """Wrap the dataset's key to the grantee's published key and record the grant; its
    scope ("task:N" or "until:H")."""
    if (task == 0) == (until == 0):
        raise DatasetError("a grant is for --task N or --until HEIGHT: one of them")
    stored = store.load(dataset)
    record = await client.query("/access/dataset", str(dataset).encode())
    if record["key_version"] != stored.key_version:
        raise DatasetError(
            f"the key kept for dataset {dataset} is version {stored.key_version}, the chain's "
            f"{record['key_version']}: rotated elsewhere"
        )
    try:
        published = await client.query("/access/key", grantee.encode())
    except RPCClientError as exc:
        raise DatasetError(f"{grantee} has published no encryption key ({exc})") from None
    chain_id = (await client.status()).network
    scope = f"task:{task}" if task else f"until:{until}"
    context = GrantContext(chain_id, str(dataset), grantee, scope)
    wrapped = wrap_key(stored.data_key, published["key"], context)
    await _send(
        client,
        key,
        "grant",
        {
            "dataset": dataset,
            "grantee": grantee,
            "task": task,
            "until": until,
            "wrapped_key": wrapped,
        },
    )
    return scope


async def revoke(client: Any, key: PrivateKey, dataset: int, grantee: str = "") -> None:
    await _send(client, key, "revoke", {"dataset": dataset, "grantee": grantee})


async def rotate(
    client: Any,
    key: PrivateKey,
    dataset: int,
    path: Path,
    *,
    store: DataKeyStore,
    replicas: int = 1,
) -> str:
    """Seal `path` anew under a new data key and record it: every earlier grant is void.
    The new key is kept only once the chain took the rotation."""
    stored = store.load(dataset)
    data_key = new_data_key()
    cid, size = await _seal_and_put(client, key, path, data_key, replicas)
    await _send(client, key, "rotate", {"dataset": dataset, "cid": cid, "size": size})
    store.save(StoredKey(dataset, stored.key_version + 1, data_key))
    return cid
