"""The mempool seen through a running node's RPC port: `num_unconfirmed_txs`,
`unconfirmed_txs` (CometBFT's shapes, every number a string) and its `/metrics`, with
gapped transactions kept apart, promoted, refused when their pool is full, and expired.

Gapped transactions are the ones that stay put on a live chain (nothing can include
them until their gap fills), so the listings here are exact. Every transaction pays the
minimum fee, so none outbids another: eviction is tested on its own
(test_mempool_rules.py); here its counter is only seen exposed."""

from __future__ import annotations

import base64
from pathlib import Path

import aiohttp

from cloudchain.crypto import PrivateKey, read_key_file
from cloudchain.fees import priced_transaction
from cloudchain.node.config import MempoolConfig
from cloudchain.node.runtime import Node
from tests.helpers.network import start_node, wait_for_height, wait_on_commits
from tests.helpers.rpc import call

MEMPOOL_COUNTERS = ("evicted_txs", "expired_txs", "recheck_times", "recheck_failed_txs")


def account(tmp_path: Path, k: int) -> PrivateKey:
    return read_key_file(tmp_path / "net" / "accounts" / f"account{k}.json")


def to_self(node: Node, sender: PrivateKey, nonce: int) -> bytes:
    args = {"to": sender.address, "amount": 1}
    return priced_transaction(
        sender, node.chain_id, nonce, "token", "transfer", args, node.app.fees
    ).to_bytes()


async def broadcast(node: Node, raw: bytes) -> dict:
    encoded = base64.b64encode(raw).decode()
    return (await call(node, "broadcast_tx_sync", {"tx": encoded}))["result"]


async def metrics(node: Node) -> dict[str, float]:
    url = f"http://{node.config.rpc.listen_address}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        text = await response.text()
    lines = (line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    return {name: float(value) for name, value in lines}


async def test_unconfirmed_txs_count_and_list_gapped_ones_until_the_gap_fills(node, tmp_path):
    alice, bob = account(tmp_path, 0), account(tmp_path, 1)
    gapped = [to_self(node, alice, 3), to_self(node, bob, 7), to_self(node, alice, 4)]
    for raw in gapped:
        admitted = await broadcast(node, raw)
        assert admitted["code"] == 0 and "gapped" in admitted["log"]
    total_bytes = str(sum(len(raw) for raw in gapped))

    counted = (await call(node, "num_unconfirmed_txs"))["result"]
    assert counted == {"n_txs": "3", "total": "3", "total_bytes": total_bytes, "txs": None}
    listed = (await call(node, "unconfirmed_txs", {"limit": "2"}))["result"]
    assert {k: listed[k] for k in ("n_txs", "total", "total_bytes")} == {
        "n_txs": "2",
        "total": "3",
        "total_bytes": total_bytes,
    }
    assert [base64.b64decode(t) for t in listed["txs"]] == gapped[:2]  # arrival order
    every = (await call(node, "unconfirmed_txs", {}))["result"]
    assert every["n_txs"] == "3" and [base64.b64decode(t) for t in every["txs"]] == gapped
    seen = await metrics(node)
    assert seen["cloudchain_mempool_gapped_size"] == 3
    assert seen["cloudchain_mempool_ready_size"] == 0
    assert seen["cloudchain_mempool_size"] == 3
    assert seen["cloudchain_mempool_size_bytes"] == int(total_bytes)
    for counter in MEMPOOL_COUNTERS:
        assert f"cloudchain_mempool_{counter}_total" in seen

    # alice's nonces 0 to 2 fill her gap: 3 and 4 move up and are committed with them.
    for nonce in range(3):
        assert (await broadcast(node, to_self(node, alice, nonce)))["code"] == 0
    await wait_on_commits([node], lambda: node.app.nonce(alice.address) == 5, what="alice's 5")
    left = (await call(node, "unconfirmed_txs", {"limit": "5"}))["result"]
    assert (left["n_txs"], left["total"], left["total_bytes"]) == ("1", "1", str(len(gapped[1])))
    assert [base64.b64decode(t) for t in left["txs"]] == [gapped[1]]
    seen = await metrics(node)
    assert (seen["cloudchain_mempool_gapped_size"], seen["cloudchain_mempool_size"]) == (1, 1)
    assert seen["cloudchain_mempool_recheck_failed_txs_total"] == 0


async def test_a_full_gapped_pool_refuses_over_rpc_and_old_ones_expire(tmp_path):
    mempool = MempoolConfig(max_gapped_txs=2, ttl_num_blocks=2)
    node = await start_node(tmp_path, mempool=mempool)
    try:
        await wait_for_height([node], 1)
        senders = [account(tmp_path, k) for k in range(3)]
        for sender in senders[:2]:
            assert (await broadcast(node, to_self(node, sender, 5)))["code"] == 0
        full = await broadcast(node, to_self(node, senders[2], 5))
        assert (full["code"], full["codespace"]) == (20, "mempool")
        assert "mempool is full (2 transactions" in full["log"] and "gapped" in full["log"]
        # Ready ones have their own room: the third sender's next nonce is admitted.
        assert (await broadcast(node, to_self(node, senders[2], 0)))["code"] == 0

        arrived = node.app.info().height
        await wait_for_height([node], arrived + 3)  # more than ttl_num_blocks after
        counted = (await call(node, "num_unconfirmed_txs"))["result"]
        assert (counted["total"], counted["total_bytes"]) == ("0", "0")
        seen = await metrics(node)
        assert seen["cloudchain_mempool_expired_txs_total"] == 2
        assert seen["cloudchain_mempool_gapped_size"] == 0
    finally:
        await node.stop()
