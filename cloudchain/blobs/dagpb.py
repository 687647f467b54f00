"""dag-pb: the protobuf envelope of every UnixFS node, encoded as kubo encodes it.

The schema (https://ipld.io/specs/codecs/dag-pb/spec/):

    message PBLink { optional bytes Hash = 1; optional string Name = 2; optional uint64 Tsize = 3; }
    message PBNode { repeated PBLink Links = 2; optional bytes Data = 1; }

The canonical form, which go (boxo/merkledag, go-codec-dagpb) and js produce and
which our CIDs depend on byte for byte, writes **all Links (field 2) before Data
(field 1)**, against protobuf's usual field-number order, and inside a link
Hash, Name, Tsize in field order. kubo's file importer always writes Name (the
empty string, `12 00`) and Tsize.

The decoder applies the spec's strictness rules: link fields in order and each
at most once, at most one Data, a Hash in every link that parses as a CID, and
no other fields or wire types. As the spec asks, it accepts Data before Links
too, since such blocks exist; re-encoding gives the canonical order.
"""

from __future__ import annotations

from dataclasses import dataclass

from cloudchain.blobs.cid import CID
from cloudchain.blobs.errors import CIDError, DecodeError
from cloudchain.blobs.protobuf import (
    WIRE_LEN,
    WIRE_VARINT,
    encode_len_field,
    encode_len_prefix,
    encode_varint_field,
    iter_fields,
)

PBNODE_DATA = 1
PBNODE_LINKS = 2
PBLINK_HASH = 1
PBLINK_NAME = 2
PBLINK_TSIZE = 3


@dataclass(frozen=True, slots=True)
class PBLink:
    """A link: the child's CID, an optional name, and the child's cumulative size."""

    cid: CID
    name: str | None = None
    tsize: int | None = None


@dataclass(frozen=True, slots=True)
class PBNode:
    links: tuple[PBLink, ...] = ()
    data: bytes | None = None


def encode_pblink(link: PBLink) -> bytes:
    out = encode_len_field(PBLINK_HASH, link.cid.to_bytes())
    if link.name is not None:
        out += encode_len_field(PBLINK_NAME, link.name.encode("utf-8"))
    if link.tsize is not None:
        out += encode_varint_field(PBLINK_TSIZE, link.tsize)
    return out


def encode_pbnode(node: PBNode) -> bytes:
    """The canonical dag-pb bytes of `node`: Links first, then Data."""
    parts = [encode_len_field(PBNODE_LINKS, encode_pblink(link)) for link in node.links]
    if node.data is not None:
        parts.append(encode_len_prefix(PBNODE_DATA, len(node.data)))
        parts.append(node.data)
    return b"".join(parts)


def decode_pbnode(block: bytes) -> PBNode:
    """Decode and validate a dag-pb block."""
    links: list[PBLink] = []
    data: bytes | None = None
    for field_number, wire_type, value in iter_fields(block):
        if field_number == PBNODE_LINKS and wire_type == WIRE_LEN:
            assert isinstance(value, memoryview)
            links.append(_decode_pblink(value, len(links)))
        elif field_number == PBNODE_DATA and wire_type == WIRE_LEN:
            assert isinstance(value, memoryview)
            # Verify that Data appears at most once.
            if data is not None:
                raise DecodeError("dag-pb node has more than one Data field")
            data = bytes(value)
        else:
            raise DecodeError(
                f"dag-pb node has unexpected field {field_number} (wire type {wire_type})"
            )
    return PBNode(tuple(links), data)


def _decode_pblink(buf: memoryview, index: int) -> PBLink:
    cid: CID | None = None
    name: str | None = None
    tsize: int | None = None
    last_field = 0
    for field_number, wire_type, value in iter_fields(buf):
        # Verify that link fields come in schema order, each at most once.
        if field_number <= last_field:
            raise DecodeError(f"dag-pb link {index}: field {field_number} out of order")
        last_field = field_number
        if field_number == PBLINK_HASH and wire_type == WIRE_LEN:
            assert isinstance(value, memoryview)
            try:
                cid = CID.from_bytes(bytes(value))
            except CIDError as exc:
                raise DecodeError(f"dag-pb link {index}: Hash is not a usable CID: {exc}") from exc
        elif field_number == PBLINK_NAME and wire_type == WIRE_LEN:
            assert isinstance(value, memoryview)
            try:
                name = bytes(value).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DecodeError(f"dag-pb link {index}: Name is not UTF-8") from exc
        elif field_number == PBLINK_TSIZE and wire_type == WIRE_VARINT:
            assert isinstance(value, int)
            tsize = value
        else:
            raise DecodeError(
                f"dag-pb link {index}: unexpected field {field_number} (wire type {wire_type})"
            )
    # Verify that the link has a Hash (optional in protobuf, required by dag-pb).
    if cid is None:
        raise DecodeError(f"dag-pb link {index} has no Hash")
    return PBLink(cid, name, tsize)
