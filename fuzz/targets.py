"""The fuzz targets: every decoder that reads bytes from a peer or a client, each with
the errors its documentation allows.

A target is a function of bytes and the exception types it may raise on bad input.
Anything else it raises is a crash: the runner lets it propagate so that atheris
reports it and writes the input. Where a decoder takes text, a JSON value or a
decoded msgpack value rather than bytes, the target builds that from the bytes
first; a failure of that step is not the decoder's and makes the input
uninteresting (the target returns), so only the decoder's own failures count.

Each target is built by a factory that imports only what its decoder needs: the
runner imports it under atheris' instrumentation, which rewrites every cloudchain
module imported, at about 30 ms a module; importing all of them for every target
would cost each run seconds before its first input.

What this module does not know: atheris (the runner, __main__.py), the seed corpus
(seeds.py), or how many inputs a run takes.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Target:
    """One decoder under fuzzing: `decode` takes the fuzzer's bytes; on bad input it
    may raise only an instance of `allowed` (subclasses included)."""

    name: str
    decode: Callable[[bytes], object]
    allowed: tuple[type[BaseException], ...]
    doc: str


_FACTORIES: dict[str, Callable[[], Target]] = {}


def _factory(name: str) -> Callable[[Callable[[], Target]], Callable[[], Target]]:
    def register(build: Callable[[], Target]) -> Callable[[], Target]:
        _FACTORIES[name] = build
        return build

    return register


def names() -> list[str]:
    """Every target's name, in the order of this file (a rough order of layers)."""
    return list(_FACTORIES)


def load(name: str) -> Target:
    """The target `name`, its decoder's modules imported now. KeyError if unknown."""
    target = _FACTORIES[name]()
    assert target.name == name, f"the factory of {name} builds {target.name}"
    return target


def load_all() -> dict[str, Target]:
    return {name: load(name) for name in _FACTORIES}


def _text(data: bytes) -> str:
    """Bytes as text, every byte kept: invalid UTF-8 becomes lone surrogates, which a
    decoder of text must refuse as it refuses any other bad character."""
    return data.decode("utf-8", errors="surrogateescape")


# --- canonical msgpack and the ledger -------------------------------------------------


@_factory("codec")
def _codec() -> Target:
    from cloudchain import codec

    return Target(
        "codec",
        codec.decode,
        (codec.CodecError,),
        "codec.decode: the canonical msgpack of every hashed or signed value",
    )


@_factory("transaction")
def _transaction() -> Target:
    from cloudchain.ledger import MalformedError, Transaction

    return Target(
        "transaction",
        Transaction.from_bytes,
        (MalformedError,),
        "ledger.Transaction.from_bytes: a transaction from a client or a peer",
    )


@_factory("block")
def _block() -> Target:
    from cloudchain.ledger import Block, MalformedError

    return Target(
        "block", Block.from_bytes, (MalformedError,), "ledger.Block.from_bytes: a proposal's block"
    )


@_factory("block_header")
def _block_header() -> Target:
    from cloudchain.ledger import BlockHeader, MalformedError

    return Target(
        "block_header", BlockHeader.from_bytes, (MalformedError,), "ledger.BlockHeader.from_bytes"
    )


@_factory("tx_result")
def _tx_result() -> Target:
    from cloudchain.ledger import MalformedError, TxResult

    return Target(
        "tx_result",
        TxResult.from_bytes,
        (MalformedError,),
        "ledger.TxResult.from_bytes: a stored transaction result",
    )


@_factory("evidence")
def _evidence() -> Target:
    from cloudchain.ledger import DuplicateVoteEvidence, MalformedError

    return Target(
        "evidence",
        DuplicateVoteEvidence.from_bytes,
        (MalformedError,),
        "ledger.DuplicateVoteEvidence.from_bytes: broadcast_evidence and gossip",
    )


# --- consensus and its WAL --------------------------------------------------------------

# The largest message the node decodes from a peer (node/runtime.py MAX_WIRE_BYTES,
# checked by tests/test_fuzz.py): the runtime is not imported, to keep the node's
# shell out of the instrumented modules.
MAX_WIRE_BYTES = 16 * 1024 * 1024 + 64 * 1024


@_factory("consensus_message")
def _consensus_message() -> Target:
    from cloudchain import codec
    from cloudchain.consensus.messages import message_from_obj
    from cloudchain.ledger import MalformedError

    def decode(data: bytes) -> object:
        try:
            obj = codec.decode(data, max_bytes=MAX_WIRE_BYTES)
        except codec.CodecError:
            return None  # not the decoder's input: codec has its own target
        return message_from_obj(obj)

    return Target(
        "consensus_message",
        decode,
        (MalformedError,),
        "consensus.messages.message_from_obj on codec.decode: a peer's proposal, vote or decision",
    )


@_factory("wal_record")
def _wal_record() -> Target:
    from cloudchain import codec
    from cloudchain.consensus.wal_records import decode_record
    from cloudchain.ledger import MalformedError

    def decode(data: bytes) -> object:
        try:
            obj = codec.decode(data)
        except codec.CodecError:
            return None
        return decode_record(obj)

    return Target(
        "wal_record",
        decode,
        (MalformedError,),
        "consensus.wal_records.decode_record on codec.decode: a record of the WAL",
    )


# Where the WAL target's files go: tmpfs when there is one, as WAL.open fsyncs.
_SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") else None


@_factory("wal_file")
def _wal_file() -> Target:
    from cloudchain.storage.wal import WAL, WALError

    # Recovery logs a warning for every torn tail it cuts: for the fuzzer, most inputs.
    logging.getLogger("cloudchain.storage.wal").setLevel(logging.ERROR)

    def decode(data: bytes) -> object:
        """The bytes as a WAL file: open must recover it (cutting a torn or corrupt
        tail), and what it leaves must then read back whole. A directory per input,
        removed after it: libFuzzer ends the process with exit(), which runs no
        cleanup of ours."""
        with tempfile.TemporaryDirectory(prefix="cloudchain-fuzz-wal-", dir=_SCRATCH) as scratch:
            path = Path(scratch) / "wal"
            path.write_bytes(data)
            with WAL.open(path) as wal:
                records = wal.records()  # WALError here: recovery left a bad frame behind
                kept = path.read_bytes()
                assert wal.truncated_bytes == len(data) - len(kept), "truncated_bytes is the cut"
                assert data.startswith(kept), "recovery only cuts the tail"
        return records

    return Target(
        "wal_file",
        decode,
        (WALError, OSError),
        "storage.wal.WAL.open + records: a torn or corrupt WAL file is cut back",
    )


# --- blobs: the exchange, dag-pb, UnixFS, CIDs and their multiformats --------------------


@_factory("blob_message")
def _blob_message() -> Target:
    from cloudchain.blobs.exchange.messages import ExchangeProtocolError, decode_message

    return Target(
        "blob_message",
        decode_message,
        (ExchangeProtocolError,),
        "blobs.exchange.messages.decode_message: a peer's blob-exchange message",
    )


@_factory("dagpb")
def _dagpb() -> Target:
    from cloudchain.blobs.dagpb import decode_pbnode
    from cloudchain.blobs.errors import BlobFormatError

    return Target(
        "dagpb", decode_pbnode, (BlobFormatError,), "blobs.dagpb.decode_pbnode: a dag-pb block"
    )


@_factory("unixfs")
def _unixfs() -> Target:
    from cloudchain.blobs.errors import BlobFormatError
    from cloudchain.blobs.unixfs import decode_unixfs

    return Target(
        "unixfs",
        decode_unixfs,
        (BlobFormatError,),
        "blobs.unixfs.decode_unixfs: a dag-pb node's UnixFS Data",
    )


@_factory("file_node")
def _file_node() -> Target:
    from cloudchain.blobs.cid import CID, DAG_PB
    from cloudchain.blobs.errors import BlobFormatError
    from cloudchain.blobs.walk import decode_file_node

    # The digest is not checked here (a block is verified before it is decoded):
    # only the codec matters.
    cid = CID(0, DAG_PB, bytes(32))
    return Target(
        "file_node",
        lambda data: decode_file_node(cid, data),
        (BlobFormatError,),
        "blobs.walk.decode_file_node: one dag-pb block of a file DAG",
    )


@_factory("cid_bytes")
def _cid_bytes() -> Target:
    from cloudchain.blobs.cid import CID
    from cloudchain.blobs.errors import BlobFormatError

    return Target(
        "cid_bytes",
        CID.from_bytes,
        (BlobFormatError,),
        "blobs.cid.CID.from_bytes: a binary CID (dag-pb links, blob messages)",
    )


@_factory("cid_text")
def _cid_text() -> Target:
    from cloudchain.blobs.cid import CID
    from cloudchain.blobs.errors import BlobFormatError

    return Target(
        "cid_text",
        lambda data: CID.parse(_text(data)),
        (BlobFormatError,),
        "blobs.cid.CID.parse: CID text from a client (blob HTTP, RPC, manifests)",
    )


@_factory("multihash")
def _multihash() -> Target:
    from cloudchain.blobs.cid import decode_multihash
    from cloudchain.blobs.errors import BlobFormatError

    return Target("multihash", decode_multihash, (BlobFormatError,), "blobs.cid.decode_multihash")


@_factory("varint")
def _varint() -> Target:
    from cloudchain.blobs import varint
    from cloudchain.blobs.errors import BlobFormatError

    def decode(data: bytes) -> object:
        """The first byte picks the rules (multiformats' unsigned varint or protobuf's)."""
        if not data:
            return None
        rules = varint.UNSIGNED_VARINT if data[0] & 1 else varint.PROTOBUF_VARINT
        return varint.decode_uvarint(data, 1, rules)

    return Target(
        "varint",
        decode,
        (BlobFormatError,),
        "blobs.varint.decode_uvarint, with multiformats' and protobuf's rules",
    )


@_factory("multibase")
def _multibase() -> Target:
    from cloudchain.blobs import multibase
    from cloudchain.blobs.errors import BlobFormatError

    def decode(data: bytes) -> object:
        """The first byte picks the base (base32 or base58btc); the rest is the text."""
        if not data:
            return None
        text = _text(data[1:])
        if data[0] & 1:
            return multibase.decode_base32(text)
        return multibase.decode_base58btc(text)

    return Target(
        "multibase",
        decode,
        (BlobFormatError,),
        "blobs.multibase.decode_base32 and decode_base58btc",
    )


# --- the RPC ----------------------------------------------------------------------------


def _typed_params(by_name: Mapping[str, Any]) -> dict[str, Any]:
    """Each parameter through the reader its methods use (chain.py, broadcast.py, by its
    CometBFT Go type in params.PARAM_KINDS). RPCError for what cannot be read."""
    from cloudchain.node.rpc import params

    out: dict[str, Any] = {}
    for name, value in by_name.items():
        kind = params.PARAM_KINDS.get(name)
        if name == "per_page":
            out[name] = params.per_page_param(value, name)
        elif name == "page":
            out[name] = params.page_param(value, params.DEFAULT_PER_PAGE, 1_000)
        elif name == "height":
            out[name] = params.height_param(value, 1_000)
        elif kind in ("int64", "int"):
            out[name] = params.int_param(value, name, signed=True)
        elif name == "hash":
            out[name] = params.hash_param(value)
        elif name == "tx":
            out[name] = params.tx_param(dict(by_name))
        elif name == "evidence":
            out[name] = params.evidence_param(dict(by_name))
    return out


@_factory("rpc_request")
def _rpc_request() -> Target:
    from cloudchain.node.rpc import params
    from cloudchain.node.rpc.errors import RPCError

    def decode(data: bytes) -> object:
        """A JSON-RPC body as the server reads it (server.py: `loads`, whose ValueError
        or RecursionError it answers as a parse error before dispatch), then each
        request's params as dispatch.py and the methods read them."""
        try:
            payload = params.loads(data)
        except (ValueError, RecursionError):  # -32700, answered by the server
            return None
        requests = payload if isinstance(payload, list) else [payload]
        read = []
        for request in requests:
            if not isinstance(request, dict) or not isinstance(request.get("method"), str):
                continue  # -32600, answered by dispatch.py before any params are read
            by_name = params.params_object(request["method"], request.get("params"))
            read.append(_typed_params(by_name))
        return read

    return Target(
        "rpc_request",
        decode,
        (RPCError,),
        "node.rpc.params: a JSON-RPC body's params (params_object and the typed readers)",
    )


@_factory("rpc_uri")
def _rpc_uri() -> Target:
    from cloudchain.node.rpc import params
    from cloudchain.node.rpc.errors import RPCError

    methods = sorted(params.PARAM_NAMES)

    def decode(data: bytes) -> object:
        """The first byte picks the method, the rest is its query string (`a=1&b=2`;
        the server reads each name's first value)."""
        if not data:
            return None
        method = methods[data[0] % len(methods)]
        query: dict[str, str] = {}
        for pair in _text(data[1:]).split("&"):
            name, _, value = pair.partition("=")
            query.setdefault(name, value)
        return _typed_params(params.uri_params(method, query))

    return Target(
        "rpc_uri",
        decode,
        (RPCError,),
        "node.rpc.params.uri_params and the typed readers: a URI-form request",
    )


@_factory("tx_query")
def _tx_query() -> Target:
    from cloudchain.node.rpc import txquery

    return Target(
        "tx_query",
        lambda data: txquery.parse(_text(data)),
        (txquery.QueryError,),
        "node.rpc.txquery.parse: tx_search and subscribe queries",
    )


@_factory("blob_range")
def _blob_range() -> Target:
    from cloudchain.node.rpc.blob_http import UnsatisfiableRangeError, parse_range

    def decode(data: bytes) -> object:
        """A Range header against a blob whose size the first four bytes give."""
        return parse_range(_text(data[4:]), int.from_bytes(data[:4], "big"))

    return Target(
        "blob_range",
        decode,
        (UnsatisfiableRangeError,),
        "node.rpc.blob_http.parse_range: an HTTP Range header",
    )


# --- workloads and time -------------------------------------------------------------------


@_factory("manifest")
def _manifest() -> Target:
    from cloudchain.workload.manifest import ManifestError, canonical_bytes, load_manifest

    def decode(data: bytes) -> object:
        """A manifest blob; one that loads must read back from its canonical bytes as
        the same manifest (what a provider requires of the blob it fetched)."""
        loaded = load_manifest(data)
        again = load_manifest(canonical_bytes(loaded), canonical=True)
        assert again == loaded, "the canonical form reads back as the same manifest"
        return loaded

    return Target(
        "manifest",
        decode,
        (ManifestError,),
        "workload.manifest.load_manifest: a task's manifest blob",
    )


@_factory("result_index")
def _result_index() -> Target:
    from cloudchain.workload.result import ResultError, parse_result_index

    return Target(
        "result_index",
        parse_result_index,
        (ResultError,),
        "workload.result.parse_result_index: a provider's result index blob",
    )


@_factory("rfc3339")
def _rfc3339() -> Target:
    from cloudchain.timefmt import TimeFormatError, parse_rfc3339_ns

    return Target(
        "rfc3339",
        lambda data: parse_rfc3339_ns(_text(data)),
        (TimeFormatError,),
        "timefmt.parse_rfc3339_ns: timestamps in RPC queries and genesis",
    )
