"""Varints: the one LEB128 encoder and decoder, under the rules of each format using it.

Seven bits per byte, least significant group first, the high bit set on every
byte but the last. Two formats of ours use this encoding and differ only in
their limits, so each is a `VarintRules` value, not a second implementation:

- `UNSIGNED_VARINT`, the multiformats unsigned varint
  (https://github.com/multiformats/unsigned-varint) of CIDs and multihashes.
  The spec adds two rules that plain LEB128 lacks: at most 9 bytes, so a value
  is below 2**63, and minimal encoding (no trailing 0x80 0x00 padding), so each
  value has exactly one form. The default of both functions.
- `PROTOBUF_VARINT`, the protobuf varint
  (https://protobuf.dev/programming-guides/encoding/) of dag-pb and UnixFS:
  at most 10 bytes and 64 bits (dag-pb's Tsize is a uint64). A padded encoding
  is legal protobuf and its readers accept it (go's protowire, as kubo decodes
  dag-pb), so we do too; our encoder never produces one.

Under either rules the decoder refuses, with a VarintError naming the byte
offset where the varint starts: input that ends inside the varint, more bytes
than the rules allow, a value above their maximum, and (for UNSIGNED_VARINT) a
non-minimal encoding. A VarintError is a DecodeError: bytes that do not decode.

Pure: no I/O. What a decoded value means, and its own bounds, is the caller's.
"""

from __future__ import annotations

from dataclasses import dataclass

from cloudchain.blobs.errors import DecodeError

# From the unsigned-varint spec: "the maximum varint length is 9 bytes".
UVARINT_MAX_BYTES = 9
UVARINT_MAX = 2**63 - 1
# A protobuf varint encodes at most 64 bits: ceil(64 / 7) = 10 bytes.
PB_VARINT_MAX_BYTES = 10
UINT64_MAX = 2**64 - 1


class VarintError(DecodeError):
    """Bytes that are not a valid varint under the rules they were read with."""


@dataclass(frozen=True, slots=True)
class VarintRules:
    """What one format allows of a varint."""

    name: str
    max_bytes: int
    max_value: int
    minimal_only: bool  # whether a padded (non-minimal) encoding is refused

    def __post_init__(self) -> None:
        assert self.max_value.bit_length() <= 7 * self.max_bytes


UNSIGNED_VARINT = VarintRules("unsigned varint", UVARINT_MAX_BYTES, UVARINT_MAX, True)
PROTOBUF_VARINT = VarintRules("protobuf varint", PB_VARINT_MAX_BYTES, UINT64_MAX, False)


def encode_uvarint(value: int, rules: VarintRules = UNSIGNED_VARINT) -> bytes:
    """The minimal encoding of `value` (0 <= value <= rules.max_value)."""
    if not 0 <= value <= rules.max_value:
        raise ValueError(f"{rules.name} out of range: {value}")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_uvarint(
    buf: bytes | memoryview, offset: int = 0, rules: VarintRules = UNSIGNED_VARINT
) -> tuple[int, int]:
    """Read one varint at `offset`; return (value, offset just past it)."""
    if offset < len(buf) and buf[offset] < 0x80:  # one byte, the common case: always valid
        return buf[offset], offset + 1
    value = 0
    for i in range(rules.max_bytes):
        position = offset + i
        if position >= len(buf):
            raise VarintError(f"truncated varint at byte {offset}")
        byte = buf[position]
        value |= (byte & 0x7F) << (7 * i)
        if byte < 0x80:
            # Verify that the encoding is minimal (no trailing zero group), if required.
            if byte == 0 and i > 0 and rules.minimal_only:
                raise VarintError(f"non-minimal varint at byte {offset}")
            # Verify that the value fits (only a full-length varint can exceed it).
            if value > rules.max_value:
                raise VarintError(
                    f"varint at byte {offset} overflows {rules.max_value.bit_length()} bits"
                )
            return value, position + 1
    raise VarintError(f"varint longer than {rules.max_bytes} bytes at byte {offset}")
