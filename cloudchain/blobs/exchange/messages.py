"""The messages of the blob exchange (the "blob" wire channel), and their strict decoding.

Bitswap's vocabulary, one message per map, each a canonical msgpack map (the
"m" of a wire envelope {"ch": "blob", "m": ...}) with a type tag "t":

    {"t": "want-have",     "cids": [cid, ...]}   do you have these blocks?
    {"t": "have",          "cids": [cid, ...]}   yes (an answer to want-have)
    {"t": "dont-have",     "cids": [cid, ...]}   no (to want-have or want-block)
    {"t": "want-block",    "cids": [cid, ...]}   send me these blocks
    {"t": "block",         "cid": cid, "data": bytes}
    {"t": "cancel",        "cids": [cid, ...]}   forget my wants for these
    {"t": "fetch-request", "cid": cid}           fetch the DAG under cid from me (replicate)
    {"t": "have-all",      "cid": cid}           I now hold the whole DAG under cid, pinned
    {"t": "fetch-failed",  "cid": cid}           I could not (or would not) fetch it

A cid is the binary CID (`CID.to_bytes()`, what a dag-pb link holds). Every list
holds 1..CIDS_PER_MESSAGE_MAX distinct CIDs; a block's data is at most the
store's BLOCK_BYTES_MAX. Anything else (an unknown type, a missing or extra
key, a wrong type, a bad CID, a bound exceeded) is `ExchangeProtocolError`:
the sender is misbehaving. It is a `MalformedError`, so the node's existing
handler turns it into a PeerError and disconnects the peer.

Pure: no I/O, no store, no idea who wants what. Whether a block's bytes match
its CID is checked by the fetch (fetch.py, through the store), since a mismatch
is not malformed, only a lie.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cloudchain import codec
from cloudchain.blobs.cid import CID
from cloudchain.blobs.errors import CIDError
from cloudchain.blobs.store import BLOCK_BYTES_MAX
from cloudchain.ledger import MalformedError

# CIDs in one list message: 128 binary CIDs are about 4.5 KiB. Our fetcher asks at
# most IN_FLIGHT_PER_PEER (wantlist.py) blocks of a peer at once, far below.
CIDS_PER_MESSAGE_MAX = 128
# A whole encoded message: the largest block plus its CID and the map's framing.
MESSAGE_BYTES_MAX = BLOCK_BYTES_MAX + 1024
# A binary sha2-256 CIDv1 is 36 bytes; CIDv0 34. Anything longer is not a CID of ours.
CID_BYTES_MAX = 64


class ExchangeProtocolError(MalformedError):
    """A peer sent a blob-exchange message that breaks the protocol: its fault, not ours."""


@dataclass(frozen=True, slots=True)
class WantHave:
    cids: tuple[CID, ...]


@dataclass(frozen=True, slots=True)
class Have:
    cids: tuple[CID, ...]


@dataclass(frozen=True, slots=True)
class DontHave:
    cids: tuple[CID, ...]


@dataclass(frozen=True, slots=True)
class WantBlock:
    cids: tuple[CID, ...]


@dataclass(frozen=True, slots=True)
class Cancel:
    cids: tuple[CID, ...]


@dataclass(frozen=True, slots=True)
class BlockMessage:
    """A block as sent: its bytes are *claimed* to hash to `cid`, not yet verified."""

    cid: CID
    data: bytes


@dataclass(frozen=True, slots=True)
class FetchRequest:
    cid: CID


@dataclass(frozen=True, slots=True)
class HaveAll:
    cid: CID


@dataclass(frozen=True, slots=True)
class FetchFailed:
    cid: CID


CidListMessage = WantHave | Have | DontHave | WantBlock | Cancel
CidMessage = FetchRequest | HaveAll | FetchFailed
ExchangeMessage = CidListMessage | BlockMessage | CidMessage

# The type tag of each message class: the table the decoder looks types up in.
_LIST_TYPES: dict[str, type[CidListMessage]] = {
    "want-have": WantHave,
    "have": Have,
    "dont-have": DontHave,
    "want-block": WantBlock,
    "cancel": Cancel,
}
_CID_TYPES: dict[str, type[CidMessage]] = {
    "fetch-request": FetchRequest,
    "have-all": HaveAll,
    "fetch-failed": FetchFailed,
}
_TAG_OF: dict[type, str] = {cls: tag for tag, cls in (*_LIST_TYPES.items(), *_CID_TYPES.items())}
_TAG_OF[BlockMessage] = "block"


# -- encoding ----------------------------------------------------------------------


def message_to_obj(message: ExchangeMessage) -> dict[str, Any]:
    """The plain map of `message`, ready for `codec.encode` (in a wire envelope)."""
    tag = _TAG_OF[type(message)]
    if isinstance(message, BlockMessage):
        assert len(message.data) <= BLOCK_BYTES_MAX
        return {"t": tag, "cid": message.cid.to_bytes(), "data": bytes(message.data)}
    if isinstance(message, FetchRequest | HaveAll | FetchFailed):
        return {"t": tag, "cid": message.cid.to_bytes()}
    assert 1 <= len(message.cids) <= CIDS_PER_MESSAGE_MAX, len(message.cids)
    return {"t": tag, "cids": [cid.to_bytes() for cid in message.cids]}


def encode_message(message: ExchangeMessage) -> bytes:
    return codec.encode(message_to_obj(message))


def chunked(cids: list[CID]) -> list[tuple[CID, ...]]:
    """`cids` split into lists no longer than a message may carry."""
    step = CIDS_PER_MESSAGE_MAX
    return [tuple(cids[i : i + step]) for i in range(0, len(cids), step)]


# -- decoding ----------------------------------------------------------------------


def decode_message(data: bytes) -> ExchangeMessage:
    """Decode a message from its canonical bytes (ExchangeProtocolError if malformed)."""
    try:
        obj = codec.decode(data, max_bytes=MESSAGE_BYTES_MAX)
    except codec.CodecError as exc:
        raise ExchangeProtocolError(f"blob message: {exc}") from None
    return message_from_obj(obj)


def message_from_obj(obj: Any) -> ExchangeMessage:
    """The message a decoded map holds; ExchangeProtocolError unless it is exactly one."""
    if not isinstance(obj, Mapping):
        raise ExchangeProtocolError(f"blob message must be a map, not {type(obj).__name__}")
    tag = obj.get("t")
    if not isinstance(tag, str):  # a map or a list would not even hash (found by fuzzing)
        raise ExchangeProtocolError(f"unknown blob message type (a {type(tag).__name__})")
    if tag in _LIST_TYPES:
        _expect_keys(obj, tag, {"t", "cids"})
        return _LIST_TYPES[tag](_cid_list(obj["cids"], tag))
    if tag in _CID_TYPES:
        _expect_keys(obj, tag, {"t", "cid"})
        return _CID_TYPES[tag](_cid(obj["cid"], tag))
    if tag == "block":
        _expect_keys(obj, tag, {"t", "cid", "data"})
        data = obj["data"]
        # Verify that the data is bytes of a size the store accepts.
        if not isinstance(data, bytes):
            raise ExchangeProtocolError(f"block: data must be bytes, not {type(data).__name__}")
        if len(data) > BLOCK_BYTES_MAX:
            raise ExchangeProtocolError(f"block: {len(data)} bytes exceeds {BLOCK_BYTES_MAX}")
        return BlockMessage(_cid(obj["cid"], tag), data)
    raise ExchangeProtocolError(f"unknown blob message type {tag!r}")


def _expect_keys(obj: Mapping[str, Any], tag: str, keys: set[str]) -> None:
    # Verify that the map has exactly the keys of its type.
    if set(obj) != keys:
        raise ExchangeProtocolError(f"{tag}: keys {sorted(obj)}, expected {sorted(keys)}")


def _cid_list(value: Any, tag: str) -> tuple[CID, ...]:
    # Verify that the list is a non-empty list of distinct CIDs, within the bound.
    if not isinstance(value, tuple | list):
        raise ExchangeProtocolError(f"{tag}: cids must be a list, not {type(value).__name__}")
    if not 1 <= len(value) <= CIDS_PER_MESSAGE_MAX:
        raise ExchangeProtocolError(f"{tag}: {len(value)} cids, expected 1..{CIDS_PER_MESSAGE_MAX}")
    cids = tuple(_cid(item, tag) for item in value)
    if len(set(cids)) != len(cids):
        raise ExchangeProtocolError(f"{tag}: repeated cids")
    return cids


def _cid(value: Any, tag: str) -> CID:
    # Verify that the value is a binary CID this store can use.
    if not isinstance(value, bytes):
        raise ExchangeProtocolError(f"{tag}: a cid must be bytes, not {type(value).__name__}")
    if len(value) > CID_BYTES_MAX:
        raise ExchangeProtocolError(f"{tag}: cid of {len(value)} bytes")
    try:
        return CID.from_bytes(value)
    except CIDError as exc:
        raise ExchangeProtocolError(f"{tag}: {exc}") from None
