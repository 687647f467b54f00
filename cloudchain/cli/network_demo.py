"""`cloudchain demo`: a 4-validator network on this machine running the marketplace.

It writes a testnet (free ports, three oracles) in a temporary directory, starts
every validator as its own process, and drives the market through the nodes'
RPC (market_demo.py): providers of both tiers register, requesters submit tasks
every block and transfer tokens at the given rate, providers run their assigned
tasks, oracles attest. It prints each committed block (transactions, interval,
tasks open, assigned, being verified, settled and refunded), the market's
statistics every epoch, and a summary at the end, until Ctrl-C (or --blocks).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import tempfile
import time
from pathlib import Path

from cloudchain.cli.market_demo import DEMO_ACCOUNTS, MarketAgents
from cloudchain.client import Client, RPCClientError
from cloudchain.node.config import NodeConfig
from cloudchain.node.processes import start_node_processes, stop_node_processes
from cloudchain.node.testnet import init_testnet

READY_DEADLINE_S = 60
TICK_S = 0.25  # the pace of the transfers and of looking for new blocks
HEADER = "height  txs  interval  open  assigned  verifying  settled  refunded"


def run_network_demo(validators: int, blocks: int | None, txs_per_second: int, seed: int) -> int:
    with tempfile.TemporaryDirectory(prefix="cloudchain-net-") as scratch:
        home = Path(scratch) / "testnet"
        node_homes = init_testnet(home, validators, accounts=DEMO_ACCOUNTS)
        urls = [
            f"http://{NodeConfig.load(h / 'config' / 'config.toml').rpc.listen_address}"
            for h in node_homes
        ]
        print(f"testnet of {validators} validators in {home}")
        for h, url in zip(node_homes, urls, strict=True):
            print(f"  {h.name}: rpc {url}  (log {h / 'node.log'})")
        # The nodes outlive a Ctrl-C long enough for the summary; then they are stopped.
        processes = start_node_processes(node_homes, log_to_files=True, own_session=True)
        try:
            return asyncio.run(_drive(home, urls, blocks, txs_per_second, random.Random(seed)))
        except KeyboardInterrupt:
            return 0
        finally:
            stop_node_processes(processes)
            print("stopped every node")


async def _drive(
    home: Path, urls: list[str], blocks: int | None, txs_per_second: int, rng: random.Random
) -> int:
    clients = [Client(url) for url in urls]
    await _wait_ready(clients[0])
    agents = MarketAgents(home / "accounts", clients, (await clients[0].status()).network, rng)
    await agents.start()
    shown = 0
    last_time_ns: int | None = None
    print(HEADER)
    try:
        while blocks is None or shown < blocks:
            await agents.act(transfers=round(txs_per_second * TICK_S))
            await asyncio.sleep(TICK_S)  # the pace of the stream, not a synchronisation
            height = (await clients[0].status()).latest_block_height
            if blocks is not None:
                height = min(height, blocks)
            for h in range(shown + 1, height + 1):
                block = await clients[0].block(h)
                agents.book.on_block(h, block.header.time_ns, await clients[0].block_results(h))
                time_ns = block.header.time_ns
                interval = "" if last_time_ns is None else f"{(time_ns - last_time_ns) / 1e9:.2f}s"
                last_time_ns = time_ns
                tally = agents.book.tally()
                print(
                    f"{h:>6}  {len(block.txs):>3}  {interval:>8}  {tally['open']:>4}  "
                    f"{tally['assigned']:>8}  {tally['verifying']:>9}  {tally['settled']:>7}  "
                    f"{tally['refunded']:>8}",
                    flush=True,
                )
                if h % agents.epoch_blocks == 0:
                    print("\n".join(await agents.stats_lines()), flush=True)
            shown = max(shown, height)
    finally:
        print("\n".join(agents.summary_lines()), flush=True)
        with contextlib.suppress(RPCClientError):  # after Ctrl-C the nodes may be gone
            print("\n".join(await agents.chain_summary_lines()), flush=True)
    return 0


async def _wait_ready(client: Client) -> None:
    deadline = time.monotonic() + READY_DEADLINE_S
    while True:
        try:
            if (await client.status()).latest_block_height >= 1:
                return
        except RPCClientError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise RPCClientError(-1, "the testnet did not produce a block in time")
        await asyncio.sleep(0.2)  # polling a starting process, bounded by the deadline
