"""The file importer: bytes in, the blocks and root CID of `ipfs add` out.

This is kubo's `ipfs add` for one file, byte for byte: the fixed-size chunker of
go-ipfs-chunker and the balanced layout of boxo (`ipld/unixfs/importer/balanced`)
with the node encodings of `unixfs.py` and `dagpb.py`. The modes it reproduces:

| `ipfs add` flags                     | leaves                     | internal nodes |
|--------------------------------------|----------------------------|----------------|
| (none: kubo's defaults)              | UnixFS File, dag-pb, CIDv0 | dag-pb, CIDv0  |
| `--cid-version=1`                    | raw, CIDv1                 | dag-pb, CIDv1  |
| `--raw-leaves`                       | raw, CIDv1                 | dag-pb, CIDv0  |
| `--cid-version=1 --raw-leaves=false` | UnixFS File, dag-pb, CIDv1 | dag-pb, CIDv1  |

`chunk_size` and `max_links` are `--chunker=size-N` and `--max-file-links`.

Theory of operation. The input is cut into chunks of exactly `chunk_size`
bytes (the last one shorter). Each chunk becomes a leaf. The balanced layout
then groups leaves under internal nodes of at most `max_links` children, those
under nodes one level up, and so on, every leaf at the same depth; a node is
complete as soon as it has `max_links` children, so it can be emitted at once.
We keep one open node per level (`_levels[h]` holds the links of the open node
at height h+1) and close a level when it fills. At the end, open levels are
closed bottom-up until one link remains at the top: that is the root. This
gives kubo's special cases without special code:

- the empty file is a single leaf with no data (`QmbFMke1...` in CIDv0);
- a file of one chunk is its single leaf, with no parent node;
- a partial last group still gets its own chain of parents: 175 chunks give a
  root with two links, the second a node with one link to the last leaf.

Each link records the child's CID, its `Tsize` (the cumulative serialised size
of the child's whole sub-DAG, what `ipfs object stat` calls CumulativeSize) and
its file size (which goes into the parent's UnixFS `blocksizes`).

Memory is bounded by one chunk being assembled plus, per level, the links of
the open node (`max_links` per level, `log_max_links(chunks)` levels); blocks
are handed to the caller as soon as they are made. No I/O here except reading
the stream given to `import_stream`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from cloudchain.blobs.block import Block
from cloudchain.blobs.cid import CID, DAG_PB, RAW
from cloudchain.blobs.dagpb import PBLink, PBNode, encode_pbnode
from cloudchain.blobs.unixfs import DataType, UnixFSData, encode_file_leaf, encode_unixfs

# kubo's default chunker, Import.UnixFSChunker = "size-262144" (256 KiB).
CHUNK_SIZE_BYTES = 262144
# boxo's helpers.DefaultLinksPerBlock: about 8 KiB of links (8192 // 47 bytes per
# link with a CIDv0, a size and protobuf framing) = 174 links per node.
MAX_LINKS = 174
# boxo's chunker.ChunkSizeLimit: kubo refuses chunkers larger than 1 MiB, since
# Bitswap will not move blocks over about 2 MiB.
CHUNK_SIZE_BYTES_MAX = 1048576
# A node of 8192 CIDv1 links is about 400 KiB; nothing sensible needs more.
MAX_LINKS_LIMIT = 8192


class BinaryReader(Protocol):
    def read(self, size: int = -1, /) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """How to chunk and encode; the defaults are kubo's `ipfs add`."""

    cid_version: int = 0
    # None means kubo's rule: raw leaves if and only if cid_version is 1.
    raw_leaves: bool | None = None
    chunk_size: int = CHUNK_SIZE_BYTES
    max_links: int = MAX_LINKS

    def __post_init__(self) -> None:
        if self.cid_version not in (0, 1):
            raise ValueError(f"unknown CID version {self.cid_version} (0 or 1)")
        if not 1 <= self.chunk_size <= CHUNK_SIZE_BYTES_MAX:
            raise ValueError(f"chunk size must be 1..{CHUNK_SIZE_BYTES_MAX} bytes")
        if not 2 <= self.max_links <= MAX_LINKS_LIMIT:
            raise ValueError(f"max links must be 2..{MAX_LINKS_LIMIT}")

    @property
    def use_raw_leaves(self) -> bool:
        return self.cid_version == 1 if self.raw_leaves is None else self.raw_leaves


DEFAULT_OPTIONS = ImportOptions()
CID_V1_OPTIONS = ImportOptions(cid_version=1)


@dataclass(frozen=True, slots=True)
class ImportResult:
    root: CID
    size: int  # bytes of file content
    dag_size: int  # serialised bytes of every block of the DAG: the root's Tsize
    blocks: int  # blocks emitted, counting repeats (a file of zeros repeats its leaf)
    leaves: int


class _Link(NamedTuple):
    cid: CID
    tsize: int  # cumulative serialised size of the child's sub-DAG
    filesize: int  # file bytes under the child


class FileImporter:
    """The sans-I/O importer: `add` bytes as they come, then `finish` once.

    Both return the blocks completed by that call. Every child comes before its
    parent, so the root is the last block of all; it comes from `add` when the
    file ends exactly on a full node (174 chunks, say), else from `finish`.
    """

    def __init__(self, options: ImportOptions = DEFAULT_OPTIONS) -> None:
        self._options = options
        self._raw_leaves = options.use_raw_leaves
        self._buffer = bytearray()  # the chunk being assembled, < chunk_size bytes
        self._levels: list[list[_Link]] = [[]]
        self._size = 0
        self._blocks = 0
        self._leaves = 0
        self._last: CID | None = None  # the last block emitted
        self._result: ImportResult | None = None

    @property
    def result(self) -> ImportResult:
        if self._result is None:
            raise RuntimeError("the import is not finished: call finish() first")
        return self._result

    def add(self, data: bytes | bytearray | memoryview) -> list[Block]:
        """Feed the next bytes of the file; return the blocks they complete."""
        if self._result is not None:
            raise RuntimeError("the import is finished: cannot add more data")
        view = memoryview(data).cast("B")
        chunk_size = self._options.chunk_size
        self._size += len(view)
        out: list[Block] = []
        if self._buffer:
            take = chunk_size - len(self._buffer)
            self._buffer += view[:take]
            view = view[take:]
            if len(self._buffer) < chunk_size:
                return out
            self._add_leaf(bytes(self._buffer), out)
            self._buffer.clear()
        while len(view) >= chunk_size:
            self._add_leaf(view[:chunk_size].tobytes(), out)
            view = view[chunk_size:]
        self._buffer += view
        assert len(self._buffer) < chunk_size
        return out

    def finish(self) -> list[Block]:
        """End of file: return the remaining blocks, root last (if `add` did not
        already emit it); sets `result`."""
        if self._result is not None:
            raise RuntimeError("the import is already finished")
        out: list[Block] = []
        if self._buffer:
            self._add_leaf(bytes(self._buffer), out)
            self._buffer.clear()
        if self._leaves == 0:
            self._add_leaf(b"", out)  # the empty file: one leaf, no data
        level = 0
        while True:
            links = self._levels[level]
            is_top = level == len(self._levels) - 1
            if is_top and len(links) == 1:
                root = links[0]
                break
            assert links or not is_top
            if links:
                self._levels[level] = []
                self._push(level + 1, self._add_node(links, out), out)
            level += 1
        assert self._last == root.cid
        assert root.filesize == self._size
        self._result = ImportResult(root.cid, self._size, root.tsize, self._blocks, self._leaves)
        return out

    def _add_leaf(self, chunk: bytes, out: list[Block]) -> None:
        assert len(chunk) <= self._options.chunk_size
        if self._raw_leaves:
            block = Block(CID(1, RAW, hashlib.sha256(chunk).digest()), chunk)
        else:
            block = self._dag_pb_block(encode_file_leaf(chunk))
        out.append(block)
        self._last = block.cid
        self._blocks += 1
        self._leaves += 1
        self._push(0, _Link(block.cid, len(block.data), len(chunk)), out)

    def _push(self, level: int, link: _Link, out: list[Block]) -> None:
        """Add `link` to the open node at `level`; close every level that fills."""
        while True:
            if level == len(self._levels):
                self._levels.append([])
            links = self._levels[level]
            links.append(link)
            if len(links) < self._options.max_links:
                return
            self._levels[level] = []
            link = self._add_node(links, out)
            level += 1

    def _add_node(self, links: list[_Link], out: list[Block]) -> _Link:
        """Emit the internal node over `links`; return the link to it."""
        assert 1 <= len(links) <= self._options.max_links
        blocksizes = tuple(link.filesize for link in links)
        filesize = sum(blocksizes)
        unixfs = UnixFSData(DataType.FILE, filesize=filesize, blocksizes=blocksizes)
        pb_links = tuple(PBLink(link.cid, "", link.tsize) for link in links)
        block = self._dag_pb_block(encode_pbnode(PBNode(pb_links, encode_unixfs(unixfs))))
        out.append(block)
        self._last = block.cid
        self._blocks += 1
        return _Link(block.cid, len(block.data) + sum(link.tsize for link in links), filesize)

    def _dag_pb_block(self, data: bytes) -> Block:
        digest = hashlib.sha256(data).digest()
        return Block(CID(self._options.cid_version, DAG_PB, digest), data)


class ImportStream:
    """Iterate once for the blocks as they are made; then read `result`."""

    def __init__(self, reader: BinaryReader, options: ImportOptions = DEFAULT_OPTIONS) -> None:
        self._reader = reader
        self._read_size = options.chunk_size
        self._importer = FileImporter(options)
        self._started = False

    def __iter__(self) -> Iterator[Block]:
        if self._started:
            raise RuntimeError("an import stream can be iterated only once")
        self._started = True
        while True:
            data = self._reader.read(self._read_size)
            if data is None:
                raise ValueError("reader returned None: a non-blocking stream is not supported")
            if not data:
                break
            yield from self._importer.add(data)
        yield from self._importer.finish()

    @property
    def result(self) -> ImportResult:
        return self._importer.result


def import_stream(reader: BinaryReader, options: ImportOptions = DEFAULT_OPTIONS) -> ImportStream:
    """The blocks of `reader`'s bytes as `ipfs add` makes them, lazily.

    stream = import_stream(f)
    for block in stream:
        store.put(block)
    stream.result.root
    """
    return ImportStream(reader, options)


def import_bytes(
    data: bytes, options: ImportOptions = DEFAULT_OPTIONS
) -> tuple[list[Block], ImportResult]:
    """All blocks of a small in-memory file, and the result."""
    importer = FileImporter(options)
    blocks = importer.add(data)
    blocks += importer.finish()
    return blocks, importer.result


def hash_stream(reader: BinaryReader, options: ImportOptions = DEFAULT_OPTIONS) -> ImportResult:
    """`ipfs add --only-hash`: the result without keeping any block."""
    stream = import_stream(reader, options)
    for _ in stream:
        pass
    return stream.result
