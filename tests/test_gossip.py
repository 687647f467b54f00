"""Gossip sends each peer only what it lacks: the memory alone, then four nodes with a
large block."""

import dataclasses

from cloudchain.chaincode.modules.storage import MAX_PART_BYTES
from cloudchain.crypto import read_key_file
from cloudchain.fees import priced_transaction
from cloudchain.node.config import NodeConfig
from cloudchain.node.gossip import (
    LARGE_MESSAGE_BYTES,
    LARGE_RESEND_S,
    PEER_MESSAGES_MAX,
    GossipMemory,
)
from cloudchain.node.runtime import Node
from cloudchain.node.testnet import init_testnet
from tests.helpers.network import FAST, SEND_BYTES, metric, wait_for_height, wait_on_commits

SMALL_S = 0.2


def test_a_message_a_peer_sent_us_is_never_sent_back():
    memory = GossipMemory(SMALL_S)
    memory.note_received("a", b"vote", 5)
    assert memory.peers_lacking(b"vote", 200, ["a", "b"], now_s=100.0) == ["b"]
    memory.note_sent("a", b"vote", 5, 100.0)  # a send does not undo "it came from a"
    assert memory.peers_lacking(b"vote", 200, ["a"], now_s=1000.0) == []


def test_small_messages_come_again_every_interval_large_ones_rarely():
    memory = GossipMemory(SMALL_S)
    for key in (b"vote", b"proposal"):
        memory.note_sent("a", key, 5, 0.0)
    assert memory.peers_lacking(b"vote", 200, ["a"], now_s=SMALL_S / 2) == []
    assert memory.peers_lacking(b"vote", 200, ["a"], now_s=SMALL_S) == ["a"]
    large = LARGE_MESSAGE_BYTES + 1
    assert memory.peers_lacking(b"proposal", large, ["a"], now_s=5 * SMALL_S) == []
    assert memory.peers_lacking(b"proposal", large, ["a"], now_s=LARGE_RESEND_S) == ["a"]


def test_a_new_connection_or_a_peer_moving_on_starts_it_afresh():
    memory = GossipMemory(SMALL_S)
    memory.note_sent("a", b"m", 5, 1.0)
    memory.note_received("b", b"m", 5)
    memory.forget_peer("a")
    assert memory.peers_lacking(b"m", 10, ["a", "b"], now_s=1.0) == ["a"]
    memory.note_sent("a", b"m", 5, 1.0)
    memory.peer_advanced("a")  # it dropped what was ahead of it: sent things are forgotten
    memory.peer_advanced("b")  # what it sent us, it still has
    assert memory.peers_lacking(b"m", 10, ["a", "b"], now_s=1.0) == ["a"]


def test_pruning_forgets_past_heights_and_keeps_the_next():
    memory = GossipMemory(SMALL_S)
    memory.note_received("a", b"old", 5)
    memory.note_received("a", b"early", 7)  # arrived during the commit timeout of 6
    memory.prune(7)
    assert memory.peers_lacking(b"old", 10, ["a"], now_s=1.0) == ["a"]
    assert memory.peers_lacking(b"early", 10, ["a"], now_s=1.0) == []


def test_a_peer_cannot_grow_the_memory_without_bound():
    memory = GossipMemory(SMALL_S)
    for i in range(PEER_MESSAGES_MAX + 10):
        memory.note_received("a", i.to_bytes(8, "big"), 5)
    assert len(memory._known["a"]) <= PEER_MESSAGES_MAX


async def test_a_decided_large_block_is_not_sent_again_while_the_height_ends(tmp_path):
    """A block of twenty 63 KiB parts (about 1.3 MB), and a commit timeout of 2 s during
    which every validator gossips the deciding round to peers that may lag. Blind
    gossip sent the proposal to every peer five times a second for those 2 s, from
    every validator (about 120 copies); now each copy goes where it is lacking: the
    proposer's three, the others' relays before they know who has it, a decision a
    peer asked for (12 to 18 copies measured)."""
    homes = init_testnet(tmp_path / "net", 4)
    slow_commit = dataclasses.replace(FAST, timeout_commit_ms=2_000)
    nodes = [
        Node(
            h,
            dataclasses.replace(
                NodeConfig.load(h / "config" / "config.toml"), consensus=slow_commit
            ),
        )
        for h in homes
    ]
    try:
        for node in nodes:
            await node.start()
        await wait_for_height(nodes, 1)
        sender = read_key_file(tmp_path / "net" / "accounts" / "account0.json")
        part = {"object": "big", "data": b"p" * MAX_PART_BYTES}
        txs = [
            priced_transaction(
                sender,
                nodes[0].chain_id,
                i,
                "storage",
                "put_part",
                {**part, "index": i},
                nodes[0].app.fees,
            )
            for i in range(20)
        ]
        sent_before = sum(metric(n, SEND_BYTES, channel="consensus") for n in nodes)
        for tx in txs:
            assert nodes[0].submit_tx(tx.to_bytes()).ok
        last = txs[-1].hash
        await wait_on_commits(nodes, lambda: all(n.store.tx_location(last) for n in nodes))
        height = max(n.store.tx_location(last)[0] for n in nodes)
        await wait_for_height(nodes, height + 1)  # the commit wait of the block is over
        sent = sum(metric(n, SEND_BYTES, channel="consensus") for n in nodes) - sent_before
        copies = sent / sum(len(tx.to_bytes()) for tx in txs)
        assert copies < 40, f"{copies:.1f} copies of the block"
    finally:
        for node in nodes:
            await node.stop()


def test_decisions_answered_are_rate_limited_by_height_and_by_size(tmp_path):
    """The limits the node applies before it loads and sends a decision."""
    (home,) = init_testnet(tmp_path / "net", 1)
    node = Node(home)
    try:
        assert node.may_answer("p", 5, every_ns=10**10)
        node.note_answered("p", 5)
        assert not node.may_answer("p", 5, every_ns=10**10)  # the same height, too soon
        assert node.may_answer("p", 6, every_ns=10**10)  # another height: fine when small
        assert not node.may_answer("p", 6, every_ns=10**10, gap_ns=10**10)  # not when large
        assert node.may_answer("q", 5, every_ns=10**10, gap_ns=10**10)  # per peer
        assert node.decision_bytes(1) is None  # nothing decided here yet
    finally:
        node.store.close()


def test_decisions_answered_are_spaced_by_the_monotonic_clock_not_the_wall_clock(tmp_path):
    """Spacing is a duration: a wall clock set back or forward changes none of it."""
    (home,) = init_testnet(tmp_path / "net", 1)
    node = Node(home)
    now = [0]

    def wall_clock() -> int:
        raise AssertionError("the wall clock is read to space answers")

    node.now_ns = wall_clock
    node.monotonic_ns = lambda: now[0]
    try:
        node.note_answered("p", 5)
        now[0] = 10**10 - 1
        assert not node.may_answer("p", 5, every_ns=10**10)
        now[0] = 10**10
        assert node.may_answer("p", 5, every_ns=10**10)
    finally:
        node.store.close()
