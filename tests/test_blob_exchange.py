"""The blob exchange between in-process nodes: fetch, resume, lying and silent peers,
replication, and strict message decoding.

The transport is a set of asyncio queues: every message is encoded with the
canonical codec and decoded again on the way, as on the wire, and a test may
count, drop or alter what passes.
"""

import asyncio
import io
import random
from collections import Counter
from collections.abc import Callable

import msgpack
import pytest

from cloudchain import codec
from cloudchain.blobs import CID, ImportOptions, import_bytes
from cloudchain.blobs.exchange import BlobExchange, NoProvidersError, ReplicationError
from cloudchain.blobs.exchange.messages import (
    CIDS_PER_MESSAGE_MAX,
    BlockMessage,
    Cancel,
    DontHave,
    ExchangeProtocolError,
    FetchFailed,
    FetchRequest,
    Have,
    HaveAll,
    WantBlock,
    WantHave,
    decode_message,
    encode_message,
    message_from_obj,
    message_to_obj,
)
from cloudchain.blobs.exchange.serving import PEER_REQUESTS_MAX
from cloudchain.blobs.flatfs import key_of
from cloudchain.blobs.store import BLOCK_BYTES_MAX, BlobStore, LeasePolicy
from cloudchain.ledger import MalformedError
from tests.helpers.waiting import DEADLINE_S

# 3 MiB in 16 KiB chunks under 8-link nodes: 192 leaves, a DAG four levels deep.
OPTIONS = ImportOptions(cid_version=1, chunk_size=16 * 1024, max_links=8)
FILE_BYTES = 3 * 1024 * 1024

# A message on its way: (sender, receiver, decoded map) -> the map to deliver, or None.
Tamper = Callable[[str, str, dict], dict | None]


class Net:
    """Exchanges wired by queues, one pump task per node."""

    def __init__(self, tmp_path) -> None:
        self.tmp_path = tmp_path
        self.nodes: dict[str, BlobExchange] = {}
        self.stores: dict[str, BlobStore] = {}
        self.queues: dict[str, asyncio.Queue] = {}
        self.pumps: list[asyncio.Task] = []
        self.sent: Counter = Counter()  # (sender, message type) -> count
        self.sent_cids: Counter = Counter()  # (sender, cid bytes) of blocks sent
        self.errors: list[tuple[str, str, Exception]] = []
        self.tamper: dict[str, Tamper] = {}  # by sender

    def add(self, node_id: str, store_options: dict | None = None, **kwargs) -> BlobExchange:
        store = BlobStore(self.tmp_path / node_id, **(store_options or {}))
        exchange = BlobExchange(
            store,
            lambda dst, obj, src=node_id: self.deliver(src, dst, obj),
            lambda node_id=node_id: [n for n in self.nodes if n != node_id],
            node_id,
            **kwargs,
        )
        self.nodes[node_id] = exchange
        self.stores[node_id] = store
        self.queues[node_id] = asyncio.Queue()
        self.pumps.append(asyncio.create_task(self.pump(node_id)))
        return exchange

    def deliver(self, src: str, dst: str, obj: dict) -> bool:
        data = codec.encode(obj)  # canonical, as the node's envelope needs
        tamper = self.tamper.get(src)
        if tamper is not None:
            obj = tamper(src, dst, dict(codec.decode(data)))
            if obj is None:
                return False
            data = codec.encode(obj)
        self.sent[(src, obj["t"])] += 1
        if obj["t"] == "block":
            self.sent_cids[(src, obj["cid"])] += 1
        self.queues[dst].put_nowait((src, data))
        return True

    async def pump(self, node_id: str) -> None:
        queue = self.queues[node_id]
        while True:
            src, data = await queue.get()
            try:
                self.nodes[node_id].on_message(src, codec.decode(data))
            except ExchangeProtocolError as exc:
                self.errors.append((node_id, src, exc))

    async def close(self) -> None:
        for task in self.pumps:
            task.cancel()
        for exchange in self.nodes.values():
            await exchange.close()
        await asyncio.gather(*self.pumps, return_exceptions=True)
        for store in self.stores.values():
            store.close()


@pytest.fixture
async def net(tmp_path):
    network = Net(tmp_path)
    yield network
    await network.close()


def make_file(seed: int = 1, size: int = FILE_BYTES) -> bytes:
    return random.Random(seed).randbytes(size)


def add_file(exchange: BlobExchange, data: bytes) -> CID:
    return exchange.store.add(io.BytesIO(data), OPTIONS).root


def dag_blocks(data: bytes) -> dict[CID, bytes]:
    blocks, _ = import_bytes(data, OPTIONS)
    return {block.cid: block.data for block in blocks}


def read_all(exchange: BlobExchange, root: CID) -> bytes:
    return b"".join(exchange.store.read(root))


# -- fetching ----------------------------------------------------------------------


async def test_fetch_multi_level_dag_from_one_peer(net):
    a, b = net.add("A"), net.add("B")
    data = make_file()
    root = add_file(a, data)
    blocks = dag_blocks(data)
    calls: list[tuple[int, int]] = []

    result = await b.fetch(root, progress=lambda done, total: calls.append((done, total)))

    assert read_all(b, root) == data
    assert b.store.stat(root, verify=True).complete
    assert result.blocks_fetched == len(blocks) and result.blocks_local == 0
    assert result.served_by == {"A": len(blocks)}
    assert result.bytes_fetched == result.dag_bytes == sum(len(d) for d in blocks.values())
    assert calls[-1] == (result.dag_bytes, result.dag_bytes)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert net.errors == []


async def test_fetch_from_two_peers_at_once(net):
    a, b, c = net.add("A"), net.add("B"), net.add("C")
    data = make_file()
    root = add_file(a, data)
    assert add_file(c, data) == root

    result = await b.fetch(root)

    assert read_all(b, root) == data
    assert set(result.served_by) == {"A", "C"}
    assert all(count > 10 for count in result.served_by.values()), result.served_by
    # Every block came once: nothing asked twice.
    assert sum(result.served_by.values()) == len(dag_blocks(data))
    assert sum(count for (src, _), count in net.sent_cids.items() if src != "B") == len(
        dag_blocks(data)
    )


async def test_fetch_resumes_without_refetching_present_blocks(net):
    a, b = net.add("A"), net.add("B")
    data = make_file()
    root = add_file(a, data)
    blocks = dag_blocks(data)
    # An interrupted transfer: every other block, in DAG order, is already here.
    present = {cid: block for i, (cid, block) in enumerate(blocks.items()) if i % 2 == 0}
    with b.store.hold(root) as session:
        for cid, block in present.items():
            session.put_block(cid, block)

    result = await b.fetch(root)

    assert read_all(b, root) == data
    assert result.blocks_local == len(present)
    assert result.blocks_fetched == len(blocks) - len(present)
    assert net.sent[("A", "block")] == len(blocks) - len(present)
    assert all(CID.from_bytes(cid) not in present for _, cid in net.sent_cids)


async def test_fetch_after_cancelled_transfer_asks_only_for_what_is_missing(net):
    a, b = net.add("A"), net.add("B")
    data = make_file()
    root = add_file(a, data)
    forty_sent = asyncio.Event()

    def count_blocks(src: str, dst: str, obj: dict) -> dict:
        if obj["t"] == "block" and net.sent[("A", "block")] + 1 >= 40:  # counted after this
            forty_sent.set()
        return obj

    net.tamper["A"] = count_blocks
    fetching = asyncio.create_task(b.fetch(root))
    async with asyncio.timeout(DEADLINE_S):
        await forty_sent.wait()
    fetching.cancel()
    del net.tamper["A"]
    with pytest.raises(asyncio.CancelledError):
        await fetching
    stored_before = {cid for cid in dag_blocks(data) if b.store.has(cid)}
    assert 0 < len(stored_before) < len(dag_blocks(data))
    asked_before = Counter(net.sent_cids)

    result = await b.fetch(root)

    assert read_all(b, root) == data
    assert result.blocks_local == len(stored_before)
    resent = {
        CID.from_bytes(cid)
        for key, cid in net.sent_cids
        if net.sent_cids[(key, cid)] > asked_before[(key, cid)]
    }
    assert resent.isdisjoint(stored_before)


async def test_fetch_when_everything_is_local_asks_no_one(net):
    a, b = net.add("A"), net.add("B")
    root = add_file(a, make_file(size=100_000))
    add_file(b, make_file(size=100_000))

    result = await b.fetch(root)

    assert result.blocks_fetched == 0 and result.blocks_local > 0
    assert not any(src == "B" for src, _ in net.sent)


async def test_corrupt_block_is_dropped_reported_and_fetched_elsewhere(net):
    a, b, c = net.add("A"), net.add("B"), net.add("C")
    data = make_file()
    root = add_file(a, data)
    add_file(c, data)
    faults: list[str] = []
    b._on_fault = lambda peer, reason: faults.append(peer)

    def corrupt(src, dst, obj):
        if obj["t"] == "block":
            obj["data"] = bytes([obj["data"][0] ^ 1]) + obj["data"][1:]
        return obj

    net.tamper["A"] = corrupt

    result = await b.fetch(root)

    assert read_all(b, root) == data
    assert b.store.stat(root, verify=True).complete
    assert faults == ["A"] and b.peer_faults["A"] == 1
    assert "A" not in result.served_by
    assert b.store.counters.corrupt_blocks == 0  # nothing bad was ever written


async def test_only_a_lying_peer_has_it(net):
    a, b = net.add("A"), net.add("B")
    root = add_file(a, make_file(size=200_000))

    def corrupt(src, dst, obj):
        if obj["t"] == "block":
            obj["data"] = obj["data"][:-1] + bytes([obj["data"][-1] ^ 1])
        return obj

    net.tamper["A"] = corrupt

    with pytest.raises(NoProvidersError, match="no peer has"):
        await b.fetch(root)
    assert b.peer_faults["A"] == 1
    assert not b.store.has(root)


async def test_unresponsive_peer_times_out_and_others_serve(net):
    net.add("A")
    b, c = net.add("B", request_timeout_s=0.3), net.add("C")
    data = make_file(size=1024 * 1024)
    root = add_file(net.nodes["A"], data)
    add_file(c, data)
    # A answers want-have, then never sends a block.
    net.tamper["A"] = lambda src, dst, obj: None if obj["t"] == "block" else obj

    result = await b.fetch(root)

    assert read_all(b, root) == data
    assert set(result.served_by) == {"C"}


async def test_no_peer_has_it(net):
    a, b = net.add("A"), net.add("B")
    net.add("C")
    missing = CID.for_data(b"nobody has this", 0x55, 1)

    with pytest.raises(NoProvidersError, match=f"no peer has the root of {missing}"):
        await b.fetch(missing)
    assert net.sent[("A", "dont-have")] == 1 and net.sent[("C", "dont-have")] == 1

    # A peer that has the root but not all of it: the block it lacks is the error.
    data = make_file(size=300_000)
    root = add_file(a, data)
    lost = next(cid for cid in dag_blocks(data) if cid != root)
    a.store._fs.delete(key_of(lost))
    with pytest.raises(NoProvidersError, match=f"no peer has block {lost}"):
        await b.fetch(root)


async def test_no_peers_at_all(net):
    b = net.add("B")
    with pytest.raises(NoProvidersError):
        await b.fetch(CID.for_data(b"x", 0x55, 1))


# -- replication -------------------------------------------------------------------


async def test_replicate_to_two_of_three_nodes(net):
    a, b, c = net.add("A"), net.add("B"), net.add("C")
    data = make_file(size=1024 * 1024)
    root = add_file(a, data)

    holders = await a.replicate(root, 2, ["B", "C"])

    assert holders == ["A", "B"]
    assert b.store.stat(root, verify=True).complete
    # Held for A under a lease, not a pin: it counts against B's quota until anchored.
    assert b.store.pins() == [] and b.store.lease_of(root) is not None
    assert b.store.unanchored_bytes == b.store.lease_of(root).bytes > len(data)
    assert not c.store.has(root)
    assert net.sent[("C", "have-all")] == 0

    holders = await a.replicate(root, 3, ["B", "C"])
    assert holders == ["A", "B", "C"]
    assert read_all(c, root) == data


async def test_a_replica_past_the_quota_fails_and_leaves_nothing_behind(net):
    """A peer cannot fill our disk by asking us to replicate: B's quota of unanchored
    bytes is smaller than the blob, so B's fetch fails midway, B removes what it
    stored and answers fetch-failed, and A moves on to C."""
    a = net.add("A")
    b = net.add("B", store_options={"policy": LeasePolicy(max_unanchored_bytes=300_000)})
    c = net.add("C")
    kept = b.store.add(io.BytesIO(make_file(seed=7, size=100_000)), OPTIONS)  # pinned
    keys_before = sorted(b.store._fs.iter_keys())
    data = make_file(seed=8, size=1024 * 1024)
    root = add_file(a, data)

    holders = await a.replicate(root, 2, ["B", "C"])

    assert holders == ["A", "C"] and read_all(c, root) == data
    assert net.sent[("B", "fetch-failed")] == 1 and net.sent[("B", "have-all")] == 0
    assert sorted(b.store._fs.iter_keys()) == keys_before  # its pin's blocks, and no others
    assert b.store.stat(kept.root, verify=True).complete
    assert b.store.leases() == [] and b.store.unanchored_bytes == 0
    counters = b.store.counters
    assert counters.quota_refusals >= 1 and counters.blocks_rolled_back > 0  # stores run at once
    assert counters.blocks_rolled_back == counters.blocks_written - kept.blocks_written


async def test_replicate_moves_on_when_a_peer_fails(net):
    a = net.add("A")
    net.add("B")
    c = net.add("C")
    root = add_file(a, make_file(size=200_000))
    net.tamper["A"] = lambda src, dst, obj: None if dst == "B" else obj  # B hears nothing
    holders = await a.replicate(root, 2, ["B", "C"], timeout_s=0.3)
    assert holders == ["A", "C"]
    assert c.store.stat(root).complete

    with pytest.raises(ReplicationError, match="only 2 of 3") as failure:
        await a.replicate(root, 3, ["B", "C"], timeout_s=0.2)
    assert failure.value.holders == ["A", "C"]


# -- messages ----------------------------------------------------------------------

ROOT = CID.for_data(b"root", 0x70, 0)
LEAF = CID.for_data(b"leaf", 0x55, 1)


@pytest.mark.parametrize(
    "message",
    [
        WantHave((ROOT, LEAF)),
        Have((ROOT,)),
        DontHave((LEAF,)),
        WantBlock((ROOT, LEAF)),
        Cancel((LEAF,)),
        BlockMessage(LEAF, b"leaf"),
        FetchRequest(ROOT),
        HaveAll(ROOT),
        FetchFailed(LEAF),
    ],
)
def test_messages_round_trip(message):
    assert decode_message(encode_message(message)) == message
    assert message_from_obj(codec.decode(codec.encode(message_to_obj(message)))) == message


@pytest.mark.parametrize(
    ("obj", "error"),
    [
        ([1, 2], "must be a map"),
        ({"t": "want-everything", "cids": [ROOT.to_bytes()]}, "unknown blob message type"),
        ({"cids": [ROOT.to_bytes()]}, "unknown blob message type"),
        ({"t": "have", "cids": [ROOT.to_bytes()], "x": 1}, "keys"),
        ({"t": "want-block"}, "keys"),
        ({"t": "want-block", "cids": []}, "0 cids"),
        ({"t": "want-block", "cids": ROOT.to_bytes()}, "must be a list"),
        ({"t": "want-have", "cids": [str(ROOT)]}, "must be bytes"),
        ({"t": "want-have", "cids": [b"\x01\x70\x12\x20" + b"\x00" * 31]}, "truncated"),
        ({"t": "want-have", "cids": [ROOT.to_bytes()] * 2}, "repeated"),
        (
            {
                "t": "cancel",
                "cids": [
                    CID.for_data(bytes([i]), 0x55, 1).to_bytes()
                    for i in range(CIDS_PER_MESSAGE_MAX + 1)
                ],
            },
            "cids, expected",
        ),
        ({"t": "block", "cid": LEAF.to_bytes(), "data": "text"}, "data must be bytes"),
        ({"t": "block", "cid": LEAF.to_bytes(), "data": b"x" * (BLOCK_BYTES_MAX + 1)}, "exceeds"),
        ({"t": "block", "cid": b"\x00" * 100, "data": b""}, "cid of 100 bytes"),
        ({"t": "fetch-request", "cid": 7}, "must be bytes"),
        ({"t": "have-all", "cids": [ROOT.to_bytes()]}, "keys"),
    ],
)
async def test_malformed_messages_raise_the_protocol_error(net, obj, error):
    b = net.add("B")
    with pytest.raises(ExchangeProtocolError, match=error):
        message_from_obj(obj)
    with pytest.raises(ExchangeProtocolError, match=error):
        b.on_message("A", obj)
    assert issubclass(ExchangeProtocolError, MalformedError)  # the node disconnects the peer


def test_non_canonical_bytes_raise_the_protocol_error():
    canonical = codec.encode({"t": "have", "cids": [ROOT.to_bytes()]})
    assert decode_message(canonical) == Have((ROOT,))
    # "t" before "cids": not the canonical key order, so not a valid message.
    reordered = msgpack.packb({"t": "have", "cids": [ROOT.to_bytes()]}, use_bin_type=True)
    assert reordered != canonical
    for data in (reordered, canonical + b"\x00", b"\xc1", b""):
        with pytest.raises(ExchangeProtocolError):
            decode_message(data)


async def test_too_many_waiting_wants_is_misbehaviour(net):
    b = net.add("B")
    cids = [CID.for_data(i.to_bytes(4, "big"), 0x55, 1) for i in range(PEER_REQUESTS_MAX + 1)]
    with pytest.raises(ExchangeProtocolError, match="wants waiting"):
        for start in range(0, len(cids), CIDS_PER_MESSAGE_MAX):
            part = cids[start : start + CIDS_PER_MESSAGE_MAX]
            b.on_message("A", message_to_obj(WantBlock(tuple(part))))


async def test_a_disk_error_while_storing_ends_the_fetch_instead_of_hanging(net, monkeypatch):
    a, b = net.add("A"), net.add("B")
    root = add_file(a, make_file(size=200_000))

    def disk_full(key, data, *, sync_dir=True):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(b.store._fs, "write", disk_full)
    with pytest.raises(OSError, match="No space left"):
        await asyncio.wait_for(b.fetch(root), 30)
