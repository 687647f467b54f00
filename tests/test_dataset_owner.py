"""A data owner's verbs against a running node: `cloudchain dataset add --encrypt`,
`grant`, `show`, `budget`, `rotate`, `revoke` (cloudchain/client/datasets.py)."""

from __future__ import annotations

import re
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cloudchain.client import Client
from cloudchain.client.datasets import DataKeyStore
from cloudchain.crypto import read_key_file
from cloudchain.node.runtime import Node
from cloudchain.privacy.sealed import open_file
from cloudchain.privacy.wrapping import GrantContext, public_bytes, unwrap_key
from tests.helpers.cli import verbs
from tests.helpers.workloads import classification_csv

DATA = classification_csv(rows=400)


async def test_an_owner_seals_grants_rotates_and_revokes(node: Node, tmp_path: Path) -> None:
    url = f"http://{node.config.rpc.listen_address}"
    client = Client(url)
    accounts = tmp_path / "net" / "accounts"
    owner, provider = str(accounts / "account1.json"), read_key_file(accounts / "account2.json")
    store = tmp_path / "keys"
    data = tmp_path / "patients.csv"
    data.write_bytes(DATA)
    encryption = X25519PrivateKey.generate()
    tx = await client.sign_tx(
        provider, "access", "publish_key", {"key": public_bytes(encryption.public_key())}
    )
    assert (await client.broadcast_tx_commit(tx.to_bytes())).ok

    async def cli(*command: str, want: int = 0) -> str:
        code, out, err = (await verbs(url, command))[0]
        assert code == want, f"{command}: exit {code}\n{out}{err}"
        assert "Traceback" not in err
        return out + err

    plain = await cli("dataset", "add", str(data), "--from", owner, want=2)
    assert "--encrypt" in plain
    added = await cli(
        "dataset",
        "add",
        str(data),
        "--encrypt",
        "--epsilon",
        "4",
        "--from",
        owner,
        "--keystore",
        str(store),
    )
    dataset, cid = re.search(r"ok: dataset (\d+) sealed as (\S+)", added).groups()  # type: ignore[union-attr]
    # Only ciphertext went to the network; the owner's kept key opens it.
    await client.blob_get(cid, tmp_path / "sealed")
    assert DATA[:64] not in (tmp_path / "sealed").read_bytes()
    kept = DataKeyStore(store).load(int(dataset))
    open_file(tmp_path / "sealed", tmp_path / "opened.csv", kept.data_key)
    assert (tmp_path / "opened.csv").read_bytes() == DATA

    await cli(
        "dataset",
        "grant",
        dataset,
        "--to",
        provider.address,
        "--task",
        "7",
        "--from",
        owner,
        "--keystore",
        str(store),
    )
    grants = await client.query("/access/grants", f"grantee={provider.address}".encode())
    (grant,) = grants["grants"]
    chain_id = (await client.status()).network
    context = GrantContext(chain_id, dataset, provider.address, "task:7")
    assert unwrap_key(grant["wrapped_key"], encryption, context) == kept.data_key
    shown = await cli("dataset", "show", dataset)
    assert f"{provider.address} (task 7)" in shown
    budget = await cli("dataset", "budget", dataset)
    assert re.search(r"remaining\s+ε 4\b", budget), budget

    await cli("dataset", "rotate", dataset, str(data), "--from", owner, "--keystore", str(store))
    assert DataKeyStore(store).load(int(dataset)).key_version == 2
    assert (await client.query("/access/grants", f"dataset={dataset}".encode()))["grants"] == []

    elsewhere = await cli(
        "dataset",
        "grant",
        dataset,
        "--to",
        provider.address,
        "--task",
        "7",
        "--from",
        owner,
        "--keystore",
        str(tmp_path / "none"),
        want=1,
    )
    assert "no data key for dataset" in elsewhere
    await cli("dataset", "revoke", dataset, "--from", owner, "--keystore", str(store))
    refused = await cli(
        "dataset",
        "grant",
        dataset,
        "--to",
        provider.address,
        "--task",
        "8",
        "--from",
        owner,
        "--keystore",
        str(store),
        want=1,
    )
    assert "revoked" in refused
