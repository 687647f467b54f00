"""Transaction gossip in batches, the peer link's priorities, and consensus under a flood.

A node gossips the transactions that became ready as one "tx" message per peer per loop
tick (bounded in count and bytes), still accepts the single raw transaction older nodes
send, refuses any transaction of a batch by its own rules (a forged one among them), and
queues its batches behind consensus messages on every link. Under a flood of gossiped
transactions the network goes on committing.
"""

from __future__ import annotations

import dataclasses

import pytest

from cloudchain import codec
from cloudchain.chaincode.codes import Code
from cloudchain.crypto import PrivateKey
from cloudchain.fees import priced_transaction
from cloudchain.genesis import Genesis
from cloudchain.ledger import Transaction
from cloudchain.network import peers as peers_module
from cloudchain.network.peers import PeerManager, _Peer
from cloudchain.network.secret_connection import PeerError
from cloudchain.node import runtime
from cloudchain.node.runtime import TX_BATCH_MAX_TXS, Node
from cloudchain.node.testnet import init_testnet
from tests.helpers.gossip import RecordingPeers, transfers
from tests.helpers.network import RECEIVE_BYTES, SEND_BYTES, fast_node, metric, wait_on_commits

FLOOD_TXS = 3_000  # gossiped from one node to three: about 47 batches for each


def batches(peers: RecordingPeers) -> list[tuple[bytes, ...]]:
    out = []
    for data, gossip in peers.sent:
        envelope = codec.decode(data)
        assert envelope["ch"] == "tx" and gossip, "a batch goes on the gossip queue"
        out.append(envelope["m"])
    return out


def test_a_batch_carries_every_ready_transaction_once_within_its_bounds(tmp_path, monkeypatch):
    (home,) = init_testnet(tmp_path / "net", 1)
    node = Node(home)
    recorder = RecordingPeers()
    node.peers = recorder  # type: ignore[assignment]
    try:
        raws = transfers(tmp_path / "net", node, 2 * TX_BATCH_MAX_TXS + 10)
        for raw in raws:
            assert node.submit_tx(raw).ok
        node.flush_tx_gossip()
        node.flush_tx_gossip()  # nothing left: no empty message
        sent = batches(recorder)
        assert [len(b) for b in sent] == [TX_BATCH_MAX_TXS, TX_BATCH_MAX_TXS, 10]
        assert [raw for b in sent for raw in b] == raws, "each once, in order"
        sent_bytes = sum(len(d) for d, _ in recorder.sent) * len(recorder.connected)
        assert metric(node, SEND_BYTES, channel="tx") == sent_bytes

        recorder.sent.clear()  # the bytes bound: three transactions' worth
        monkeypatch.setattr(runtime, "TX_BATCH_MAX_BYTES", 3 * len(raws[0]))
        more = transfers(tmp_path / "net", node, len(raws) + 7)[len(raws) :]
        for raw in more:
            assert node.submit_tx(raw).ok
        node.flush_tx_gossip()
        sent = batches(recorder)
        assert [len(b) for b in sent] == [3, 3, 1] and [r for b in sent for r in b] == more
        gapped = transfers(tmp_path / "net", node, len(raws) + 7 + 8)[-1]  # a nonce ahead
        assert node.submit_tx(gapped).gapped
        node.flush_tx_gossip()
        assert len(recorder.sent) == 3, "a gapped transaction is not gossiped"
    finally:
        node.store.close()


def test_a_peer_may_send_a_batch_or_one_transaction_alone_and_nothing_else(tmp_path):
    (home,) = init_testnet(tmp_path / "net", 1)
    node = Node(home)
    node.peers = RecordingPeers()  # type: ignore[assignment]
    try:
        raws = transfers(tmp_path / "net", node, 4)
        genuine = Transaction.from_bytes(raws[3])  # account3's, signed below by another key
        bad = genuine.with_signature(PrivateKey.generate().sign(genuine.sign_bytes()))
        node._on_peer_message("p", codec.encode({"ch": "tx", "m": raws[0]}))  # the old format
        node._on_peer_message("p", codec.encode({"ch": "tx", "m": [raws[1], bad.to_bytes()]}))
        assert len(node.mempool) == 0, "batches wait in the inbox for the loop's turns"
        node.admit_gossiped_txs()
        assert len(node.mempool) == 2 and bad.hash not in node.mempool
        assert metric(node, "cloudchain_mempool_refused_txs_total") == 1
        assert metric(node, RECEIVE_BYTES, channel="tx") > 0
        for payload in ([raws[2]] * (TX_BATCH_MAX_TXS + 1), [raws[2], "text"], {"tx": raws[2]}):
            with pytest.raises(PeerError):
                node._on_peer_message("p", codec.encode({"ch": "tx", "m": payload}))
        assert len(node.mempool) == 2
        assert node.submit_tx(raws[2]).ok and node.submit_tx(bad.to_bytes()).code == (
            Code.BAD_SIGNATURE
        )
    finally:
        node.store.close()


def test_the_link_writes_consensus_before_transactions_and_drops_only_transactions():
    manager = PeerManager(PrivateKey.generate(), ("127.0.0.1", 0), [], lambda _p, _d: None)
    peer = _Peer(connection=None)  # type: ignore[arg-type]  # its queues alone are used
    manager._peers["p"] = peer
    batches_sent = [manager.send("p", b"tx%d" % i, gossip=True) for i in range(3)]
    assert all(batches_sent)
    assert manager.send("p", b"blob", bulk=True) and manager.send("p", b"vote")
    order = [peer.next_message() for _ in range(5)]
    assert order == [b"vote", b"tx0", b"tx1", b"tx2", b"blob"] and peer.next_message() is None
    for _ in range(peers_module.GOSSIP_QUEUE_MESSAGES):
        assert manager.send("p", b"t", gossip=True)
    assert not manager.send("p", b"one too many", gossip=True)
    assert manager.dropped_messages == 1
    assert manager.send("p", b"vote"), "a full gossip queue takes no room of the urgent one"
    assert peer.next_message() == b"vote"


async def test_a_flood_of_gossiped_transactions_reaches_every_node_and_commits_alike(tmp_path):
    """One node admits FLOOD_TXS transfers at once and gossips them in batches; the three
    others admit the batches, every transfer is committed, and all four agree on what
    was decided. (Whether blocks are committed while the batches are still arriving
    depends on this machine's speed, so it is not asserted: the link's order, consensus
    before transactions, is tested on its own above.)"""
    homes = init_testnet(tmp_path / "net", 4, accounts=1)
    keys = [PrivateKey.generate() for _ in range(FLOOD_TXS)]  # one fresh sender each
    genesis = Genesis.load(homes[0] / "config" / "genesis.json")
    funded = tuple(sorted([*genesis.balances, *((k.address, 10**12) for k in keys)]))
    genesis = dataclasses.replace(genesis, balances=funded)
    for home in homes:
        genesis.save(home / "config" / "genesis.json")
    nodes = [fast_node(home) for home in homes]
    try:
        for node in nodes:
            await node.start()
        await wait_on_commits(nodes, lambda: all(n.app.info().height >= 2 for n in nodes))
        args = {"to": keys[0].address, "amount": 1}
        txs = [
            priced_transaction(k, genesis.chain_id, 0, "token", "transfer", args, genesis.fees)
            for k in keys
        ]
        flooder = nodes[0]
        assert all(flooder.submit_tx(tx.to_bytes()).ok for tx in txs)
        flooder.flush_tx_gossip()
        await wait_on_commits(
            nodes,
            lambda: all(n.store.tx_result(tx.hash) is not None for n in nodes for tx in txs),
            what="every transfer committed on every node",
        )
        top = min(n.app.info().height for n in nodes)
        await wait_on_commits(nodes, lambda: all(n.app.info().height >= top for n in nodes))
        assert len({n.store.app_hash_at(top) for n in nodes}) == 1
    finally:
        for node in nodes:
            await node.stop()
