"""The importer against `ipfs add`: published CIDs, DAG shape at the edge sizes, streaming.

Every expected CID below was printed by kubo (go-ipfs) or checked against it by
the project named in its comment; none was produced by this code. Large inputs
are generated, never stored: files of zeros, and kubo's own deterministic
generator (ChaCha20 keyed by SHA-256 of a seed, `test/cli/testutils`).
"""

import hashlib
import io
import itertools
import os
import tracemalloc

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from hypothesis import given
from hypothesis import strategies as st

from cloudchain.blobs import (
    CID,
    CID_V1_OPTIONS,
    DAG_PB,
    RAW,
    BlockMismatchError,
    DecodeError,
    FileImporter,
    ImportOptions,
    decode_file_node,
    hash_stream,
    import_bytes,
    import_stream,
    iter_file,
)
from cloudchain.blobs.dagpb import PBLink, PBNode, decode_pbnode, encode_pbnode
from cloudchain.blobs.unixfs import DataType, UnixFSData, decode_unixfs, encode_unixfs
from cloudchain.blobs.walk import MAX_DAG_DEPTH

KiB = 1024
MiB = 1024 * KiB
CHUNK = 256 * KiB
V0 = ImportOptions()
V1 = CID_V1_OPTIONS  # `ipfs add --cid-version=1`: raw leaves, CIDv1
RAW_LEAVES = ImportOptions(raw_leaves=True)  # `ipfs add --raw-leaves`
V1_PB_LEAVES = ImportOptions(cid_version=1, raw_leaves=False)
ALL_MODES = [V0, V1, RAW_LEAVES, V1_PB_LEAVES]


class ZeroReader:
    """`size` zero bytes, at most `read_max` per read (short reads, like a pipe)."""

    def __init__(self, size, read_max=None):
        self.left = size
        self.read_max = read_max

    def read(self, n=-1):
        n = self.left if n < 0 else min(n, self.left)
        if self.read_max is not None:
            n = min(n, self.read_max)
        self.left -= n
        return bytes(n)


class KuboRandomReader:
    """kubo's `DeterministicRandomReader(size, seed)` from test/cli/testutils:
    the ChaCha20 key stream, key SHA-256(seed), zero 96-bit nonce, counter 0."""

    def __init__(self, size, seed):
        key = hashlib.sha256(seed.encode()).digest()
        self.cipher = Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()
        self.left = size

    def read(self, n=-1):
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return self.cipher.update(bytes(n))


def store_of(stream):
    """Run an import, keeping each distinct block: {cid: bytes}."""
    return {block.cid: block.data for block in stream}


# -- published vectors -------------------------------------------------------------

SMALL_VECTORS = [
    # The example, and the published v1 raw leaf of the same bytes.
    (b"hello world\n", V0, "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"),
    (b"hello world\n", V1, "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"),
    # kubo test/sharness/t0040-add-and-cat.sh.
    (b"", V0, "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"),
    (b"", RAW_LEAVES, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"),
    (b"Hello Worlds!\n", V0, "QmVr26fY1tKyspEJBniVhqxQeEjhF78XerGiqWAwraVLQH"),
    (b"Helloo Worlds!\n", V0, "Qmf35k66MZNW2GijohUmXQEWKZU4cCGTCwK6idfnt152wJ"),
    (b"IPFS\n", V0, "QmdFyxZXsFiP4csgfM5uPu99AvFiKH62CSPDw5TP92nr7w"),
    (b"Hello Jupiter!\n", V0, "QmUnvPcBctVTAcJpigv6KMqDvmDewksPWrNVoy1E1WP5fh"),
    (b"Hello Neptune!\nHello Pluton!", V0, "QmZDhWpi8NvKrekaYYhxKCdNVGWsFFe1CREnAjP1QbPaB3"),
    (b"Hello Mars!\n", V0, "QmPrrHqJzto9m7SyiRzarwkqPcCSsKR2EB1AyqJfe8L8tN"),
    (b"Hello Mars!\n", RAW_LEAVES, "bafkreibmlvvgdyihetgocpof6xk64kjjzdeq2e4c7hqs3krdheosk4tgj4"),
    (b"Hello Mars!\n", V1, "bafkreibmlvvgdyihetgocpof6xk64kjjzdeq2e4c7hqs3krdheosk4tgj4"),
    (b"Hello Mars!\n", V1_PB_LEAVES, "bafybeiawta2ntdmsy24aro35w3homzl4ak7svr3si7l7gesvq4erglyye4"),
    (b"Hello Venus!\n", V0, "QmU5kp3BH3B8tnWUU2Pikdb2maksBNkb92FHRr56hyghh4"),
    (b"Hello Venus!\n", V1, "bafkreihfsphazrk2ilejpekyltjeh5k4yvwgjuwg26ueafohqioeo3sdca"),
    (
        b"Hello Venus!\n",
        V1_PB_LEAVES,
        "bafybeicvkvhs2fr75ynebtdjqpgm4g2fc63abqbmysupwpmcjl4gx7mzrm",
    ),
    # kubo test/cli/add_test.go ("hello world" without a newline).
    (b"hello world", V0, "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"),
    (b"hello world", V1, "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"),
    (b"hello world", V1_PB_LEAVES, "bafybeihykld7uyxzogax6vgyvag42y7464eywpf55gxi5qpoisibh3c5wa"),
    # kubo test/sharness/t0114-gateway-subdomains/README.md.
    (b"hello\n", V0, "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN"),
    (b"hello\n", V1, "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"),
    # ethereum/solidity test/libsolutil/IpfsHash.cpp (checked against go-ipfs).
    (b"x", V0, "QmULKig5Fxrs2sC4qt9nNduucXfb92AFYQ6Hi3YRqDmrYC"),
    (b"Solidity\n", V0, "QmSsm9M7PQRBnyiz1smizk8hZw3URfk8fSeHzeTo3oZidS"),
    # ipld/js-unixfs test/file.spec.js: "basic file" and "write empty with defaults"
    # (its defaults are CIDv1 with dag-pb leaves).
    (
        b"this file does not have much content\n",
        V1_PB_LEAVES,
        "bafybeidequ5soq6smzafv4lb76i5dkvl5fzgvrxz4bmlc2k4dkikklv2j4",
    ),
    (b"", V1_PB_LEAVES, "bafybeif7ztnhq65lumvvtr4ekcwd2ifwgm3awq4zfr3srh462rwyinlb4y"),
]


@pytest.mark.parametrize("data, options, expected", SMALL_VECTORS)
def test_small_file_vectors(data, options, expected):
    blocks, result = import_bytes(data, options)
    assert str(result.root) == expected
    assert result.size == len(data)
    # A file of at most one chunk is a single block: the leaf is the root.
    assert [block.cid for block in blocks] == [result.root]
    assert result.dag_size == len(blocks[0].data)


# ethereum/solidity test/libsolutil/IpfsHash.cpp: all-zero files, checked against
# go-ipfs. 262144 is derived from the leaf digest in the all-zeros root block
# dumped in ethereum/solidity#8370 (see test_cid_dagpb.py).
ZERO_VECTORS = [
    (200, "QmSXR1N23uWzsANi8wpxMPw5dmmhqBVUAb4hUrHVLpNaMr"),
    (10250, "QmVJJBB3gKKBWYC9QTywpH8ZL1bDeTDJ17B63Af5kino9i"),
    (100000, "QmYgKa25YqEGpQmmZtPPFMNK3kpqqneHk6nMSEUYryEX1C"),
    (121071, "QmdMdRshQmqvyc92N82r7AKYdUF5FRh4DJo6GtrmEk3wgj"),
    (131071, "QmSxYSToKHsPqqRdRnsM9gmr3EYS6dakhVaHgbFdgYQWi6"),
    (CHUNK - 1, "QmbNDspMkzkMFKyS3eCJGedG7GWRQHSCzJCZLjxP7wyVAx"),  # largest unchunked
    (CHUNK, "QmRk1rduJvo5DfEYAaLobS2za9tDszk35hzaNSDCJ74DA7"),  # exactly one chunk
    (CHUNK + 1, "QmbVuw4C4vcmVKqxoWtgDVobvcHrSn51qsmQmyxjk4sB2Q"),  # smallest chunked
    (1310710, "QmNg7BJo8gEMDK8yGQbHEwPtycesnE6FUULX5iVd5TAL9f"),
    (174 * CHUNK, "QmY4HSz1oVGdUzb8poVYPLsoqBZjH6LZrtgnme9wWn2Qko"),  # largest one level
    (174 * CHUNK + 1, "QmehMASWcBsX7VcEQqs6rpR5AHoBfKyBVEgmkJHjpPg8jq"),  # smallest two levels
    (178 * CHUNK, "QmaTb1sT9hrSXJLmf8bxJ9NuwndiHuMLsgNLgkS2eXu3Xj"),
]


@pytest.mark.parametrize("size, expected", ZERO_VECTORS)
def test_zero_file_vectors(size, expected):
    assert str(hash_stream(ZeroReader(size)).root) == expected


# kubo test/cli/cid_profiles_test.go and add_test.go: files of kubo's deterministic
# random bytes (size as humanize parses it, seed) and the CIDs kubo prints for them.
KUBO_RANDOM_VECTORS = [
    # unixfs-v0-2015 profile = kubo's defaults: 174 chunks, then 175.
    (44544 * KiB, "v0-seed", V0, "QmUbBALi174SnogsUzLpYbD4xPiBSFANF4iztWCsHbMKh2"),
    (44800 * KiB, "v0-seed", V0, "QmepeWtdmS1hHXx1oZXsPUv6bMrfRRKfZcoPPU4eEfjnbf"),
    # legacy-cid-v0 with --max-file-links 1024: 1024 chunks under one node.
    (
        262144 * KiB,
        "hello world",
        ImportOptions(max_links=1024),
        "QmbBftNHWmjSWKLC49dMVrfnY8pjrJYntiAXirFJ7oJrNk",
    ),
    # test-cid-v1 profile: CIDv1, raw leaves, 1 MiB chunks, 174 links.
    (
        174 * MiB,
        "v1-seed",
        ImportOptions(cid_version=1, chunk_size=MiB),
        "bafybeigwduxcf2aawppv3isnfeshnimkyplvw3hthxjhr2bdeje4tdaicu",
    ),
    (
        175 * MiB,
        "v1-seed",
        ImportOptions(cid_version=1, chunk_size=MiB),
        "bafybeidhd7lo2n2v7lta5yamob3xwhbxcczmmtmhquwhjesi35jntf7mpu",
    ),
]

# unixfs-v1-2025 profile: CIDv1, raw leaves, 1 MiB chunks, 1024 links; 1 GiB each,
# so only with CLOUDCHAIN_LARGE_VECTORS=1 (about a second each with SHA-NI).
KUBO_RANDOM_GIB_VECTORS = [
    (
        1024 * MiB,
        "v1-2025-seed",
        ImportOptions(cid_version=1, chunk_size=MiB, max_links=1024),
        "bafybeihmf37wcuvtx4hpu7he5zl5qaf2ineo2lqlfrapokkm5zzw7zyhvm",
    ),
    (
        1025 * MiB,
        "v1-2025-seed",
        ImportOptions(cid_version=1, chunk_size=MiB, max_links=1024),
        "bafybeihmzokxxjqwxjcryerhp5ezpcog2wcawfryb2xm64xiakgm4a5jue",
    ),
]


@pytest.mark.parametrize("size, seed, options, expected", KUBO_RANDOM_VECTORS)
def test_kubo_deterministic_random_vectors(size, seed, options, expected):
    assert str(hash_stream(KuboRandomReader(size, seed), options).root) == expected


@pytest.mark.skipif(
    not os.environ.get("CLOUDCHAIN_LARGE_VECTORS"),
    reason="1 GiB inputs; set CLOUDCHAIN_LARGE_VECTORS=1",
)
@pytest.mark.parametrize("size, seed, options, expected", KUBO_RANDOM_GIB_VECTORS)
def test_kubo_deterministic_random_gib_vectors(size, seed, options, expected):
    assert str(hash_stream(KuboRandomReader(size, seed), options).root) == expected


def test_kubo_random_reader_matches_kubos_chacha20():
    # RFC 8439 section 2.3.2's block function test: key 00..1f, counter 1, nonce
    # 000000090000004a00000000. Our reader runs the same cipher from counter 0.
    key = bytes(range(32))
    nonce = (1).to_bytes(4, "little") + bytes.fromhex("000000090000004a00000000")
    stream = Cipher(algorithms.ChaCha20(key, nonce), mode=None).encryptor().update(bytes(16))
    assert stream.hex() == "10f1e7e4d13b5915500fdd1fa32071c4"


# cpp-filecoin test/core/storage/unixfs/go/unixfs_test.go: go-unixfs balanced.Layout
# with RawLeaves (kubo's `--raw-leaves`) and tiny chunks, so the DAG has several levels.
FILECOIN_VECTORS = [
    (b"[0     9)", 10, 2, "bafkreieqjdswwovkokzitxxsn4ppswzzsy2qs623duz5ivjhplglbygbou"),
    (b"[0     10)", 10, 2, "bafkreiaymswyg525nktwb75n53rcwdqvjbfjgi5nu4glriglylthbnuxnu"),
    (b"[0     10)[10   19)", 10, 2, "QmUyaoLFxpUpZra4qs65dMbrBMEERJt91JL3kdyKEXqLxN"),
    (b"[0     10)[10     21)", 10, 2, "QmZ9KupPPphsds2Cbu7Ntb73tUHbyrZEgJisHMmw9AUfQP"),
    (b"[0     10)[10    20)[10    30)", 10, 2, "QmSYvtzqeJY6zCRk31SdRweDD6z1bwP9GJY5bmKQ55XwWp"),
    (b"[0     10)[10    20)[10     31)", 10, 2, "QmZ2Be9hJQhifpgASmQTGkL7j9KUaJC5W9siL6MnFSkLhd"),
    (b"[0     10)[10    20)[10    30)", 5, 3, "QmYb4gZGCAkRdNZbc5npDzLJA34ZzPtdVDmESb9Xk76Ws2"),
]


@pytest.mark.parametrize("data, chunk_size, max_links, expected", FILECOIN_VECTORS)
def test_go_unixfs_raw_leaves_vectors(data, chunk_size, max_links, expected):
    options = ImportOptions(raw_leaves=True, chunk_size=chunk_size, max_links=max_links)
    blocks, result = import_bytes(data, options)
    assert str(result.root) == expected
    assert b"".join(iter_file(result.root, {b.cid: b.data for b in blocks}.__getitem__)) == data


def test_js_unixfs_three_chunks_vector():
    # ipld/js-unixfs test/file.spec.js "splits into 3 chunks" (CIDv1, dag-pb leaves).
    data = bytes([1]) * CHUNK + bytes([2]) * CHUNK + bytes([3]) * CHUNK
    blocks, result = import_bytes(data, V1_PB_LEAVES)
    assert [str(block.cid) for block in blocks] == [
        "bafybeihhsdoupgd3fnl3e3367ymsanmikafpllldsdt37jzyoh6nuatowe",
        "bafybeief3dmadxfymhhhrflqytqmlhlz47w6glaxvyzmm6s6tpfb6izzee",
        "bafybeihznihf5g5ibdyoawn7uu3inlyqrxjv63lt6lop6h3w6rzwrp67a4",
        "bafybeiegda62p2cdi5sono3h3hqjnxwc56z4nocynrj44rz7rtc2p246cy",
    ]
    assert (result.size, result.dag_size) == (786432, 786632)


def test_js_unixfs_odd_chunk_size_vector():
    # ipld/js-unixfs test/file.spec.js
    # "--chunker=size-65535 --trickle=false --raw-leaves=false --cid-version=1".
    chunk_size = 65535
    size = round(chunk_size * 2.2)
    frame = round(size / 10)
    data = b"".join(
        bytes([n + 1]) * min(frame, size - offset) for n, offset in enumerate(range(0, size, frame))
    )
    _, result = import_bytes(data, ImportOptions(1, False, chunk_size=chunk_size))
    assert str(result.root) == "bafybeiduffmtppi4cwa6olo3ggmoehvtdtcd47y6ddoodhyvcv7y3zvgnq"
    assert (result.size, result.dag_size) == (144177, 144372)


# -- the shape of the DAG --------------------------------------------------------


def check_dag(root, store, options):
    """Check every node of the DAG under `root`; return (leaves, depth, nodes per level).

    Verifies each block against its CID, Tsize = own bytes + children's Tsizes,
    blocksizes = children's file sizes, filesize = their sum, links <= max_links,
    every leaf at the same depth, and leaves of the kind the options ask for.
    """
    levels = {}
    leaf_depths = set()

    def visit(cid, depth):
        data = store[cid]
        assert hashlib.sha256(data).digest() == cid.digest
        levels[depth] = levels.get(depth, 0) + 1
        if cid.codec == RAW:
            assert options.use_raw_leaves
            leaf_depths.add(depth)
            return len(data), len(data)
        node = decode_pbnode(data)
        unixfs = decode_unixfs(node.data)
        assert unixfs.type == DataType.FILE
        assert cid.version == options.cid_version
        if not node.links:
            assert not options.use_raw_leaves or unixfs.filesize == 0
            leaf_depths.add(depth)
            assert unixfs.filesize == len(unixfs.data or b"")
            return len(data), unixfs.filesize
        assert unixfs.data is None
        assert 1 <= len(node.links) <= options.max_links
        tsize_total, filesizes = len(data), []
        for link in node.links:
            assert link.name == ""
            child_tsize, child_filesize = visit(link.cid, depth + 1)
            assert link.tsize == child_tsize
            tsize_total += child_tsize
            filesizes.append(child_filesize)
        assert list(unixfs.blocksizes) == filesizes
        assert unixfs.filesize == sum(filesizes)
        return tsize_total, unixfs.filesize

    visit(root, 0)
    assert len(leaf_depths) == 1, "a balanced DAG has every leaf at the same depth"
    depth = leaf_depths.pop()
    return levels[depth], depth, [levels[d] for d in range(depth + 1)]


def expected_shape(size, options):
    """Leaves, depth and nodes per level (root first) of kubo's balanced layout."""
    leaves = max(1, -(-size // options.chunk_size))
    per_level = [leaves]
    while per_level[-1] > 1:
        per_level.append(-(-per_level[-1] // options.max_links))
    return leaves, len(per_level) - 1, per_level[::-1]


EDGE_SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 174 * CHUNK, 174 * CHUNK + 1]


@pytest.mark.parametrize("options", [V0, V1], ids=["cidv0", "cidv1"])
@pytest.mark.parametrize("size", EDGE_SIZES)
def test_edge_size_dag_shape(size, options):
    stream = import_stream(ZeroReader(size), options)
    store = store_of(stream)
    result = stream.result
    assert check_dag(result.root, store, options) == expected_shape(size, options)
    assert result.size == size
    assert result.leaves == max(1, -(-size // CHUNK))
    root = decode_file_node(result.root, store[result.root])
    assert root.filesize == size


def test_one_chunk_file_is_its_leaf():
    for size in (1, CHUNK):
        for options in (V0, V1):
            blocks, result = import_bytes(bytes(size), options)
            assert len(blocks) == 1
            assert result.root == blocks[0].cid
            assert result.root.codec == (RAW if options is V1 else DAG_PB)


def test_one_chunk_plus_one_byte():
    blocks, result = import_bytes(bytes(CHUNK + 1))
    root = decode_pbnode(blocks[-1].data)
    assert [link.tsize for link in root.links] == [262158, 9]
    assert decode_unixfs(root.data).blocksizes == (CHUNK, 1)
    assert result.dag_size == len(blocks[-1].data) + 262158 + 9


def test_174_chunks_then_one_more_byte_adds_a_level():
    store = store_of(import_stream(ZeroReader(174 * CHUNK + 1)))
    root = CID.parse("QmehMASWcBsX7VcEQqs6rpR5AHoBfKyBVEgmkJHjpPg8jq")
    full, rest = decode_pbnode(store[root]).links
    assert len(decode_pbnode(store[full.cid]).links) == 174
    (last,) = decode_pbnode(store[rest.cid]).links
    assert decode_file_node(last.cid, store[last.cid]).data == b"\x00"


def test_root_of_a_multi_chunk_file_is_the_last_block():
    blocks, result = import_bytes(bytes(3 * CHUNK), V1)
    assert blocks[-1].cid == result.root
    assert result.blocks == 4  # three identical raw leaves, one root
    assert result.leaves == 3


small_options = st.builds(
    ImportOptions,
    cid_version=st.sampled_from([0, 1]),
    raw_leaves=st.sampled_from([None, True, False]),
    chunk_size=st.integers(1, 40),
    max_links=st.integers(2, 5),
)


@given(st.binary(max_size=1500), small_options)
def test_any_file_gives_a_balanced_dag_that_reads_back(data, options):
    blocks, result = import_bytes(data, options)
    store = {block.cid: block.data for block in blocks}
    assert check_dag(result.root, store, options) == expected_shape(len(data), options)
    assert b"".join(iter_file(result.root, store.__getitem__)) == data
    # Every block comes after the blocks it links to; the root comes last.
    seen = set()
    for block in blocks:
        if block.cid.codec == DAG_PB:
            assert all(link.cid in seen for link in decode_pbnode(block.data).links)
        seen.add(block.cid)
    assert blocks[-1].cid == result.root


@given(st.binary(max_size=1500), small_options, st.lists(st.integers(0, 1500), max_size=12))
def test_any_split_into_reads_gives_the_same_blocks(data, options, cuts):
    expected_blocks, expected = import_bytes(data, options)
    importer = FileImporter(options)
    blocks = []
    bounds = [0, *sorted(cut % (len(data) + 1) for cut in cuts), len(data)]
    for start, end in itertools.pairwise(bounds):
        blocks += importer.add(data[start:end])
    blocks += importer.finish()
    assert blocks == expected_blocks
    assert importer.result == expected


@given(st.binary(max_size=600), small_options, st.integers(1, 50))
def test_short_reads_give_the_same_result(data, options, read_max):
    class ShortReader(io.BytesIO):
        def read(self, n=-1):
            return super().read(min(n, read_max))

    stream = import_stream(ShortReader(data), options)
    blocks = list(stream)
    assert (blocks, stream.result) == import_bytes(data, options)


def test_memory_stays_bounded_for_a_large_stream():
    size = 64 * MiB
    tracemalloc.start()
    try:
        result = hash_stream(ZeroReader(size))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.size == size
    assert peak < 16 * CHUNK  # a few chunks in flight, never the file


# -- misuse and malformed DAGs -------------------------------------------------------


def test_importer_misuse_is_reported():
    importer = FileImporter()
    with pytest.raises(RuntimeError, match="not finished"):
        _ = importer.result
    importer.finish()
    with pytest.raises(RuntimeError, match="cannot add"):
        importer.add(b"x")
    with pytest.raises(RuntimeError, match="already finished"):
        importer.finish()
    stream = import_stream(io.BytesIO(b"abc"))
    list(stream)
    with pytest.raises(RuntimeError, match="only once"):
        list(stream)


def test_non_blocking_reader_is_refused():
    class NonBlocking:
        def read(self, n=-1):
            return None

    with pytest.raises(ValueError, match="non-blocking"):
        list(import_stream(NonBlocking()))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"cid_version": 2}, "unknown CID version"),
        ({"chunk_size": 0}, "chunk size"),
        ({"chunk_size": MiB + 1}, "chunk size"),
        ({"max_links": 1}, "max links"),
    ],
)
def test_import_options_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ImportOptions(**kwargs)


def _pb_block(links, unixfs, version=0):
    data = encode_pbnode(PBNode(tuple(links), encode_unixfs(unixfs)))
    return CID.for_data(data, DAG_PB, version), data


def test_walk_rejects_a_block_that_does_not_match_its_cid():
    blocks, result = import_bytes(bytes(3 * 10), ImportOptions(chunk_size=10))
    store = {block.cid: block.data for block in blocks}
    leaf = blocks[0].cid
    store[leaf] = store[leaf].replace(b"\x00", b"\x01", 1)
    with pytest.raises(BlockMismatchError, match="does not hash to"):
        b"".join(iter_file(result.root, store.__getitem__))


def test_walk_rejects_a_parent_that_misstates_a_child_size():
    leaf = CID.for_data(b"abc", RAW, 1)
    root, data = _pb_block(
        [PBLink(leaf, "", 3)], UnixFSData(DataType.FILE, filesize=4, blocksizes=(4,))
    )
    store = {leaf: b"abc", root: data}
    with pytest.raises(DecodeError, match="holds 3 bytes of file, its parent says 4"):
        list(iter_file(root, store.__getitem__))


@pytest.mark.parametrize(
    "unixfs, links, message",
    [
        (UnixFSData(DataType.DIRECTORY), 0, "DIRECTORY node, not a file"),
        (UnixFSData(DataType.FILE, filesize=3, blocksizes=()), 1, "1 links but 0 blocksizes"),
        (
            UnixFSData(DataType.FILE, b"ab", filesize=5, blocksizes=(2,)),
            1,
            "filesize 5 but data and blocksizes add to 4",
        ),
    ],
)
def test_walk_rejects_nodes_that_are_not_well_formed_files(unixfs, links, message):
    leaf = CID.for_data(b"ab", RAW, 1)
    cid, data = _pb_block([PBLink(leaf, "", 2)] * links, unixfs)
    with pytest.raises(DecodeError, match=message):
        decode_file_node(cid, data)


def test_walk_rejects_dag_pb_without_unixfs_data():
    cid = CID.for_data(b"", DAG_PB, 0)
    with pytest.raises(DecodeError, match="without UnixFS Data"):
        decode_file_node(cid, b"")


def test_walk_bounds_the_depth_of_a_dag():
    store = {}
    child = CID.for_data(b"x", RAW, 1)
    store[child] = b"x"
    for _ in range(MAX_DAG_DEPTH + 1):
        unixfs = UnixFSData(DataType.FILE, filesize=1, blocksizes=(1,))
        child, data = _pb_block([PBLink(child, "", 1)], unixfs)
        store[child] = data
    with pytest.raises(DecodeError, match=f"deeper than {MAX_DAG_DEPTH} levels"):
        list(iter_file(child, store.__getitem__))
