"""The one canonical encoding of CloudChain: msgpack with sorted keys and no floats.

Every byte that is hashed or signed (transactions, headers, votes, state values)
goes through `encode`. Two honest nodes must produce the same bytes for the same
value, so the encoder accepts only a small set of types whose encoding has a
single form:

- ``None``, ``bool``, ``int`` in the 64-bit msgpack range, ``str``, ``bytes``;
- ``list`` / ``tuple`` (both encode as arrays; decoding gives tuples);
- ``dict`` / any ``Mapping`` with ``str`` keys, encoded with keys sorted by
  their UTF-8 bytes.

Floats are an error, never silently converted: consensus and chaincode hold
integer units only. `decode` is strict in the other direction: it accepts only
bytes that `encode` would have produced (a scan of the headers checks key order
and the shortest form of every integer and length, before msgpack decodes), so a
value has exactly one valid encoding and therefore exactly one hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import msgpack

# msgpack's integer range: it has no encoding for anything outside it.
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1

# Nesting bound for encoded values. Transaction arguments are shallow; a deep
# value is either a bug or an attack on the decoder's recursion.
MAX_DEPTH = 32

# Default decode bounds; callers that know tighter ones (a transaction) pass them.
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
# Every msgpack object costs at least one byte on the wire but some fifty in
# Python: without a count, 16 MiB of empty maps would cost gigabytes to decode.
DEFAULT_MAX_OBJECTS = 65_536


class CodecError(ValueError):
    """A value cannot be encoded canonically, or bytes are not a canonical encoding."""


def encode(value: Any) -> bytes:
    """Return the canonical msgpack encoding of `value`."""
    return msgpack.packb(_canonical(value, 0), use_bin_type=True, strict_types=False)


def encode_ordered(value: Any) -> bytes:
    """`encode` of a value its maker built in canonical shape, without `encode`'s walk:
    maps as dicts whose keys are already in UTF-8 byte order, arrays as lists or tuples,
    and only scalars `encode` accepts (never a float or a bool where an int is meant to
    be checked). msgpack itself refuses what has no encoding (a lone surrogate, an
    integer outside its range). For the ledger's results and events, whose constructors
    check every field's type: tests/test_codec_ordered.py holds them to `encode`."""
    try:
        return msgpack.packb(value, use_bin_type=True)
    except (UnicodeEncodeError, OverflowError, TypeError, ValueError) as exc:
        raise CodecError(f"no canonical encoding: {type(exc).__name__}: {exc}") from None


def decode(
    data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_objects: int = DEFAULT_MAX_OBJECTS
) -> Any:
    """Decode canonical bytes into plain values (maps become read-only mappings).

    Raises CodecError for anything that is not exactly the canonical encoding of
    a supported value: truncated or trailing bytes, floats, non-string map keys,
    unsorted keys, non-minimal integers or lengths, nesting deeper than MAX_DEPTH,
    more than `max_objects` objects. All of it is checked by one scan of the
    headers that allocates nothing per object (`_check_canonical`) before msgpack
    builds a single object; so `data` is the decoded value's encoding, and nothing
    is encoded again to prove it.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise CodecError(f"encoded value is {len(data)} bytes, limit is {max_bytes}")
    if type(data) is not bytes:
        data = bytes(data)
    if 1 < len(data) <= 9 and data[0] in _INTS:  # a wide integer: most state values
        return _wide_int(data)
    _check_canonical(data, max_objects)
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            use_list=False,
            strict_map_key=True,
            object_hook=MappingProxyType,
        )
    except Exception as exc:  # msgpack raises a zoo of types; all mean "malformed"
        raise CodecError(f"malformed msgpack: {type(exc).__name__}: {exc}") from None


_NO_PAYLOAD = frozenset((0xC0, 0xC2, 0xC3))  # nil, false, true
# Integers, by first byte: (payload bytes, signed, the smallest and largest value that
# this width holds canonically). msgpack's packer takes the shortest form: a positive
# integer is never an int8..int64, and each width holds only what no shorter one can.
_INTS = {
    0xCC: (1, False, 0x80, 0xFF),
    0xCD: (2, False, 0x100, 0xFFFF),
    0xCE: (4, False, 0x1_0000, 0xFFFF_FFFF),
    0xCF: (8, False, 0x1_0000_0000, INT_MAX),
    0xD0: (1, True, -0x80, -0x21),
    0xD1: (2, True, -0x8000, -0x81),
    0xD2: (4, True, -0x8000_0000, -0x8001),
    0xD3: (8, True, INT_MIN, -0x8000_0001),
}
# Length-prefixed types, by first byte: (bytes of the length, what the length counts,
# the smallest length that needs this width).
_BYTES, _ITEMS, _PAIRS = 0, 1, 2
_SIZED = {
    0xC4: (1, _BYTES, 0),  # bin 8
    0xC5: (2, _BYTES, 0x100),  # bin 16
    0xC6: (4, _BYTES, 0x1_0000),  # bin 32
    0xD9: (1, _BYTES, 32),  # str 8
    0xDA: (2, _BYTES, 0x100),  # str 16
    0xDB: (4, _BYTES, 0x1_0000),  # str 32
    0xDC: (2, _ITEMS, 16),  # array 16
    0xDD: (4, _ITEMS, 0x1_0000),  # array 32
    0xDE: (2, _PAIRS, 16),  # map 16
    0xDF: (4, _PAIRS, 0x1_0000),  # map 32
}
_STR_HEADERS = frozenset((0xD9, 0xDA, 0xDB))
_IN_ARRAY = False  # `_check_canonical`'s mark for an open container that is no map


def _check_canonical(data: bytes, max_objects: int) -> None:
    """Walk the msgpack headers; refuse anything that `encode` would not have produced.

    Counts objects (as each container declares them, before reading them) and depth;
    refuses floats, extensions and reserved types, integers and lengths not in their
    shortest form, and map keys that are not strings or not in strictly increasing
    UTF-8 byte order (as `encode` sorts them; so no duplicates). Left to msgpack:
    only invalid UTF-8 in a string. Allocates nothing per object but a slice per map
    key and per wide integer, so hostile input costs at most `max_objects` steps.
    """
    end = len(data)
    pos = 0
    objects = 1  # the root
    # Per open container (the root is one item): the items still to read (for a map,
    # its key-value pairs), and the previous key if it is a map (None before the first
    # key) or _IN_ARRAY.
    pending = [1]
    last_key: list[bytes | bool | None] = [_IN_ARRAY]
    try:
        while pending:
            left = pending[-1]
            if not left:
                pending.pop()
                last_key.pop()
                continue
            pending[-1] = left - 1
            previous = last_key[-1]
            if previous is not _IN_ARRAY:  # a map's entry: its key first
                first = data[pos]
                pos += 1
                if 0xA0 <= first <= 0xBF:  # fixstr
                    length = first & 0x1F
                elif first in _STR_HEADERS:
                    width, _, shortest = _SIZED[first]
                    length = int.from_bytes(data[pos : pos + width], "big")
                    pos += width
                    if length < shortest:
                        raise CodecError("bytes are not in canonical form (string length width)")
                else:
                    raise CodecError("map keys must be str")
                if pos + length > end:
                    raise CodecError("malformed msgpack: truncated")
                key = data[pos : pos + length]
                pos += length
                if previous is not None and key <= previous:  # type: ignore[operator]
                    raise CodecError("bytes are not in canonical form (key order)")
                last_key[-1] = key
            first = data[pos]
            pos += 1
            if first <= 0x7F or first >= 0xE0:  # positive and negative fixint
                continue
            if 0xA0 <= first <= 0xBF:  # fixstr
                pos += first & 0x1F
                continue
            if first <= 0x8F:  # fixmap
                children, is_map = first & 0x0F, True
            elif first <= 0x9F:  # fixarray
                children, is_map = first & 0x0F, False
            elif first in _INTS:
                width, signed, low, high = _INTS[first]
                if pos + width > end:
                    raise CodecError("malformed msgpack: truncated")
                number = int.from_bytes(data[pos : pos + width], "big", signed=signed)
                pos += width
                if not low <= number <= high:
                    raise CodecError("bytes are not in canonical form (integer width)")
                continue
            elif first in _NO_PAYLOAD:
                continue
            elif first in _SIZED:
                width, unit, shortest = _SIZED[first]
                if pos + width > end:
                    raise CodecError("malformed msgpack: truncated")
                length = int.from_bytes(data[pos : pos + width], "big")
                pos += width
                if length < shortest:
                    raise CodecError("bytes are not in canonical form (length width)")
                if unit == _BYTES:
                    pos += length
                    continue
                children, is_map = length, unit == _PAIRS
            elif first in (0xCA, 0xCB):
                raise CodecError("floats are not allowed in canonical encoding")
            else:
                raise CodecError(f"malformed msgpack: type 0x{first:02x} (extension or reserved)")
            if children:
                if len(pending) > MAX_DEPTH:
                    raise CodecError(f"value nested deeper than {MAX_DEPTH}")
                declared = 2 * children if is_map else children
                if declared > end - pos:  # each object takes a byte at least
                    raise CodecError("malformed msgpack: truncated")
                objects += declared
                if objects > max_objects:
                    raise CodecError(f"more than {max_objects} objects")
                pending.append(children)
                last_key.append(None if is_map else _IN_ARRAY)
    except IndexError:  # data[pos] past the end
        raise CodecError("malformed msgpack: truncated") from None
    if pos != end:
        raise CodecError("malformed msgpack: " + ("truncated" if pos > end else "trailing bytes"))


def _wide_int(data: bytes) -> int:
    """An integer of 1 to 8 payload bytes, held to `_check_canonical`'s rules."""
    width, signed, low, high = _INTS[data[0]]
    if len(data) != 1 + width:
        raise CodecError(
            "malformed msgpack: " + ("truncated" if len(data) < 1 + width else "trailing bytes")
        )
    number = int.from_bytes(data[1:], "big", signed=signed)
    if not low <= number <= high:
        raise CodecError("bytes are not in canonical form (integer width)")
    return number


def sha256(data: bytes) -> bytes:
    """SHA-256 digest of raw bytes."""
    return hashlib.sha256(data).digest()


def hash_value(value: Any) -> bytes:
    """SHA-256 of the canonical encoding of `value`."""
    return sha256(encode(value))


def _canonical(value: Any, depth: int) -> Any:
    """Check `value` and return it with every mapping as a key-sorted dict.

    The exact built-in types take short paths (nearly every value is a str, an int,
    bytes or a plain map); anything else, subclasses included, the general checks of
    `_canonical_other`, which define what is encodable.
    """
    if depth > MAX_DEPTH:
        raise CodecError(f"value nested deeper than {MAX_DEPTH}")
    kind = type(value)
    if kind is str:
        if not value.isascii():
            _check_unicode(value)
        return value
    if kind is int:
        if not INT_MIN <= value <= INT_MAX:
            raise CodecError(f"integer {value} outside the msgpack range")
        return value
    if kind is bytes or kind is bool or value is None:
        return value
    if kind is dict or kind is MappingProxyType:
        return {key: _canonical(value[key], depth + 1) for key in _sorted_keys(value, depth)}
    if kind is tuple or kind is list:
        return [_canonical(item, depth + 1) for item in value]
    return _canonical_other(value, depth)


def _canonical_other(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool | bytes):
        return value
    if isinstance(value, str):
        if not value.isascii():
            _check_unicode(value)
        return value
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise CodecError(f"integer {value} outside the msgpack range")
        return value
    if isinstance(value, float):
        raise CodecError("floats are not allowed in canonical encoding; use integer units")
    if isinstance(value, list | tuple):
        return [_canonical(item, depth + 1) for item in value]
    if isinstance(value, Mapping):
        return {key: _canonical(value[key], depth + 1) for key in _sorted_keys(value, depth)}
    raise CodecError(f"type {type(value).__name__} has no canonical encoding")


def _sorted_keys(mapping: Mapping[Any, Any], depth: int) -> list[str]:
    """The keys of a mapping at `depth`, checked, in their UTF-8 bytes' order."""
    plain = True
    for key in mapping:
        if type(key) is str:
            if not key.isascii():
                _check_unicode(key)
        elif isinstance(key, str):
            _canonical(key, depth)
            plain = False
        else:
            raise CodecError(f"map keys must be str, got {type(key).__name__}")
    if plain:  # UTF-8 keeps code point order, so valid strs sort as their bytes do
        return sorted(mapping)
    return sorted(mapping, key=lambda k: k.encode())


def _check_unicode(text: str) -> None:
    try:
        text.encode()
    except UnicodeEncodeError:
        raise CodecError("string is not valid Unicode (lone surrogate)") from None


def freeze(value: Any) -> Any:
    """Deep-copy a plain value into its immutable form (tuples, read-only maps).

    Maps come out key-sorted, as `encode` and `decode` order them. Raises CodecError
    if the value could not be encoded canonically (`_canonical`'s checks, in its
    order, in the same single walk).
    """
    return _frozen(value, 0)


def _frozen(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise CodecError(f"value nested deeper than {MAX_DEPTH}")
    kind = type(value)
    if kind is str or kind is int or kind is bytes or kind is bool or value is None:
        return _canonical(value, depth)
    if kind is dict or kind is MappingProxyType:
        return _frozen_map(value, depth)
    if isinstance(value, list | tuple):
        return tuple([_frozen(item, depth + 1) for item in value])
    if isinstance(value, Mapping):
        return _frozen_map(value, depth)
    return _canonical_other(value, depth)  # a scalar, or the error that names the type


def _frozen_map(mapping: Mapping[Any, Any], depth: int) -> MappingProxyType[str, Any]:
    keys = _sorted_keys(mapping, depth)
    return MappingProxyType({key: _frozen(mapping[key], depth + 1) for key in keys})


def thaw(value: Any) -> Any:
    """Deep-copy a frozen value into plain dicts and lists (for JSON output)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    return value
