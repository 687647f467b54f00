"""The blob endpoints of a running one-validator node: HTTP, JSON-RPC, client and CLI."""

import asyncio
import dataclasses
import json
import socket

import aiohttp
import pytest

from cloudchain.blobs import CID_V1_OPTIONS, import_bytes
from cloudchain.blobs.flatfs import key_of
from cloudchain.blobs.importer import CHUNK_SIZE_BYTES
from cloudchain.client import Client, RPCClientError
from cloudchain.crypto import read_key_file
from cloudchain.node.config import BlobsConfig
from cloudchain.node.rpc.blob_http import UnsatisfiableRangeError, parse_range
from cloudchain.node.rpc.blob_upload import READ_AHEAD_BYTES
from tests.helpers.cli import verbs
from tests.helpers.network import start_node, wait_for_height
from tests.helpers.waiting import wait_until

DEADLINE_S = 10.0
UNKNOWN_CID = import_bytes(b"never stored")[1].root  # well-formed, not on the node
FILE_BYTES = 3 * CHUNK_SIZE_BYTES + 12_345  # several chunks and a partial one


@pytest.fixture
def node_rpc_limits():
    """The `node` fixture's node (tests/conftest.py) answers the operator's blob_pin,
    blob_unpin and blob_gc (refused by default: tests/test_rpc_unsafe.py)."""
    return {"unsafe": True}


def url_of(node) -> str:
    return f"http://{node.config.rpc.listen_address}"


def payload(size: int, seed: int = 1) -> bytes:
    return bytes((i * 31 + seed + i // 997) % 251 for i in range(size))


# --- parse_range, pure ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header, size, expected",
    [
        (None, 10, None),
        ("bytes=0-3", 10, (0, 4)),
        ("bytes=4-", 10, (4, 10)),
        ("bytes=-3", 10, (7, 10)),
        ("bytes=-30", 10, (0, 10)),  # a suffix longer than the blob: all of it
        ("bytes=2-99", 10, (2, 10)),  # the last byte clamped
        ("bytes=9-9", 10, (9, 10)),
        ("bytes=5-2", 10, None),  # malformed: ignored, as RFC 9110 allows
        ("bytes=0-1,4-5", 10, None),  # several ranges: ignored
        ("items=0-1", 10, None),
        ("bytes=-", 10, None),
    ],
)
def test_parse_range(header, size, expected):
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(
    "header, size",
    [("bytes=10-", 10), ("bytes=10-20", 10), ("bytes=-0", 10), ("bytes=0-", 0), ("bytes=-5", 0)],
)
def test_parse_range_past_the_end(header, size):
    with pytest.raises(UnsatisfiableRangeError) as refused:
        parse_range(header, size)
    assert refused.value.size == size


# --- HTTP -------------------------------------------------------------------------------------


async def test_put_get_round_trip_and_ranges(node, tmp_path):
    data = payload(FILE_BYTES)
    expected = import_bytes(data)[1].root
    base = url_of(node)
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/blobs", data=data) as response:
            assert response.status == 200, await response.text()
            put = await response.json()
        assert put == {"cid": str(expected), "size": FILE_BYTES, "replicas": [node.peers.node_id]}
        # Leased, not pinned: it counts against [blobs] max_unanchored_bytes until anchored.
        assert node.blobs.pins() == [] and [lease.root for lease in node.blobs.leases()] == [
            expected
        ]

        async with session.get(f"{base}/blobs/{expected}") as response:
            assert response.status == 200
            assert response.headers["ETag"] == f'"{expected}"'
            assert response.headers["Accept-Ranges"] == "bytes"
            assert response.content_length == FILE_BYTES
            assert await response.read() == data

        start, last = CHUNK_SIZE_BYTES - 10, 2 * CHUNK_SIZE_BYTES + 10  # across three chunks
        async with session.get(
            f"{base}/blobs/{expected}", headers={"Range": f"bytes={start}-{last}"}
        ) as response:
            assert response.status == 206
            assert response.headers["Content-Range"] == f"bytes {start}-{last}/{FILE_BYTES}"
            assert await response.read() == data[start : last + 1]
        async with session.get(
            f"{base}/blobs/{expected}", headers={"Range": "bytes=-100"}
        ) as response:
            assert response.status == 206
            assert await response.read() == data[-100:]
        async with session.get(
            f"{base}/blobs/{expected}", headers={"Range": f"bytes={FILE_BYTES}-"}
        ) as response:
            assert response.status == 416
            assert response.headers["Content-Range"] == f"bytes */{FILE_BYTES}"
            assert "past the end" in (await response.json())["error"]

        async with session.head(f"{base}/blobs/{expected}") as response:
            assert response.status == 200
            assert response.headers["Content-Length"] == str(FILE_BYTES)
            assert response.headers["ETag"] == f'"{expected}"'
            assert await response.read() == b""


async def test_cid_version_1_and_an_empty_file(node):
    base = url_of(node)
    data = payload(CHUNK_SIZE_BYTES + 1, seed=2)
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/blobs?cid-version=1", data=data) as response:
            assert (await response.json())["cid"] == str(import_bytes(data, CID_V1_OPTIONS)[1].root)
        async with session.post(f"{base}/blobs", data=b"") as response:
            empty = await response.json()
        assert empty["cid"] == str(import_bytes(b"")[1].root) and empty["size"] == 0
        async with session.get(f"{base}/blobs/{empty['cid']}") as response:
            assert response.status == 200 and await response.read() == b""
        async with session.post(f"{base}/blobs?cid-version=2", data=b"x") as response:
            assert response.status == 400 and "cid-version" in (await response.json())["error"]
        async with session.post(f"{base}/blobs?replicas=0", data=b"x") as response:
            assert response.status == 400 and "replicas" in (await response.json())["error"]
        async with session.post(f"{base}/blobs?replicas=2", data=b"x") as response:
            refused = await response.json()
            assert response.status == 503 and "only 1 of 2 replicas" in refused["error"]
            assert refused["replicas"] == [node.peers.node_id]  # kept here, leased


async def test_malformed_and_unknown_cids(node):
    base = url_of(node)
    async with aiohttp.ClientSession() as session:
        for method in ("GET", "HEAD"):
            async with session.request(method, f"{base}/blobs/QmNotACid") as response:
                assert response.status == 400
            async with session.request(method, f"{base}/blobs/{UNKNOWN_CID}") as response:
                assert response.status == 404
        async with session.get(f"{base}/blobs/QmNotACid") as response:
            assert "malformed CID" in (await response.json())["error"]
        async with session.get(f"{base}/blobs/{UNKNOWN_CID}") as response:
            assert (await response.json())["error"] == (
                f"blob {UNKNOWN_CID} is not here, and no connected peer has it"
            )


async def test_a_corrupt_block_is_never_served(node):
    data = payload(2 * CHUNK_SIZE_BYTES, seed=3)
    blocks, result = import_bytes(data)
    await Client(url_of(node)).blob_put(_Reader(data))
    leaf = blocks[0].cid
    path = node.blobs._fs.path_of(key_of(leaf))
    damaged = path.read_bytes()
    path.write_bytes(damaged[:-1] + bytes([damaged[-1] ^ 1]))  # the data, not the framing
    url = f"{url_of(node)}/blobs/{result.root}"
    async with aiohttp.ClientSession() as session:
        # The first byte is in the damaged leaf: refused before the status line.
        async with session.get(url, headers={"Range": "bytes=0-9"}) as response:
            assert response.status == 500
            assert "corrupt block" in (await response.json())["error"]
        # Moved to quarantine: now missing (to be fetched again), so not wholly here.
        async with session.get(url) as response:
            refused = await response.json()
            assert response.status == 404 and "only partly here" in refused["error"]
            assert f"no connected peer has block {leaf}" in refused["error"]
    assert not node.blobs.has(leaf)


async def test_a_body_over_the_limit_is_refused(node):
    node.config = dataclasses.replace(node.config, blobs=BlobsConfig(max_upload_bytes=1000))
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{url_of(node)}/blobs", data=b"y" * 1001) as response:
            assert response.status == 413
            assert "larger than 1000 bytes" in (await response.json())["error"]

        async def chunked():  # no Content-Length: counted as it arrives
            for _ in range(3):
                yield b"z" * 600

        async with session.post(f"{url_of(node)}/blobs", data=chunked()) as response:
            assert response.status == 413
    assert node.blobs.pins() == [] and node.blobs.leases() == []
    assert node.blobs.unanchored_bytes == 0


async def test_a_truncated_upload_is_refused_and_pins_nothing(node):
    host, _, port = node.config.rpc.listen_address.rpartition(":")
    declared = 3 * CHUNK_SIZE_BYTES
    head = (
        f"POST /blobs HTTP/1.1\r\nHost: {host}\r\nContent-Length: {declared}\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()

    def send_part() -> bytes:
        with socket.create_connection((host, int(port)), timeout=DEADLINE_S) as sock:
            sock.sendall(head + payload(CHUNK_SIZE_BYTES + 7))
            sock.shutdown(socket.SHUT_WR)
            answer = b""
            while piece := sock.recv(65536):
                answer += piece
            return answer

    answer = await asyncio.to_thread(send_part)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400")
    await wait_until(lambda: not node.rpc.blob_http.uploads_in_flight, DEADLINE_S)
    assert node.blobs.pins() == [] and node.blobs.leases() == []
    # What the cut upload wrote is rolled back: no block of it is left.
    assert list(node.blobs._fs.iter_keys()) == [] and node.blobs.unanchored_bytes == 0
    # The node goes on serving: a whole upload after the cut one works.
    put = await Client(url_of(node)).blob_put(_Reader(b"whole"))
    assert node.blobs.lease_of(import_bytes(b"whole")[1].root) is not None and put.size == 5


async def test_uploads_past_max_unanchored_bytes_are_refused_and_leave_nothing(tmp_path):
    """[blobs] max_unanchored_bytes over HTTP: within it an upload goes in; past it one is
    refused with 507 naming the setting and the numbers, announced or streamed, and
    leaves no block behind; a pinned or an anchored blob stops counting."""
    quota = 3 * CHUNK_SIZE_BYTES + 1024  # room, after the first upload, for one leaf more
    node = await start_node(tmp_path, blobs=BlobsConfig(max_unanchored_bytes=quota), unsafe=True)
    url = url_of(node)
    try:
        await wait_for_height([node], 1)
        async with aiohttp.ClientSession() as session:
            within = await _post(session, url, payload(2 * CHUNK_SIZE_BYTES, seed=20))
            assert within.status == 200
            before = (sorted(node.blobs._fs.iter_keys()), node.blobs.unanchored_bytes)
            assert before[1] > 2 * CHUNK_SIZE_BYTES

            over = payload(3 * CHUNK_SIZE_BYTES, seed=21)
            announced = await _post(session, url, over)  # Content-Length: refused up front
            # Chunked, and longer than the upload's read-ahead: refused midway.
            long = payload(4 * READ_AHEAD_BYTES, seed=24)
            streamed = await _post(session, url, _pieces(long))
            for refused in (announced, streamed):
                assert refused.status == 507, refused.body
                assert f"[blobs] max_unanchored_bytes = {quota}" in refused.body["error"]
                assert "Nothing of it is kept" in refused.body["error"]
                assert refused.body["max_unanchored_bytes"] == quota
                assert refused.body["unanchored_bytes"] == before[1]  # the others'
                assert refused.body["unanchored_bytes"] + refused.body["upload_bytes"] > quota
                assert 0 < int(refused.headers["Retry-After"]) <= 3600  # the grace's end
            assert announced.body["received_bytes"] == 0
            assert announced.body["upload_bytes"] == len(over)
            # One leaf went in and was counted before the next was refused; both removed.
            assert streamed.body["upload_bytes"] > quota - before[1] > CHUNK_SIZE_BYTES
            assert 0 < streamed.body["received_bytes"] < len(long)
            assert (sorted(node.blobs._fs.iter_keys()), node.blobs.unanchored_bytes) == before
            source = tmp_path / "over.bin"
            source.write_bytes(over)
            (put,) = await verbs(url, ("blob", "put", str(source)))
            assert put[0] == 1 and "(507)" in put[2] and "max_unanchored_bytes" in put[2]

            # An operator's pin stops a blob counting: another upload then fits.
            second_data = payload(2 * CHUNK_SIZE_BYTES, seed=22)
            assert (await _post(session, url, second_data)).status == 507
            assert await Client(url).blob_pin(within.body["cid"]) is True
            second = await _post(session, url, second_data)
            assert second.status == 200
            assert node.blobs.unanchored_bytes == before[1]  # the second's alone: the same size

            # So does an anchor on chain: its lease is released when room is short.
            third_data = payload(2 * CHUNK_SIZE_BYTES, seed=23)
            assert (await _post(session, url, third_data)).status == 507
            key = str(node.home.parent / "accounts" / "account0.json")
            (anchor,) = await verbs(
                url, ("tx", "storage", "anchor", second.body["cid"], "--from", key)
            )
            assert anchor[0] == 0, anchor[2]
            third = await _post(session, url, third_data)
            assert third.status == 200, third.body
            assert node.blobs.lease_of(second.body["cid"]) is None  # the anchor keeps it now
            assert node.blobs.stat(second.body["cid"]).complete
    finally:
        await node.stop()


@dataclasses.dataclass(frozen=True)
class _Answer:
    status: int
    headers: dict[str, str]
    body: dict


async def _post(session: aiohttp.ClientSession, url: str, data) -> _Answer:
    async with session.post(f"{url}/blobs", data=data) as response:
        return _Answer(response.status, dict(response.headers), await response.json())


async def _pieces(data: bytes):
    """`data` as a chunked body (no Content-Length), 64 KiB at a time."""
    for start in range(0, len(data), 64 * 1024):
        yield data[start : start + 64 * 1024]


# --- the client and JSON-RPC -----------------------------------------------------------------


async def test_client_put_get_stat_pin_unpin_gc(node, tmp_path):
    data = payload(FILE_BYTES, seed=4)
    source = tmp_path / "model.bin"
    source.write_bytes(data)
    client = Client(url_of(node))
    seen: list[tuple[int, int | None]] = []
    put = await client.blob_put(source, progress=lambda done, total: seen.append((done, total)))
    root = import_bytes(data)[1].root
    assert put.cid == str(root) and put.size == FILE_BYTES
    assert put.replicas == (node.peers.node_id,)
    assert seen[-1] == (FILE_BYTES, FILE_BYTES)

    dest = tmp_path / "copy.bin"
    got = await client.blob_get(put.cid, dest, progress=lambda *_: None)
    assert dest.read_bytes() == data and got.bytes_written == FILE_BYTES
    assert not (tmp_path / "copy.bin.part").exists()
    part = await client.blob_get(put.cid, tmp_path / "part.bin", start=10, end=20)
    assert (tmp_path / "part.bin").read_bytes() == data[10:20] and part.size == FILE_BYTES

    stat = await client.blob_stat(put.cid)
    blocks = len({b.cid for b in import_bytes(data)[0]})
    assert (
        stat.size,
        stat.complete,
        stat.blocks_local,
        stat.blocks_missing,
        stat.pinned,
        stat.leased,
    ) == (FILE_BYTES, True, blocks, 0, False, True)
    gc = await client.blob_gc()  # in its lease's grace: kept
    assert gc.blocks_removed == 0 and gc.leases_expired == () and node.blobs.has(root)
    assert await client.blob_pin(put.cid) is True  # the operator's pin replaces the lease
    assert (await client.blob_stat(put.cid)).leased is False
    assert await client.blob_pin(put.cid) is False  # already pinned
    gc = await client.blob_gc()
    assert gc.blocks_removed == 0 and node.blobs.has(root)
    assert await client.blob_unpin(put.cid) is True
    assert (await client.blob_stat(put.cid)).pinned is False
    gc = await client.blob_gc()
    assert gc.blocks_removed == blocks and gc.bytes_freed > FILE_BYTES
    assert not node.blobs.has(root)

    with pytest.raises(RPCClientError) as unknown:
        await client.blob_get(put.cid, tmp_path / "gone.bin")
    assert unknown.value.code == 404 and not (tmp_path / "gone.bin.part").exists()
    with pytest.raises(RPCClientError) as not_there:
        await client.blob_stat(put.cid)
    assert "is not in the store" in not_there.value.data
    with pytest.raises(RPCClientError) as malformed:
        await client.blob_pin("QmNotACid")
    assert malformed.value.code == -32602 and "cid" in malformed.value.data


# --- the CLI ---------------------------------------------------------------------------------


async def test_blob_verbs(node, tmp_path):
    data = payload(CHUNK_SIZE_BYTES * 2 + 1, seed=5)
    source = tmp_path / "data.bin"
    source.write_bytes(data)
    url = url_of(node)
    v1 = str(import_bytes(data, CID_V1_OPTIONS)[1].root)
    (put_code, put_out, put_err), (v1_code, v1_out, _) = await verbs(
        url,
        ("blob", "put", str(source), "--progress"),
        ("blob", "put", str(source), "--cid-version", "1", "--json"),
    )
    cid = str(import_bytes(data)[1].root)
    assert put_code == 0, put_err
    assert cid in put_out and "B/s" in put_err  # the bar: bytes and rate on stderr
    assert v1_code == 0 and json.loads(v1_out)["cid"] == v1

    out_file = tmp_path / "out.bin"
    results = await verbs(
        url,
        ("blob", "get", cid, "-o", str(out_file)),
        ("blob", "stat", cid, "--json"),
        ("blob", "unpin", v1),
        ("blob", "gc", "--json"),
        ("blob", "pin", cid),
        ("blob", "stat", "QmNotACid"),
        ("blob", "get", str(UNKNOWN_CID), "-o", str(tmp_path / "x")),
        ("blob", "put", str(tmp_path / "missing.bin")),
    )
    (get, stat, unpin, gc, pin, bad, unknown, missing) = results
    assert get[0] == 0 and out_file.read_bytes() == data and get[2] == ""  # no bar: not a TTY
    assert stat[0] == 0 and json.loads(stat[1])["leased"] is True
    assert unpin[0] == 0 and "not pinned" in unpin[1]  # its lease dropped
    assert gc[0] == 0 and json.loads(gc[1])["blocks_removed"] > 0  # v1's raw leaves and root
    assert pin[0] == 0 and "pinned" in pin[1] and "(already)" not in pin[1]  # was leased
    assert bad[0] == 1 and "cid" in bad[2] and "Traceback" not in bad[2]
    assert unknown[0] == 1 and "is not here" in unknown[2]
    assert missing[0] == 2 and "cannot read" in missing[2]


# --- helpers ---------------------------------------------------------------------------------


class _Reader:
    """A binary stream without a file descriptor (the upload is chunked)."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)

    def read(self, size: int = -1) -> bytes:
        size = len(self._data) if size < 0 else size
        piece, self._data = self._data[:size], self._data[size:]
        return bytes(piece)


async def test_anchoring_keeps_a_blob_from_gc_and_the_verbs_read_it_back(node, tmp_path):
    """blob put --anchor, query storage blob/anchored, then: unpinned but anchored, GC
    keeps it; unanchored and unpinned, GC collects it."""
    data = payload(CHUNK_SIZE_BYTES + 7, seed=9)
    source = tmp_path / "model.bin"
    source.write_bytes(data)
    cid = str(import_bytes(data)[1].root)
    key = str(node.home.parent / "accounts" / "account0.json")
    owner = read_key_file(key).address
    url = url_of(node)
    (put,) = await verbs(url, ("blob", "put", str(source), "--anchor", "--from", key))
    assert put[0] == 0, put[2]
    assert f"anchored  {cid}" in put[1] and f"size      {len(data)} bytes" in put[1]

    blob, anchored, listed = await verbs(
        url,
        ("query", "storage", "blob", cid, "--json"),
        ("query", "storage", "anchored"),
        ("query", "storage", "anchored", "--owner", owner, "--json"),
    )
    (record,) = json.loads(blob[1])["anchors"]
    assert (record["owner"], record["size"], record["replicas"]) == (
        owner,
        len(data),
        [node.peers.node_id],
    )
    assert cid in anchored[1] and "1 CIDs" in anchored[1]
    assert json.loads(listed[1]) == {"cids": [cid], "more": False}

    unpin, gc = await verbs(url, ("blob", "unpin", cid), ("blob", "gc", "--json"))
    assert unpin[0] == 0 and gc[0] == 0
    assert node.blobs.stat(cid).complete  # anchored: kept though unpinned

    unanchor, gc = await verbs(
        url, ("tx", "storage", "unanchor", cid, "--from", key), ("blob", "gc", "--json")
    )
    assert unanchor[0] == 0, unanchor[2]
    assert json.loads(gc[1])["blocks_removed"] >= 2
    assert not node.blobs.has(import_bytes(data)[1].root)


async def test_anchor_verbs_refuse_what_they_cannot_do(node, tmp_path):
    key = str(node.home.parent / "accounts" / "account0.json")
    url = url_of(node)
    no_key, json_anchor, unknown, refused, not_anchored = await verbs(
        url,
        ("blob", "put", str(tmp_path), "--anchor"),
        ("blob", "put", str(tmp_path), "--anchor", "--from", key, "--json"),
        ("tx", "storage", "anchor", str(UNKNOWN_CID), "--from", key),
        ("tx", "storage", "anchor", "QmNotACid", "--size", "5", "--from", key),
        ("query", "storage", "blob", str(UNKNOWN_CID)),
    )
    assert no_key[0] == 2 and "--anchor needs --from KEYFILE" in no_key[2]
    assert json_anchor[0] == 2 and "goes without --json" in json_anchor[2]
    assert unknown[0] == 1 and "--size not given and the node cannot say it" in unknown[2]
    assert refused[0] == 1 and "refused with code" in refused[2] and "invalid CID" in refused[2]
    assert not_anchored[0] == 1 and "is not anchored" in not_anchored[2]
