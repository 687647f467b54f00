"""A blob's DAG as the explorer draws it: its blocks breadth-first from the root, each
with its codec, size and links, as far as this node holds them.

The walk is bounded by `max_nodes` (a DAG of a large file has thousands of blocks;
a page shows the top of it) and by the bytes it reads, and reads only blocks that are
here: a missing block is listed as missing, never fetched from peers; one that cannot
be read (collected by a GC meanwhile, or damaged) is listed with its error. Pure given
`has` and `get_block`: the caller runs it on the blob store's threads, holding the
root from GC (admin.py).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cloudchain.blobs.cid import CID, RAW
from cloudchain.blobs.errors import DecodeError
from cloudchain.blobs.store import BlockNotFoundError, CorruptBlockError
from cloudchain.blobs.walk import decode_file_node

DEFAULT_DAG_NODES = 200
MAX_DAG_NODES = 1_000
# Bytes of blocks one walk reads at most: leaves are read whole to be decoded, and a
# thousand 256 KiB leaves would be 256 MiB for one call of a public method.
MAX_DAG_READ_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class DagNode:
    cid: CID
    codec: str  # "raw" or "dag-pb"
    present: bool  # the block is in this node's store
    block_bytes: int  # the block's own size (0 when not present)
    file_bytes: int  # the file bytes under it (0 when not present)
    links: tuple[tuple[CID, int], ...]  # (child, file bytes under it)
    error: str = ""  # why the block could not be read as a file node

    def to_json(self) -> dict[str, Any]:
        return {
            "cid": str(self.cid),
            "codec": self.codec,
            "present": self.present,
            "block_bytes": self.block_bytes,
            "file_bytes": self.file_bytes,
            "links": [{"cid": str(cid), "bytes": size} for cid, size in self.links],
            **({"error": self.error} if self.error else {}),
        }


def walk_dag(
    root: CID,
    has: Callable[[CID], bool],
    get_block: Callable[[CID], bytes],
    max_nodes: int,
    max_bytes: int = MAX_DAG_READ_BYTES,
) -> tuple[list[DagNode], bool]:
    """The first `max_nodes` blocks of `root`'s DAG, breadth-first (a block linked
    twice is listed once), reading at most about `max_bytes` of blocks, and whether
    there were more. A block that cannot be read is listed with its error."""
    nodes: list[DagNode] = []
    seen = {root}
    queue = deque([root])
    read = 0
    while queue and len(nodes) < max_nodes and read < max_bytes:
        cid = queue.popleft()
        node = _node(cid, has, get_block)
        read += node.block_bytes
        nodes.append(node)
        for child, _ in node.links:
            if child not in seen:
                seen.add(child)
                queue.append(child)
    return nodes, bool(queue)


def _node(cid: CID, has: Callable[[CID], bool], get_block: Callable[[CID], bytes]) -> DagNode:
    codec = "raw" if cid.codec == RAW else "dag-pb"
    if not has(cid):
        return DagNode(cid, codec, False, 0, 0, ())
    try:
        block = get_block(cid)
    except (BlockNotFoundError, CorruptBlockError) as exc:  # collected meanwhile; damaged
        return DagNode(cid, codec, False, 0, 0, (), f"{type(exc).__name__}: {exc}")
    try:
        file_node = decode_file_node(cid, block)
    except DecodeError as exc:
        return DagNode(cid, codec, True, len(block), 0, (), str(exc))
    return DagNode(cid, codec, True, len(block), file_node.filesize, file_node.children)
