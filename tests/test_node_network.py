"""Four nodes in one process, over real encrypted TCP connections on loopback."""

import asyncio
import contextlib
import dataclasses

from cloudchain.chaincode.codes import Code
from cloudchain.crypto import read_key_file
from cloudchain.node.config import ConsensusConfig, NodeConfig
from cloudchain.node.runtime import Node
from cloudchain.node.testnet import init_testnet
from cloudchain.types import Transaction

DEADLINE_S = 60
FAST = ConsensusConfig(
    timeout_propose_ms=800, timeout_propose_delta_ms=200, timeout_prevote_ms=300,
    timeout_prevote_delta_ms=200, timeout_precommit_ms=300, timeout_precommit_delta_ms=200,
    timeout_commit_ms=100,
)  # fmt: skip


def fast_node(home):
    config = NodeConfig.load(home / "config" / "config.toml")
    return Node(home, dataclasses.replace(config, consensus=FAST))


async def wait_for_height(nodes, height):
    reached = asyncio.Event()

    def check(_decision=None):
        if all(n.app.info().height >= height for n in nodes):
            reached.set()

    for node in nodes:
        node.commit_listeners.append(check)
    check()
    await asyncio.wait_for(reached.wait(), DEADLINE_S)


async def test_four_nodes_commit_the_same_blocks_and_a_transaction(tmp_path):
    homes = init_testnet(tmp_path / "net", 4)
    nodes = [fast_node(home) for home in homes]
    try:
        for node in nodes:
            await node.start()
        await wait_for_height(nodes, 2)
        sender = read_key_file(tmp_path / "net" / "accounts" / "account0.json")
        recipient = read_key_file(tmp_path / "net" / "accounts" / "account1.json")
        tx = Transaction.create(sender, nodes[0].chain_id, 0, "token", "transfer",
                                {"to": recipient.address, "amount": 7})  # fmt: skip
        assert nodes[0].submit_tx(tx.to_bytes()).ok
        assert nodes[0].submit_tx(tx.to_bytes()).code == Code.TX_IN_MEMPOOL
        included = asyncio.Event()
        for node in nodes:
            node.commit_listeners.append(
                lambda d: included.set() if all(n.store.tx_location(tx.hash) for n in nodes)
                else None)  # fmt: skip
        await asyncio.wait_for(included.wait(), DEADLINE_S)
        await wait_for_height(nodes, max(n.app.info().height for n in nodes))
        top = min(n.app.info().height for n in nodes)
        for height in range(1, top + 1):
            hashes = {n.store.block(height).hash for n in nodes}
            app_hashes = {n.store.app_hash_at(height) for n in nodes}
            assert len(hashes) == 1 and len(app_hashes) == 1, f"height {height}"
        result = nodes[3].store.tx_result(tx.hash)
        assert result is not None and result.ok
        assert all(len(n.peers.connected) == 3 for n in nodes)
    finally:
        for node in nodes:
            await node.stop()


async def test_a_restarted_node_recovers_from_its_wal_and_catches_up(tmp_path):
    homes = init_testnet(tmp_path / "net", 4)
    nodes = [fast_node(home) for home in homes]
    try:
        for node in nodes:
            await node.start()
        await wait_for_height(nodes, 2)
        await nodes[3].stop()
        others = nodes[:3]
        await wait_for_height(others, nodes[3].app.info().height + 2)
        nodes[3] = fast_node(homes[3])  # a new process, in effect: same home, same WAL
        await nodes[3].start()
        await wait_for_height(nodes, max(n.app.info().height for n in others) + 1)
        top = nodes[3].app.info().height
        assert {n.store.block(top).hash for n in nodes} == {nodes[0].store.block(top).hash}
    finally:
        for node in nodes:
            with contextlib.suppress(Exception):  # the stopped one may be stopped twice
                await node.stop()


async def test_a_node_started_late_syncs_the_blocks_it_missed_and_joins(tmp_path):
    homes = init_testnet(tmp_path / "net", 4)
    nodes = [fast_node(home) for home in homes[:3]]  # 3 of 4: +2/3 of the power
    late = None
    try:
        for node in nodes:
            await node.start()
        await wait_for_height(nodes, 8)
        late = fast_node(homes[3])
        await late.start()
        target = max(n.app.info().height for n in nodes) + 2
        await wait_for_height([*nodes, late], target)
        for height in range(1, late.app.info().height + 1):
            assert late.store.block(height).hash == nodes[0].store.block(height).hash
            assert late.store.app_hash_at(height) == nodes[0].store.app_hash_at(height)
    finally:
        for node in [*nodes, *([late] if late else [])]:
            await node.stop()
