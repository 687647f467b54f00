"""Protobuf wire primitives, dag-pb and UnixFS: kubo's exact bytes, strict decoding, round trips."""

import contextlib
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloudchain.blobs import CID, DAG_PB, RAW, DecodeError
from cloudchain.blobs.dagpb import PBLink, PBNode, decode_pbnode, encode_pblink, encode_pbnode
from cloudchain.blobs.protobuf import (
    encode_len_field,
    encode_varint,
    encode_varint_field,
    iter_fields,
    read_varint,
)
from cloudchain.blobs.unixfs import (
    DataType,
    UnixFSData,
    decode_unixfs,
    encode_file_leaf,
    encode_unixfs,
)
from cloudchain.blobs.varint import UINT64_MAX

# The sha2-256 digest of kubo's leaf for 256 KiB of zeros, from the block dump of
# an all-zeros file's root in ethereum/solidity issue #8370 (2020-02-26).
ZERO_CHUNK_LEAF_DIGEST = bytes.fromhex(
    "328f549938f9ca71d855f81335f36dafa2a8ba0e8ec8595c583e08e2f70995f8"
)
ZERO_CHUNK_LEAF_TSIZE = 262158  # 262144 bytes + UnixFS and dag-pb framing

# -- protobuf wire format --------------------------------------------------------


@given(st.integers(0, UINT64_MAX), st.binary(max_size=3))
def test_protobuf_varint_round_trip(value, after):
    encoded = encode_varint(value)
    assert len(encoded) <= 10
    assert read_varint(encoded + after, 0) == (value, len(encoded))


@pytest.mark.parametrize(
    "encoded, message",
    [
        ("", "truncated"),
        ("ff", "truncated"),
        ("ffffffffffffffffff7f", "overflows 64 bits"),
        ("8080808080808080808001", "longer than 10 bytes"),
    ],
)
def test_protobuf_varint_rejects(encoded, message):
    with pytest.raises(DecodeError, match=message):
        read_varint(bytes.fromhex(encoded), 0)


def test_protobuf_varint_accepts_non_minimal_encodings():
    # Standard protobuf readers accept padding; only our encoder must not produce it.
    assert read_varint(bytes.fromhex("8100"), 0) == (1, 2)


@pytest.mark.parametrize(
    "message_hex, error",
    [
        ("09" + "00" * 8, "unsupported wire type I64 for field 1"),
        ("0d" + "00" * 4, "unsupported wire type I32 for field 1"),
        ("0b", "unsupported wire type SGROUP"),
        ("0a05abcd", "declares 5 bytes, only 2 remain"),
        ("00", "invalid field number 0"),
        ("08", "truncated varint"),
    ],
)
def test_protobuf_reader_rejects(message_hex, error):
    with pytest.raises(DecodeError, match=error):
        list(iter_fields(bytes.fromhex(message_hex)))


# -- UnixFS ------------------------------------------------------------------


def test_unixfs_file_leaf_bytes_are_kubos():
    # Type=File (08 02), Data (12 0c ...), filesize (18 0c): the block whose CID is
    # QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o (see test_cid.py).
    data = b"hello world\n"
    unixfs = encode_unixfs(UnixFSData(DataType.FILE, data, filesize=len(data)))
    assert unixfs == b"\x08\x02\x12\x0c" + data + b"\x18\x0c"
    assert encode_file_leaf(data) == b"\x0a\x12" + unixfs


def test_unixfs_empty_file_leaf_has_no_data_field():
    # The 6-byte block of QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH.
    assert encode_file_leaf(b"") == bytes.fromhex("0a0408021800")


def test_unixfs_internal_node_writes_blocksizes_unpacked_after_filesize():
    node = UnixFSData(DataType.FILE, filesize=262145, blocksizes=(262144, 1))
    assert encode_unixfs(node).hex() == "0802" + "18818010" + "20808010" + "2001"


@given(st.binary(max_size=3000))
def test_leaf_fast_path_equals_generic_encoding(chunk):
    data = chunk if chunk else None
    generic = encode_pbnode(
        PBNode(data=encode_unixfs(UnixFSData(DataType.FILE, data, filesize=len(chunk))))
    )
    assert encode_file_leaf(chunk) == generic


unixfs_nodes = st.builds(
    UnixFSData,
    type=st.sampled_from(DataType),
    data=st.none() | st.binary(max_size=64),
    filesize=st.none() | st.integers(0, UINT64_MAX),
    blocksizes=st.lists(st.integers(0, UINT64_MAX), max_size=6).map(tuple),
    hash_type=st.none() | st.integers(0, 2**20),
    fanout=st.none() | st.integers(0, 2**20),
    mode=st.none() | st.integers(0, 2**32 - 1),
    mtime=st.none() | st.binary(max_size=12),
)


@given(unixfs_nodes)
def test_unixfs_round_trip(node):
    encoded = encode_unixfs(node)
    assert decode_unixfs(encoded) == node
    assert encode_unixfs(decode_unixfs(encoded)) == encoded


def test_unixfs_decoder_accepts_packed_blocksizes_and_any_field_order():
    packed = bytes.fromhex("18818010" + "2204" + "80801001" + "0802")
    assert decode_unixfs(packed) == UnixFSData(
        DataType.FILE, filesize=262145, blocksizes=(262144, 1)
    )


def test_unixfs_decoder_skips_unknown_fields():
    assert decode_unixfs(bytes.fromhex("0802" + "4805" + "52026869")) == UnixFSData(DataType.FILE)


@pytest.mark.parametrize(
    "message_hex, error",
    [
        ("", "no Type"),
        ("1800", "no Type"),
        ("0806", "unknown UnixFS type 6"),
        ("08020802", "'type' appears more than once"),
        ("080218001801", "'filesize' appears more than once"),
        ("0802120161" + "120162", "'data' appears more than once"),
        ("0a0102", "field 1 has wrong wire type 2"),
        ("080210", "truncated varint"),
    ],
)
def test_unixfs_decoder_rejects(message_hex, error):
    with pytest.raises(DecodeError, match=error):
        decode_unixfs(bytes.fromhex(message_hex))


# -- dag-pb ------------------------------------------------------------------


def test_dagpb_link_bytes_are_kubos():
    # A link as kubo writes it, copied from the all-zeros root block dump in
    # ethereum/solidity#8370: Hash (0a 22 <CIDv0>), Name "" (12 00), Tsize (18 ...).
    link = PBLink(CID(0, DAG_PB, ZERO_CHUNK_LEAF_DIGEST), "", ZERO_CHUNK_LEAF_TSIZE)
    expected = "122a" + "0a221220" + ZERO_CHUNK_LEAF_DIGEST.hex() + "1200" + "188e8010"
    assert encode_pbnode(PBNode((link,))).hex() == expected


def test_dagpb_writes_links_before_data():
    link = PBLink(CID(1, RAW, bytes(32)), "", 5)
    encoded = encode_pbnode(PBNode((link, link), b"\x08\x02"))
    fields = [number for number, _, _ in iter_fields(encoded)]
    assert fields == [2, 2, 1]
    assert encoded.endswith(b"\x0a\x02\x08\x02")


def test_dagpb_zero_length_block():
    # ipld/ipld dag-pb spec, "Zero-length blocks": valid, no Data, no Links.
    assert decode_pbnode(b"") == PBNode((), None)
    assert encode_pbnode(PBNode()) == b""
    assert str(CID.for_data(b"", DAG_PB, 0)) == "QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n"


def test_dagpb_decoder_accepts_data_before_links():
    link = PBLink(CID(0, DAG_PB, bytes(32)), "a", 7)
    canonical = encode_pbnode(PBNode((link,), b"xyz"))
    data_first = encode_len_field(1, b"xyz") + encode_len_field(2, encode_pblink(link))
    assert decode_pbnode(data_first) == decode_pbnode(canonical) == PBNode((link,), b"xyz")
    assert encode_pbnode(decode_pbnode(data_first)) == canonical


HASH = encode_len_field(1, CID(0, DAG_PB, bytes(32)).to_bytes())


@pytest.mark.parametrize(
    "block, error",
    [
        (encode_len_field(1, b"a") + encode_len_field(1, b"b"), "more than one Data"),
        (encode_varint_field(1, 5), "unexpected field 1 \\(wire type 0\\)"),
        (encode_len_field(3, b""), "unexpected field 3"),
        (encode_len_field(2, encode_len_field(2, b"n") + HASH), "field 1 out of order"),
        (encode_len_field(2, HASH + HASH), "field 1 out of order"),
        (
            encode_len_field(2, HASH + encode_varint_field(3, 1) + encode_len_field(2, b"")),
            "field 2 out of order",
        ),
        (encode_len_field(2, encode_len_field(2, b"name")), "link 0 has no Hash"),
        (
            encode_len_field(2, encode_len_field(1, b"\x01\x71\x12\x20" + bytes(32))),
            "Hash is not a usable CID: unsupported codec 0x71",
        ),
        (encode_len_field(2, encode_len_field(1, b"garbage")), "Hash is not a usable CID"),
        (encode_len_field(2, HASH + encode_len_field(2, b"\xff")), "Name is not UTF-8"),
        (encode_len_field(2, HASH + encode_varint_field(4, 1)), "unexpected field 4"),
        (encode_len_field(2, HASH + encode_len_field(3, b"")), "unexpected field 3"),
        (encode_len_field(2, HASH)[:-1], "declares 36 bytes, only 35 remain"),
    ],
)
def test_dagpb_decoder_rejects(block, error):
    with pytest.raises(DecodeError, match=error):
        decode_pbnode(block)


links = st.builds(
    PBLink,
    cid=st.builds(
        lambda raw, v0, digest: (
            CID(0, DAG_PB, digest) if v0 and not raw else CID(1, RAW if raw else DAG_PB, digest)
        ),
        st.booleans(),
        st.booleans(),
        st.binary(min_size=32, max_size=32),
    ),
    name=st.none() | st.text(max_size=12),
    tsize=st.none() | st.integers(0, UINT64_MAX),
)
pbnodes = st.builds(
    PBNode,
    links=st.lists(links, max_size=5).map(tuple),
    data=st.none() | st.binary(max_size=64),
)


@given(pbnodes)
def test_dagpb_round_trip(node):
    encoded = encode_pbnode(node)
    assert decode_pbnode(encoded) == node
    assert encode_pbnode(decode_pbnode(encoded)) == encoded


@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_decode_error(blob):
    for decode in (decode_pbnode, decode_unixfs):
        with contextlib.suppress(DecodeError):
            decode(blob)


def test_kubo_leaf_decodes_to_its_chunk():
    leaf = encode_file_leaf(bytes(262144))
    assert len(leaf) == ZERO_CHUNK_LEAF_TSIZE
    assert hashlib.sha256(leaf).digest() == ZERO_CHUNK_LEAF_DIGEST
    unixfs = decode_unixfs(decode_pbnode(leaf).data)
    assert unixfs == UnixFSData(DataType.FILE, bytes(262144), filesize=262144)
