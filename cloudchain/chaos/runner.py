"""`cloudchain chaos`: a network of real node processes, the bank workload, the nemesis,
then the heal and the check.

    1. write a testnet under OUT/net, start the relays and the n nodes (cluster.py);
    2. once every node has committed a block, start the workload (workload.py) and the
       nemesis's schedule (nemesis.py) side by side;
    3. after the schedule, heal everything (every node running, unpaused, without test
       aids or limits; every link healthy) and watch each node commit again within the
       progress bound (observe.watch_recovery);
    4. stop the workload, observe every node (observe.py) and check (checker.py);
    5. write OUT/report.json, OUT/history.jsonl and print the report's table.

The nodes are stopped on every way out, a failure included. Exit code 0 when there are
no violations, 1 when there are (the report says which), 2 when the run itself could not
be made (the network never started).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from cloudchain.chaos.checker import Crash, check
from cloudchain.chaos.cluster import Cluster
from cloudchain.chaos.history import History, Op, save_history
from cloudchain.chaos.nemesis import FAULT_KINDS, heights, plan, run_nemesis
from cloudchain.chaos.observe import observe, watch_recovery
from cloudchain.chaos.report import Report, build_report, render_table, to_json
from cloudchain.chaos.workload import WorkloadSettings, load_accounts, run_bank_workload

START_DEADLINE_S = 90.0  # for every node to commit its first block
PROGRESS_BOUND_S = 30.0  # after the heal, every node commits a new block within this
AFTER_HEAL_S = 3.0  # the workload goes on this long after every node recovered
START_POLL_S = 0.2


class ChaosStartError(RuntimeError):
    """The network did not start: nothing was tested."""


@dataclass(frozen=True)
class ChaosSettings:
    validators: int = 4
    duration_s: float = 60.0
    seed: int = 1
    faults: tuple[str, ...] = FAULT_KINDS
    out: Path = Path("chaos-out")
    accounts: int = 8
    progress_bound_s: float = PROGRESS_BOUND_S
    workload: WorkloadSettings = field(
        default_factory=lambda: WorkloadSettings(call_timeout_s=4.0, nonce_timeout_s=1.0)
    )


async def run_chaos(settings: ChaosSettings) -> Report:
    """One run; the report (also written under settings.out)."""
    out = settings.out
    out.mkdir(parents=True, exist_ok=True)
    cluster = await Cluster.create(
        out / "net", settings.validators, settings.seed, settings.accounts
    )
    try:
        return await _run(cluster, settings)
    finally:
        await cluster.close()


async def _run(cluster: Cluster, settings: ChaosSettings) -> Report:
    await _wait_for_first_blocks(cluster)
    keys = load_accounts(cluster.account_paths)
    addresses = {k.address for k in keys}
    genesis_balances = {a: b for a, b in cluster.genesis.balances if a in addresses}
    schedule = plan(settings.seed, settings.validators, settings.faults, settings.duration_s)
    stop = asyncio.Event()
    ops: list[Op] = []
    start_ns = time.monotonic_ns()
    workload = asyncio.create_task(
        run_bank_workload(
            cluster.rpc_urls,
            keys,
            settings.seed,
            stop,
            settings=settings.workload,
            on_op=ops.append,
        )
    )
    try:
        done = await run_nemesis(cluster, schedule, settings.seed, start_ns, settings.duration_s)
        remaining = settings.duration_s - (time.monotonic_ns() - start_ns) / 1e9
        if remaining > 0:
            await asyncio.sleep(remaining)  # the run's length, not a synchronisation
        await cluster.heal_all()
        heal_ns = time.monotonic_ns()
        recoveries = await watch_recovery(cluster.rpc_urls, heal_ns, settings.progress_bound_s)
        await asyncio.sleep(AFTER_HEAL_S)  # transfers through the healed network
    finally:
        stop.set()
        history: History = await workload
    views = await observe(cluster.rpc_urls, sorted(addresses))
    crashes = [Crash(e.node, e.returncode, e.log_tail[-400:]) for e in cluster.unexpected_exits()]
    result = check(
        history,
        views,
        genesis_balances,
        heal_ns,
        int(settings.progress_bound_s * 1e9),
        recoveries,
        byzantine=done.windows,
        crashes=crashes,
    )
    report = build_report(
        settings.seed,
        settings.validators,
        done.faults,
        history,
        result,
        recoveries,
        heal_ns,
        start_ns,
    )
    save_history(history, settings.out / "history.jsonl")
    document = to_json(report)
    document["settings"] = {
        "duration_s": settings.duration_s,
        "faults": list(settings.faults),
        "links": "TCP relays on loopback (cloudchain/chaos/relay.py), no network namespaces",
        "disk_full": "RLIMIT_FSIZE on the node's process",
    }
    (settings.out / "report.json").write_text(json.dumps(document, indent=2) + "\n")
    return report


async def _wait_for_first_blocks(cluster: Cluster) -> None:
    deadline = time.monotonic() + START_DEADLINE_S
    while time.monotonic() < deadline:
        seen = await heights(cluster.rpc_urls)
        if all(h is not None and h >= 1 for h in seen):
            return
        exited = [n.index for n in cluster.nodes if not n.running]
        if exited:
            tail = "".join(cluster.nodes[exited[0]].tail[-10:])
            raise ChaosStartError(f"node{exited[0]} exited at start:\n{tail}")
        await asyncio.sleep(START_POLL_S)  # polling the nodes' RPC, with a deadline
    raise ChaosStartError(f"the nodes did not all commit a block within {START_DEADLINE_S} s")


def run_and_print(settings: ChaosSettings) -> int:
    """The command: run, print the table, exit 0 (no violations), 1 or 2."""
    try:
        report = asyncio.run(run_chaos(settings))
    except ChaosStartError as exc:
        print(f"error: {exc}")
        return 2
    print(render_table(report))
    print(f"\nreport: {settings.out / 'report.json'}; history: {settings.out / 'history.jsonl'}")
    return 0 if report.ok else 1
