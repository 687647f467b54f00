"""`cloudchain demo`: a 4-validator network on this machine doing signed transfers.

It writes a testnet (free ports) in a temporary directory, starts every
validator as its own process, streams transfers between the funded accounts
through the nodes' RPC, and prints each committed block with its transaction
count and the interval since the previous one, until Ctrl-C (or --blocks).
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from pathlib import Path

from cloudchain.cli.node_commands import start_node_processes, stop_node_processes
from cloudchain.client import Client, RPCClientError
from cloudchain.crypto import read_key_file
from cloudchain.node.config import NodeConfig
from cloudchain.node.testnet import init_testnet
from cloudchain.types import Transaction

READY_DEADLINE_S = 60


def run_network_demo(validators: int, blocks: int | None, txs_per_second: int, seed: int) -> int:
    with tempfile.TemporaryDirectory(prefix="cloudchain-net-") as scratch:
        home = Path(scratch) / "testnet"
        node_homes = init_testnet(home, validators)
        urls = [f"http://{NodeConfig.load(h / 'config' / 'config.toml').rpc.listen_address}"
                for h in node_homes]  # fmt: skip
        print(f"testnet of {validators} validators in {home}")
        for h, url in zip(node_homes, urls, strict=True):
            print(f"  {h.name}: rpc {url}  (log {h / 'node.log'})")
        processes = start_node_processes(node_homes, log_to_files=True)
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
    accounts = [read_key_file(p) for p in sorted((home / "accounts").glob("account*.json"))]
    status = await clients[0].status()
    chain_id = status.network
    nonces = {a.address: await clients[0].nonce(a.address) for a in accounts}
    shown = status.latest_block_height
    last_time_ns: int | None = None
    sent = refused = 0
    print("height  txs  interval   app hash")
    while blocks is None or shown < blocks:
        for _ in range(txs_per_second // 4 or 1):
            sender, recipient = rng.sample(accounts, 2)
            args = {"to": recipient.address, "amount": rng.randint(1, 1000)}
            nonce = nonces[sender.address]
            tx = Transaction.create(sender, chain_id, nonce, "token", "transfer", args)
            result = await rng.choice(clients).broadcast_tx_sync(tx.to_bytes())
            if result.ok:
                nonces[sender.address] += 1
                sent += 1
            else:
                refused += 1
        await asyncio.sleep(0.25)  # the pace of the stream, not a synchronisation
        height = (await clients[0].status()).latest_block_height
        for h in range(shown + 1, height + 1):
            block = await clients[0].block(h)
            time_ns = block.header.time_ns
            interval = "" if last_time_ns is None else f"{(time_ns - last_time_ns) / 1e9:6.2f}s"
            last_time_ns = time_ns
            print(f"{h:>6}  {len(block.txs):>3}  {interval:>8}   "
                  f"{block.header.app_hash.hex().upper()[:16]}", flush=True)  # fmt: skip
        shown = max(shown, height)
    print(f"sent {sent} transfers ({refused} refused by the mempool)")
    for account in accounts:
        balance = await clients[0].query("/token/balance", account.address.encode())
        print(f"  {account.address}  {balance['balance']:>12} {balance['denom']}")
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
