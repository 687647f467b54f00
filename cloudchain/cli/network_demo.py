"""`cloudchain demo` (`make demo`): the market doing real work on this machine.

A testnet of `validators` node processes, three provider daemons and three oracle
daemons (cloudchain/cli/agent_network.py), and a requester, this process, submitting
the training, preprocessing and inference jobs of demo_jobs.py through the Python
client. The providers:

    enterprise   honest, 12 a unit
    community    honest, 10 a unit
    cheap        --fault wrong-output, 10 a unit: it makes up its results

Every provider really runs what it is assigned (but the cheat), in a child process
under the manifest's limits; every oracle probes the providers and re-runs every
completed job before it attests. The live table prints each task's moves as the
blocks commit them, with its units, payment and penalty; the cheater's made-up results
are refused by the oracles' quorum, and its stake and reputation fall. At the end: a
summary (each job's metric as the requester fetched it, each provider's stake,
reputation and earnings), and every process stopped (with --stay, only at Ctrl-C).
The web UI's address (node0's /ui/) is printed once the network runs: the market can be
watched in a browser while the demo works.
"""

from __future__ import annotations

import asyncio
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudchain.cli.agent_network import AgentNetwork
from cloudchain.cli.demo_jobs import DemoJob, demo_jobs
from cloudchain.client import Client, RPCClientError
from cloudchain.client.task_terms import FINAL_STATES, TaskRecord
from cloudchain.client.tasks import TaskError
from cloudchain.crypto import read_key_file

PROVIDERS = (  # (account, name, tier, price, node, extra options)
    (1, "enterprise", "enterprise", 12, 0, ()),
    (2, "community", "community", 10, 1, ()),
    (3, "cheap", "community", 10, 2, ("--fault", "wrong-output")),
)
REQUESTER = 4
PENALTY = 100  # λ: per SLA term broken (at most the deposit, MAX_PRICE x units)
MAX_PRICE = 15
POLL_S = 0.5  # the pace of the live table, not a synchronisation
DEADLINE_S = 900  # of the whole demo
MAX_ATTEMPTS = 3  # submissions of one job whose results the oracles refuse
ROW = "{:>6}  {:>4}  {:<16} {:<11} {:<10} {:>5} {:>6} {:>7}"


@dataclass
class Tracked:
    job: DemoJob
    task_id: int
    state: str = "open"
    record: TaskRecord | None = None
    shown: int = 0  # history entries printed
    attempt: int = 1  # 1 for a job's first submission, 2 for its first resubmission, ...
    resubmitted: bool = False  # refused, and submitted again
    metric: str = ""
    files: dict[str, str] = field(default_factory=dict)  # result file name -> CID


def run_network_demo(validators: int, tasks: int | None, seed: int, stay: bool = False) -> int:
    """The demo; with `stay`, the network runs on after the summary until Ctrl-C."""
    with tempfile.TemporaryDirectory(prefix="cloudchain-demo-") as scratch:
        home = Path(scratch)
        print(f"starting {validators} validators, 3 providers and 3 oracles in {home}")
        try:
            with AgentNetwork(home / "testnet", validators, accounts=8) as net:
                code = asyncio.run(_demo(net, home, tasks, seed))
                if stay and code == 0:
                    print(f"the network runs on: {ui_url(net)} (Ctrl-C stops it)", flush=True)
                    _wait_for_ctrl_c()
                return code
        except KeyboardInterrupt:
            return 0 if stay else 130
        finally:
            print("stopped every process")


async def _demo(net: AgentNetwork, home: Path, tasks: int | None, seed: int) -> int:
    names = {}
    for account, name, tier, price, node, extra in PROVIDERS:
        net.start_provider(
            account,
            "--tier",
            tier,
            "--price",
            str(price),
            "--units",
            "30",
            *extra,
            node=node % net.validators,
            name=name,
        )
        names[read_key_file(net.key_file(f"account{account}")).address] = name
    for k in range(3):
        net.start_oracle(k, "--probe-seconds", "1", "--attest-seconds", "10", node=k + 1)
    for agent in net.agents:
        print(f"  {agent.name:<11} log {agent.log}")
    client = Client(net.rpc_url())
    print(f"watch the market in a browser: {ui_url(net)}", flush=True)
    requester = read_key_file(net.key_file(f"account{REQUESTER}"))
    await _wait_for_providers(client, set(names))
    start = {address: await _provider(client, address) for address in names}
    jobs = demo_jobs(home / "data", seed)[:tasks]
    tracked: dict[str, Tracked] = {}
    refused: list[Tracked] = []  # tasks whose result the oracles refused (resubmitted)
    waiting = [job for job in jobs if job.model_of is None]
    later = [job for job in jobs if job.model_of is not None]
    print(ROW.format("height", "task", "job", "provider", "state", "units", "paid", "penalty"))
    deadline = time.monotonic() + DEADLINE_S
    while waiting or later or any(t.state not in FINAL_STATES for t in tracked.values()):
        if time.monotonic() > deadline:
            print(f"error: the demo did not finish within {DEADLINE_S} s")
            return 1
        for job in waiting:
            tracked[job.name] = await _submit(client, requester, job, {})
        waiting = []
        for job in list(later):
            source = tracked.get(job.model_of or "")
            if source is not None and _completed(source) and "model.skops" in source.files:
                tracked[job.name] = await _submit(client, requester, job, source.files)
                later.remove(job)
        await _show_moves(client, tracked, names, home)
        for item in list(tracked.values()):
            # A refused result is submitted again, up to MAX_ATTEMPTS in all: a cheat caught
            # once may still win the next assignment (its reputation falls with each
            # violation, and a resubmission made while its earlier tasks are still being
            # verified may find it the least loaded).
            refused_now = item.state in FINAL_STATES and not _completed(item)
            if refused_now and not item.resubmitted and item.attempt < MAX_ATTEMPTS:
                item.resubmitted = True
                print(f"resubmitting {item.job.name}: task {item.task_id}'s result was refused")
                again = await _submit(client, requester, item.job, {})
                again.attempt = item.attempt + 1
                tracked[item.job.name] = again
                refused.append(item)
        for job in list(later):
            source = tracked.get(job.model_of or "")
            if source is None or (source.attempt >= MAX_ATTEMPTS and source.state in FINAL_STATES):
                later.remove(job)  # the model it runs never came: nothing to wait for
        await asyncio.sleep(POLL_S)
    print("\n".join(await _summary(client, [*refused, *tracked.values()], names, start)))
    return 0


def _wait_for_ctrl_c() -> None:
    """Until SIGINT or SIGTERM (which main.py turns into KeyboardInterrupt): the nodes
    and daemons are processes of their own and go on meanwhile."""
    while True:
        signal.pause()


def ui_url(net: AgentNetwork) -> str:
    """The web UI of node0 (every node serves one, at /ui/)."""
    return f"{net.rpc_url()}/ui/"


def _completed(item: Tracked) -> bool:
    return bool(
        item.record and item.state in FINAL_STATES and (item.record.outcome or {}).get("completed")
    )


async def _wait_for_providers(client: Client, addresses: set[str]) -> None:
    deadline = time.monotonic() + 120
    while True:
        found = {p["address"] for p in (await client.query("/market/providers"))["providers"]}
        if addresses <= found:
            return
        if time.monotonic() > deadline:
            raise RPCClientError(-1, "the providers did not register in time")
        await asyncio.sleep(POLL_S)  # polling the chain, bounded by the deadline


async def _provider(client: Client, address: str) -> dict[str, Any]:
    answer: dict[str, Any] = await client.query("/market/provider", address.encode())
    return answer


async def _submit(client: Client, key: Any, job: DemoJob, model_files: dict[str, str]) -> Tracked:
    manifest = job.manifest
    if job.model_of is not None:
        cid = model_files["model.skops"]
        stat = await client.blob_stat(cid)
        manifest = {**manifest, "model": {**manifest["model"], "cid": cid, "bytes": stat.size}}
    submitted = await client.submit_task(
        key,
        manifest,
        dict(job.data),
        units=job.units,
        max_price=MAX_PRICE,
        penalty=PENALTY,
        max_latency_ms=1_000,
        min_uptime_bps=9_000,
        replicas=1,
    )
    for warning in submitted.warnings:
        print(f"warning: {warning}")
    return Tracked(job, submitted.task_id)


async def _show_moves(
    client: Client, tracked: dict[str, Tracked], names: dict[str, str], home: Path
) -> None:
    """Print each state a task entered since the last look, then fetch the result of a
    task that has become final."""
    for item in tracked.values():
        if item.state in FINAL_STATES:
            continue
        record = await client.task(item.task_id)
        item.record = record
        outcome, payout = record.outcome or {}, record.payout or {}
        for state, height in record.history[item.shown :]:
            judged = state in ("verified", "disputed", *FINAL_STATES)
            print(
                ROW.format(
                    height,
                    record.id,
                    item.job.name,
                    "-" if state == "open" else names.get(record.provider, "-"),
                    state,
                    outcome.get("units", "") if judged else "",
                    payout.get("provider", "") if state in FINAL_STATES else "",
                    outcome.get("penalty", "") if judged else "",
                ),
                flush=True,
            )
        item.shown = len(record.history)
        item.state = record.state
        if record.state in FINAL_STATES and record.output:
            try:
                result = await client.fetch_result(record.id, home / "results" / str(record.id))
            except (RPCClientError, TaskError, ValueError, OSError) as exc:
                print(f"warning: task {record.id}'s result could not be fetched: {exc}")
                continue
            item.files = dict(result.index.files)
            if "metric" in result.metrics:
                item.metric = f"{result.metrics['metric']} {result.metrics['value']:.4f}"


async def _summary(
    client: Client,
    tracked: list[Tracked],
    names: dict[str, str],
    start: dict[str, dict[str, Any]],
) -> list[str]:
    lines = ["", "jobs:"]
    for item in sorted(tracked, key=lambda t: t.task_id):
        record = item.record
        outcome = (record.outcome if record else None) or {}
        completed = bool(outcome.get("completed"))
        verdict = "completed" if completed else "NOT completed"
        metric = item.metric if completed or not item.metric else f"(claimed {item.metric})"
        provider = names.get(record.provider, "-") if record else "-"
        lines.append(
            f"  {item.job.name:<16} task {item.task_id:>3}  {provider:<11} {item.state:<9} "
            f"{verdict:<13} {metric}"
        )
    lines.append("providers:        stake (start -> now)   reputation (start -> now)   paid")
    for address, name in names.items():
        now = await _provider(client, address)
        stats = (await client.query("/market/account", address.encode()))["provider"]
        lines.append(
            f"  {name:<11} {start[address]['stake']:>9} -> {now['stake']:<9}"
            f"   {start[address]['reputation']:>5} -> {now['reputation']:<5}"
            f"               {stats.get('earned', 0)}"
            f"  (penalties {stats.get('penalties', 0)},"
            f" {stats.get('violated', 0)} tasks with a violation)"
        )
    cheats = [
        item for item in tracked if item.record and names.get(item.record.provider) == "cheap"
    ]
    caught = sum(1 for item in cheats if not (item.record.outcome or {}).get("completed"))  # type: ignore[union-attr]
    lines.append(f"the cheating provider served {len(cheats)} tasks; the oracles caught {caught}")
    return lines
