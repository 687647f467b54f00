"""The one varint implementation under both its rules: multiformats' unsigned varint
(CIDs, multihashes) and protobuf's (dag-pb, UnixFS).

Each former implementation's edge cases are here, run against the shared code,
and the cases where the two rules part are pinned on both sides, so that
neither decoder can loosen toward peer input unnoticed. The multiformats
vectors are in test_cid_multiformats.py, protobuf's through the reader in
test_cid_dagpb.py; those stay as they were.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloudchain.blobs.errors import DecodeError
from cloudchain.blobs.varint import (
    PROTOBUF_VARINT,
    UINT64_MAX,
    UNSIGNED_VARINT,
    UVARINT_MAX,
    VarintError,
    decode_uvarint,
    encode_uvarint,
)

RULES = [UNSIGNED_VARINT, PROTOBUF_VARINT]
BOTH = pytest.mark.parametrize("rules", RULES, ids=lambda r: r.name)


@BOTH
@given(value=st.integers(0, UVARINT_MAX), before=st.binary(max_size=3))
def test_round_trip_at_offset_gives_the_same_bytes_under_both_rules(rules, value, before):
    # Below 2**63 the two rules encode alike: a CID's varint and a dag-pb Tsize agree.
    encoded = encode_uvarint(value, rules)
    assert encoded == encode_uvarint(value)
    buf = before + encoded + b"\x01"
    assert decode_uvarint(buf, len(before), rules) == (value, len(before) + len(encoded))


@given(value=st.integers(UVARINT_MAX + 1, UINT64_MAX))
def test_protobuf_takes_the_64th_bit_in_a_tenth_byte(value):
    encoded = encode_uvarint(value, PROTOBUF_VARINT)
    assert len(encoded) == 10
    assert decode_uvarint(encoded, 0, PROTOBUF_VARINT) == (value, 10)


@pytest.mark.parametrize(
    "encoded, value, unsigned_error",
    [
        ("8100", 1, "non-minimal varint at byte 0"),  # padding: legal protobuf
        ("ff8000", 127, "non-minimal varint at byte 0"),
        ("80808080808080808000", 0, "longer than 9 bytes"),  # ten bytes for a zero
        ("ffffffffffffffffff00", UVARINT_MAX, "longer than 9 bytes"),  # 2**63 - 1, padded
        ("ffffffffffffffffff01", UINT64_MAX, "longer than 9 bytes"),  # 2**64 - 1
    ],
)
def test_where_the_rules_part_protobuf_accepts_and_unsigned_refuses(encoded, value, unsigned_error):
    data = bytes.fromhex(encoded)
    assert decode_uvarint(data, 0, PROTOBUF_VARINT) == (value, len(data))
    with pytest.raises(VarintError, match=unsigned_error):
        decode_uvarint(data, 0, UNSIGNED_VARINT)


@pytest.mark.parametrize(
    "encoded, rules, error",
    [
        # Input that ends inside the varint, under both rules.
        ("", UNSIGNED_VARINT, "truncated varint at byte 0"),
        ("", PROTOBUF_VARINT, "truncated varint at byte 0"),
        ("80", UNSIGNED_VARINT, "truncated"),
        ("ff", PROTOBUF_VARINT, "truncated"),
        ("ff80", UNSIGNED_VARINT, "truncated"),
        # Nine continuation bytes: too long for one, cut short for the other.
        ("ffffffffffffffffff", UNSIGNED_VARINT, "longer than 9 bytes"),
        ("ffffffffffffffffff", PROTOBUF_VARINT, "truncated"),
        ("80808080808080808001", UNSIGNED_VARINT, "longer than 9 bytes"),
        ("8080808080808080808001", PROTOBUF_VARINT, "longer than 10 bytes"),
        # Ten bytes whose value needs a 65th bit.
        ("ffffffffffffffffff7f", PROTOBUF_VARINT, "overflows 64 bits"),
        ("ffffffffffffffffff02", PROTOBUF_VARINT, "overflows 64 bits"),
    ],
)
def test_both_rules_refuse(encoded, rules, error):
    with pytest.raises(VarintError, match=error):
        decode_uvarint(bytes.fromhex(encoded), 0, rules)


@BOTH
def test_an_error_names_the_offset_where_the_varint_starts(rules):
    with pytest.raises(VarintError, match="truncated varint at byte 3"):
        decode_uvarint(b"\x00\x00\x00\x80\x80", 3, rules)
    with pytest.raises(VarintError, match="truncated varint at byte 7"):
        decode_uvarint(b"\x00", 7, rules)


@BOTH
def test_a_varint_error_is_a_decode_error(rules):
    # The protobuf reader's callers (dag-pb, UnixFS, traverse) catch DecodeError.
    with pytest.raises(DecodeError):
        decode_uvarint(b"\x80", 0, rules)


@BOTH
def test_memoryview_input_reads_as_bytes(rules):
    view = memoryview(b"\xff\xac\x02\x00")
    assert decode_uvarint(view, 1, rules) == (300, 3)


@pytest.mark.parametrize(
    "value, rules",
    [
        (-1, UNSIGNED_VARINT),
        (UVARINT_MAX + 1, UNSIGNED_VARINT),
        (-1, PROTOBUF_VARINT),
        (UINT64_MAX + 1, PROTOBUF_VARINT),
    ],
)
def test_encoding_refuses_a_value_out_of_range(value, rules):
    with pytest.raises(ValueError, match=f"{rules.name} out of range"):
        encode_uvarint(value, rules)
