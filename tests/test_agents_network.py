"""End to end: a validator, provider daemons and three oracle daemons as real processes
(cloudchain/cli/agent_network.py starts and stops them, even when a test fails), and a
requester using the Python client.

One network for the module; each provider account plays one part, and each task names
the provider it is for:
    account0  honest, --executor ray       account5  --fault offline
    account1  honest                       account6  --fault crash-mid-task
    account2  --fault wrong-output         account7  honest, SIGKILLed mid-task
    account3  --fault slow                 account4  the requester
    account8  honest, stopped before its task and given a saved result

The dispute window is DISPUTE_BLOCKS rather than the testnet's three, so that a test can
dispute an outcome between its verification and its settlement.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cloudchain.agents.chain import Chain
from cloudchain.agents.provider.daemon import REPORT_FILE, Report
from cloudchain.agents.workload import sklearn_runner
from cloudchain.agents.workload.datasets import holdout_rows, load_dataset
from cloudchain.chaincode.market.params import MarketParams
from cloudchain.cli.agent_network import AgentNetwork, AgentProcess
from cloudchain.client import SyncClient
from cloudchain.client.task_terms import FINAL_STATES, TaskRecord
from cloudchain.crypto import PrivateKey, read_key_file
from cloudchain.workload.manifest import parse_manifest
from cloudchain.workload.result import ResultIndex
from tests.helpers.network import FAST
from tests.helpers.waiting import wait_until_blocking
from tests.helpers.workloads import classification_csv, train_manifest

DATA = classification_csv()
PRICE = 10
PENALTY = 500
REPUTATION_LOSS_BPS = MarketParams().reputation_loss_bps  # per violation
TASK_S = 120  # a task's own deadline, in block time, unless a test says otherwise
WAIT_S = 150.0
DISPUTE_BLOCKS = 25
ORACLE_OPTIONS = ("--probe-seconds", "0.5", "--probe-window", "8", "--attest-seconds", "2")


class Market:
    def __init__(self, net: AgentNetwork, tmp: Path) -> None:
        self.net = net
        self.client = SyncClient(net.rpc_url())
        self.requester = read_key_file(net.key_file("account4"))
        self.data = tmp / "train.csv"
        self.data.write_bytes(DATA)
        self.providers: dict[int, AgentProcess] = {}

    def key(self, account: int) -> PrivateKey:
        return read_key_file(self.net.key_file(f"account{account}"))

    def ensure_provider(self, account: int, *options: str) -> AgentProcess:
        """The provider of `account`, started if no test has started it yet."""
        running = self.providers.get(account)
        if running is not None and running.process.poll() is None:
            return running
        return self.start_provider(account, *options)

    def start_provider(self, account: int, *options: str) -> AgentProcess:
        process = self.net.start_provider(
            account, "--price", str(PRICE), "--pricing", "fixed", *options
        )
        self.providers[account] = process
        address = self.key(account).address
        wait_until_blocking(
            lambda: self._provider_ready(address, process),
            WAIT_S,
            what=f"provider{account} registered and advertised",
            poll_s=0.2,
        )
        return process

    def _provider_ready(self, address: str, process: AgentProcess) -> bool:
        assert process.process.poll() is None, process.text()
        record = self.provider(address)
        return record is not None and bool(record.get("endpoint"))

    def provider(self, address: str) -> dict[str, Any] | None:
        providers = self.client.query("/market/providers")["providers"]
        return next((p for p in providers if p["address"] == address), None)

    def submit(self, account: int, manifest: dict[str, Any], **terms: Any) -> int:
        submitted = self.client.submit_task(
            self.requester,
            manifest,
            {"train": self.data},
            resource_class="cpu-small",
            units=30,
            max_price=PRICE * 2,
            deadline_s=terms.pop("deadline_s", TASK_S),
            min_uptime_bps=terms.pop("min_uptime_bps", 5_000),
            max_latency_ms=terms.pop("max_latency_ms", 2_000),
            penalty=PENALTY,
            provider=self.key(account).address,
            replicas=1,
        )
        return submitted.task_id

    def wait(self, task_id: int) -> TaskRecord:
        return self.client.wait_task(task_id, timeout_s=WAIT_S)

    def reputation_lost_at(self, address: str, height: int) -> int:
        """What the settlement at `height` took from the provider's reputation: its
        reputation after the block's transactions (service records, which move it too,
        each saying where they left it) less its reputation after the block."""
        before = self.client.query("/market/provider", address.encode(), height - 1)
        after = self.client.query("/market/provider", address.encode(), height)
        records = [
            dict(event.attributes)
            for result in self.client.block_results(height).txs_results
            for event in result.events
            if event.type == "market_sla" and dict(event.attributes)["provider"] == address
        ]
        base = int(records[-1]["reputation"]) if records else before["reputation"]
        return base - after["reputation"]

    def logs(self) -> str:
        return "\n".join(f"== {a.name}\n{a.text()[-4000:]}" for a in self.net.agents)


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Market]:
    tmp = tmp_path_factory.mktemp("agents")
    with AgentNetwork(
        tmp / "net", 1, accounts=9, consensus=FAST, market_params={"dispute_blocks": DISPUTE_BLOCKS}
    ) as net:
        for k in range(3):
            net.start_oracle(k, *ORACLE_OPTIONS)
        market = Market(net, tmp)
        try:
            yield market
        except BaseException:
            print(market.logs())
            raise


def holdout_accuracy(model_path: Path) -> float:
    manifest = parse_manifest(train_manifest(DATA))
    data = Path(model_path.parent / "train.csv")
    data.write_bytes(DATA)
    table = load_dataset(data, manifest.data["train"], "train", "classify")
    _, held = holdout_rows(table.rows, 0.25, manifest.seed)
    part = table.take(held)
    model = sklearn_runner.load(model_path.read_bytes())
    return float(np.mean(model.predict(part.X) == part.y))


def test_a_training_task_settles_and_its_model_reproduces_the_metric(
    market: Market, tmp_path: Path
) -> None:
    market.ensure_provider(1)
    task_id = market.submit(1, train_manifest(DATA))
    task = market.wait(task_id)
    assert task.state == "settled", (task, market.logs())
    outcome = task.outcome
    assert outcome["completed"] and outcome["violations"] == 0
    assert task.payout["provider"] == outcome["payment"] == PRICE * outcome["units"] > 0
    result = market.client.fetch_result(task_id, tmp_path / "result")
    assert result.index.status == "done" and result.index.units == task.units_used
    assert result.verified is True and result.ok
    assert holdout_accuracy(result.files["model.skops"]) == result.metrics["value"] > 0.8
    log = market.client.fetch_logs(task_id).decode()
    assert "accuracy on holdout" in log and "done" in log
    endpoint = market.provider(market.key(1).address)["endpoint"]  # type: ignore[index]
    import urllib.request

    with urllib.request.urlopen(endpoint + "/metrics", timeout=10) as response:
        metrics = response.read().decode()
    assert 'cloudchain_provider_tasks_total{outcome="completed"} 1.0' in metrics
    with urllib.request.urlopen(endpoint + "/health", timeout=10) as response:
        assert json.loads(response.read())["status"] == "ok"
    oracle = next(a for a in market.net.agents if a.name == "oracle0")
    found = re.search(r"oracle starting .*endpoint=(\S+)", oracle.text())
    assert found, oracle.text()
    with urllib.request.urlopen(found[1] + "/metrics", timeout=10) as response:
        oracle_metrics = response.read().decode()
    assert re.search(
        r'cloudchain_oracle_attestations_total\{completed="true"\} [1-9]', oracle_metrics
    )


def test_the_ray_executor_serves_a_task_with_the_local_providers_bytes(
    market: Market, tmp_path: Path
) -> None:
    market.ensure_provider(1)
    market.start_provider(0, "--executor", "ray")
    results = {}
    for account in (0, 1):
        task = market.wait(market.submit(account, train_manifest(DATA)))
        assert task.state == "settled" and task.outcome["completed"], market.logs()
        result = market.client.fetch_result(task.id, tmp_path / str(account))
        results[account] = (result.index.executor, dict(result.index.files))
    assert results[0][0] == "ray" and results[1][0] == "local"
    assert results[0][1] == results[1][1]  # the same CIDs: the same output bytes


def test_a_disputed_outcome_is_re_run_and_voted_on_by_the_oracles(market: Market) -> None:
    market.ensure_provider(1)
    task_id = market.submit(1, train_manifest(DATA))
    verified = market.client.wait_task(task_id, states=("verified",), timeout_s=WAIT_S)
    assert verified.outcome["completed"]
    dispute = {"task": task_id, "reason": "I doubt it"}
    asyncio.run(Chain(market.net.rpc_url(), market.requester).send("market", "dispute", dispute))
    task = market.wait(task_id)
    assert task.state == "resolved", (task, market.logs())
    votes = task.raw["dispute"]["votes"]
    assert len(votes) >= 2 and all(votes.values())  # each re-ran it and upheld the outcome
    assert task.payout["provider"] == task.outcome["payment"] > 0


def test_a_made_up_result_is_refused_by_the_oracles_and_the_provider_penalised(
    market: Market, tmp_path: Path
) -> None:
    market.start_provider(2, "--fault", "wrong-output")
    address = market.key(2).address
    before = market.provider(address)
    assert before is not None
    task_id = market.submit(2, train_manifest(DATA))
    task = market.wait(task_id)
    outcome = task.outcome
    assert task.state == "settled" and not outcome["completed"], (task, market.logs())
    assert outcome["violations"] >= 1 and outcome["penalty"] == PENALTY * outcome["violations"]
    after = market.provider(address)
    assert after is not None
    assert task.payout["provider"] == 0
    assert after["stake"] == before["stake"] - task.payout["slashed"] > 0
    assert task.payout["slashed"] == outcome["penalty"]
    settled_at = next(height for state, height in task.history if state == "settled")
    lost = market.reputation_lost_at(address, settled_at)
    assert lost == REPUTATION_LOSS_BPS * outcome["violations"]
    refused = market.client.fetch_result(task_id, tmp_path / "refused")
    assert refused.verified is False and not refused.ok  # the requester is told
    oracle_logs = "".join(a.text() for a in market.net.agents if a.name.startswith("oracle"))
    assert "the re-run measured" in oracle_logs


def test_a_provider_that_crashes_mid_task_leaves_it_to_expire_and_the_requester_refunded(
    market: Market,
) -> None:
    crashing = market.start_provider(6, "--fault", "crash-mid-task")
    task_id = market.submit(6, train_manifest(DATA), deadline_s=8)
    wait_until_blocking(
        lambda: crashing.process.poll() is not None, WAIT_S, what="the provider's crash"
    )
    assert crashing.process.returncode == 70
    task = market.wait(task_id)
    assert task.state == "refunded", (task, market.logs())
    states = [state for state, _height in task.history]
    assert "running" in states and "expired" in states
    assert task.payout["provider"] == 0
    assert task.payout["requester"] >= task.deposit  # the deposit, and the penalty


def test_a_slow_provider_breaks_the_latency_term(market: Market) -> None:
    market.start_provider(3, "--fault", "slow", "--slow-seconds", "1")
    task_id = market.submit(3, train_manifest(DATA), max_latency_ms=400)
    task = market.wait(task_id)
    outcome = task.outcome
    assert task.state == "settled" and outcome["completed"], (task, market.logs())
    assert outcome["latency_ms"] >= 1_000 and outcome["violations"] == 1
    assert outcome["penalty"] == PENALTY


def test_an_offline_provider_loses_reputation_to_the_oracles_probes(market: Market) -> None:
    market.start_provider(5, "--fault", "offline")
    address = market.key(5).address
    start = market.provider(address)
    assert start is not None
    wait_until_blocking(
        lambda: market.provider(address)["reputation"] < start["reputation"],  # type: ignore[index]
        WAIT_S,
        what="a service record of the offline provider",
        poll_s=0.5,
    )
    stats = market.client.query("/market/account", address.encode())
    assert stats["provider"]["attested"] >= 1 and stats["provider"]["uptime_sum"] == 0


def test_a_provider_killed_mid_task_and_restarted_finishes_it_once(market: Market) -> None:
    provider = market.start_provider(7)
    manifest = train_manifest(
        DATA,
        model={
            "library": "sklearn",
            "estimator": "random_forest_classifier",
            "params": {"n_estimators": 400},
        },
    )
    task_id = market.submit(7, manifest)
    wait_until_blocking(
        lambda: f"task started task={task_id}" in provider.text(), WAIT_S, what="the start"
    )
    provider.stop(signal.SIGKILL)
    assert market.client.task(task_id).state == "running"
    restarted = market.start_provider(7)
    task = market.wait(task_id)
    assert task.state == "settled" and task.outcome["completed"], market.logs()
    assert "running it again" in restarted.text()
    completes = market.client.tx_search(f"market_complete.task = {task_id}")
    assert completes.total_count == 1


def test_a_result_saved_before_a_crash_is_sent_on_restart_and_the_job_not_run_again(
    market: Market, tmp_path: Path
) -> None:
    market.start_provider(8).stop()  # registered, then gone
    task_id = market.submit(8, train_manifest(DATA))
    task = market.client.wait_task(task_id, states=("assigned",), timeout_s=WAIT_S)
    # What the daemon leaves when it dies between writing its report and `complete`.
    puts = {}
    for name, data in (("metrics.json", b"{}"), ("job.log", b"done\n")):
        (tmp_path / name).write_bytes(data)
        puts[name] = market.client.blob_put(tmp_path / name, replicas=1)
    index = ResultIndex(
        task=task_id,
        manifest=task.inputs[0],
        status="done",
        message="",
        cpu_ms=1_000,
        wall_ms=1_000,
        units=1,
        executor="local",
        files={"metrics.json": puts["metrics.json"].cid},
        log=puts["job.log"].cid,
    )
    (tmp_path / "index.json").write_bytes(index.to_bytes())
    index_put = market.client.blob_put(tmp_path / "index.json", replicas=1)
    saved = Report(
        task_id,
        1,
        (index_put.cid, *index.output),
        tuple((p.cid, p.size, tuple(p.replicas)) for p in [*puts.values(), index_put]),
    )
    report = market.net.home / "agents" / "provider8" / "jobs" / str(task_id) / REPORT_FILE
    report.parent.mkdir(parents=True)
    report.write_bytes(saved.to_bytes())
    restarted = market.start_provider(8)
    done = market.client.wait_task(
        task_id, states=("completed", "verified", *FINAL_STATES), timeout_s=WAIT_S
    )
    assert done.output == saved.output and done.units_used == 1
    wait_until_blocking(lambda: "task completed" in restarted.text(), WAIT_S, what="the log")
    assert "sending the result saved before a restart" in restarted.text()
    assert "job ended" not in restarted.text() and "task started" not in restarted.text()
