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
bytes that `encode` would have produced (it re-encodes and compares), so a value
has exactly one valid encoding and therefore exactly one hash.
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


def decode(
    data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_objects: int = DEFAULT_MAX_OBJECTS
) -> Any:
    """Decode canonical bytes into plain values (maps become read-only mappings).

    Raises CodecError for anything that is not exactly the canonical encoding of
    a supported value: truncated or trailing bytes, floats, non-string map keys,
    unsorted keys, non-minimal integers, nesting deeper than MAX_DEPTH, more than
    `max_objects` objects. The bounds are checked by a scan that allocates
    nothing, before msgpack builds a single object.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise CodecError(f"encoded value is {len(data)} bytes, limit is {max_bytes}")
    data = bytes(data)
    _check_shape(data, max_objects)
    try:
        value = msgpack.unpackb(
            bytes(data),
            raw=False,
            use_list=False,
            strict_map_key=True,
        )
    except Exception as exc:  # msgpack raises a zoo of types; all mean "malformed"
        raise CodecError(f"malformed msgpack: {type(exc).__name__}: {exc}") from None
    value = _freeze(value, 0)
    if encode(value) != bytes(data):
        raise CodecError("bytes are not in canonical form (key order or integer width)")
    return value


# Fixed-size msgpack types we accept, by first byte: payload bytes after it.
_SCALAR_PAYLOAD = {
    0xC0: 0, 0xC2: 0, 0xC3: 0,  # nil, false, true
    0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8,  # uint 8..64
    0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8,  # int 8..64
}  # fmt: skip
# Length-prefixed types: (bytes of the length, what the length counts).
_SIZED = {
    0xC4: (1, "bytes"), 0xC5: (2, "bytes"), 0xC6: (4, "bytes"),  # bin
    0xD9: (1, "bytes"), 0xDA: (2, "bytes"), 0xDB: (4, "bytes"),  # str
    0xDC: (2, "items"), 0xDD: (4, "items"),  # array
    0xDE: (2, "pairs"), 0xDF: (4, "pairs"),  # map
}  # fmt: skip


def _check_shape(data: bytes, max_objects: int) -> None:
    """Walk the msgpack headers: count objects and depth, refuse floats and extensions.

    Allocates nothing per object, so hostile input costs at most `max_objects` steps.
    """
    end = len(data)
    pos = 0
    objects = 0
    pending = [1]  # items still to read, per open container (the root is one item)
    while pending:
        if pending[-1] == 0:
            pending.pop()
            continue
        pending[-1] -= 1
        if pos >= end:
            raise CodecError("malformed msgpack: truncated")
        objects += 1
        if objects > max_objects:
            raise CodecError(f"more than {max_objects} objects")
        first = data[pos]
        pos += 1
        children = 0
        if first <= 0x7F or first >= 0xE0:  # positive and negative fixint
            continue
        if first <= 0x8F:  # fixmap
            children = 2 * (first & 0x0F)
        elif first <= 0x9F:  # fixarray
            children = first & 0x0F
        elif first <= 0xBF:  # fixstr
            pos += first & 0x1F
        elif first in _SCALAR_PAYLOAD:
            pos += _SCALAR_PAYLOAD[first]
        elif first in _SIZED:
            width, unit = _SIZED[first]
            if pos + width > end:
                raise CodecError("malformed msgpack: truncated")
            length = int.from_bytes(data[pos : pos + width], "big")
            pos += width
            if unit == "bytes":
                pos += length
            else:
                children = length if unit == "items" else 2 * length
        elif first in (0xCA, 0xCB):
            raise CodecError("floats are not allowed in canonical encoding")
        else:
            raise CodecError(f"malformed msgpack: type 0x{first:02x} (extension or reserved)")
        if children:
            if len(pending) > MAX_DEPTH:
                raise CodecError(f"value nested deeper than {MAX_DEPTH}")
            pending.append(children)
    if pos != end:
        raise CodecError("malformed msgpack: " + ("truncated" if pos > end else "trailing bytes"))


def sha256(data: bytes) -> bytes:
    """SHA-256 digest of raw bytes."""
    return hashlib.sha256(data).digest()


def hash_value(value: Any) -> bytes:
    """SHA-256 of the canonical encoding of `value`."""
    return sha256(encode(value))


def _canonical(value: Any, depth: int) -> Any:
    """Check `value` and return it with every mapping as a key-sorted dict."""
    if depth > MAX_DEPTH:
        raise CodecError(f"value nested deeper than {MAX_DEPTH}")
    if value is None or isinstance(value, bool | bytes):
        return value
    if isinstance(value, str):
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                raise CodecError("string is not valid Unicode (lone surrogate)") from None
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
        for key in value:
            if not isinstance(key, str):
                raise CodecError(f"map keys must be str, got {type(key).__name__}")
            _canonical(key, depth)
        ordered = sorted(value, key=lambda k: k.encode())
        return {key: _canonical(value[key], depth + 1) for key in ordered}
    raise CodecError(f"type {type(value).__name__} has no canonical encoding")


def _freeze(value: Any, depth: int) -> Any:
    """Make decoded maps read-only and reject floats and deep nesting."""
    if depth > MAX_DEPTH:
        raise CodecError(f"value nested deeper than {MAX_DEPTH}")
    if isinstance(value, float):
        raise CodecError("floats are not allowed in canonical encoding")
    if isinstance(value, tuple):
        return tuple(_freeze(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v, depth + 1) for k, v in value.items()})
    return value


def freeze(value: Any) -> Any:
    """Deep-copy a plain value into its immutable form (tuples, read-only maps).

    Raises CodecError if the value could not be encoded canonically.
    """
    return _freeze(_tuples(_canonical(value, 0)), 0)


def thaw(value: Any) -> Any:
    """Deep-copy a frozen value into plain dicts and lists (for JSON output)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    return value


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value
