"""The blob store on disk: round trips, ranges, corruption, crashes, pins and GC, memory.

Large inputs are generated as they are read (kubo's deterministic ChaCha20
reader, or zeros), never held whole. Expected CIDs come either from kubo's
published vectors or from `hash_stream`, the importer that test_cid.py checks
against kubo; this file tests what the store adds: that the bytes go to disk
and come back, verified, and survive crashes and garbage collection.
"""

import base64
import hashlib
import io
import json
import random
import signal
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from hypothesis import given
from hypothesis import strategies as st

from cloudchain.blobs import (
    CID,
    CID_V1_OPTIONS,
    BlockMismatchError,
    CIDError,
    ImportOptions,
    decode_file_node,
    hash_stream,
    import_bytes,
)
from cloudchain.blobs.flatfs import SHARDING_SPEC, FlatFS, key_of
from cloudchain.blobs.pinfile import PinFileError
from cloudchain.blobs.store import (
    BLOCK_BYTES_MAX,
    BlobStore,
    BlobStoreError,
    BlockNotFoundError,
    BlockTooLargeError,
    CorruptBlockError,
    InputSizeError,
    RangeNotSatisfiableError,
    StoreLockedError,
)
from cloudchain.blobs.traverse import HEAD_BYTES, has_no_links
from tests.helpers.waiting import wait_until_blocking

KiB = 1024
MiB = 1024 * KiB
CHUNK = 256 * KiB
V0 = ImportOptions()
V1 = CID_V1_OPTIONS
MODES = pytest.mark.parametrize("options", [V0, V1], ids=["cidv0", "cidv1"])
# Tiny chunks and fan-out: a deep DAG from a few KB, to exercise every level.
DEEP = ImportOptions(chunk_size=100, max_links=3)
REPO = Path(__file__).resolve().parent.parent


class KuboRandomReader:
    """kubo's `DeterministicRandomReader(size, seed)` (see test_cid.py)."""

    def __init__(self, size, seed):
        key = hashlib.sha256(seed.encode()).digest()
        self.cipher = Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()
        self.left = size

    def read(self, n=-1):
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return self.cipher.update(bytes(n))


class ZeroReader:
    def __init__(self, size):
        self.left = size

    def read(self, n=-1):
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return bytes(n)


class GeneratorReader:
    """A reader over a generator of byte strings (an upload arriving in pieces)."""

    def __init__(self, pieces):
        self.pieces = iter(pieces)
        self.pending = b""

    def read(self, n=-1):
        while len(self.pending) < n or n < 0:
            piece = next(self.pieces, None)
            if piece is None:
                break
            self.pending += piece
        if n < 0:
            out, self.pending = self.pending, b""
        else:
            out, self.pending = self.pending[:n], self.pending[n:]
        return out


def sha256_of_reader(reader, piece_bytes=MiB):
    h = hashlib.sha256()
    while piece := reader.read(piece_bytes):
        h.update(piece)
    return h.digest()


def sha256_of_pieces(pieces):
    h = hashlib.sha256()
    for piece in pieces:
        h.update(piece)
    return h.digest()


def random_bytes(size, seed=0):
    return random.Random(seed).randbytes(size)


def add_bytes(store, data, options=V0, **kwargs):
    return store.add(io.BytesIO(data), options, **kwargs)


def block_files(directory):
    return sorted((Path(directory) / "blocks").glob("*/*.data"))


def file_matches_its_name(path):
    """Whether a block file hashes to the multihash its name encodes."""
    key = path.name.removesuffix(".data")
    multihash = base64.b32decode(key + "=" * (-len(key) % 8))
    return hashlib.sha256(path.read_bytes()).digest() == multihash[2:]


def dag_blocks(data, options=V0):
    """{cid: bytes} of every distinct block of `data`'s DAG, and the root."""
    blocks, result = import_bytes(data, options)
    return {block.cid: block.data for block in blocks}, result.root


def leaves_in_order(root, blocks):
    node = decode_file_node(root, blocks[root])
    if not node.children:
        return [root]
    return [leaf for child, _ in node.children for leaf in leaves_in_order(child, blocks)]


def flip_byte(path, offset=-1):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def store(tmp_path):
    with BlobStore(tmp_path / "store") as s:
        yield s


# -- round trips -------------------------------------------------------------------

EDGE_SIZES = [0, 1, CHUNK, CHUNK + 1, 174 * CHUNK + 1]


@MODES
@pytest.mark.parametrize("size", EDGE_SIZES, ids=["0", "1", "chunk", "chunk+1", "174chunks+1"])
def test_round_trip_of_edge_sizes(store, size, options):
    result = store.add(KuboRandomReader(size, "edge"), options)
    assert result.root == hash_stream(KuboRandomReader(size, "edge"), options).root
    assert result.size == size
    assert sha256_of_pieces(store.read(result.root)) == sha256_of_reader(
        KuboRandomReader(size, "edge")
    )
    stat = store.stat(result.root)
    assert (stat.size, stat.complete, stat.blocks_missing) == (size, True, 0)
    assert stat.blocks_local == result.blocks == result.blocks_written
    assert store.pins() == [result.root]


def test_published_kubo_vectors_round_trip(store):
    # kubo test/cli/cid_profiles_test.go: 174 chunks of kubo's random bytes.
    result = store.add(KuboRandomReader(44544 * KiB, "v0-seed"))
    assert str(result.root) == "QmUbBALi174SnogsUzLpYbD4xPiBSFANF4iztWCsHbMKh2"
    with store.open(result.root) as f:
        assert sha256_of_reader(f) == sha256_of_reader(KuboRandomReader(44544 * KiB, "v0-seed"))
    # ethereum/solidity IpfsHash.cpp: 174 chunks plus one byte of zeros, two levels.
    result = store.add(ZeroReader(174 * CHUNK + 1))
    assert str(result.root) == "QmehMASWcBsX7VcEQqs6rpR5AHoBfKyBVEgmkJHjpPg8jq"
    assert result.blocks == 174 + 1 + 3  # leaves, the last leaf, and three nodes
    assert result.blocks_written == 5  # one full leaf, one 1-byte leaf, three nodes
    assert sha256_of_pieces(store.read(result.root)) == sha256_of_reader(
        ZeroReader(174 * CHUNK + 1)
    )
    assert str(add_bytes(store, b"hello world\n").root) == (
        "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
    )


def test_adding_again_writes_nothing(store):
    data = random_bytes(3 * CHUNK + 7)
    first = add_bytes(store, data)
    second = add_bytes(store, data)
    assert second.root == first.root
    assert (first.blocks_written, second.blocks_written) == (first.blocks, 0)
    assert store.counters.blocks_deduplicated == first.blocks


def test_layout_is_kubos_flatfs(tmp_path):
    # kubo's empty UnixFS directory: every `ipfs init` writes it here.
    empty_dir = CID.parse("QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn")
    with BlobStore(tmp_path / "s") as store:
        assert store.put_block(empty_dir, b"\x0a\x02\x08\x01")
    blocks = tmp_path / "s" / "blocks"
    path = blocks / "X3" / "CIQFTFEEHEDF6KLBT32BFAGLXEZL4UWFNWM4LFTLMXQBCERZ6CMLX3Y.data"
    assert path.read_bytes() == b"\x0a\x02\x08\x01"
    assert (blocks / "SHARDING").read_text() == "/repo/flatfs/shard/v1/next-to-last/2\n"
    assert (blocks / "_README").exists()
    assert block_files(tmp_path / "s") == [path]


def test_cidv0_and_cidv1_of_a_block_share_its_file(store):
    data = b"same bytes, two names"
    result = add_bytes(store, data)
    assert store.has(result.root.to_v1())
    assert b"".join(store.read(result.root.to_v1())) == data
    assert not store.put_block(result.root.to_v1(), store.get_block(result.root))


def test_open_gives_a_seekable_verified_file(store):
    data = random_bytes(5 * CHUNK + 3)
    root = add_bytes(store, data).root
    with store.open(str(root)) as f:
        assert (f.size, f.seekable(), f.readable(), f.writable()) == (len(data), True, True, False)
        assert f.read(10) == data[:10]
        assert f.seek(3 * CHUNK - 5) == 3 * CHUNK - 5
        assert f.read(10) == data[3 * CHUNK - 5 : 3 * CHUNK + 5]
        f.seek(-4, io.SEEK_END)
        assert f.read() == data[-4:]
        assert f.read(1) == b""
        f.seek(0)
        assert f.read() == data
        f.seek(len(data) + 10)
        assert f.read(5) == b""
        with pytest.raises(ValueError, match="negative seek"):
            f.seek(-1)
    with pytest.raises(ValueError):
        f.read(1)


# -- ranges ------------------------------------------------------------------------


@pytest.fixture
def five_chunks(store):
    data = random_bytes(5 * CHUNK + 1000)
    return data, add_bytes(store, data).root


@pytest.mark.parametrize(
    "start, end",
    [
        (0, None),
        (10, 20),  # inside the first chunk
        (CHUNK + 5, 2 * CHUNK - 5),  # inside a middle chunk
        (CHUNK - 3, CHUNK + 3),  # across a chunk boundary
        (CHUNK - 1, 4 * CHUNK + 1),  # across several chunks
        (CHUNK, 2 * CHUNK),  # exactly one chunk
        (5 * CHUNK, 5 * CHUNK + 1000),  # the whole last (short) chunk, up to the end
        (5 * CHUNK + 999, None),  # the last byte
        (5 * CHUNK + 1000, None),  # at the end: nothing
        (100, 100),  # empty
        (5 * CHUNK, 10**12),  # an end past the end is clamped, as HTTP does
    ],
)
def test_byte_ranges(store, five_chunks, start, end):
    data, root = five_chunks
    assert b"".join(store.read(root, start, end)) == data[start:end]


def test_a_range_past_the_end_is_not_satisfiable(store, five_chunks):
    data, root = five_chunks
    with pytest.raises(RangeNotSatisfiableError) as info:
        store.read(root, len(data) + 1)  # raised at once, not when iterating
    assert (info.value.start, info.value.size, info.value.cid) == (len(data) + 1, len(data), root)
    assert isinstance(info.value, ValueError)
    with pytest.raises(ValueError, match="invalid byte range"):
        store.read(root, -1)
    with pytest.raises(ValueError, match="invalid byte range"):
        store.read(root, 10, 5)
    empty = add_bytes(store, b"").root
    assert list(store.read(empty)) == []
    with pytest.raises(RangeNotSatisfiableError):
        store.read(empty, 1)


def test_a_range_reads_only_the_blocks_it_needs(store):
    size = 174 * CHUNK + 1  # root -> [node of 174 leaves, node -> last leaf]
    root = store.add(KuboRandomReader(size, "range")).root
    expected = KuboRandomReader(size, "range").read()
    for start, end in [(size - 1, size), (100 * CHUNK + 7, 100 * CHUNK + 9), (0, 1)]:
        before = store.counters.blocks_read
        assert b"".join(store.read(root, start, end)) == expected[start:end]
        assert store.counters.blocks_read - before == 3  # root, one node, one leaf
    before = store.counters.blocks_read
    assert (
        b"".join(store.read(root, 173 * CHUNK - 1, 173 * CHUNK + 1))
        == (expected[173 * CHUNK - 1 : 173 * CHUNK + 1])
    )
    assert store.counters.blocks_read - before == 4  # root, one node, two leaves


DEEP_DATA = random_bytes(4321, seed=7)


@pytest.fixture(scope="module")
def deep_store(tmp_path_factory):
    with BlobStore(tmp_path_factory.mktemp("deep")) as s:
        yield s, add_bytes(s, DEEP_DATA, DEEP).root


@given(st.integers(0, len(DEEP_DATA)), st.integers(0, len(DEEP_DATA) + 10))
def test_any_range_of_a_deep_dag(deep_store, start, end):
    store, root = deep_store
    start, end = min(start, end), max(start, end)
    assert b"".join(store.read(root, start, end)) == DEEP_DATA[start:end]
    with store.open(root) as f:
        f.seek(start)
        assert f.read(end - start) == DEEP_DATA[start:end]


# -- corruption ----------------------------------------------------------------------


def test_a_flipped_byte_is_detected_and_never_served(store):
    data = random_bytes(3 * CHUNK)
    blocks, root = dag_blocks(data)
    add_bytes(store, data)
    leaf = leaves_in_order(root, blocks)[1]
    path = store._fs.path_of(key_of(leaf))
    flip_byte(path, offset=1000)
    pieces = store.read(root)
    assert next(pieces) == data[:CHUNK]  # the first leaf is intact and served
    with pytest.raises(CorruptBlockError) as info:
        next(pieces)
    error = info.value
    assert (error.cid, error.path) == (leaf, path)
    assert str(leaf) in str(error) and str(path) in str(error)
    # Moved aside: the block is now simply missing, to be fetched again.
    assert error.quarantined == store.directory / "quarantine" / path.name
    assert error.quarantined.exists() and not path.exists()
    assert not store.has(leaf)
    assert store.missing_blocks(root) == [leaf]
    assert not store.stat(root).complete
    assert (store.counters.corrupt_blocks, store.counters.blocks_quarantined) == (1, 1)
    # A peer (here: the original file) brings the good block back.
    assert store.put_block(leaf, blocks[leaf])
    assert b"".join(store.read(root)) == data


def test_without_quarantine_a_corrupt_block_stays_unserved_until_replaced(tmp_path):
    data = random_bytes(2 * CHUNK)
    blocks, root = dag_blocks(data)
    with BlobStore(tmp_path / "s", quarantine=False) as store:
        add_bytes(store, data)
        leaf = leaves_in_order(root, blocks)[0]
        path = store._fs.path_of(key_of(leaf))
        flip_byte(path)
        for _ in range(2):
            with pytest.raises(CorruptBlockError, match="does not match its hash") as info:
                store.get_block(leaf)
            assert info.value.quarantined is None and path.exists()
        # Structure walks check leaves by presence; verify=True hashes them too.
        assert store.missing_blocks(root) == []
        assert store.missing_blocks(root, verify=True) == [leaf]  # corrupt counts as missing
        assert not store.stat(root, verify=True).complete
        # Adding the file again repairs the block (and says so).
        assert add_bytes(store, data).blocks_written == 1
        assert store.counters.blocks_repaired == 1
        assert b"".join(store.read(root)) == data
        assert not (tmp_path / "s" / "quarantine").exists()


@pytest.mark.parametrize("damage", ["truncate", "empty", "extend", "oversize"])
def test_truncated_or_grown_blocks_are_corrupt(store, damage):
    data = random_bytes(CHUNK + 10)
    blocks, root = dag_blocks(data)
    add_bytes(store, data)
    leaf = leaves_in_order(root, blocks)[1]
    path = store._fs.path_of(key_of(leaf))
    content = path.read_bytes()
    path.write_bytes(
        {
            "truncate": content[: len(content) // 2],
            "empty": b"",
            "extend": content + b"\x00",
            "oversize": bytes(BLOCK_BYTES_MAX + 1),
        }[damage]
    )
    with pytest.raises(CorruptBlockError):
        b"".join(store.read(root))
    assert store.missing_blocks(root) == [leaf]


def test_a_corrupt_internal_node_hides_its_children(store):
    data = random_bytes(3 * CHUNK)
    root = add_bytes(store, data).root
    flip_byte(store._fs.path_of(key_of(root)), offset=5)
    with pytest.raises(CorruptBlockError):
        store.read(root)  # the root is read (and found corrupt) before any byte
    assert store.missing_blocks(root) == [root]
    with pytest.raises(BlockNotFoundError):
        store.stat(root)


def test_put_block_checks_what_it_is_given(store):
    data = b"a block from a peer"
    blocks, root = dag_blocks(data)
    with pytest.raises(BlockMismatchError):
        store.put_block(root, data)  # the file bytes, not the block
    with pytest.raises(BlockTooLargeError):
        store.put_block(root, bytes(BLOCK_BYTES_MAX + 1))
    assert not store.has(root) and block_files(store.directory) == []
    assert store.put_block(str(root), blocks[root])
    assert not store.put_block(root, blocks[root])
    assert store.get_block(root) == blocks[root]


# -- crash safety --------------------------------------------------------------------


def test_temp_files_are_not_blocks_and_are_cleaned_on_open(tmp_path):
    data = random_bytes(2 * CHUNK)
    blocks, root = dag_blocks(data)
    leaf, other = leaves_in_order(root, blocks)
    with BlobStore(tmp_path / "s") as store:
        store.put_block(other, blocks[other])
        # What a crash mid-write leaves: half a block under a temporary name.
        fs = FlatFS(tmp_path / "s" / "blocks")
        shard = fs.path_of(key_of(leaf)).parent
        shard.mkdir(exist_ok=True)
        temp = shard / f".tmp-{key_of(leaf)}-0badc0de"
        temp.write_bytes(blocks[leaf][: len(blocks[leaf]) // 2])
        temp2 = fs.path_of(key_of(other)).parent / f".tmp-{key_of(other)}-00000000"
        temp2.write_bytes(b"")
        assert not store.has(leaf)
        with pytest.raises(BlockNotFoundError):
            store.get_block(leaf)
        assert list(fs.iter_keys()) == [key_of(other)]
    with BlobStore(tmp_path / "s") as store:
        assert not temp.exists() and not temp2.exists()
        assert store.counters.temp_files_removed == 2
        assert store.get_block(other) == blocks[other]  # the block beside them is intact
        assert store.put_block(leaf, blocks[leaf])


def test_a_failed_write_leaves_neither_block_nor_temp_file(store, monkeypatch):
    data = random_bytes(100)
    blocks, root = dag_blocks(data)

    def failing_fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("cloudchain.blobs.flatfs.os.fsync", failing_fsync)
    with pytest.raises(OSError, match="Input/output"):
        store.put_block(root, blocks[root])
    monkeypatch.undo()
    assert list((store.directory / "blocks").glob("*/*")) == []
    assert store.put_block(root, blocks[root])


# The instants of a block's write at which the child kills itself (SIGKILL, from one of
# its writer threads, the others wherever they are), once it has stored
# BLOCKS_BEFORE_CRASH blocks: halfway through the data; after the data is written and
# fsynced, before the rename; just after the rename, before the directory's fsync.
# The last one must leave a temporary file, so it comes last.
CRASH_POINTS = ("after-rename", "before-rename", "mid-data")
BLOCKS_BEFORE_CRASH = 20

CHILD = """
import os, signal, sys
from cloudchain.blobs import flatfs
from cloudchain.blobs.store import BlobStore

directory, crash_at, after = sys.argv[1], sys.argv[2], int(sys.argv[3])
stored = 0

class Endless:
    def read(self, n=-1):
        return os.urandom(n)

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def write(fd, data):
    if crash_at == "mid-data" and stored >= after:
        os.write(fd, bytes(data[: len(data) // 2]))
        die()
    return os.write(fd, data)

def replace(source, target):
    global stored
    block = str(target).endswith(flatfs.DATA_SUFFIX)
    if block and crash_at == "before-rename" and stored >= after:
        die()
    os.replace(source, target)
    stored += block
    if block and crash_at == "after-rename" and stored >= after:
        die()

class FlatFSOs:  # the os module as flatfs sees it: its writes and renames are the above
    write, replace = staticmethod(write), staticmethod(replace)

    def __getattr__(self, name):
        return getattr(os, name)

flatfs.os = FlatFSOs()
store = BlobStore(directory)
store.add(Endless())
"""


def test_sigkill_during_add_leaves_only_whole_blocks(tmp_path):
    """Killed inside a block's write at each instant that matters, the store keeps only
    whole blocks under their names, and removes the temporary files on the next open."""
    directory = tmp_path / "s"
    with BlobStore(directory) as store:
        kept = add_bytes(store, random_bytes(3 * CHUNK)).root
    for run, crash_at in enumerate(CRASH_POINTS):
        args = [str(directory), crash_at, str(BLOCKS_BEFORE_CRASH)]
        child = subprocess.Popen([sys.executable, "-c", CHILD, *args], cwd=REPO)
        try:
            child.wait(timeout=60)
        finally:
            child.send_signal(signal.SIGKILL)  # if it hung; a no-op once it has exited
            child.wait()
        assert child.returncode == -signal.SIGKILL, crash_at  # it died where told, not before
        assert len(block_files(directory)) >= 4 + BLOCKS_BEFORE_CRASH * (run + 1)
        temp_files_left = len(list((directory / "blocks").glob("*/.tmp-*")))
        if crash_at != "after-rename":
            assert temp_files_left >= 1, crash_at  # the kill came inside a block's write
        # Every file under a block's name is the whole block.
        assert all(file_matches_its_name(path) for path in block_files(directory))
    with BlobStore(directory) as store:
        assert list((directory / "blocks").glob("*/.tmp-*")) == []
        assert store.counters.temp_files_removed == temp_files_left
        assert store.pins() == [kept]
        assert store.stat(kept).complete
        # The endless adds were never pinned; GC takes all they wrote.
        result = store.gc()
        assert result.blocks_kept == 4
        assert result.blocks_removed >= len(CRASH_POINTS) * BLOCKS_BEFORE_CRASH
        assert len(block_files(directory)) == 4


def test_a_store_is_open_once(tmp_path):
    with BlobStore(tmp_path / "s"), pytest.raises(StoreLockedError):
        BlobStore(tmp_path / "s")
    BlobStore(tmp_path / "s").close()


def test_a_closed_store_refuses_work(tmp_path):
    store = BlobStore(tmp_path / "s")
    root = add_bytes(store, b"x").root
    store.close()
    for call in (lambda: store.get_block(root), lambda: store.read(root), store.gc):
        with pytest.raises(BlobStoreError, match="closed"):
            call()


def test_a_foreign_sharding_is_refused(tmp_path):
    (tmp_path / "s" / "blocks").mkdir(parents=True)
    (tmp_path / "s" / "blocks" / "SHARDING").write_text("/repo/flatfs/shard/v1/prefix/2\n")
    with pytest.raises(OSError, match="prefix/2"):
        BlobStore(tmp_path / "s")
    assert SHARDING_SPEC.endswith("next-to-last/2\n")


# -- pins and garbage collection -------------------------------------------------------


def test_gc_keeps_pinned_and_collects_unpinned(store):
    pinned = add_bytes(store, random_bytes(3 * CHUNK, seed=1))
    loose = add_bytes(store, random_bytes(2 * CHUNK + 5, seed=2), pin=False)
    assert store.pins() == [pinned.root]
    result = store.gc()
    assert (result.blocks_removed, result.bytes_freed) == (loose.blocks, loose.dag_size)
    assert (result.blocks_kept, result.roots) == (pinned.blocks, 1)
    assert not store.has(loose.root)
    with pytest.raises(BlockNotFoundError):
        store.read(loose.root)
    assert store.stat(pinned.root).complete
    assert store.gc().blocks_removed == 0
    assert store.unpin(pinned.root) and not store.unpin(pinned.root)
    assert store.gc().blocks_removed == pinned.blocks
    assert block_files(store.directory) == []
    assert store.counters.gc_runs == 3


def test_gc_respects_kept_roots(store):
    anchored = add_bytes(store, random_bytes(2 * CHUNK, seed=3), pin=False)
    loose = add_bytes(store, random_bytes(CHUNK, seed=4), pin=False)
    result = store.gc(keep={str(anchored.root)})
    assert result.blocks_removed == 1 and result.roots == 1
    assert store.stat(anchored.root).complete and not store.has(loose.root)
    assert store.gc(keep=[]).blocks_removed == anchored.blocks
    with pytest.raises(CIDError):
        store.gc(keep=["QmNotACid"])


def test_gc_keeps_blocks_shared_with_a_pinned_dag(store):
    # Files of zeros share their leaves; unpinning one must not take the other's.
    small = store.add(ZeroReader(3 * CHUNK), pin=False)
    big = store.add(ZeroReader(5 * CHUNK))
    store.gc()
    assert not store.has(small.root)
    assert sha256_of_pieces(store.read(big.root)) == sha256_of_reader(ZeroReader(5 * CHUNK))


def test_pins_survive_reopening_and_a_bad_pin_file_is_refused(tmp_path):
    directory = tmp_path / "s"
    with BlobStore(directory) as store:
        a = add_bytes(store, b"a").root
        b = add_bytes(store, b"b", V1).root
        assert not store.pin(a)  # add pinned it already
    document = json.loads((directory / "pins.json").read_text())
    assert document["format"] == "cloudchain-pins" and document["pins"] == sorted([str(a), str(b)])
    (directory / "pins.json.tmp").write_text("half a rewrite")
    with BlobStore(directory) as store:
        assert set(store.pins()) == {a, b}
        assert not (directory / "pins.json.tmp").exists()
        assert store.gc().blocks_removed == 0
    (directory / "pins.json").write_text('{"format": "cloudchain-pins", "version": 1, "pins": [')
    with pytest.raises(PinFileError, match="not JSON"):
        BlobStore(directory)
    (directory / "pins.json").write_text(
        '{"format": "cloudchain-pins", "version": 1, "pins": ["QmBroken"]}'
    )
    with pytest.raises(PinFileError, match="QmBroken"):
        BlobStore(directory)


def test_gc_keeps_what_is_here_of_a_partially_local_dag(tmp_path, store):
    data = random_bytes(DEEP.chunk_size * 40, seed=5)
    blocks, root = dag_blocks(data, DEEP)
    with BlobStore(tmp_path / "partial") as partial:
        # Everything but every third leaf and one internal node (and what is under it).
        leaves = leaves_in_order(root, blocks)
        skipped_leaves = set(leaves[::3])
        internal = [cid for cid in blocks if cid not in set(leaves) and cid != root]
        hidden_node = internal[0]
        under_hidden = {hidden_node, *_descendants(hidden_node, blocks)}
        copied = [c for c in blocks if c not in skipped_leaves and c not in under_hidden]
        for cid in copied:
            partial.put_block(cid, blocks[cid])
        stray = add_bytes(partial, b"not pinned", pin=False).root
        assert partial.pin(root)
        result = partial.gc()
        assert result.blocks_removed == 1 and not partial.has(stray)
        assert all(partial.has(cid) for cid in copied)
        missing = partial.missing_blocks(root)
        assert hidden_node in missing
        assert set(missing) == {hidden_node} | (skipped_leaves - under_hidden)
        stat = partial.stat(root)
        assert (stat.complete, stat.blocks_local, stat.blocks_missing) == (
            False,
            len(copied),
            len(missing),
        )
        # Unpinned, a partial DAG is collected like any other.
        partial.unpin(root)
        assert partial.gc().blocks_removed == len(copied)


def _descendants(cid, blocks):
    node = decode_file_node(cid, blocks[cid])
    for child, _ in node.children:
        yield child
        yield from _descendants(child, blocks)


def test_missing_blocks_resumes_a_transfer_without_refetching(tmp_path, store):
    data = random_bytes(DEEP.chunk_size * 30 + 17, seed=6)
    source = add_bytes(store, data, DEEP).root
    blocks, root = dag_blocks(data, DEEP)
    assert root == source
    with BlobStore(tmp_path / "dest") as dest:
        assert dest.missing_blocks(root) == [root]
        # A first transfer that stopped halfway through, parents before children
        # (the importer emits children first: reversed, every parent comes first).
        first_half = list(blocks)[::-1][: len(blocks) // 2]
        for cid in first_half:
            dest.put_block(cid, store.get_block(cid))
        fetched = []
        with dest.hold(root) as session:
            while missing := dest.missing_blocks(root):
                for cid in missing:
                    fetched.append(cid)
                    assert session.put_block(cid, store.get_block(cid))
        assert len(fetched) == len(set(fetched)) == len(blocks) - len(first_half)
        assert not set(fetched) & set(first_half)
        assert b"".join(dest.read(root)) == data
        assert dest.stat(root, verify=True).complete


def test_gc_does_not_collect_an_add_in_progress(store):
    paused, resume = threading.Event(), threading.Event()

    def pieces():
        for i in range(8):
            if i == 5:
                paused.set()
                assert resume.wait(10)
            yield random_bytes(CHUNK, seed=100 + i)

    results = []
    adder = threading.Thread(
        target=lambda: results.append(store.add(GeneratorReader(pieces()), pin=False))
    )
    adder.start()
    try:
        assert paused.wait(10)
        wait_until_blocking(  # the writer threads store what they were given
            lambda: len(block_files(store.directory)) >= 4, 10, what="4 blocks on disk"
        )
        assert len(block_files(store.directory)) >= 4
        assert store.gc().blocks_removed == 0
    finally:
        resume.set()
        adder.join(10)
    (result,) = results
    assert store.stat(result.root).complete
    assert sha256_of_pieces(store.read(result.root)) == sha256_of_pieces(
        random_bytes(CHUNK, seed=100 + i) for i in range(8)
    )
    assert store.gc().blocks_removed == result.blocks  # add returned unpinned


def test_gc_during_a_held_transfer_keeps_its_blocks(tmp_path, store):
    data = random_bytes(4 * CHUNK, seed=8)
    blocks, root = dag_blocks(data)
    leaves = leaves_in_order(root, blocks)
    # The parent arrives after its children: only the session knows they belong.
    with store.hold() as session:
        for leaf in leaves[:2]:
            session.put_block(leaf, blocks[leaf])
        assert store.gc().blocks_removed == 0
    with store.hold(root) as session:
        session.put_block(root, blocks[root])
        assert store.gc().blocks_removed == 0  # held root: its DAG is kept
        for leaf in leaves[2:]:
            session.put_block(leaf, blocks[leaf])
    with pytest.raises(BlobStoreError, match="session is closed"):
        session.put_block(root, blocks[root])
    assert store.gc().blocks_removed == len(blocks)


def test_a_root_pinned_while_gc_sweeps_is_kept(store, monkeypatch):
    first = add_bytes(store, random_bytes(2 * CHUNK, seed=9), pin=False)
    late = add_bytes(store, random_bytes(3 * CHUNK, seed=10), pin=False)
    real_iter_keys = store._fs.iter_keys

    def iter_keys_then_pin():
        # GC has marked (no roots) and listed; another thread pins before any delete.
        store.pin(late.root)
        yield from real_iter_keys()

    monkeypatch.setattr(store._fs, "iter_keys", iter_keys_then_pin)
    result = store.gc()
    assert store.stat(late.root).complete
    assert (result.roots, result.blocks_removed, result.blocks_kept) == (
        1,
        first.blocks,
        late.blocks,
    )


def test_a_block_stored_while_gc_sweeps_is_kept(store, monkeypatch):
    blocks, root = dag_blocks(b"arrived during gc")
    real_iter_keys = store._fs.iter_keys

    def iter_keys_with_late_block():
        yield from real_iter_keys()
        store.put_block(root, blocks[root])  # stored after GC began, by a fetcher
        yield key_of(root)

    monkeypatch.setattr(store._fs, "iter_keys", iter_keys_with_late_block)
    assert store.gc().blocks_removed == 0
    assert store.has(root)
    monkeypatch.undo()
    assert store.gc().blocks_removed == 1


def test_concurrent_adds_reads_and_gc(store):
    errors = []
    roots = {}

    def adder(n):
        try:
            for i in range(3):
                data = random_bytes(CHUNK + 1000 * i, seed=n * 10 + i)
                root = add_bytes(store, data).root
                assert b"".join(store.read(root)) == data  # while GC runs
                roots[(n, i)] = (root, data)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def collector(stop):
        while not stop.is_set():
            try:
                add_bytes(store, random_bytes(1000), pin=False)
                store.gc()
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

    stop = threading.Event()
    gc_thread = threading.Thread(target=collector, args=(stop,))
    gc_thread.start()
    adders = [threading.Thread(target=adder, args=(n,)) for n in range(4)]
    for thread in adders:
        thread.start()
    for thread in adders:
        thread.join(30)
    stop.set()
    gc_thread.join(30)
    assert errors == []
    store.gc()
    for root, data in roots.values():
        assert b"".join(store.read(root)) == data


# -- bad input ---------------------------------------------------------------------


def test_malformed_and_unknown_cids(store):
    for bad in ["", "Qm", "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5O", "bafy!", " Qm"]:
        for call in (store.has, store.get_block, store.read, store.stat, store.pin, store.open):
            with pytest.raises(CIDError):
                call(bad)
    with pytest.raises(TypeError):
        store.has(b"QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o")
    unknown = CID.parse("QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o")
    assert not store.has(unknown)
    for call in (store.get_block, store.read, store.stat, store.open):
        with pytest.raises(BlockNotFoundError, match=str(unknown)):
            call(unknown)
    assert store.missing_blocks(unknown) == [unknown]
    assert store.pin(unknown)  # pin first, fetch later


def test_a_truncated_upload_pins_nothing_and_damages_nothing(store):
    kept = add_bytes(store, random_bytes(2 * CHUNK, seed=11))
    data = random_bytes(3 * CHUNK, seed=12)
    with pytest.raises(InputSizeError, match="announced"):
        add_bytes(store, data[: 2 * CHUNK + 5], expected_size=len(data))

    def dropped_connection():
        yield data[:CHUNK]
        yield data[CHUNK : 2 * CHUNK + 100]
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        store.add(GeneratorReader(dropped_connection()))
    assert store.pins() == [kept.root]
    store.gc()
    assert store.stat(kept.root).complete
    assert len(block_files(store.directory)) == kept.blocks
    complete = add_bytes(store, data, expected_size=len(data))
    assert b"".join(store.read(complete.root)) == data


def test_reading_a_non_file_dag_is_a_decode_error(store):
    empty_dir = CID.parse("QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn")
    store.put_block(empty_dir, b"\x0a\x02\x08\x01")
    with pytest.raises(ValueError, match="DIRECTORY"):
        store.read(empty_dir)


def test_has_no_links_reads_only_a_blocks_head():
    blocks, root = dag_blocks(random_bytes(3 * CHUNK))
    leaf = leaves_in_order(root, blocks)[0]
    for cid, expected in [(leaf, True), (root, False)]:
        data = blocks[cid]
        assert has_no_links(data[:HEAD_BYTES], len(data)) is expected
    assert has_no_links(b"", 0)
    assert not has_no_links(b"\x0a\xff", 300)  # a Data field that is not the whole block


# -- memory --------------------------------------------------------------------------


def test_add_and_read_256_mib_in_bounded_memory(store):
    size = 256 * MiB
    piece = 64 * KiB

    def upload():  # a generator, as an HTTP body arrives
        reader = KuboRandomReader(size, "memory")
        while chunk := reader.read(piece):
            yield chunk

    tracemalloc.start()
    try:
        result = store.add(GeneratorReader(upload()))
        _, add_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        digest = sha256_of_pieces(store.read(result.root))
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.size == size
    assert digest == sha256_of_reader(KuboRandomReader(size, "memory"))
    assert add_peak < 32 * MiB, f"add peaked at {add_peak / MiB:.1f} MiB"
    assert read_peak < 32 * MiB, f"read peaked at {read_peak / MiB:.1f} MiB"


def test_a_sync_makes_every_pending_rename_durable_even_another_sessions(store, monkeypatch):
    """A fetch that fails leaves renames not yet synced; a later session that finds
    those blocks here (and reports them) must sync their directories too."""
    from cloudchain.blobs import store as store_module

    synced: list[Path] = []
    monkeypatch.setattr(store_module, "fsync_directory", synced.append)
    data = random_bytes(1000)
    cid = CID.for_data(data, 0x55, 1)
    with store.hold() as failed:  # stored, never synced: its fetch failed
        assert failed.put_block(cid, data, durable=False)
    assert synced == []
    with store.hold() as later:
        assert not later.put_block(cid, data, durable=False)  # already here
        later.sync()
    assert store._fs.path_of(key_of(cid)).parent in synced
    synced.clear()
    with store.hold() as again:
        again.sync()
    assert synced == []  # nothing left pending
