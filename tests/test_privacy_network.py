"""End to end, privacy: a validator, two provider daemons and three oracle daemons as
real processes (cloudchain/cli/agent_network.py starts and stops them), a data owner
using the `cloudchain dataset` commands and the Python client.

    account0  the data owner, who also submits the tasks
    account1  a provider the owner grants the dataset to
    account2  a provider with no grant
    account3  a provider with a grant, --fault ignore-privacy

The owner seals a CSV (only ciphertext reaches the network), grants account1 and the
three oracles, and submits a DP training task: it goes to account1 (account2 is as
cheap but has no grant), is trained there under DP-SGD, re-run to the same bytes by the
oracles (its noise seed comes from the data key they were granted) and settles; the
budget falls by the ε the accountant computed. account2 is refused by the chain; a
second task, past what is left of the budget, is refused at submit. A task whose ε is
declared below what its manifest spends is refused by an honest provider, and when a
provider runs it anyway the oracles attest a violation.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudchain.chaincode.codes import Code
from cloudchain.cli.agent_network import AgentNetwork
from cloudchain.client import Client, SyncClient
from cloudchain.client.tasks import TaskRefused
from cloudchain.crypto import read_key_file
from cloudchain.workload.dp_plan import planned_micro_epsilon
from cloudchain.workload.manifest import parse_manifest
from tests.helpers.network import FAST
from tests.helpers.waiting import wait_until_blocking
from tests.helpers.workloads import MLP, classification_csv, train_manifest

DATA = classification_csv()  # 240 rows: 180 trained on, 60 held out
PRICE = 10
WAIT_S = 180.0
# sigma 2 over 180 rows in batches of 32 for 5 epochs: ε about 2.49 at δ 1e-5
DP = {"clip_norm": 1.0, "noise_multiplier": 2.0, "delta": 1e-5, "target_epsilon": 4.0, "rows": 180}
BUDGET = 4.0  # room for one such task, not two
ORACLE_OPTIONS = ("--probe-seconds", "0.5", "--probe-window", "8", "--attest-seconds", "2")


def cloudchain(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "cloudchain", *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def dp_manifest(dataset: int) -> dict[str, Any]:
    manifest = train_manifest(DATA, model=json.loads(json.dumps(MLP)), dp=dict(DP))
    manifest["data"]["train"] = {"sealed": dataset, "format": "csv", "target": "label"}
    return manifest


class Watch(threading.Thread):
    """The first event of a WebSocket subscription, caught in a thread of its own
    (bounded by WAIT_S, whatever the test does)."""

    def __init__(self, url: str, query: str) -> None:
        super().__init__(daemon=True)
        self.url, self.query = url, query
        self.ready = threading.Event()
        self.events: list[Any] = []

    def run(self) -> None:
        asyncio.run(self._watch())

    async def _watch(self) -> None:
        async with asyncio.timeout(WAIT_S), Client(self.url).subscribe(self.query) as events:
            self.ready.set()
            async for event in events:
                self.events.append(event)
                return


class Owner:
    def __init__(self, net: AgentNetwork, tmp: Path) -> None:
        self.net = net
        self.url = net.rpc_url()
        self.client = SyncClient(self.url)
        self.key_file = net.key_file("account0")
        self.key = read_key_file(self.key_file)
        self.keystore = tmp / "keystore"
        self.plaintext = tmp / "patients.csv"
        self.plaintext.write_bytes(DATA)

    def address(self, name: str) -> str:
        return read_key_file(self.net.key_file(name)).address

    def dataset(self, cli: str, *args: str) -> str:
        owner = ("--from", str(self.key_file), "--keystore", str(self.keystore))
        reader = cli in ("show", "budget")
        return cloudchain("dataset", cli, *args, *(() if reader else owner), "--node", self.url)

    def published(self, name: str) -> bool:
        try:
            return bool(self.client.query("/access/key", self.address(name).encode()))
        except Exception:  # not yet: the agent publishes once it reaches the chain
            return False

    def submit(self, manifest: dict[str, Any], **terms: Any) -> Any:
        defaults = {
            "resource_class": "cpu-small",
            "units": 30,
            "max_price": PRICE * 2,
            "deadline_s": 150,
            "min_uptime_bps": 5_000,
            "max_latency_ms": 2_000,
            "replicas": 1,
        }
        return self.client.submit_task(self.key, manifest, **{**defaults, **terms})

    def record(self, dataset: int) -> dict[str, Any]:
        return self.client.query("/access/dataset", str(dataset).encode())


@pytest.fixture(scope="module")
def owner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Owner]:
    tmp = tmp_path_factory.mktemp("privacy")
    with AgentNetwork(tmp / "net", 1, accounts=4, consensus=FAST) as net:
        for k in range(3):
            net.start_oracle(k, *ORACLE_OPTIONS)
        for account in (1, 2):
            net.start_provider(account, "--price", str(PRICE), "--pricing", "fixed")
        net.start_provider(
            3, "--price", str(PRICE * 3), "--pricing", "fixed", "--fault", "ignore-privacy"
        )
        owner = Owner(net, tmp)
        try:
            for name in ("account1", "account2", "account3", "oracle0", "oracle1", "oracle2"):
                wait_until_blocking(
                    lambda name=name: owner.published(name),
                    WAIT_S,
                    what=f"{name}'s encryption key on chain",
                    poll_s=0.2,
                )
            yield owner
        except BaseException:
            print("\n".join(f"== {a.name}\n{a.text()[-4000:]}" for a in net.agents))
            raise


def test_a_granted_provider_trains_with_dp_on_sealed_data_and_the_budget_falls(
    owner: Owner, tmp_path: Path
) -> None:
    added = owner.dataset(
        "add", str(owner.plaintext), "--encrypt", "--epsilon", str(BUDGET), "--delta", "1e-5"
    )
    dataset = int(re.search(r"ok: dataset (\d+) sealed as", added)[1])  # type: ignore[index]
    record = owner.record(dataset)
    # only ciphertext reached the network: the blob is not the file, and does not hold it
    ciphertext = tmp_path / "ciphertext"
    owner.client.blob_get(record["cid"], ciphertext)
    assert ciphertext.stat().st_size == record["size"] > len(DATA)
    assert DATA[:64] not in ciphertext.read_bytes()
    until = owner.client.status().latest_block_height + 10_000
    for grantee in ("account1", "oracle0", "oracle1", "oracle2"):
        owner.dataset("grant", str(dataset), "--to", owner.address(grantee), "--until", str(until))

    manifest = dp_manifest(dataset)
    watch = Watch(owner.url, f"access_open.dataset='{dataset}'")
    watch.start()
    assert watch.ready.wait(WAIT_S), "subscribed to access_open"
    submitted = owner.submit(manifest)
    task = owner.client.query("/market/task", str(submitted.task_id).encode())
    declared = task["dp_micro_eps"]
    filled = dict(manifest, data={"train": {**manifest["data"]["train"], "cid": record["cid"],
                                            "bytes": record["size"]}})  # fmt: skip
    assert declared == planned_micro_epsilon(parse_manifest(filled))
    assert task["dataset"] == dataset and 2_000_000 < declared < 3_000_000

    settled = owner.client.wait_task(submitted.task_id, timeout_s=WAIT_S)
    assert settled.state == "settled", settled
    assert settled.provider == owner.address("account1")  # the one with a grant
    assert settled.outcome["completed"] and settled.outcome["violations"] == 0
    after = owner.record(dataset)
    assert after["spent_micro_eps"] == declared
    assert after["remaining_micro_eps"] == int(BUDGET * 1e6) - declared
    budget = owner.dataset("budget", str(dataset))
    assert re.search(rf"spent\s+ε {declared / 1e6:g}\b", budget), budget
    assert re.search(rf"remaining\s+ε {after['remaining_micro_eps'] / 1e6:g}\b", budget), budget

    # the provider opened it under its grant, and so did the oracles that re-ran it
    audit = owner.client.query("/access/audit", f"dataset={dataset}&task={task['id']}".encode())
    openers = {o["grantee"] for o in audit["openings"]}
    watch.join(WAIT_S)
    assert watch.events, "the WebSocket delivered the opening"
    assert watch.events[0].tags["access_open.task"] == [str(task["id"])]
    oracles = {owner.address(n) for n in ("oracle0", "oracle1", "oracle2")}
    assert owner.address("account1") in openers and openers <= oracles | {settled.provider}
    # the quorum re-ran it to the same bytes: the noise seed is the data key's, not public
    assert len(openers & oracles) >= 2
    result = owner.client.fetch_result(submitted.task_id, tmp_path / "result")
    assert result.verified is True
    privacy = result.metrics["privacy"]
    assert privacy["delta"] == 1e-5 and round(privacy["epsilon"] * 1e6) <= declared
    # what was uploaded is the model, the metrics and the log: never the plaintext
    for path in result.files.values():
        assert DATA[:64] not in path.read_bytes()
    job_dir = owner.net.home / "agents" / "provider1" / "jobs" / str(task["id"]) / "job"
    assert not (job_dir / "inputs").exists()


def test_a_provider_without_a_grant_is_refused_and_an_over_budget_task_too(
    owner: Owner, tmp_path: Path
) -> None:
    added = owner.dataset("add", str(owner.plaintext), "--encrypt", "--epsilon", str(BUDGET))
    dataset = int(re.search(r"ok: dataset (\d+) sealed as", added)[1])  # type: ignore[index]
    until = owner.client.status().latest_block_height + 10_000
    owner.dataset("grant", str(dataset), "--to", owner.address("account1"), "--until", str(until))

    # account2 asks the chain to open it: refused, with the reason, and nothing audited
    stranger = read_key_file(owner.net.key_file("account2"))
    tx = owner.client.sign_tx(stranger, "access", "open", {"dataset": dataset, "task": 1})
    refused = owner.client.broadcast_tx_commit(tx.to_bytes())
    assert refused.failure is not None and refused.failure.code == Code.UNAUTHORIZED
    assert "has no grant on dataset" in refused.failure.log
    assert owner.client.query("/access/audit", str(dataset).encode())["openings"] == []

    # a task naming account2 is never assigned to it: it waits, and is cancelled
    named = owner.submit(dp_manifest(dataset), provider=owner.address("account2"))
    height = owner.client.status().latest_block_height
    wait_until_blocking(
        lambda: owner.client.status().latest_block_height >= height + 3, 60, poll_s=0.2
    )
    assert owner.client.query("/market/task", str(named.task_id).encode())["state"] == "open"
    assert owner.record(dataset)["spent_micro_eps"] == 0
    cancel = owner.client.sign_tx(owner.key, "market", "cancel", {"task": named.task_id})
    assert owner.client.broadcast_tx_commit(cancel.to_bytes()).failure is None

    # one task (by the command line) spends most of the budget when assigned; a second
    # is past what is left
    manifest_file = tmp_path / "dp.json"
    manifest_file.write_text(json.dumps(dp_manifest(dataset)))
    submitted = cloudchain(
        "task", "submit", "--from", str(owner.key_file), "--manifest", str(manifest_file),
        "--units", "30", "--max-price", str(PRICE * 2), "--replicas", "1", "--node", owner.url,
    )  # fmt: skip
    first = int(re.search(r"ok: task (\d+) submitted", submitted)[1])  # type: ignore[index]
    assert f"{dataset} (sealed)" in submitted and "of its budget" in submitted, submitted
    wait_until_blocking(
        lambda: owner.record(dataset)["spent_micro_eps"] > 0, 60, poll_s=0.2, what="the debit"
    )
    remaining = owner.record(dataset)["remaining_micro_eps"]
    with pytest.raises(TaskRefused) as refusal:
        owner.submit(dp_manifest(dataset))
    assert refusal.value.code == Code.LIMIT_EXCEEDED
    assert f"{remaining} of {int(BUDGET * 1e6)} micro-ε" in refusal.value.log
    assert owner.record(dataset)["remaining_micro_eps"] == remaining
    assert owner.client.wait_task(first, timeout_s=WAIT_S).state == "settled"


def test_an_under_declared_epsilon_is_refused_by_an_honest_provider_and_caught_by_oracles(
    owner: Owner, monkeypatch: pytest.MonkeyPatch
) -> None:
    added = owner.dataset("add", str(owner.plaintext), "--encrypt", "--epsilon", "100")
    dataset = int(re.search(r"ok: dataset (\d+) sealed as", added)[1])  # type: ignore[index]
    until = owner.client.status().latest_block_height + 10_000
    for grantee in ("account1", "account3", "oracle0", "oracle1", "oracle2"):
        owner.dataset("grant", str(dataset), "--to", owner.address(grantee), "--until", str(until))
    # a requester whose client declares 1 micro-ε, whatever the manifest spends
    from cloudchain.client import tasks

    monkeypatch.setattr(
        tasks, "_privacy_terms", lambda manifest: {"dataset": dataset, "dp_micro_eps": 1}
    )
    honest = owner.submit(dp_manifest(dataset), provider=owner.address("account1"), penalty=100)
    faulty = owner.submit(
        dp_manifest(dataset), provider=owner.address("account3"), penalty=100, max_price=PRICE * 4
    )
    refused = owner.client.wait_task(honest.task_id, timeout_s=WAIT_S)
    index = owner.client.fetch_result(honest.task_id, owner.plaintext.parent / "honest").index
    assert index.status == "refused" and "under-declared" in index.message, index
    # the oracles refuse it too: the honest provider served it as it had to
    assert refused.state == "settled" and refused.outcome["violations"] == 0, refused
    caught = owner.client.wait_task(faulty.task_id, timeout_s=WAIT_S)
    assert caught.outcome["completed"] is False and caught.outcome["violations"] >= 1, caught
    assert caught.payout["slashed"] > 0
