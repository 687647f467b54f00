"""The blob exchange between real nodes: four in one process, over encrypted loopback TCP.

A put asking for replicas returns once that many nodes hold the whole blob; a GET
on a node that lacks a blob fetches it from the peers that have it, several at
once; a peer that breaks the blob protocol is disconnected; the chain keeps
committing while blobs move.
"""

import asyncio
import io
import random

import aiohttp
import pytest

from cloudchain import codec
from cloudchain.blobs import import_bytes
from cloudchain.blobs.cid import CID
from cloudchain.client import Client, RPCClientError
from tests.helpers.network import RECEIVE_BYTES, REFUSED_MESSAGES, metric, network, wait_for_height
from tests.helpers.waiting import wait_until

DEADLINE_S = 60.0
BLOB_BYTES = 3 * 1024 * 1024 + 4321  # thirteen 256 KiB chunks, the last partial


def url_of(node) -> str:
    return f"http://{node.config.rpc.listen_address}"


def blob(seed: int, size: int = BLOB_BYTES) -> bytes:
    return random.Random(seed).randbytes(size)


async def wait_for_peers(nodes, count: int) -> None:
    await wait_until(lambda: all(len(n.peers.connected) >= count for n in nodes), DEADLINE_S)


def holds(node, cid: CID) -> bool:
    return node.blobs.has(cid) and node.blobs.stat(cid).complete


async def test_a_put_with_replicas_returns_once_that_many_nodes_hold_it(tmp_path):
    async with network(tmp_path) as (_homes, nodes):
        await wait_for_peers(nodes, 3)
        data = blob(1)
        put = await Client(url_of(nodes[0])).blob_put(io.BytesIO(data), replicas=3)
        root = import_bytes(data)[1].root
        assert put.cid == str(root) and put.size == len(data)
        by_id = {n.peers.node_id: n for n in nodes}
        assert len(put.replicas) == 3 and len(set(put.replicas)) == 3
        assert put.replicas[0] == nodes[0].peers.node_id  # the node that took the upload
        for node_id in put.replicas:  # whole, verified and leased on every replica
            node = by_id[node_id]
            assert node.blobs.stat(root, verify=True).complete
            assert node.blobs.lease_of(root) is not None and root not in node.blobs.pins()
        (other,) = set(by_id) - set(put.replicas)
        assert not by_id[other].blobs.has(root)  # three asked for, three made


async def test_more_replicas_than_nodes_keeps_the_blob_and_names_the_holders(tmp_path):
    async with network(tmp_path) as (_homes, nodes):
        await wait_for_peers(nodes, 3)
        data = blob(2, 300_000)
        with pytest.raises(RPCClientError) as refused:
            await Client(url_of(nodes[1])).blob_put(io.BytesIO(data), replicas=5)
        assert refused.value.code == 503 and "only 4 of 5 replicas" in str(refused.value)
        root = import_bytes(data)[1].root
        assert all(holds(node, root) for node in nodes)  # nothing already stored is lost


async def test_a_get_on_a_node_without_the_blob_fetches_it_from_several_peers(tmp_path):
    async with network(tmp_path) as (_homes, nodes):
        await wait_for_peers(nodes, 3)
        data = blob(3)
        put = await Client(url_of(nodes[0])).blob_put(io.BytesIO(data), replicas=3)
        by_id = {n.peers.node_id: n for n in nodes}
        holders = [by_id[i] for i in put.replicas]
        (reader,) = [n for n in nodes if n.peers.node_id not in put.replicas]
        sent_before = {h.peers.node_id: h.exchange.counters.blocks_sent for h in holders}

        url = f"{url_of(reader)}/blobs/{put.cid}"
        async with aiohttp.ClientSession() as session, session.head(url) as response:
            assert response.status == 404  # HEAD says what is here: it fetches nothing
        assert not reader.blobs.has(CID.parse(put.cid))

        dest = tmp_path / "got.bin"
        got = await Client(url_of(reader)).blob_get(put.cid, dest)

        assert dest.read_bytes() == data and got.bytes_written == len(data)
        assert holds(reader, CID.parse(put.cid))
        fetched = CID.parse(put.cid)  # fetched to serve: neither pinned nor leased
        assert fetched not in reader.blobs.pins() and reader.blobs.lease_of(fetched) is None
        served = [
            h for h in holders if h.exchange.counters.blocks_sent > sent_before[h.peers.node_id]
        ]
        assert len(served) >= 2, "the blocks came from one peer only"
        assert metric(reader, RECEIVE_BYTES, channel="blob") >= len(data)


async def test_a_blob_no_peer_has_is_a_clear_404(tmp_path):
    async with network(tmp_path) as (_homes, nodes):
        await wait_for_peers(nodes, 3)
        unknown = import_bytes(b"on no node")[1].root
        url = f"{url_of(nodes[2])}/blobs/{unknown}"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            assert response.status == 404
            assert (await response.json())["error"] == (
                f"blob {unknown} is not here, and no connected peer has it"
            )


async def test_a_peer_breaking_the_blob_protocol_is_disconnected(tmp_path):
    async with network(tmp_path) as (_homes, nodes):
        await wait_for_peers(nodes, 3)
        victim, liar = nodes[0], nodes[1]
        refused = metric(victim, REFUSED_MESSAGES)
        envelope = codec.encode({"ch": "blob", "m": {"t": "block", "cid": b"\x00", "data": b""}})
        liar.peers.send(victim.peers.node_id, envelope)
        await wait_until(lambda: metric(victim, REFUSED_MESSAGES) > refused, DEADLINE_S)
        # It was dropped, then dialed again: the network heals and the chain goes on.
        height = victim.app.info().height
        await wait_for_height(nodes, height + 2)


async def test_the_chain_keeps_committing_while_a_blob_replicates(tmp_path):
    async with network(tmp_path) as (_homes, nodes):
        await wait_for_peers(nodes, 3)
        start = nodes[0].app.info().height
        put = asyncio.create_task(
            Client(url_of(nodes[0])).blob_put(io.BytesIO(blob(4, 12 * 1024 * 1024)), replicas=4)
        )
        await wait_for_height(nodes, start + 3)
        assert len((await put).replicas) == 4
