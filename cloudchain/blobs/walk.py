"""Reading a UnixFS file DAG back: block by block, verified, in file order.

Given a root CID and a way to get a block by CID (the store, or a peer
exchange), `iter_file` yields the file's bytes. It checks what a fetched DAG
can get wrong: every block against its CID, every node's structure (one
`blocksizes` entry per link, `filesize` equal to its own data plus its
children's), and every child's size against what its parent promised. It walks
depth-first with an explicit stack, bounded by `MAX_DAG_DEPTH`, and holds one
block at a time plus the stack of links still to visit.

No I/O of its own: `get_block` is the caller's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from cloudchain.blobs.block import verify_block
from cloudchain.blobs.cid import CID, RAW
from cloudchain.blobs.dagpb import decode_pbnode
from cloudchain.blobs.errors import DecodeError
from cloudchain.blobs.unixfs import DataType, decode_unixfs

# A balanced DAG of 174-link nodes over 256 KiB chunks holds 174**8 chunks (about
# 7e16 bytes) at depth 8; trickle DAGs are deeper but grow logarithmically too.
MAX_DAG_DEPTH = 64

_FILE_TYPES = (DataType.FILE, DataType.RAW)


@dataclass(frozen=True, slots=True)
class FileNode:
    """One block of a file DAG: its own bytes, and its children with their sizes."""

    data: bytes
    children: tuple[tuple[CID, int], ...]  # (child CID, file bytes under it)

    @property
    def filesize(self) -> int:
        return len(self.data) + sum(size for _, size in self.children)


def decode_file_node(cid: CID, block: bytes) -> FileNode:
    """Decode one (already verified) block of a UnixFS file DAG."""
    if cid.codec == RAW:
        return FileNode(block, ())
    node = decode_pbnode(block)
    # Verify that the node carries UnixFS data of a file.
    if node.data is None:
        raise DecodeError(f"{cid}: dag-pb node without UnixFS Data")
    unixfs = decode_unixfs(node.data)
    if unixfs.type not in _FILE_TYPES:
        raise DecodeError(f"{cid}: UnixFS {unixfs.type.name} node, not a file")
    # Verify that there is one blocksize per link.
    if len(unixfs.blocksizes) != len(node.links):
        raise DecodeError(f"{cid}: {len(node.links)} links but {len(unixfs.blocksizes)} blocksizes")
    file_node = FileNode(
        unixfs.data or b"",
        tuple((link.cid, size) for link, size in zip(node.links, unixfs.blocksizes, strict=True)),
    )
    # Verify that filesize, when present, is the node's data plus its children's.
    if unixfs.filesize is not None and unixfs.filesize != file_node.filesize:
        raise DecodeError(
            f"{cid}: filesize {unixfs.filesize} but data and blocksizes add to {file_node.filesize}"
        )
    return file_node


def iter_file(
    root: CID, get_block: Callable[[CID], bytes], *, verify: bool = True
) -> Iterator[bytes]:
    """Yield the bytes of the file under `root`, in order.

    `verify=False` skips the hash check, for a `get_block` that already verified.
    """
    stack: list[tuple[CID, int, int | None]] = [(root, 0, None)]
    while stack:
        cid, depth, expected_size = stack.pop()
        block = get_block(cid)
        if verify:
            verify_block(cid, block)
        node = decode_file_node(cid, block)
        # Verify that the child holds as many bytes as its parent said.
        if expected_size is not None and node.filesize != expected_size:
            raise DecodeError(
                f"{cid}: holds {node.filesize} bytes of file, its parent says {expected_size}"
            )
        if node.data:
            yield node.data
        if node.children:
            # Verify that the DAG is not deeper than any sane file needs.
            if depth + 1 > MAX_DAG_DEPTH:
                raise DecodeError(f"{cid}: file DAG deeper than {MAX_DAG_DEPTH} levels")
            for child, size in reversed(node.children):
                stack.append((child, depth + 1, size))
