"""The multiformats unsigned varint (LEB128), as CIDs and multihashes use it.

Seven bits per byte, least significant group first, the high bit set on every
byte but the last (https://github.com/multiformats/unsigned-varint). The spec
adds two rules that plain LEB128 lacks, and `decode_uvarint` enforces both:

- at most 9 bytes, so a value is below 2**63;
- minimal encoding: no trailing 0x80 0x00 padding, so each value has one form.

Protobuf varints (up to 10 bytes, 64-bit) differ; they live in `protobuf.py`.
"""

from __future__ import annotations

from cloudchain.blobs.errors import BlobFormatError

# From the unsigned-varint spec: "the maximum varint length is 9 bytes".
UVARINT_MAX_BYTES = 9
UVARINT_MAX = 2**63 - 1


class VarintError(BlobFormatError):
    """Bytes that are not a valid multiformats unsigned varint."""


def encode_uvarint(value: int) -> bytes:
    """The minimal unsigned-varint encoding of `value` (0 <= value < 2**63)."""
    if not 0 <= value <= UVARINT_MAX:
        raise ValueError(f"unsigned varint out of range: {value}")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_uvarint(buf: bytes | memoryview, offset: int = 0) -> tuple[int, int]:
    """Read one varint at `offset`; return (value, offset just past it)."""
    value = 0
    for i in range(UVARINT_MAX_BYTES):
        position = offset + i
        if position >= len(buf):
            raise VarintError(f"truncated varint at byte {offset}")
        byte = buf[position]
        value |= (byte & 0x7F) << (7 * i)
        if byte < 0x80:
            # Verify that the encoding is minimal (no trailing zero group).
            if byte == 0 and i > 0:
                raise VarintError(f"non-minimal varint at byte {offset}")
            return value, position + 1
    raise VarintError(f"varint longer than {UVARINT_MAX_BYTES} bytes at byte {offset}")
