"""The fast decoder's verdicts are the old decoder's (tests/helpers/codec_oracle.py).

`codec.decode` proves bytes canonical in its header scan instead of re-encoding the
decoded value. Here both decoders see the same inputs: canonical encodings of
random values, random mutations of them, encodings msgpack allows but `encode`
never produces (other key orders, duplicate keys, wider integers and lengths,
floats, extensions, non-string keys) and random bytes. They must accept and refuse
the same inputs, and decode what they accept to the same value.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cloudchain import codec
from tests.helpers import codec_oracle

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=codec.INT_MIN, max_value=codec.INT_MAX)
    | st.sampled_from([0, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, codec.INT_MAX])
    | st.sampled_from([-1, -32, -33, -128, -129, -(2**15), -(2**15) - 1, -(2**31) - 1])
    | st.text(max_size=40)
    | st.binary(max_size=40),
    lambda children: (
        st.lists(children, max_size=18)
        | st.dictionaries(st.text(max_size=6), children, max_size=18)
    ),
    max_leaves=40,
)

SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _verdict(decoder: Any, data: bytes, max_objects: int) -> tuple[bool, Any]:
    """(accepted, the value as plain data with its container types) or (False, None)."""
    try:
        value = decoder(data, max_objects=max_objects)
    except (codec.CodecError, codec_oracle.OracleRefusal):
        return False, None
    return True, _shape(value)


def _shape(value: Any) -> Any:
    """The value with each container's exact type, so tuples and read-only maps count."""
    if isinstance(value, Mapping):
        return (type(value), [(k, _shape(v)) for k, v in value.items()])
    if isinstance(value, tuple | list):
        return (type(value), [_shape(v) for v in value])
    return (type(value), value)


def assert_same_verdict(data: bytes, max_objects: int = codec.DEFAULT_MAX_OBJECTS) -> bool:
    new = _verdict(codec.decode, data, max_objects)
    old = _verdict(codec_oracle.decode, data, max_objects)
    assert new == old, f"fast {new[0]}, oracle {old[0]} on {data.hex()}"
    if new[0]:  # what is accepted is its own encoding, byte for byte
        assert codec.encode(codec.decode(data, max_objects=max_objects)) == data
    return new[0]


# --- encodings msgpack allows and `encode` never produces -------------------------------


class Forms:
    """How `_loose` chooses among msgpack's forms: by Hypothesis, or the outermost value's
    n-th form (and the shortest for everything inside it)."""

    def __init__(self, draw: Any = None, nth: int = 0) -> None:
        self.draw, self.nth = draw, nth

    def one(self, options: list[bytes]) -> bytes:
        if self.draw is None:
            nth, self.nth = self.nth, 0
            return options[min(nth, len(options) - 1)]
        return self.draw(st.sampled_from(options))

    def order(self, pairs: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
        """Sorted, or (by Hypothesis) shuffled and perhaps with one key twice."""
        if self.draw is None or not self.draw(st.booleans()):
            return sorted(pairs, key=lambda pair: pair[0].encode())
        order = self.draw(st.permutations(pairs))
        if order and self.draw(st.booleans()):  # a key again, with the same or another value
            order = [*order, self.draw(st.sampled_from(order))]
        return order


def _loose(value: Any, forms: Forms) -> bytes:
    """Encode `value` choosing freely among msgpack's forms: widths, key order, duplicates."""
    if value is None:
        return b"\xc0"
    if isinstance(value, bool):
        return b"\xc3" if value else b"\xc2"
    if isinstance(value, int):
        return _loose_int(value, forms)
    if isinstance(value, str):
        raw = value.encode()
        fixed = bytes([0xA0 | len(raw)]) if len(raw) < 32 else None
        return _head(len(raw), fixed, [(0xD9, 1), (0xDA, 2), (0xDB, 4)], forms) + raw
    if isinstance(value, bytes):
        return _head(len(value), None, [(0xC4, 1), (0xC5, 2), (0xC6, 4)], forms) + value
    if isinstance(value, tuple | list):
        fixed = bytes([0x90 | len(value)]) if len(value) < 16 else None
        head = _head(len(value), fixed, [(0xDC, 2), (0xDD, 4)], forms)
        return head + b"".join(_loose(v, forms) for v in value)
    pairs = forms.order(list(value.items()))
    fixed = bytes([0x80 | len(pairs)]) if len(pairs) < 16 else None
    head = _head(len(pairs), fixed, [(0xDE, 2), (0xDF, 4)], forms)
    return head + b"".join(_loose(k, forms) + _loose(v, forms) for k, v in pairs)


def _head(count: int, fixed: bytes | None, sized: list[tuple[int, int]], forms: Forms) -> bytes:
    options = [] if fixed is None else [fixed]
    options += [bytes([first]) + count.to_bytes(n, "big") for first, n in sized if count < 256**n]
    return forms.one(options)


INT_FORMS = (
    *((0xCC, ">B"), (0xCD, ">H"), (0xCE, ">I"), (0xCF, ">Q")),  # uint 8..64
    *((0xD0, ">b"), (0xD1, ">h"), (0xD2, ">i"), (0xD3, ">q")),  # int 8..64
)


def _loose_int(value: int, forms: Forms) -> bytes:
    options = [struct.pack(">b", value)] if -32 <= value <= 127 else []
    for first, fmt in INT_FORMS:
        try:
            options.append(bytes([first]) + struct.pack(fmt, value))
        except struct.error:
            continue
    return forms.one(options)


FOREIGN = [
    b"\xca\x00\x00\x00\x00",  # float 32
    b"\xcb" + bytes(8),  # float 64
    b"\xc1",  # never used
    b"\xd4\x01\x00",  # fixext 1
    b"\xc7\x01\x01\x00",  # ext 8
    b"\xd6\xff" + bytes(4),  # msgpack's timestamp extension
]


@SETTINGS
@given(values, st.integers(1, 80))
def test_canonical_encodings_get_the_same_verdict_and_value(value, max_objects):
    data = codec.encode(value)
    assert_same_verdict(data)
    assert_same_verdict(data, max_objects)  # object limits met and exceeded


@SETTINGS
@given(values, st.data())
def test_mutated_encodings_get_the_same_verdict(value, data):
    raw = bytearray(codec.encode(value))
    for _ in range(data.draw(st.integers(1, 3))):
        kind = data.draw(st.sampled_from(["flip", "set", "insert", "delete", "cut"]))
        at = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if kind == "flip" and raw:
            raw[at] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "set" and raw:
            raw[at] = data.draw(st.integers(0, 255))
        elif kind == "insert":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=3))
        elif kind == "delete" and raw:
            del raw[at]
        elif kind == "cut":
            del raw[at:]
    assert_same_verdict(bytes(raw))


@SETTINGS
@given(values, st.data())
def test_non_canonical_encodings_get_the_same_verdict(value, data):
    raw = _loose(value, Forms(data.draw))
    accepted = assert_same_verdict(raw)
    assert accepted == (raw == codec.encode(value))


@settings(SETTINGS, max_examples=60)
@given(values, st.sampled_from(FOREIGN))
def test_foreign_types_inside_a_value_are_refused_by_both(value, foreign):
    assert not assert_same_verdict(b"\x92" + codec.encode(value) + foreign)
    assert not assert_same_verdict(b"\x82\xa1a" + codec.encode(value) + b"\xa1b" + foreign)


@pytest.mark.parametrize("key", [*FOREIGN, b"\xc4\x01k", b"\x01", b"\xc0", b"\x90", b"\x80"])
def test_keys_that_are_not_strings_are_refused_by_both(key):
    assert not assert_same_verdict(b"\x81" + key + b"\xc0")


@SETTINGS
@given(st.binary(max_size=64))
@example(b"\x82\xa0\x01\xa0\x02")  # the empty key twice
@example(b"\x82\xa0\x01\xa1a\x02")  # the empty key first
@example(b"\x82\xa1a\x01\xa0\x02")  # the empty key after another
@example(b"\x81\xa2\xed\xa0\x01")  # a key of invalid UTF-8 (a lone surrogate)
@example(b"\x81\xa1\xff\x01")  # a key of invalid UTF-8
@example(b"\xa2\xc3\xa9")  # é, valid
@example(b"\xa2\xc3\x28")  # invalid UTF-8 value
def test_random_bytes_get_the_same_verdict(raw):
    assert_same_verdict(raw)


INT_EDGES = sorted(
    {edge + step for edge in (0, 2**7, 2**8, 2**16, 2**32, 2**64) for step in (-1, 0)}
    | {-edge + step for edge in (32, 2**7, 2**15, 2**31) for step in (-1, 0, 1)}
    | {codec.INT_MIN, codec.INT_MIN + 1}
)
LENGTH_EDGES = (0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536)
MAX_MAP_EDGE = 256


@pytest.mark.parametrize("number", [n for n in INT_EDGES if n <= codec.INT_MAX])
def test_every_form_of_every_integer_edge_gets_the_same_verdict(number):
    forms = {_loose_int(number, Forms(nth=i)) for i in range(9)}
    assert sum(assert_same_verdict(form) for form in forms) == 1  # the shortest alone


@pytest.mark.parametrize("length", LENGTH_EDGES)
def test_every_form_of_every_length_edge_gets_the_same_verdict(length):
    keys = [f"{i:05}" for i in range(min(length, MAX_MAP_EDGE))]  # the oracle's maps are slow
    for value in ("a" * length, b"a" * length, (1,) * length, dict.fromkeys(keys, 1)):
        forms = {_loose(value, Forms(nth=i)) for i in range(4)}
        accepted = [assert_same_verdict(form, max_objects=4 * length + 1) for form in forms]
        assert sum(accepted) == 1  # the shortest alone


def test_nesting_at_the_limit_gets_the_same_verdict():
    for depth in range(codec.MAX_DEPTH - 1, codec.MAX_DEPTH + 3):
        for leaf in (b"\x90", b"\x80", b"\x01", b"\x91\x01", b"\x81\xa1a\x01"):
            assert_same_verdict(b"\x91" * depth + leaf)
            assert_same_verdict(b"\x81\xa1k" * depth + leaf)


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"\xcc\x05", "integer width"),
        (b"\xd0\x05", "integer width"),
        (b"\xd0\xe0", "integer width"),  # -32 is a negative fixint
        (b"\xd1\xff\x80", "integer width"),  # -128 fits int 8
        (b"\xd3" + (5).to_bytes(8, "big"), "integer width"),
        (b"\xd9\x01a", "length width"),
        (b"\xc5\x00\x01a", "length width"),
        (b"\xdc\x00\x01\x01", "length width"),
        (b"\xde\x00\x01\xa1a\x01", "length width"),
        (b"\x81\xd9\x01a\x01", "string length width"),
        (b"\x82\xa1b\x01\xa1a\x01", "key order"),
        (b"\x82\xa1a\x01\xa1a\x01", "key order"),
        (b"\x81\xc4\x01a\x01", "map keys must be str"),
        (b"\x81\xa5ab", "truncated"),
    ],
)
def test_the_scan_names_what_is_not_canonical(raw, message):
    with pytest.raises(codec.CodecError, match=message):
        codec.decode(raw)
    with pytest.raises(codec_oracle.OracleRefusal):
        codec_oracle.decode(raw)


@given(values)
def test_freeze_in_one_walk_is_the_old_three(value):
    old = codec_oracle._freeze(_plain_tuples(codec_oracle._canonical(value, 0)), 0)
    assert _shape(codec.freeze(value)) == _shape(old)
    assert isinstance(codec.freeze({"a": 1}), MappingProxyType)


def _plain_tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_plain_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain_tuples(v) for k, v in value.items()}
    return value


# --- encoding: the fast paths of `_canonical` against the old one ----------------------


class Text(str):
    pass


class Number(int):
    pass


def _wrapped(value: Any, draw: Any) -> Any:
    """`value` with containers and scalars in other types that encode the same."""
    if isinstance(value, dict):
        items = {_wrapped(k, draw): _wrapped(v, draw) for k, v in value.items()}
        kind = draw(st.sampled_from([dict, MappingProxyType, lambda d: MappingProxyType(dict(d))]))
        return kind(dict(reversed(list(items.items()))) if draw(st.booleans()) else items)
    if isinstance(value, list):
        return draw(st.sampled_from([list, tuple]))(_wrapped(v, draw) for v in value)
    if type(value) is str and draw(st.booleans()):
        return Text(value)
    if type(value) is int and draw(st.booleans()):
        return Number(value)
    return value


def _encoding(encoder: Any, value: Any) -> tuple[bool, Any]:
    try:
        return True, encoder(value)
    except (codec.CodecError, codec_oracle.OracleRefusal) as exc:
        return False, str(exc)


@SETTINGS
@given(values, st.data())
def test_encode_is_the_old_encode(value, data):
    wrapped = _wrapped(value, data.draw)
    assert _encoding(codec.encode, wrapped) == _encoding(codec_oracle.encode, wrapped)
    assert codec.encode(wrapped) == codec.encode(value)


UNENCODABLE = [
    1.5,
    {"a": [1, 2.0]},
    {"ok": 1, 3: "int key"},
    {b"k": 1},
    {"\ud800": 1},
    {"a": "\udfff"},
    [Text("\ud800")],
    {Text("\ud800"): 1},
    2**64,
    -(2**63) - 1,
    {Number(2**64): 1},
    {1, 2},
    bytearray(b"x"),
    object(),
]


@pytest.mark.parametrize("value", UNENCODABLE, ids=range(len(UNENCODABLE)))
def test_what_the_old_encode_refused_is_refused_with_the_same_message(value):
    new, old = _encoding(codec.encode, value), _encoding(codec_oracle.encode, value)
    assert new == old and not new[0]
    frozen = _encoding(codec.freeze, value)
    assert frozen == (False, old[1])


def test_deep_values_are_refused_at_the_same_depth_by_both():
    for depth in range(codec.MAX_DEPTH - 1, codec.MAX_DEPTH + 3):
        for leaf in ([], {}, 1, {"k": 1}):
            value: Any = leaf
            for _ in range(depth):
                value = {"k": value} if depth % 2 else [value]
            assert _encoding(codec.encode, value) == _encoding(codec_oracle.encode, value)
            assert _encoding(codec.freeze, value)[0] == _encoding(codec.encode, value)[0]


@given(st.dictionaries(st.text(max_size=4), st.integers(0, 9), max_size=12))
def test_keys_sort_as_their_utf8_bytes_whatever_their_script(mapping):
    assert list(codec.decode(codec.encode(mapping))) == sorted(mapping, key=str.encode)


class BackwardText(str):
    """A str that sorts backwards: keys still sort by their UTF-8 bytes."""

    def __lt__(self, other: object) -> bool:
        return str.__gt__(self, other)  # type: ignore[operator]


def test_keys_of_str_subclasses_sort_by_their_bytes_not_their_own_order():
    mapping = {BackwardText(k): i for i, k in enumerate(["a", "c", "b", "é"])}
    assert codec.encode(mapping) == codec_oracle.encode(mapping) == codec.encode(dict(mapping))
