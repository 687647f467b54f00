"""The bank workload against four real validator processes, one of them SIGKILLed and
restarted mid-run; then the observer and the checker: no violations, and transfers
acknowledged through every node."""

import asyncio
import signal
import time

from cloudchain.chaos.checker import check
from cloudchain.chaos.history import Outcome, Read, Transfer
from cloudchain.chaos.observe import observe, watch_recovery
from cloudchain.chaos.workload import WorkloadSettings, load_accounts, run_bank_workload
from cloudchain.genesis import Genesis
from cloudchain.node.config import NodeConfig
from tests.helpers.processes import NodeProcess, fast_testnet, wait_on_logs
from tests.helpers.waiting import wait_until

PROGRESS_BOUND_S = 20.0


def test_the_bank_workload_through_a_kill_and_a_restart_checks_clean(tmp_path):
    homes = fast_testnet(tmp_path / "net", 4)
    urls = [
        f"http://{NodeConfig.load(h / 'config' / 'config.toml').rpc.listen_address}" for h in homes
    ]
    keys = load_accounts(sorted((tmp_path / "net" / "accounts").glob("account*.json")))
    genesis = Genesis.load(homes[0] / "config" / "genesis.json")
    addresses = {k.address for k in keys}
    genesis_balances = {a: b for a, b in genesis.balances if a in addresses}
    nodes = [NodeProcess(home) for home in homes]
    try:
        wait_on_logs(lambda: all(n.height >= 1 for n in nodes), nodes)
        history, recoveries, heal_ns = asyncio.run(_run(nodes, homes, urls, keys))
        # The balances are compared at the height every node has reached (observe.py):
        # wait for each, the restarted one too, to have the last acknowledged transfer's
        # block, or a node one block behind puts that transfer past the compared state.
        top = max(t.height for t in history.transfers if t.outcome is Outcome.OK)
        wait_on_logs(lambda: all(n.height >= top for n in nodes), nodes)
        views = asyncio.run(observe(urls, sorted(k.address for k in keys)))
    finally:
        for node in nodes:
            node.stop()
    result = check(
        history, views, genesis_balances, heal_ns, int(PROGRESS_BOUND_S * 1e9), recoveries
    )
    assert result.ok, [v.describe() for v in result.violations]
    ok = [t for t in history.transfers if t.outcome is Outcome.OK]
    assert len(ok) >= 20 and {t.node for t in ok} == {0, 1, 2, 3}
    assert sum(r.outcome is Outcome.OK for r in history.reads) >= 8
    # every acknowledged transfer moved its amount or says why not
    assert all(t.code == 0 for t in ok)
    assert result.committed_txs >= len({t.tx_hash for t in ok})
    assert result.state_height >= max(t.height for t in ok)


async def _run(nodes, homes, urls, keys):
    stop = asyncio.Event()
    ops: list = []
    settings = WorkloadSettings(call_timeout_s=4.0, nonce_timeout_s=1.0, read_interval_s=0.1)
    workload = asyncio.create_task(
        run_bank_workload(urls, keys, seed=7, stop=stop, settings=settings, on_op=ops.append)
    )

    def ok_transfers(node=None, after_ns=0):
        return sum(
            isinstance(op, Transfer)
            and op.outcome is Outcome.OK
            and (node is None or op.node == node)
            and op.invoke_ns > after_ns
            for op in ops
        )

    try:
        await wait_until(lambda: ok_transfers() >= 10, what="10 transfers committed")
        nodes[3].stop(signal.SIGKILL)
        killed_at = ok_transfers()
        await wait_until(lambda: ok_transfers() >= killed_at + 10, what="transfers without node3")
        nodes[3] = NodeProcess(homes[3])
        restarted_ns = time.monotonic_ns()
        await wait_until(
            lambda: (
                any(
                    isinstance(op, Read) and op.node == 3 and op.invoke_ns > restarted_ns
                    for op in ops
                )
                and ok_transfers(3) >= 1
            ),
            what="node3 answering again",
        )
        heal_ns = time.monotonic_ns()
        recoveries = await watch_recovery(urls, heal_ns, PROGRESS_BOUND_S)
    finally:
        stop.set()
        history = await workload
    return history, recoveries, heal_ns
