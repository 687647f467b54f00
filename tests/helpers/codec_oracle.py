"""The codec's decoder as it was at f0a1554: the oracle of tests/test_codec_canonical.py.

It proved bytes canonical by decoding them, re-encoding the value through the
pure-Python `_canonical` and comparing: slow, but plainly right. The fast decoder
(cloudchain/codec.py) checks the same in its header scan; the property tests hold
it to this one's verdicts. Kept verbatim but for its error's name; not for use
outside the tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import msgpack

from cloudchain.codec import DEFAULT_MAX_BYTES, DEFAULT_MAX_OBJECTS, INT_MAX, INT_MIN, MAX_DEPTH


class OracleRefusal(ValueError):
    """The old decoder refused the bytes."""


def encode(value: Any) -> bytes:
    """Return the canonical msgpack encoding of `value`."""
    return msgpack.packb(_canonical(value, 0), use_bin_type=True, strict_types=False)


def decode(
    data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_objects: int = DEFAULT_MAX_OBJECTS
) -> Any:
    """Decode canonical bytes into plain values (maps become read-only mappings).

    Raises OracleRefusal for anything that is not exactly the canonical encoding of
    a supported value: truncated or trailing bytes, floats, non-string map keys,
    unsorted keys, non-minimal integers, nesting deeper than MAX_DEPTH, more than
    `max_objects` objects. The bounds are checked by a scan that allocates
    nothing, before msgpack builds a single object.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise OracleRefusal(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise OracleRefusal(f"encoded value is {len(data)} bytes, limit is {max_bytes}")
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
        raise OracleRefusal(f"malformed msgpack: {type(exc).__name__}: {exc}") from None
    value = _freeze(value, 0)
    if encode(value) != bytes(data):
        raise OracleRefusal("bytes are not in canonical form (key order or integer width)")
    return value


# Fixed-size msgpack types we accept, by first byte: payload bytes after it.
_SCALAR_PAYLOAD = {
    0xC0: 0,
    0xC2: 0,
    0xC3: 0,  # nil, false, true
    0xCC: 1,
    0xCD: 2,
    0xCE: 4,
    0xCF: 8,  # uint 8..64
    0xD0: 1,
    0xD1: 2,
    0xD2: 4,
    0xD3: 8,  # int 8..64
}
# Length-prefixed types: (bytes of the length, what the length counts).
_SIZED = {
    0xC4: (1, "bytes"),
    0xC5: (2, "bytes"),
    0xC6: (4, "bytes"),  # bin
    0xD9: (1, "bytes"),
    0xDA: (2, "bytes"),
    0xDB: (4, "bytes"),  # str
    0xDC: (2, "items"),
    0xDD: (4, "items"),  # array
    0xDE: (2, "pairs"),
    0xDF: (4, "pairs"),  # map
}


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
            raise OracleRefusal("malformed msgpack: truncated")
        objects += 1
        if objects > max_objects:
            raise OracleRefusal(f"more than {max_objects} objects")
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
                raise OracleRefusal("malformed msgpack: truncated")
            length = int.from_bytes(data[pos : pos + width], "big")
            pos += width
            if unit == "bytes":
                pos += length
            else:
                children = length if unit == "items" else 2 * length
        elif first in (0xCA, 0xCB):
            raise OracleRefusal("floats are not allowed in canonical encoding")
        else:
            raise OracleRefusal(f"malformed msgpack: type 0x{first:02x} (extension or reserved)")
        if children:
            if len(pending) > MAX_DEPTH:
                raise OracleRefusal(f"value nested deeper than {MAX_DEPTH}")
            pending.append(children)
    if pos != end:
        raise OracleRefusal(
            "malformed msgpack: " + ("truncated" if pos > end else "trailing bytes")
        )


def _canonical(value: Any, depth: int) -> Any:
    """Check `value` and return it with every mapping as a key-sorted dict."""
    if depth > MAX_DEPTH:
        raise OracleRefusal(f"value nested deeper than {MAX_DEPTH}")
    if value is None or isinstance(value, bool | bytes):
        return value
    if isinstance(value, str):
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                raise OracleRefusal("string is not valid Unicode (lone surrogate)") from None
        return value
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise OracleRefusal(f"integer {value} outside the msgpack range")
        return value
    if isinstance(value, float):
        raise OracleRefusal("floats are not allowed in canonical encoding; use integer units")
    if isinstance(value, list | tuple):
        return [_canonical(item, depth + 1) for item in value]
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise OracleRefusal(f"map keys must be str, got {type(key).__name__}")
            _canonical(key, depth)
        ordered = sorted(value, key=lambda k: k.encode())
        return {key: _canonical(value[key], depth + 1) for key in ordered}
    raise OracleRefusal(f"type {type(value).__name__} has no canonical encoding")


def _freeze(value: Any, depth: int) -> Any:
    """Make decoded maps read-only and reject floats and deep nesting."""
    if depth > MAX_DEPTH:
        raise OracleRefusal(f"value nested deeper than {MAX_DEPTH}")
    if isinstance(value, float):
        raise OracleRefusal("floats are not allowed in canonical encoding")
    if isinstance(value, tuple):
        return tuple(_freeze(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v, depth + 1) for k, v in value.items()})
    return value
