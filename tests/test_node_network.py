"""Four nodes in one process, over real encrypted TCP connections on loopback."""

import asyncio

from cloudchain import codec
from cloudchain.chaincode.codes import Code
from cloudchain.crypto import read_key_file
from cloudchain.fees import priced_transaction
from cloudchain.node import driver
from cloudchain.node.testnet import init_testnet
from tests.helpers.network import (
    DEADLINE_S,
    RECEIVE_BYTES,
    REFUSED_MESSAGES,
    SEND_BYTES,
    fast_node,
    hung_up,
    metric,
    network,
    wait_for_height,
    wait_on_commits,
)
from tests.helpers.waiting import wait_until


async def test_four_nodes_commit_the_same_blocks_and_a_transaction(tmp_path):
    async with network(tmp_path) as (_homes, nodes):
        await wait_for_height(nodes, 2)
        sender = read_key_file(tmp_path / "net" / "accounts" / "account0.json")
        recipient = read_key_file(tmp_path / "net" / "accounts" / "account1.json")
        tx = priced_transaction(
            sender,
            nodes[0].chain_id,
            0,
            "token",
            "transfer",
            {"to": recipient.address, "amount": 7},
            nodes[0].app.fees,
        )
        assert nodes[0].submit_tx(tx.to_bytes()).ok
        assert nodes[0].submit_tx(tx.to_bytes()).code == Code.TX_IN_MEMPOOL
        included = asyncio.Event()
        for node in nodes:
            node.commit_listeners.append(
                lambda d: (
                    included.set() if all(n.store.tx_location(tx.hash) for n in nodes) else None
                )
            )
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
        # Bytes by channel: node0 alone gossiped the transaction, once per peer it queued it
        # for, and the others receive exactly those bytes; everyone talks consensus.
        tx_bytes = len(codec.encode({"ch": "tx", "m": [tx.to_bytes()]}))  # a batch of one
        sent = metric(nodes[0], SEND_BYTES, channel="tx")
        assert sent in (tx_bytes, 2 * tx_bytes, 3 * tx_bytes)
        await wait_on_commits(
            nodes, lambda: sum(metric(n, RECEIVE_BYTES, channel="tx") for n in nodes[1:]) == sent
        )
        assert all(metric(n, SEND_BYTES, channel="tx") == 0 for n in nodes[1:])
        for node in nodes:
            assert metric(node, SEND_BYTES, channel="consensus") > 0
            assert metric(node, RECEIVE_BYTES, channel="consensus") > 0
            assert metric(node, REFUSED_MESSAGES) == 0


async def test_a_restarted_node_recovers_from_its_wal_and_catches_up(tmp_path):
    async with network(tmp_path) as (homes, nodes):
        await wait_for_height(nodes, 2)
        await nodes[3].stop()
        others = nodes[:3]
        await wait_for_height(others, nodes[3].app.info().height + 2)
        nodes[3] = fast_node(homes[3])  # a new process, in effect: same home, same WAL
        signed_after_restart = []
        broadcast = nodes[3].broadcast

        def record(message):
            if getattr(message, "validator_address", None) == bytes.fromhex(nodes[3].key.address):
                signed_after_restart.append(message)
            broadcast(message)

        nodes[3].broadcast = record
        await nodes[3].start()
        await wait_for_height(nodes, max(n.app.info().height for n in others) + 1)
        top = nodes[3].app.info().height
        assert {n.store.block(top).hash for n in nodes} == {nodes[0].store.block(top).hash}
        # It votes again: it signs and sends votes for heights it had not reached.
        await wait_for_height(nodes, top + 8)
        assert any(v.height > top for v in signed_after_restart)


async def test_a_node_started_late_syncs_the_blocks_it_missed_and_joins(tmp_path):
    async with network(tmp_path, running=3) as (homes, nodes):  # 3 of 4: +2/3 of the power
        await wait_for_height(nodes, 8)
        late = fast_node(homes[3])
        nodes.append(late)  # stopped with the others
        seen_catching_up = []
        late.commit_listeners.append(lambda _d: seen_catching_up.append(late.catching_up))
        await late.start()
        target = max(n.app.info().height for n in nodes[:3]) + 2
        await wait_for_height(nodes, target)
        assert True in seen_catching_up  # status said so while it fetched decided blocks
        await wait_on_commits(nodes, lambda: not late.catching_up)  # and stops saying so
        for height in range(1, late.app.info().height + 1):
            assert late.store.block(height).hash == nodes[0].store.block(height).hash
            assert late.store.app_hash_at(height) == nodes[0].store.app_hash_at(height)


async def test_old_decisions_are_rebuilt_from_the_store_not_kept_in_memory(tmp_path):
    """Only the last decisions are kept whole: a node 8 heights late is served the rest
    from the block store and the decision records, and still catches up."""
    async with network(tmp_path, running=3) as (homes, nodes):
        await wait_for_height(nodes, 8)
        assert all(len(n.decided) <= driver.DECISIONS_IN_MEMORY < 6 for n in nodes)
        old = nodes[0].decision(2)
        assert old is not None and old.height == 2
        assert old.proposal.block.hash == nodes[0].store.block(2).hash
        late = fast_node(homes[3])
        nodes.append(late)  # stopped with the others
        await late.start()
        await wait_for_height(nodes, max(n.app.info().height for n in nodes[:3]) + 2)
        for height in range(1, late.app.info().height + 1):
            assert late.store.block(height).hash == nodes[0].store.block(height).hash


async def test_an_old_decision_from_a_peer_is_neither_answered_nor_logged(tmp_path):
    """A decision of height h shows that its sender decided h, so it is not a sign of a
    peer lagging at h: answering it with the same decision made two nodes send each
    other old blocks for ever. Nor is a message of a height already decided worth a
    record in the WAL."""
    from cloudchain.consensus.events import MessageReceived
    from cloudchain.consensus.messages import Decision, message_from_obj

    async with network(tmp_path, running=3) as (_homes, nodes):
        await wait_for_height(nodes, 6)
        node, peer = nodes[0], nodes[1]
        await wait_until(lambda: peer.peers.node_id in node.peers.connected)
        old = peer.decision(2)
        assert old is not None
        sent: list[object] = []
        real_send = node.peers.send

        def recording_send(peer_id, data, **kwargs):
            envelope = codec.decode(data)
            if envelope["ch"] == "consensus":
                sent.append(message_from_obj(envelope["m"]))
            return real_send(peer_id, data, **kwargs)

        node.peers.send = recording_send  # type: ignore[method-assign]
        try:
            for _ in range(3):
                node._on_peer_message(
                    peer.peers.node_id, codec.encode({"ch": "consensus", "m": old.to_obj()})
                )
        finally:
            node.peers.send = real_send  # type: ignore[method-assign]
        assert not [m for m in sent if isinstance(m, Decision)], "no decision sent back"
        logged = [
            p.message
            for kind, p, _ in node.wal.records()
            if kind == "event" and isinstance(p, MessageReceived)
        ]
        assert not [m for m in logged if isinstance(m, Decision) and m.height == 2]


async def test_catching_up_believes_only_signed_heights_of_connected_peers(tmp_path):
    from cloudchain.consensus.messages import Vote, VoteType

    async with network(tmp_path, running=2) as (homes, nodes):  # 2 of 4: nobody decides
        node, peer = nodes
        await wait_until(lambda: peer.peers.node_id in node.peers.connected)
        validator = read_key_file(homes[1] / "config" / "priv_validator_key.json")
        stranger = read_key_file(homes[1] / "config" / "node_key.json")  # no validator's key

        def receive(height, key=validator, signature=None):
            vote = Vote.create(key, node.chain_id, VoteType.PREVOTE, height, 0, b"", 1)
            vote = vote if signature is None else vote.with_signature(signature)
            node._on_peer_message(
                peer.peers.node_id, codec.encode({"ch": "consensus", "m": vote.to_obj()})
            )

        far = node.core.height + 1_000
        receive(far, signature=bytes(64))  # forged: the validator never signed it
        receive(far, key=stranger)
        assert not node.catching_up
        receive(node.core.height + 1)  # one height ahead: it decided ours, nothing more
        assert not node.catching_up
        receive(far)
        assert node.catching_up
        await peer.stop()
        await wait_until(lambda: not node.peers.connected)
        assert not node.catching_up  # what a peer gone showed no longer counts


async def test_two_of_four_down_stops_the_chain_without_a_fork_and_one_back_resumes_it(tmp_path):
    async with network(tmp_path) as (homes, nodes):
        await wait_for_height(nodes, 2)
        await nodes[2].stop()
        await nodes[3].stop()
        halted_at = max(n.app.info().height for n in nodes[:2])
        # Half the power cannot decide: no block may come within many block intervals.
        try:
            await wait_for_height(nodes[:2], halted_at + 1, deadline_s=3)
            raise AssertionError("two validators of four committed a block")
        except TimeoutError:
            pass
        nodes[2] = fast_node(homes[2])
        await nodes[2].start()
        await wait_for_height(nodes[:3], halted_at + 2)
        top = min(n.app.info().height for n in nodes[:3])
        for height in range(1, top + 1):
            assert len({n.store.block(height).hash for n in nodes[:3]}) == 1


async def test_garbage_unknown_keys_and_oversized_frames_are_refused_without_harm(tmp_path):
    from cloudchain.network.secret_connection import MAX_FRAME_BYTES, handshake

    async with network(tmp_path, running=3) as (homes, nodes):
        await wait_for_height(nodes, 2)
        host, _, port = nodes[0].config.p2p.listen_address.rpartition(":")
        # 1. Garbage instead of a handshake.
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET / HTTP/1.1\r\n\r\n" * 10)
        await writer.drain()
        await hung_up(reader)
        # 2. A well-formed handshake with a key nobody named.
        reader, writer = await asyncio.open_connection(host, int(port))
        stranger = read_key_file(homes[0] / "config" / "priv_validator_key.json")  # not a node key
        await handshake(reader, writer, stranger, lambda k: True)
        await hung_up(reader)
        # 3. An allowed peer (node3's identity) that sends an oversized frame, then one
        #    that sends an authenticated frame of garbage.
        node3_key = read_key_file(homes[3] / "config" / "node_key.json")
        for attack in ("oversized", "garbage"):
            reader, writer = await asyncio.open_connection(host, int(port))
            connection = await handshake(reader, writer, node3_key, lambda k: True)
            if attack == "oversized":
                writer.write((MAX_FRAME_BYTES + 1).to_bytes(4, "big"))
                await writer.drain()
            else:
                await connection.send_message(b"\xc1 not msgpack")
            await hung_up(reader)
        assert nodes[0].peers.refused_peers >= 2
        # The node is unharmed: the chain goes on.
        await wait_for_height(nodes, max(n.app.info().height for n in nodes) + 2)


async def test_undecodable_messages_are_refused_counted_and_never_a_label(tmp_path):
    """Every message that ends a connection as a PeerError is counted, whether the transport
    refused its frame or the node its envelope. The attacker holds the key of an allowed
    peer with a lower id than the node's, so that the node accepts it (the lower id dials)."""
    from cloudchain.network.secret_connection import MAX_FRAME_BYTES, handshake

    homes = init_testnet(tmp_path / "net", 2)
    keys = [read_key_file(home / "config" / "node_key.json") for home in homes]
    low, high = sorted(range(2), key=lambda i: keys[i].address)
    node = fast_node(homes[high])  # alone, it cannot commit; it need not
    await node.start()
    try:
        host, _, port = node.config.p2p.listen_address.rpartition(":")
        bad_sync = codec.encode({"ch": "sync", "m": {"height": 0}})
        attacks = [
            b"\xc1 not msgpack",
            codec.encode({"ch": "made-up", "m": b"x"}),
            bad_sync,
            b"oversized frame",
        ]
        for refused, attack in enumerate(attacks, start=1):
            reader, writer = await asyncio.open_connection(host, int(port))
            connection = await handshake(reader, writer, keys[low], lambda k: True)
            if attack == b"oversized frame":
                writer.write((MAX_FRAME_BYTES + 1).to_bytes(4, "big"))
                await writer.drain()
            else:
                await connection.send_message(attack)
            await hung_up(reader)  # the node counts before it hangs up
            assert metric(node, REFUSED_MESSAGES) == refused
        # A known channel's bytes count even when its payload is refused; a channel the
        # peer made up never becomes a label.
        assert metric(node, RECEIVE_BYTES, channel="sync") == len(bad_sync)
        assert node.metrics.registry.get_sample_value(RECEIVE_BYTES, {"channel": "made-up"}) is None
        assert node.peers.connected == []
    finally:
        await node.stop()


async def test_consensus_and_mempool_metrics_follow_the_chain(tmp_path):
    """rounds, block interval, mempool size and bytes, and refused transactions, whether
    refused from a client or from a peer's gossip (a second copy is no refusal)."""
    async with network(tmp_path) as (_homes, nodes):
        await wait_for_height(nodes, 3)
        node = nodes[0]
        assert metric(node, "cloudchain_consensus_rounds") >= 1
        assert metric(node, "cloudchain_consensus_block_interval_seconds") > 0
        assert metric(node, "cloudchain_consensus_height") == node.app.info().height

        sender = read_key_file(tmp_path / "net" / "accounts" / "account0.json")
        # Nonce 5 while 0 is next: admitted, and waits in the mempool for 0 to 4.
        args = {"to": sender.address, "amount": 1}
        waiting = priced_transaction(
            sender, node.chain_id, 5, "token", "transfer", args, node.app.fees
        ).to_bytes()
        tx_sent = metric(node, "cloudchain_p2p_message_send_bytes_total", channel="tx")
        assert node.submit_tx(waiting).ok
        assert metric(node, "cloudchain_mempool_size") == 1
        assert metric(node, "cloudchain_mempool_size_bytes") == len(waiting)
        assert metric(node, "cloudchain_mempool_gapped_size") == 1
        assert metric(node, "cloudchain_mempool_ready_size") == 0
        # Gapped: kept here, not gossiped.
        node.flush_tx_gossip()
        assert metric(node, "cloudchain_p2p_message_send_bytes_total", channel="tx") == tx_sent
        exposed = node.metrics.render().decode()
        for counter in ("evicted_txs", "expired_txs", "recheck_times", "recheck_failed_txs"):
            assert f"cloudchain_mempool_{counter}_total 0.0" in exposed

        refused = metric(node, "cloudchain_mempool_refused_txs_total")
        assert not node.submit_tx(b"not a transaction").ok
        assert metric(node, "cloudchain_mempool_refused_txs_total") == refused + 1
        peer = nodes[1].peers.node_id
        node._on_peer_message(peer, codec.encode({"ch": "tx", "m": b"garbage from gossip"}))
        node.admit_gossiped_txs()  # as the loop's next turns would
        assert metric(node, "cloudchain_mempool_refused_txs_total") == refused + 2
        node._on_peer_message(peer, codec.encode({"ch": "tx", "m": waiting}))  # a second copy
        node.admit_gossiped_txs()
        assert metric(node, "cloudchain_mempool_refused_txs_total") == refused + 2

        # Nonces 0 to 4 fill the gap: each is gossiped, and so is nonce 5, now ready.
        filling = [
            priced_transaction(
                sender, node.chain_id, n, "token", "transfer", args, node.app.fees
            ).to_bytes()
            for n in range(5)
        ]
        tx_sent = metric(node, "cloudchain_p2p_message_send_bytes_total", channel="tx")
        assert all(node.submit_tx(raw).ok for raw in filling)
        node.flush_tx_gossip()  # the batch would go on the next loop tick
        gossiped = metric(node, "cloudchain_p2p_message_send_bytes_total", channel="tx") - tx_sent
        peers = len(node.peers.connected)
        batch = codec.encode({"ch": "tx", "m": [*filling, waiting]})  # one message, each once
        assert peers >= 1 and gossiped == peers * len(batch)
