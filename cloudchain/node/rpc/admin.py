"""The operator's JSON-RPC methods, ours and not CometBFT's: the blob store's bookkeeping.

    blob_stat {cid}     {"cid", "size", "complete", "blocks_local", "blocks_missing", "pinned",
                         "leased"}
    blob_dag {cid, max_nodes}   {"cid", "nodes": [{"cid", "codec", "present", "block_bytes",
                         "file_bytes", "links": [{"cid", "bytes"}]}], "truncated"}
    blob_pin {cid}      {"cid", "pinned": true, "changed"}
    blob_unpin {cid}    {"cid", "pinned": false, "changed"}
    blob_gc {}          {"blocks_removed", "bytes_freed", "blocks_kept", "leases_released",
                         "leases_expired": [cids, oldest first]}

An upload (or a replica a peer asked for) is leased, not pinned: blob_pin turns
its lease into a pin, blob_unpin drops a pin or a lease, and blob_gc releases
the leases of anchored roots and drops those past [blobs] unanchored_grace_s
(blobs/store.py, "Leases").

blob_pin, blob_unpin and blob_gc change what the node keeps: they are
OPERATOR_METHODS, which answer only when config.toml says `[rpc] unsafe = true`
(CometBFT's setting for its own unsafe routes, dial_peers, unsafe_flush_mempool and
the like, none of which we have). With it false, the default, the server registers
them disabled (server.py) and every call, over POST, the URI form or the WebSocket,
gets `operator_method_disabled`'s error: -32601, JSON-RPC's "the method does not
exist / is not available", as CometBFT answers a disabled unsafe route, with data
naming the setting, so a client sees both that the method is not there for it and
why. blob_stat and blob_dag only read, and answer always.

GC keeps the pins, the leases and the CIDs anchored on chain (the NodeView's
`anchored_cids`). Every store call runs on the blob routes' threads
(blob_http.py's `run`), never on the event loop, and the store's errors are
mapped here to JSON-RPC's: a malformed CID is -32602, a blob not here, a
corrupt block, a pin over the limit or a store not open -32603 saying so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from cloudchain.blobs.cid import CID
from cloudchain.blobs.errors import CIDError
from cloudchain.blobs.store import BlockNotFoundError, CorruptBlockError, PinLimitError
from cloudchain.node.rpc.blob_dag import DEFAULT_DAG_NODES, MAX_DAG_NODES, DagNode, walk_dag
from cloudchain.node.rpc.blob_http import BlobHTTP, BlobHTTPError, parse_cid
from cloudchain.node.rpc.errors import INTERNAL_ERROR, METHOD_NOT_FOUND, RPCError
from cloudchain.node.rpc.params import bad_params, int_param
from cloudchain.node.rpc.view import BlobStoreAccess, NodeView

T = TypeVar("T")

# The methods that change the node's state, enabled by `[rpc] unsafe = true` alone.
OPERATOR_METHODS = ("blob_pin", "blob_unpin", "blob_gc")
UNSAFE_SETTING = "[rpc] unsafe"


def operator_method_disabled(method: str) -> RPCError:
    """What an operator method answers while `[rpc] unsafe` is false."""
    assert method in OPERATOR_METHODS
    return RPCError(
        METHOD_NOT_FOUND,
        "Method not found",
        f"{method} is an operator method: set {UNSAFE_SETTING} = true in config.toml to enable it",
    )


class BlobAdmin:
    def __init__(self, node: NodeView, blob_http: BlobHTTP) -> None:
        self._node = node
        self._blob_http = blob_http

    async def blob_stat(self, params: dict[str, Any]) -> dict[str, Any]:
        cid = _cid_param(params)
        store = self._store()
        stat = await self._run(store.stat, cid)
        pinned = cid in await self._run(store.pins)
        lease = await self._run(store.lease_of, cid)
        return {
            "cid": str(cid),
            "size": stat.size,
            "complete": stat.complete,
            "blocks_local": stat.blocks_local,
            "blocks_missing": stat.blocks_missing,
            "pinned": pinned,
            "leased": lease is not None,
        }

    async def blob_dag(self, params: dict[str, Any]) -> dict[str, Any]:
        """The blob's DAG from its root, breadth-first, as far as this node holds it
        (blob_dag.py); at most `max_nodes` blocks (DEFAULT_DAG_NODES, up to MAX_DAG_NODES)."""
        cid = _cid_param(params)
        max_nodes = DEFAULT_DAG_NODES
        if params.get("max_nodes") is not None:
            max_nodes = int_param(params["max_nodes"], "max_nodes")
            if not 1 <= max_nodes <= MAX_DAG_NODES:
                raise bad_params(f"max_nodes must be in [1, {MAX_DAG_NODES}], got {max_nodes}")
        store = self._store()

        def walk() -> tuple[list[DagNode], bool]:
            with store.hold(cid):  # GC keeps the DAG while it is walked
                return walk_dag(cid, store.has, store.get_block, max_nodes)

        nodes, truncated = await self._run(walk)
        return {
            "cid": str(cid),
            "nodes": [node.to_json() for node in nodes],
            "truncated": truncated,
        }

    async def blob_pin(self, params: dict[str, Any]) -> dict[str, Any]:
        cid = _cid_param(params)
        changed = await self._run(self._store().pin, cid)
        return {"cid": str(cid), "pinned": True, "changed": changed}

    async def blob_unpin(self, params: dict[str, Any]) -> dict[str, Any]:
        cid = _cid_param(params)
        changed = await self._run(self._store().unpin, cid)
        return {"cid": str(cid), "pinned": False, "changed": changed}

    async def blob_gc(self, params: dict[str, Any]) -> dict[str, Any]:
        keep = await self._run(self._node.anchored_cids)  # the store keeps its pins
        result = await self._run(self._store().gc, keep)
        return {
            "blocks_removed": result.blocks_removed,
            "bytes_freed": result.bytes_freed,
            "blocks_kept": result.blocks_kept,
            "leases_released": result.leases_released,
            "leases_expired": [str(cid) for cid in result.leases_expired],
        }

    def _store(self) -> BlobStoreAccess:
        try:
            return self._blob_http.store()
        except BlobHTTPError as exc:
            raise RPCError(INTERNAL_ERROR, "Internal error", exc.message) from None

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        """A store call, its errors as JSON-RPC's."""
        try:
            return await self._blob_http.run(function, *args)
        except BlockNotFoundError as exc:
            raise RPCError(
                INTERNAL_ERROR, "Internal error", f"blob {exc.cid} is not in the store"
            ) from None
        except (CorruptBlockError, PinLimitError) as exc:
            raise RPCError(INTERNAL_ERROR, "Internal error", str(exc)) from None


def _cid_param(params: dict[str, Any]) -> CID:
    try:
        return parse_cid(params.get("cid"))
    except CIDError as exc:
        raise bad_params(f"cid: {exc}") from None
