"""UnixFS: the protobuf carried in a dag-pb node's Data, as kubo encodes files.

The schema (https://specs.ipfs.tech/unixfs/), proto2:

    message Data {
      enum DataType { Raw = 0; Directory = 1; File = 2; Metadata = 3; Symlink = 4; HAMTShard = 5; }
      required DataType Type = 1;
      optional bytes Data = 2;          // file bytes held in this node
      optional uint64 filesize = 3;     // bytes of file under this node
      repeated uint64 blocksizes = 4;   // file bytes under each link, in link order
      optional uint64 hashType = 5;
      optional uint64 fanout = 6;
      optional uint32 mode = 7;
      optional UnixTime mtime = 8;
    }

Encoding follows go's proto2 marshaller, which is what kubo's CIDs hash:
fields in field-number order, `filesize` always written for files (even 0),
`Data` omitted when nil, `blocksizes` as one unpacked VARINT field per entry.
So a kubo leaf is `08 02 | 12 <len> <bytes> | 18 <len>` and an internal file
node is `08 02 | 18 <filesize> | 20 <blocksize> ...`.

The decoder accepts fields in any order and `blocksizes` packed or unpacked (as
any proto2 reader must), rejects a repeated singular field, and skips unknown
fields. `mtime` is kept as its raw bytes: files imported here never set it.
This module does not know about CIDs or links; `dagpb.py` wraps its output.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from cloudchain.blobs.dagpb import PBNODE_DATA, PBNode, encode_pbnode
from cloudchain.blobs.errors import DecodeError
from cloudchain.blobs.protobuf import (
    WIRE_LEN,
    WIRE_VARINT,
    encode_len_field,
    encode_len_prefix,
    encode_varint_field,
    iter_fields,
    read_varint,
)

UNIXFS_TYPE = 1
UNIXFS_DATA = 2
UNIXFS_FILESIZE = 3
UNIXFS_BLOCKSIZES = 4
UNIXFS_HASH_TYPE = 5
UNIXFS_FANOUT = 6
UNIXFS_MODE = 7
UNIXFS_MTIME = 8

_VARINT_FIELDS = {
    UNIXFS_TYPE: "type",
    UNIXFS_FILESIZE: "filesize",
    UNIXFS_HASH_TYPE: "hash_type",
    UNIXFS_FANOUT: "fanout",
    UNIXFS_MODE: "mode",
}
_LEN_FIELDS = {UNIXFS_DATA: "data", UNIXFS_MTIME: "mtime"}


class DataType(IntEnum):
    RAW = 0
    DIRECTORY = 1
    FILE = 2
    METADATA = 3
    SYMLINK = 4
    HAMT_SHARD = 5


@dataclass(frozen=True, slots=True)
class UnixFSData:
    type: DataType
    data: bytes | None = None
    filesize: int | None = None
    blocksizes: tuple[int, ...] = ()
    hash_type: int | None = None
    fanout: int | None = None
    mode: int | None = None
    mtime: bytes | None = None


def encode_unixfs(node: UnixFSData) -> bytes:
    """The UnixFS Data message, fields in number order as go's proto2 writes them."""
    parts = [encode_varint_field(UNIXFS_TYPE, int(node.type))]
    if node.data is not None:
        parts.append(encode_len_field(UNIXFS_DATA, node.data))
    if node.filesize is not None:
        parts.append(encode_varint_field(UNIXFS_FILESIZE, node.filesize))
    parts.extend(encode_varint_field(UNIXFS_BLOCKSIZES, size) for size in node.blocksizes)
    if node.hash_type is not None:
        parts.append(encode_varint_field(UNIXFS_HASH_TYPE, node.hash_type))
    if node.fanout is not None:
        parts.append(encode_varint_field(UNIXFS_FANOUT, node.fanout))
    if node.mode is not None:
        parts.append(encode_varint_field(UNIXFS_MODE, node.mode))
    if node.mtime is not None:
        parts.append(encode_len_field(UNIXFS_MTIME, node.mtime))
    return b"".join(parts)


def decode_unixfs(buf: bytes | memoryview) -> UnixFSData:
    """Decode and validate a UnixFS Data message."""
    singular: dict[str, Any] = {}
    blocksizes: list[int] = []
    for field_number, wire_type, value in iter_fields(buf):
        if field_number == UNIXFS_BLOCKSIZES:
            blocksizes.extend(_decode_blocksizes(wire_type, value))
            continue
        if field_number in _VARINT_FIELDS and wire_type == WIRE_VARINT:
            name = _VARINT_FIELDS[field_number]
        elif field_number in _LEN_FIELDS and wire_type == WIRE_LEN:
            name = _LEN_FIELDS[field_number]
            assert isinstance(value, memoryview)
            value = bytes(value)
        elif field_number in _VARINT_FIELDS or field_number in _LEN_FIELDS:
            raise DecodeError(f"UnixFS field {field_number} has wrong wire type {wire_type}")
        else:
            continue  # an unknown field: protobuf readers skip it
        # Verify that a singular field appears once.
        if name in singular:
            raise DecodeError(f"UnixFS field {name!r} appears more than once")
        singular[name] = value
    # Verify that the required Type is present and known.
    if "type" not in singular:
        raise DecodeError("UnixFS node has no Type")
    type_value = singular.pop("type")
    try:
        node_type = DataType(type_value)
    except ValueError as exc:
        raise DecodeError(f"unknown UnixFS type {type_value}") from exc
    return UnixFSData(type=node_type, blocksizes=tuple(blocksizes), **singular)


def _decode_blocksizes(wire_type: int, value: int | memoryview) -> list[int]:
    if wire_type == WIRE_VARINT:
        assert isinstance(value, int)
        return [value]
    assert wire_type == WIRE_LEN and isinstance(value, memoryview)
    sizes, offset = [], 0  # the packed form: varints back to back
    while offset < len(value):
        size, offset = read_varint(value, offset)
        sizes.append(size)
    return sizes


def encode_file_leaf(chunk: bytes) -> bytes:
    """The dag-pb block of a kubo UnixFS File leaf (raw-leaves=false) holding `chunk`.

    Equal to `encode_pbnode(PBNode(data=encode_unixfs(UnixFSData(FILE, chunk,
    len(chunk)))))`, built with one copy of `chunk`: this is the importer's hot path.
    The empty file's leaf has no Data field at all (go leaves it nil).
    """
    size = len(chunk)
    if size == 0:
        return encode_pbnode(PBNode(data=encode_unixfs(UnixFSData(DataType.FILE, filesize=0))))
    head = encode_varint_field(UNIXFS_TYPE, DataType.FILE) + encode_len_prefix(UNIXFS_DATA, size)
    tail = encode_varint_field(UNIXFS_FILESIZE, size)
    unixfs_bytes = len(head) + size + len(tail)
    return b"".join((encode_len_prefix(PBNODE_DATA, unixfs_bytes), head, chunk, tail))
