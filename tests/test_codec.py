import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloudchain import codec

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=codec.INT_MIN, max_value=codec.INT_MAX)
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(values)
def test_round_trip_is_identity_on_canonical_bytes(value):
    data = codec.encode(value)
    assert codec.encode(codec.decode(data)) == data
    assert codec.thaw(codec.decode(data)) == codec.thaw(codec.freeze(value))


@given(st.dictionaries(st.text(max_size=8), st.integers(0, 100), min_size=2, max_size=6))
def test_key_order_does_not_change_the_encoding(mapping):
    reversed_mapping = dict(reversed(list(mapping.items())))
    assert codec.encode(mapping) == codec.encode(reversed_mapping)
    assert codec.hash_value(mapping) == codec.hash_value(reversed_mapping)


def test_keys_are_sorted_by_utf8_bytes():
    data = codec.encode({"b": 1, "a": 2, "é": 3, "Z": 4})
    assert list(msgpack.unpackb(data)) == ["Z", "a", "b", "é"]


@pytest.mark.parametrize("value", [1.5, {"a": 0.0}, [1, 2.0], float("nan")])
def test_floats_are_refused(value):
    with pytest.raises(codec.CodecError, match="float"):
        codec.encode(value)


def test_float_in_bytes_is_refused_on_decode():
    with pytest.raises(codec.CodecError, match="float"):
        codec.decode(msgpack.packb({"a": 1.0}))


@pytest.mark.parametrize(
    "value, message",
    [
        ({1: "x"}, "keys must be str"),
        (2**64, "outside"),
        (-(2**63) - 1, "outside"),
        ({1, 2}, "no canonical encoding"),
        (object(), "no canonical encoding"),
    ],
)
def test_unencodable_values_are_refused(value, message):
    with pytest.raises(codec.CodecError, match=message):
        codec.encode(value)


def test_unsorted_keys_are_not_canonical():
    raw = msgpack.packb({"b": 1, "a": 2})  # msgpack keeps insertion order
    with pytest.raises(codec.CodecError, match="canonical"):
        codec.decode(raw)


def test_non_minimal_integer_is_not_canonical():
    raw = b"\xcd\x00\x05"  # 5 as uint16; canonical is the one-byte fixint
    with pytest.raises(codec.CodecError, match="canonical"):
        codec.decode(raw)


@pytest.mark.parametrize(
    "raw",
    [b"", b"\xc1", b"\x92\x01", b"\x01\x02", b"\xd9\x05ab", b"\x81\x01\x02"],
    ids=["empty", "reserved", "truncated-array", "trailing", "truncated-str", "int-key"],
)
def test_malformed_bytes_are_refused(raw):
    with pytest.raises(codec.CodecError):
        codec.decode(raw)


def test_deep_nesting_is_refused_both_ways():
    deep = []
    for _ in range(codec.MAX_DEPTH + 2):
        deep = [deep]
    with pytest.raises(codec.CodecError, match="nested"):
        codec.encode(deep)
    with pytest.raises(codec.CodecError):
        codec.decode(b"\x91" * 5000 + b"\x90")


def test_oversized_input_is_refused_before_decoding():
    with pytest.raises(codec.CodecError, match="limit"):
        codec.decode(codec.encode(b"x" * 100), max_bytes=50)


def test_decoded_values_are_immutable():
    value = codec.decode(codec.encode({"a": [1, {"b": 2}]}))
    with pytest.raises(TypeError):
        value["a"] = 1
    assert isinstance(value["a"], tuple)
    with pytest.raises(TypeError):
        value["a"][1]["b"] = 3


def test_hash_is_sha256_of_encoding():
    import hashlib

    assert codec.hash_value({"x": 1}) == hashlib.sha256(codec.encode({"x": 1})).digest()


def test_object_bombs_are_refused_before_anything_is_built():
    # A million empty maps: a few MB on the wire, gigabytes as Python objects.
    empty_maps = b"\xdd" + (1 << 20).to_bytes(4, "big") + b"\x80" * (1 << 20)
    with pytest.raises(codec.CodecError, match="more than 1000 objects"):
        codec.decode(empty_maps, max_objects=1000)
    huge_claim = b"\xdd\xff\xff\xff\xff"  # an array claiming 4 billion items, holding none
    with pytest.raises(codec.CodecError, match="truncated"):
        codec.decode(huge_claim)


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"\xcb" + b"\x00" * 8, "float"),
        (b"\xca" + b"\x00" * 4, "float"),
        (b"\xd4\x01\x00", "extension or reserved"),
        (b"\xc7\x01\x01\x00", "extension or reserved"),
        (b"\xc4\x05ab", "truncated"),
        (b"\xc0\xc0", "trailing bytes"),
    ],
)
def test_shape_scan_refuses_what_canonical_encoding_never_produces(raw, message):
    with pytest.raises(codec.CodecError, match=message):
        codec.decode(raw)


def test_lone_surrogates_are_refused():
    with pytest.raises(codec.CodecError, match="surrogate"):
        codec.encode({"name": "\ud800"})
    with pytest.raises(codec.CodecError, match="surrogate"):
        codec.encode({"\ud800": 1})
