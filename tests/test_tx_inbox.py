"""Gossiped batches wait in the node's inbox and are admitted one per turn of its loop,
so that consensus messages read meanwhile come first; over its bound a batch is dropped
whole and counted, and what is admitted is checked as before (a forged signature among
a batch is refused whenever its turn comes)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cloudchain import codec
from cloudchain.crypto import PrivateKey
from cloudchain.ledger import Transaction
from cloudchain.node.runtime import TX_BATCH_MAX_TXS, Node
from cloudchain.node.testnet import init_testnet
from cloudchain.node.txinbox import TxInbox
from tests.helpers.gossip import RecordingPeers, transfers
from tests.helpers.network import metric


class TurnRecorder:
    """Stands in for the event loop: the callbacks the node asked to run on its next turn."""

    def __init__(self) -> None:
        self.soon: list[Callable[[], None]] = []

    def call_soon(self, callback: Callable[..., None], *args: object) -> None:
        self.soon.append(lambda: callback(*args))

    def call_later(self, _delay: float, callback: Callable[..., None], *args: object) -> None:
        pass  # a commit timeout: not this test's business

    def run_turn(self) -> None:
        todo, self.soon = self.soon, []
        for callback in todo:
            callback()


def test_the_inbox_keeps_batches_in_order_and_drops_whole_batches_over_its_bound():
    inbox = TxInbox(max_txs=5)
    assert inbox.put([b"a", b"b"]) and inbox.put([b"c", b"d", b"e"])
    assert len(inbox) == 5
    assert not inbox.put([b"f"]) and inbox.dropped_txs == 1
    assert inbox.take() == [b"a", b"b"] and len(inbox) == 3
    assert not inbox.put([b"g", b"h", b"i"]), "a batch is dropped whole, never split"
    assert inbox.dropped_txs == 4 and inbox.put([b"j", b"k"])
    assert [inbox.take(), inbox.take(), inbox.take()] == [[b"c", b"d", b"e"], [b"j", b"k"], None]
    with pytest.raises(ValueError):
        TxInbox(max_txs=0)


def test_a_node_admits_one_gossiped_batch_per_turn_of_its_loop(tmp_path):
    (home,) = init_testnet(tmp_path / "net", 1)
    node = Node(home)
    node.peers = RecordingPeers()  # type: ignore[assignment]
    loop = TurnRecorder()
    node._loop = loop  # type: ignore[assignment]
    try:
        raws = transfers(tmp_path / "net", node, 3 * TX_BATCH_MAX_TXS)
        genuine = Transaction.from_bytes(raws[-1])
        forged = genuine.with_signature(PrivateKey.generate().sign(genuine.sign_bytes()))
        raws[-1] = forged.to_bytes()
        for i in range(3):
            batch = raws[i * TX_BATCH_MAX_TXS : (i + 1) * TX_BATCH_MAX_TXS]
            node._on_peer_message("p", codec.encode({"ch": "tx", "m": batch}))
        assert len(node.mempool) == 0 and len(loop.soon) == 1, "one turn asked for, none run"
        seen = []
        while loop.soon:
            loop.run_turn()
            seen.append(len(node.mempool))
        assert seen == [TX_BATCH_MAX_TXS, 2 * TX_BATCH_MAX_TXS, 3 * TX_BATCH_MAX_TXS - 1]
        assert forged.hash not in node.mempool, "the forged signature is refused in its turn"
        assert metric(node, "cloudchain_mempool_refused_txs_total") == 1
    finally:
        node.store.close()


def test_a_full_inbox_drops_a_peers_batch_and_counts_it(tmp_path, monkeypatch):
    (home,) = init_testnet(tmp_path / "net", 1)
    node = Node(home)
    node.peers = RecordingPeers()  # type: ignore[assignment]
    node._tx_inbox = TxInbox(max_txs=TX_BATCH_MAX_TXS)
    node._loop = TurnRecorder()  # type: ignore[assignment]
    try:
        raws = transfers(tmp_path / "net", node, TX_BATCH_MAX_TXS + 3)
        node._on_peer_message("p", codec.encode({"ch": "tx", "m": raws[:TX_BATCH_MAX_TXS]}))
        node._on_peer_message("p", codec.encode({"ch": "tx", "m": raws[TX_BATCH_MAX_TXS:]}))
        assert metric(node, "cloudchain_p2p_dropped_gossip_txs_total") == 3
        node.admit_gossiped_txs()
        assert len(node.mempool) == TX_BATCH_MAX_TXS
        assert all(node.submit_tx(raw).ok for raw in raws[TX_BATCH_MAX_TXS:]), (
            "a dropped copy is not remembered: the transactions may come again"
        )
    finally:
        node.store.close()
