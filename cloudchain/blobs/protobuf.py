"""The few protobuf wire-format primitives that dag-pb and UnixFS need.

Protobuf serialises a message as a sequence of fields, each a key
`(field_number << 3) | wire_type` as a varint followed by the value
(https://protobuf.dev/programming-guides/encoding/). dag-pb and UnixFS use only
two wire types: VARINT (0) for integers and enums, and LEN (2) for bytes,
strings and nested messages. The reader here rejects every other wire type;
which field numbers are allowed, in which order, is for the message decoders
(`dagpb.py`, `unixfs.py`) to say.

Varints are varint.py's, under its PROTOBUF_VARINT rules: 64-bit, up to 10
bytes, and a non-minimal encoding accepted, as protobuf readers do (our
encoder never produces one).
"""

from __future__ import annotations

from collections.abc import Iterator

from cloudchain.blobs.errors import DecodeError
from cloudchain.blobs.varint import PROTOBUF_VARINT, decode_uvarint, encode_uvarint

WIRE_VARINT = 0
WIRE_LEN = 2
WIRE_TYPE_NAMES = {0: "VARINT", 1: "I64", 2: "LEN", 3: "SGROUP", 4: "EGROUP", 5: "I32"}

# Field numbers are 29-bit (the key's low 3 bits are the wire type).
FIELD_NUMBER_MAX = 2**29 - 1


def encode_varint(value: int) -> bytes:
    """The minimal protobuf varint of 0 <= value < 2**64."""
    return encode_uvarint(value, PROTOBUF_VARINT)


def encode_key(field_number: int, wire_type: int) -> bytes:
    assert 1 <= field_number <= FIELD_NUMBER_MAX
    assert wire_type in (WIRE_VARINT, WIRE_LEN)
    return encode_varint((field_number << 3) | wire_type)


def encode_varint_field(field_number: int, value: int) -> bytes:
    return encode_key(field_number, WIRE_VARINT) + encode_varint(value)


def encode_len_prefix(field_number: int, length: int) -> bytes:
    """Key and length of a LEN field; the caller appends the `length` bytes."""
    return encode_key(field_number, WIRE_LEN) + encode_varint(length)


def encode_len_field(field_number: int, data: bytes) -> bytes:
    return encode_len_prefix(field_number, len(data)) + data


def read_varint(buf: bytes | memoryview, offset: int) -> tuple[int, int]:
    """Read one protobuf varint at `offset`; return (value, offset past it).
    A VarintError (a DecodeError) if it is truncated, too long or above 64 bits."""
    return decode_uvarint(buf, offset, PROTOBUF_VARINT)


def iter_fields(buf: bytes | memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """Yield (field_number, wire_type, value) for each field of a message.

    `value` is an int for VARINT fields and a memoryview into `buf` for LEN
    fields (no copy: a leaf's 256 KiB of data is not duplicated here).
    """
    view = memoryview(buf)
    offset = 0
    while offset < len(view):
        start = offset
        key, offset = read_varint(view, offset)
        field_number, wire_type = key >> 3, key & 0x7
        if not 1 <= field_number <= FIELD_NUMBER_MAX:
            raise DecodeError(f"invalid field number {field_number} at byte {start}")
        if wire_type == WIRE_VARINT:
            value, offset = read_varint(view, offset)
            yield field_number, wire_type, value
        elif wire_type == WIRE_LEN:
            length, offset = read_varint(view, offset)
            end = offset + length
            if end > len(view):
                raise DecodeError(
                    f"field {field_number} at byte {start} declares {length} bytes,"
                    f" only {len(view) - offset} remain"
                )
            yield field_number, wire_type, view[offset:end]
            offset = end
        else:
            name = WIRE_TYPE_NAMES.get(wire_type, str(wire_type))
            raise DecodeError(f"unsupported wire type {name} for field {field_number}")
