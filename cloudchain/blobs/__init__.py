"""The blob store: CIDs and DAGs as `ipfs add` makes them, and blocks on disk.

A file added here gets the CID that kubo's `ipfs add` prints for the same bytes:

    varint.py     the one varint: multiformats' unsigned varint and protobuf's
    multibase.py  base58btc and base32 text
    cid.py        multihash (sha2-256) and CIDv0/CIDv1 (dag-pb, raw): parse, format
    block.py      a block and its verification against its CID
    protobuf.py   the protobuf wire primitives dag-pb and UnixFS need
    dagpb.py      dag-pb nodes (PBNode, PBLink), encode and strict decode
    unixfs.py     UnixFS Data messages, encode and decode
    importer.py   chunker and balanced layout: bytes in, blocks and root CID out
    walk.py       reading a file DAG back, verified, in order
    traverse.py   byte ranges and DAG walks over blocks from any source

    store.py      BlobStore: blocks on disk, streaming add and read, pins, leases, GC
    flatfs.py     block files in kubo's flatfs layout, written atomically
    pinfile.py    the pin set, one JSON file written atomically
    leasefile.py  the leases (blobs held until anchored), one JSON file written atomically

Everything above the blank line is pure: no files, sockets or clocks (the
importer reads only the stream it is given). The store owns a directory; the
exchange between nodes is the package `exchange/`, over the store.
"""

from cloudchain.blobs.block import Block, is_block_valid, verify_block
from cloudchain.blobs.cid import CID, DAG_PB, RAW
from cloudchain.blobs.errors import BlobFormatError, BlockMismatchError, CIDError, DecodeError
from cloudchain.blobs.importer import (
    CID_V1_OPTIONS,
    DEFAULT_OPTIONS,
    FileImporter,
    ImportOptions,
    ImportResult,
    ImportStream,
    hash_stream,
    import_bytes,
    import_stream,
)
from cloudchain.blobs.walk import decode_file_node, iter_file

__all__ = [
    "CID",
    "CID_V1_OPTIONS",
    "DAG_PB",
    "DEFAULT_OPTIONS",
    "RAW",
    "BlobFormatError",
    "Block",
    "BlockMismatchError",
    "CIDError",
    "DecodeError",
    "FileImporter",
    "ImportOptions",
    "ImportResult",
    "ImportStream",
    "decode_file_node",
    "hash_stream",
    "import_bytes",
    "import_stream",
    "is_block_valid",
    "iter_file",
    "verify_block",
]
