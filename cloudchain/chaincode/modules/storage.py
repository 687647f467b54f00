"""The storage module: blobs anchored on chain by CID, owner and replica nodes.

Blobs (models, datasets) never go through consensus: they live in the nodes'
content-addressed blob store and are replicated peer to peer. What the chain
records is a claim, an *anchor*: "OWNER keeps the SIZE bytes named CID, held by
these REPLICAS". A node's garbage collector never collects an anchored blob
(`anchored_cids`), and market tasks name their inputs and results by CID
(`cid_arg`, shared with the market).

State:
    storage/anchor/<cid>/<owner>   {cid, size, owner, replicas, height, time_ns}
    storage/owner/<owner>/<cid>    true: the same anchor, indexed by owner

Several owners may anchor the same CID, one record each. The bytes are the
same whoever anchors them (content addressing), so the first anchor must not
squat the CID: each owner's anchor stands on its own, an owner updates or
removes only its own, and the blob stays anchored while any owner keeps it.
Each record is its owner's claim (sizes are not cross-checked between owners,
so a wrong first claim cannot block a right one); an owner's re-anchor updates
its replicas and must repeat its size. At most MAX_OWNERS_PER_CID owners per
CID keep every record and query bounded.

A CID is stored in its canonical text, `str(CID.parse(text))`: a CIDv0 stays
"Qm...", a CIDv1 becomes base32 "b..." whichever multibase it came in. A CIDv0
and a CIDv1 of the same DAG are different CIDs here, as they are to `ipfs pin`.
Every CID text is ASCII above "/", so the anchors of one CID are contiguous in
key order and the CIDs come out sorted.

Small records that need the chain's integrity (the paper's "important metadata")
can instead be written on chain, in parts: `storage.put_part(object, index,
data)` stores at most MAX_PART_BYTES under the sender's object, and every
validator keeps it. This is consensus-based storage, what `cloudchain bench
storage` measures against the blob store; it is priced in block space, so a
blob of gigabytes belongs in the blob store, with only its anchor on chain.

    storage/part/<owner>/<object>/<index, 8 hex digits>   the part's bytes
    storage/object/<owner>/<object>                        {parts, bytes}

This module does not know where the bytes are, whether the replicas really hold
them, or what they contain: the blob store and its peers answer that.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cloudchain import codec
from cloudchain.blobs.cid import CID
from cloudchain.blobs.errors import CIDError
from cloudchain.chaincode.codes import Code
from cloudchain.chaincode.context import Context, StateReader, read_value
from cloudchain.chaincode.module import (
    ArgError,
    Module,
    QueryError,
    TxError,
    int_arg,
    list_arg,
    query_filters,
    text_arg,
)
from cloudchain.crypto import is_address

STORAGE = Module("storage")

ANCHOR = b"storage/anchor/"
OWNER = b"storage/owner/"
PART = b"storage/part/"
OBJECT = b"storage/object/"

MAX_BLOB_BYTES = 2**50  # 1 PiB: far above any model or dataset, far below an int64
MAX_REPLICAS = 32  # replica nodes named by one anchor
MAX_OWNERS_PER_CID = 16  # independent anchors of the same bytes
MAX_LISTED = 100  # CIDs in one page of /storage/anchored
# The bytes of one on-chain part: what fits in a transaction (MAX_TX_BYTES, 64 KiB)
# with its envelope (keys, signature, names: under 300 bytes) and room to spare.
MAX_PART_BYTES = 63 * 1024
MAX_PARTS = 2**24  # parts of one object: 1 TiB at MAX_PART_BYTES, an index of 8 hex digits


# --- arguments ----------------------------------------------------------------------------


def cid_arg(value: Any) -> str:
    """A CID the blob store can use (CIDv0 "Qm..." or CIDv1), as its canonical text."""
    if not isinstance(value, str):
        raise ArgError(f"expected a CID string, got {type(value).__name__}")
    try:
        return str(CID.parse(value))
    except CIDError as exc:
        raise ArgError(str(exc)) from None


def node_id_arg(value: Any) -> str:
    """A P2P node id: the address of the node's key (40 lower-case hex characters)."""
    if not is_address(value):
        raise ArgError(f"{str(value)[:48]!r} is not a node id (40 lower-case hex characters)")
    return value


size_arg = int_arg(0, MAX_BLOB_BYTES)
object_arg = text_arg(64, r"[A-Za-z0-9][A-Za-z0-9._-]*")
index_arg = int_arg(0, MAX_PARTS - 1)


def part_arg(value: Any) -> bytes:
    """1 to MAX_PART_BYTES bytes."""
    if not isinstance(value, bytes):
        raise ArgError(f"expected bytes, got {type(value).__name__}")
    if not 1 <= len(value) <= MAX_PART_BYTES:
        raise ArgError(f"{len(value)} bytes is not in [1, {MAX_PART_BYTES}]")
    return value


_replica_list = list_arg(node_id_arg, MAX_REPLICAS, unique=True)


def replicas_arg(value: Any) -> tuple[str, ...]:
    """1 to MAX_REPLICAS distinct node ids: the nodes that hold the whole blob."""
    replicas = _replica_list(value)
    if not replicas:
        raise ArgError("at least one replica node (the one that holds the blob)")
    return replicas


# --- state --------------------------------------------------------------------------------


def anchor_key(cid: str, owner: str) -> bytes:
    return ANCHOR + cid.encode() + b"/" + owner.encode()


def owner_key(owner: str, cid: str) -> bytes:
    return OWNER + owner.encode() + b"/" + cid.encode()


def part_key(owner: str, name: str, index: int) -> bytes:
    return PART + f"{owner}/{name}/{index:08x}".encode()


def object_key(owner: str, name: str) -> bytes:
    return OBJECT + f"{owner}/{name}".encode()


def get_anchor(state: StateReader, cid: str, owner: str) -> dict[str, Any] | None:
    """The anchor of `cid` by `owner`, or None."""
    record = read_value(state, anchor_key(cid, owner))
    return None if record is None else codec.thaw(record)


def get_anchors(state: StateReader, cid: str) -> list[dict[str, Any]]:
    """Every anchor of `cid`, in owner order (at most MAX_OWNERS_PER_CID)."""
    prefix = ANCHOR + cid.encode() + b"/"
    return [codec.thaw(codec.decode(raw)) for _, raw in state.iterate(prefix)]


def anchored_cids(state: StateReader, owner: str = "", after: str = "") -> Iterator[str]:
    """The anchored CIDs in ascending order, each once, those after `after` only;
    with `owner`, only the CIDs that owner anchored. Lazy: the node's garbage
    collector keeps every blob this yields, and a query stops after a page."""
    if owner:
        prefix = OWNER + owner.encode() + b"/"
        for key, _ in state.iterate(prefix):
            cid = key[len(prefix) :].decode()
            if cid > after:
                yield cid
        return
    last = after
    for key, _ in state.iterate(ANCHOR):
        cid = key[len(ANCHOR) :].rpartition(b"/")[0].decode()
        if cid > last:
            last = cid
            yield cid


# --- transactions -------------------------------------------------------------------------


@STORAGE.tx("anchor", cid=cid_arg, size=size_arg, replicas=replicas_arg)
def process_anchor(ctx: Context, cid: str, size: int, replicas: tuple[str, ...]) -> None:
    """Anchor `cid` for the sender, or update the replicas of the sender's anchor."""
    previous = get_anchor(ctx.kv, cid, ctx.sender)
    if previous is not None:
        # Verify that the same CID keeps the same size (the bytes cannot change).
        if previous["size"] != size:
            message = f"{cid} is anchored with size {previous['size']}, not {size}"
            raise TxError(Code.OUT_OF_RANGE, message)
    else:
        # Verify that the CID has room for one more owner.
        owners = len(get_anchors(ctx.kv, cid))
        if owners >= MAX_OWNERS_PER_CID:
            raise TxError(
                Code.LIMIT_EXCEEDED,
                f"{cid} already has {owners} owners (at most {MAX_OWNERS_PER_CID})",
            )
        ctx.kv.set_value(owner_key(ctx.sender, cid), True)
    record = {
        "cid": cid,
        "size": size,
        "owner": ctx.sender,
        "replicas": list(replicas),
        "height": ctx.height,
        "time_ns": ctx.time_ns,
    }
    ctx.kv.set_value(anchor_key(cid, ctx.sender), record)
    ctx.emit(
        "anchor",
        cid=cid,
        owner=ctx.sender,
        size=size,
        replicas=len(replicas),
        updated=previous is not None,
    )


@STORAGE.tx("unanchor", cid=cid_arg)
def process_unanchor(ctx: Context, cid: str) -> None:
    """Remove the sender's anchor of `cid` (other owners' anchors stay)."""
    # Verify that the sender anchored the CID.
    if get_anchor(ctx.kv, cid, ctx.sender) is None:
        if get_anchors(ctx.kv, cid):
            raise TxError(Code.UNAUTHORIZED, f"{cid} is anchored by others, not by the sender")
        raise TxError(Code.NOT_FOUND, f"{cid} is not anchored")
    ctx.kv.delete(anchor_key(cid, ctx.sender))
    ctx.kv.delete(owner_key(ctx.sender, cid))
    ctx.emit("unanchor", cid=cid, owner=ctx.sender)


@STORAGE.tx("put_part", object=object_arg, index=index_arg, data=part_arg)
def process_put_part(ctx: Context, object: str, index: int, data: bytes) -> None:
    """Store part `index` of the sender's on-chain `object` (replacing it if present)."""
    key = part_key(ctx.sender, object, index)
    previous = ctx.kv.get(key)
    summary = read_value(ctx.kv, object_key(ctx.sender, object), {"parts": 0, "bytes": 0})
    if previous is None:
        parts, size = summary["parts"] + 1, summary["bytes"] + len(data)
    else:
        parts, size = summary["parts"], summary["bytes"] - len(codec.decode(previous)) + len(data)
    ctx.kv.set_value(key, data)
    ctx.kv.set_value(object_key(ctx.sender, object), {"parts": parts, "bytes": size})
    ctx.emit("put_part", owner=ctx.sender, object=object, index=index, bytes=len(data))


# --- queries ------------------------------------------------------------------------------


@STORAGE.query("blob")
def query_blob(state: StateReader, data: bytes) -> dict[str, Any]:
    """CID text -> {cid, anchors: [record, ...] in owner order}."""
    cid = _query_cid(data)
    anchors = get_anchors(state, cid)
    if not anchors:
        raise QueryError(Code.NOT_FOUND, f"{cid} is not anchored")
    return {"cid": cid, "anchors": anchors}


@STORAGE.query("anchored")
def query_anchored(state: StateReader, data: bytes) -> dict[str, Any]:
    """[owner=ADDRESS&after=CID] -> {cids: up to MAX_LISTED, more: bool}; ask again
    with after=the last CID while `more`."""
    filters = query_filters(data, ("owner", "after"))
    owner = filters.get("owner", "")
    if "owner" in filters and not is_address(owner):
        raise QueryError(Code.INVALID_QUERY, f"owner {owner[:48]!r} is not an address")
    after = _query_cid(filters["after"].encode()) if "after" in filters else ""
    cids, more = [], False
    for cid in anchored_cids(state, owner, after):
        if len(cids) == MAX_LISTED:
            more = True
            break
        cids.append(cid)
    return {"cids": cids, "more": more}


@STORAGE.query("object")
def query_object(state: StateReader, data: bytes) -> dict[str, Any]:
    """owner=ADDRESS&object=NAME -> {owner, object, parts, bytes}."""
    owner, name = _object_named(query_filters(data, ("owner", "object")))
    summary = read_value(state, object_key(owner, name))
    if summary is None:
        raise QueryError(Code.NOT_FOUND, f"{owner} has no object {name!r}")
    return {"owner": owner, "object": name, **codec.thaw(summary)}


@STORAGE.query("part")
def query_part(state: StateReader, data: bytes) -> dict[str, Any]:
    """owner=ADDRESS&object=NAME&index=N -> {index, data}."""
    filters = query_filters(data, ("owner", "object", "index"))
    owner, name = _object_named(filters)
    text = filters.get("index", "")
    if not (text.isascii() and text.isdigit() and int(text) < MAX_PARTS):
        raise QueryError(Code.INVALID_QUERY, f"index {text[:20]!r} is not in [0, {MAX_PARTS})")
    part = read_value(state, part_key(owner, name, int(text)))
    if part is None:
        raise QueryError(Code.NOT_FOUND, f"{owner}'s object {name!r} has no part {text}")
    return {"index": int(text), "data": part}


def _object_named(filters: dict[str, str]) -> tuple[str, str]:
    """The owner and object name a query's filters give, checked."""
    owner, name = filters.get("owner", ""), filters.get("object", "")
    if not is_address(owner):
        raise QueryError(Code.INVALID_QUERY, f"owner {owner[:48]!r} is not an address")
    try:
        object_arg(name)
    except ArgError as exc:
        raise QueryError(Code.INVALID_QUERY, f"object: {exc}") from None
    return owner, name


def _query_cid(data: bytes) -> str:
    try:
        return cid_arg(data.decode("ascii"))
    except (UnicodeDecodeError, ArgError) as exc:
        raise QueryError(Code.INVALID_QUERY, f"query data is not a CID: {exc}") from None
