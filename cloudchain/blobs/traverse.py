"""Walking DAGs without reading more than needed: byte ranges and block structure.

Two walks the store needs and `walk.iter_file` does not give:

- `iter_range` yields the bytes [start, end) of a UnixFS file. It uses each
  node's `blocksizes` to skip every child that lies wholly outside the range,
  so reading the last byte of a 1 GB file loads one block per level (about
  three), not four thousand. It checks each loaded child's size against what
  its parent promised, as `iter_file` does.
- `walk_dag` visits every block reachable from some roots through dag-pb links,
  each distinct block once, and says which are local: what `stat`,
  `missing_blocks` and the garbage collector's mark phase are made of. It
  follows links of any dag-pb DAG, not only UnixFS files.

`has_no_links` lets a walker skip reading a dag-pb leaf whole: a few bytes of
its head and its size are enough to see that it has no links.

Pure: the caller's `load_node` / `links_of` do the I/O and the hash checks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from cloudchain.blobs.cid import CID
from cloudchain.blobs.errors import DecodeError
from cloudchain.blobs.protobuf import read_varint
from cloudchain.blobs.varint import PB_VARINT_MAX_BYTES
from cloudchain.blobs.walk import MAX_DAG_DEPTH, FileNode

# dag-pb's Data field (field 1, wire type LEN) starts with this key byte.
_PBNODE_DATA_KEY = 0x0A
# Enough of a block's head to read that key and the longest protobuf length varint.
HEAD_BYTES = 1 + PB_VARINT_MAX_BYTES


def has_no_links(head: bytes, size: int) -> bool:
    """Whether a dag-pb block of `size` bytes that starts with `head` surely has no
    links: it is empty, or a single Data field that runs to its very end. False
    means "read it whole to know" (links first, as canonical blocks put them)."""
    if size == 0:
        return True
    if not head or head[0] != _PBNODE_DATA_KEY:
        return False
    try:
        length, offset = read_varint(head, 1)
    except DecodeError:
        return False
    return offset + length == size


def iter_range(
    root: FileNode, load_node: Callable[[CID], FileNode], start: int, end: int
) -> Iterator[bytes]:
    """Yield the bytes [start, end) of the file whose (loaded) root node is `root`.

    `load_node` must return a verified, decoded node; only nodes that hold some
    byte of the range are loaded.
    """
    assert 0 <= start <= end <= root.filesize
    # Nodes still to visit, last first: (cid, file offset of its first byte, depth, size).
    stack: list[tuple[CID, int, int, int]] = []
    node, offset, depth = root, 0, 0
    while True:
        data = node.data
        low, high = max(start - offset, 0), min(end - offset, len(data))
        if low < high:
            yield data if low == 0 and high == len(data) else data[low:high]
        children = _children_in_range(node, offset + len(data), start, end)
        if children:
            # Verify that the DAG is not deeper than any sane file needs.
            if depth + 1 > MAX_DAG_DEPTH:
                raise DecodeError(f"file DAG deeper than {MAX_DAG_DEPTH} levels")
            stack.extend((cid, at, depth + 1, size) for cid, at, size in reversed(children))
        if not stack:
            return
        cid, offset, depth, expected_size = stack.pop()
        node = load_node(cid)
        # Verify that the child holds as many bytes as its parent said.
        if node.filesize != expected_size:
            raise DecodeError(
                f"{cid}: holds {node.filesize} bytes of file, its parent says {expected_size}"
            )


def _children_in_range(
    node: FileNode, offset: int, start: int, end: int
) -> list[tuple[CID, int, int]]:
    """(cid, file offset, size) of the children of `node` that hold bytes of [start, end);
    `offset` is where the first child's bytes begin in the file."""
    out = []
    for cid, size in node.children:
        if offset >= end:
            break
        if offset + size > start:
            out.append((cid, offset, size))
        offset += size
    return out


def walk_dag(
    roots: Iterable[CID],
    links_of: Callable[[CID], Sequence[CID] | None],
    seen: set[tuple[int, bytes]],
) -> Iterator[tuple[CID, bool]]:
    """Yield (cid, is_local) for each block reachable from `roots`, depth first.

    `links_of(cid)` is the block's links, or None when the block is not local (its
    children, if any, cannot be known). `seen` holds (codec, digest) of blocks
    already visited and is updated, so several walks can share it; a block is
    visited once per codec, since the same bytes read as raw have no links.
    """
    stack: list[tuple[CID, int]] = [(root, 0) for root in reversed(list(roots))]
    while stack:
        cid, depth = stack.pop()
        if (cid.codec, cid.digest) in seen:
            continue
        seen.add((cid.codec, cid.digest))
        links = links_of(cid)
        yield cid, links is not None
        if links:
            # Verify that the DAG is not deeper than any sane file needs.
            if depth + 1 > MAX_DAG_DEPTH:
                raise DecodeError(f"{cid}: DAG deeper than {MAX_DAG_DEPTH} levels")
            stack.extend((child, depth + 1) for child in reversed(links))
