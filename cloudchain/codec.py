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

# Default decode bound; callers that know a tighter one (a transaction) pass it.
DEFAULT_MAX_BYTES = 16 * 1024 * 1024


class CodecError(ValueError):
    """A value cannot be encoded canonically, or bytes are not a canonical encoding."""


def encode(value: Any) -> bytes:
    """Return the canonical msgpack encoding of `value`."""
    return msgpack.packb(_canonical(value, 0), use_bin_type=True, strict_types=False)


def decode(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """Decode canonical bytes into plain values (maps become read-only mappings).

    Raises CodecError for anything that is not exactly the canonical encoding of
    a supported value: truncated or trailing bytes, floats, non-string map keys,
    unsorted keys, non-minimal integers, nesting deeper than MAX_DEPTH.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise CodecError(f"encoded value is {len(data)} bytes, limit is {max_bytes}")
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
    if value is None or isinstance(value, bool | str | bytes):
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
