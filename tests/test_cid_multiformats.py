"""Varints, base58btc, base32 and CIDs: published vectors, malformed input, round trips."""

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloudchain.blobs import CID, DAG_PB, RAW, CIDError
from cloudchain.blobs.errors import BlobFormatError
from cloudchain.blobs.multibase import (
    BASE32_ALPHABET,
    MultibaseError,
    decode_base32,
    decode_base58btc,
    encode_base32,
    encode_base58btc,
)
from cloudchain.blobs.varint import UVARINT_MAX, VarintError, decode_uvarint, encode_uvarint

EMPTY_SHA256 = hashlib.sha256(b"").digest()

# -- unsigned varint ---------------------------------------------------------

# https://github.com/multiformats/unsigned-varint README, "Examples".
VARINT_VECTORS = [
    (1, "01"),
    (127, "7f"),
    (128, "8001"),
    (255, "ff01"),
    (300, "ac02"),
    (16384, "808001"),
    (UVARINT_MAX, "ffffffffffffffff7f"),
]


@pytest.mark.parametrize("value, encoded", VARINT_VECTORS)
def test_varint_vectors(value, encoded):
    assert encode_uvarint(value).hex() == encoded
    assert decode_uvarint(bytes.fromhex(encoded)) == (value, len(encoded) // 2)


@pytest.mark.parametrize(
    "encoded, message",
    [
        ("", "truncated"),
        ("80", "truncated"),
        ("ff80", "truncated"),
        ("8100", "non-minimal"),
        ("ff8000", "non-minimal"),
        ("80808080808080808001", "longer than 9 bytes"),
    ],
)
def test_varint_rejects(encoded, message):
    with pytest.raises(VarintError, match=message):
        decode_uvarint(bytes.fromhex(encoded))


@pytest.mark.parametrize("value", [-1, UVARINT_MAX + 1])
def test_varint_encode_range(value):
    with pytest.raises(ValueError, match="out of range"):
        encode_uvarint(value)


@given(st.integers(0, UVARINT_MAX), st.binary(max_size=4), st.binary(max_size=4))
def test_varint_round_trip_at_offset(value, before, after):
    buf = before + encode_uvarint(value) + after
    assert decode_uvarint(buf, len(before)) == (value, len(buf) - len(after))


# -- base58btc and base32 --------------------------------------------------------

# draft-msporny-base58 ("The Base58 Encoding Scheme"), section 5 test vectors.
BASE58_VECTORS = [
    (b"Hello World!", "2NEpo7TZRRrLZSi2U"),
    (
        b"The quick brown fox jumps over the lazy dog.",
        "USm3fpXnKG5EUBx2ndxBDMPVciP5hGey2Jh4NDv6gmeo1LkMeiKrLJUUBk6Z",
    ),
    (bytes.fromhex("0000287fb4cd"), "11233QC4"),
    (b"", ""),
]

# RFC 4648 section 10, lower-cased and without padding as multibase writes it.
BASE32_VECTORS = [
    (b"", ""),
    (b"f", "my"),
    (b"fo", "mzxq"),
    (b"foo", "mzxw6"),
    (b"foob", "mzxw6yq"),
    (b"fooba", "mzxw6ytb"),
    (b"foobar", "mzxw6ytboi"),
]


@pytest.mark.parametrize("data, text", BASE58_VECTORS)
def test_base58btc_vectors(data, text):
    assert encode_base58btc(data) == text
    assert decode_base58btc(text) == data


@pytest.mark.parametrize("data, text", BASE32_VECTORS)
def test_base32_vectors(data, text):
    assert encode_base32(data) == text
    assert decode_base32(text) == data


@pytest.mark.parametrize("text, position", [("0", 0), ("abcO", 3), ("2NEpI", 4), ("l", 0)])
def test_base58btc_rejects_characters_outside_alphabet(text, position):
    with pytest.raises(MultibaseError, match=f"at position {position}"):
        decode_base58btc(text)


@pytest.mark.parametrize(
    "text, message",
    [
        ("MY", "invalid base32 character 'M'"),
        ("m1", "invalid base32 character '1'"),
        ("my======", "invalid base32 character '='"),
        ("m", "impossible length 1"),
        ("mzx", "impossible length 3"),
        ("mzxw6y", "impossible length 6"),
        ("mz", "non-zero trailing bits"),  # 'my' is the one encoding of b"f"
    ],
)
def test_base32_rejects(text, message):
    with pytest.raises(MultibaseError, match=message):
        decode_base32(text)


@given(st.binary(max_size=64))
def test_base58btc_round_trip(data):
    text = encode_base58btc(data)
    assert decode_base58btc(text) == data


@given(st.binary(max_size=64))
def test_base32_round_trip(data):
    text = encode_base32(data)
    assert set(text) <= set(BASE32_ALPHABET)
    assert decode_base32(text) == data


# -- CIDs --------------------------------------------------------------------

# (CIDv0, its CIDv1 in base32), each pair naming the same dag-pb block.
V0_V1_PAIRS = [
    # ipld/ipld specs/codecs/dag-pb/spec.md, "Zero-length blocks".
    (
        "QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n",
        "bafybeihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
    ),
    # ipfs/kubo test/sharness/t0114-gateway-subdomains/README.md: CIDv0 and CIDv0to1 of "hello\n".
    (
        "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN",
        "bafybeiffndsajwhk3lwjewwdxqntmjm4b5wxaaanokonsggenkbw6slwk4",
    ),
]


@pytest.mark.parametrize("v0, v1", V0_V1_PAIRS)
def test_cidv0_and_cidv1_name_the_same_digest(v0, v1):
    cid0, cid1 = CID.parse(v0), CID.parse(v1)
    assert (cid0.version, cid0.codec) == (0, DAG_PB)
    assert (cid1.version, cid1.codec) == (1, DAG_PB)
    assert cid0.digest == cid1.digest
    assert cid0.to_v1() == cid1
    assert cid1.to_v0() == cid0
    assert str(cid0) == v0
    assert str(cid1) == v1


def test_zero_length_block_cids_are_the_hash_of_nothing():
    # The dag-pb spec's CIDs of the empty block, and kubo's raw empty file
    # (t0040-add-and-cat.sh, "zero length file with raw-leaves").
    assert CID.for_data(b"", DAG_PB, 0) == CID.parse(V0_V1_PAIRS[0][0])
    raw = CID.parse("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
    assert raw == CID(1, RAW, EMPTY_SHA256)
    assert raw == CID.for_data(b"", RAW, 1)


def test_binary_forms():
    v0 = CID(0, DAG_PB, EMPTY_SHA256)
    assert v0.to_bytes() == b"\x12\x20" + EMPTY_SHA256
    assert v0.multihash == v0.to_bytes()
    assert v0.to_v1().to_bytes() == b"\x01\x70\x12\x20" + EMPTY_SHA256
    assert CID(1, RAW, EMPTY_SHA256).to_bytes() == b"\x01\x55\x12\x20" + EMPTY_SHA256
    for cid in (v0, v0.to_v1(), CID(1, RAW, EMPTY_SHA256)):
        assert CID.from_bytes(cid.to_bytes()) == cid


def test_other_text_forms_of_cidv1_parse_to_the_same_cid():
    cid = CID.parse(V0_V1_PAIRS[1][1])
    assert CID.parse("z" + encode_base58btc(cid.to_bytes())) == cid
    assert CID.parse(str(cid).upper()) == cid


def _v1_text(binary):
    return "b" + encode_base32(binary)


MALFORMED_CIDS = [
    ("", "empty CID"),
    (" QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n", "whitespace"),
    ("QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n\n", "whitespace"),
    ("QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1", "46 characters, not 45"),
    ("QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR10", "base58btc character '0' at position 45"),
    ("QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1nn", "46 characters, not 47"),
    ("f01701220", "unsupported multibase prefix 'f'"),
    ("mAXASIA", "unsupported multibase prefix 'm'"),
    ("bafybeihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvykU", "'U' at position 58"),
    ("bafybeihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxqu", "impossible length 54"),
    ("bafybeihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevte", "digest truncated: 27 of 32"),
    ("Bafybeihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", "lower-case characters"),
    ("b" + "a" * 200, "longer than 128 characters"),
    # kubo test/cli/add_test.go: "hello world" with Import.HashFunction=sha2-512.
    (
        "bafkrgqbqt3gerhas23vuzrapkdeqf4vu2dwxp3srdj6hvg6nhsug2tgyn6mj3u23yx7utftq3i2ckw2fwdh5qmhid"
        "5qf3t35yvkc5e5ottlw6",
        "unsupported multihash function 0x13",
    ),
    # kubo t0040-add-and-cat.sh: a file added with --hash=blake2b-256.
    (
        "bafk2bzaceaqcxw46uzkyd2jmczoogof6pnkqt4dpiv3pwkunsv4g5rkkmecie",
        "unsupported multihash function 0xb220",
    ),
    # ipld/ipld dag-cbor fixtures ("array-2"): a dag-cbor CID.
    ("bafyreihdb57fdysx5h35urvxz64ros7zvywshber7id6t6c6fek37jgyfe", "unsupported codec 0x71"),
    (_v1_text(b"\x02\x70\x12\x20" + EMPTY_SHA256), "unsupported CID version 2"),
    (_v1_text(b"\x01\x70\x12\x20" + EMPTY_SHA256 + b"\x00"), "1 trailing bytes"),
    (_v1_text(b"\x01\x70\x12\x1f" + EMPTY_SHA256[:31]), "declares a 31-byte digest"),
    (_v1_text(b"\x01\x70\x12"), "malformed multihash: truncated varint"),
    (_v1_text(b"\x01\xf0\x00\x12\x20" + EMPTY_SHA256), "non-minimal varint"),
    (_v1_text(b"\x12\x20" + EMPTY_SHA256), "a CIDv0 is never multibase-prefixed"),
    ("z" + encode_base58btc(b"\x01\x71\x12\x20" + EMPTY_SHA256), "unsupported codec 0x71"),
]


@pytest.mark.parametrize("text, message", MALFORMED_CIDS)
def test_malformed_cid_text_is_rejected_with_a_reason(text, message):
    with pytest.raises(CIDError, match=message):
        CID.parse(text)


def test_cid_error_is_a_value_error():
    assert issubclass(CIDError, BlobFormatError)
    assert issubclass(CIDError, ValueError)
    with pytest.raises(CIDError, match="must be a string"):
        CID.parse(b"Qm")


@pytest.mark.parametrize(
    "binary, message",
    [
        (b"", "empty binary CID"),
        (b"\x12\x20" + EMPTY_SHA256[:31], "unsupported CID version 18"),
        (b"\x00\x70\x12\x20" + EMPTY_SHA256, "unsupported CID version 0"),
        (b"\x01\x55\x12\x20" + EMPTY_SHA256[:8], "digest truncated: 8 of 32"),
        (b"\x01\x55\x13\x40" + bytes(64), "unsupported multihash function 0x13"),
        (b"\x01\x80", "malformed binary CID: truncated varint"),
    ],
)
def test_malformed_binary_cids_are_rejected(binary, message):
    with pytest.raises(CIDError, match=message):
        CID.from_bytes(binary)


@pytest.mark.parametrize(
    "version, codec, digest, message",
    [
        (2, DAG_PB, EMPTY_SHA256, "unsupported CID version 2"),
        (0, RAW, EMPTY_SHA256, "CIDv0 is always dag-pb"),
        (1, 0x71, EMPTY_SHA256, "unsupported codec 0x71"),
        (1, RAW, EMPTY_SHA256[:20], "must be 32 bytes, not 20"),
    ],
)
def test_invalid_cid_values_are_rejected(version, codec, digest, message):
    with pytest.raises(CIDError, match=message):
        CID(version, codec, digest)


def test_raw_cid_has_no_v0_form():
    with pytest.raises(CIDError, match="a raw CID has no CIDv0 form"):
        CID(1, RAW, EMPTY_SHA256).to_v0()


cids = st.builds(
    lambda version, raw, digest: CID(1 if raw else version, RAW if raw else DAG_PB, digest),
    st.sampled_from([0, 1]),
    st.booleans(),
    st.binary(min_size=32, max_size=32),
)


@given(cids)
def test_cid_text_and_binary_round_trip(cid):
    text = str(cid)
    assert CID.parse(text) == cid
    assert CID.from_bytes(cid.to_bytes()) == cid
    assert text.startswith("Qm") if cid.version == 0 else text.startswith("baf")
    assert len(text) == (46 if cid.version == 0 else 59)


@given(st.text(max_size=80))
def test_arbitrary_text_parses_or_raises_cid_error(text):
    try:
        cid = CID.parse(text)
    except CIDError:
        return
    assert CID.parse(str(cid)) == cid


@given(st.binary(max_size=48))
def test_arbitrary_bytes_parse_or_raise_cid_error(binary):
    try:
        cid = CID.from_bytes(binary)
    except CIDError:
        return
    assert cid.to_bytes() == binary
