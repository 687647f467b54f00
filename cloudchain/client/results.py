"""Typed results of a node's JSON-RPC, parsed from the shapes of CometBFT v0.38.

What this module owns: turning a JSON-RPC `result` (as `json.loads` gives it) into
frozen dataclasses whose fields have Python types: heights, counts and codes as
`int`; hashes, addresses, public keys, transactions and query values as `bytes`;
times as integer nanoseconds since the epoch (UTC, `cloudchain/timefmt.py`).
Every type keeps the object it was parsed from in `raw`, so a script can print
exactly what the node said (`--json`) and read fields this module does not know yet.

What it does not know: transport. `cloudchain/client/jsonrpc.py` fetches a result and calls
`from_json`; the server's side of the shapes is `cloudchain/node/rpc.py`.

The encodings read (CometBFT's): int64 values as decimal strings, int32 and uint32
values (codes, rounds, indexes) as JSON numbers, hashes and addresses as hex,
transactions, signatures, public keys and query values as base64, times as RFC 3339
with up to nine fractional digits. Integers are accepted in either form. Fields a
node may leave out or send as null (CometBFT sends null for an empty list or empty
bytes) read as "", 0, () or b"".

The one error: a reply without the expected shape raises the client's
`RPCClientError` (code CLIENT_ERROR, message "malformed reply from the node") with,
in `data`, the path of the field and what was wrong with it
(`Status.sync_info.latest_block_height: expected an integer, got 'abc'`). That is
the node's fault, not the caller's, and never a KeyError or TypeError.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any, Self

from cloudchain.client.errors import RPCClientError
from cloudchain.timefmt import TimeFormatError, parse_rfc3339_ns

# The code of an RPCClientError that is not the node's JSON-RPC error: the node could not
# be reached, or its reply is malformed (as cloudchain/client/errors.py documents).
CLIENT_ERROR = -1
MALFORMED_REPLY_MESSAGE = "malformed reply from the node"
SHOWN_VALUE_CHARS_MAX = 60  # how much of a bad value an error message quotes


def malformed(path: str, problem: str) -> RPCClientError:
    """The error for a reply that lacks the shape: `path` names the field."""
    return RPCClientError(CLIENT_ERROR, MALFORMED_REPLY_MESSAGE, f"{path}: {problem}")


_MISSING: Any = object()


def _shown(value: Any) -> str:
    if value is _MISSING:
        return "nothing (the field is missing)"
    text = repr(value)
    if len(text) <= SHOWN_VALUE_CHARS_MAX:
        return text
    return text[: SHOWN_VALUE_CHARS_MAX - 3] + "..."


class _At:
    """A value inside a reply and its path from the root, for reading typed values
    and for saying which field is wrong when one is."""

    __slots__ = ("path", "value")

    def __init__(self, value: Any, path: str) -> None:
        self.value, self.path = value, path

    def _wrong(self, expected: str) -> RPCClientError:
        return malformed(self.path, f"expected {expected}, got {_shown(self.value)}")

    def _absent(self) -> bool:
        return self.value is _MISSING or self.value is None

    def __getitem__(self, key: str) -> _At:
        return _At(self.mapping().get(key, _MISSING), f"{self.path}.{key}")

    def mapping(self) -> dict[str, Any]:
        if not isinstance(self.value, dict):
            raise self._wrong("an object")
        return self.value

    def items(self, optional: bool = False) -> list[_At]:
        if optional and self._absent():
            return []
        if not isinstance(self.value, list):
            raise self._wrong("a list")
        return [_At(v, f"{self.path}[{i}]") for i, v in enumerate(self.value)]

    def integer(self, optional: bool = False) -> int:
        if optional and self._absent():
            return 0
        value = self.value
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.removeprefix("-").isdigit() and value.isascii():
            return int(value)
        raise self._wrong("an integer")

    def text(self, optional: bool = False) -> str:
        if optional and self._absent():
            return ""
        if not isinstance(self.value, str):
            raise self._wrong("a string")
        return self.value

    def flag(self) -> bool:
        if not isinstance(self.value, bool):
            raise self._wrong("true or false")
        return self.value

    def hex_bytes(self, optional: bool = False) -> bytes:
        """A hash or an address: hex, either case; "" is no hash (e.g. before height 1)."""
        text = self.text(optional)
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise self._wrong("hex") from None

    def b64_bytes(self, optional: bool = False) -> bytes:
        text = self.text(optional)
        try:
            return base64.b64decode(text, validate=True)
        except (ValueError, binascii.Error):
            raise self._wrong("base64") from None

    def time_ns(self) -> int:
        try:
            return parse_rfc3339_ns(self.text())
        except TimeFormatError:
            raise self._wrong("an RFC 3339 time") from None


class _Result:
    """The parsing entry point every result type shares."""

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        """Parse `obj` (a JSON-RPC result, or the part of one this type describes);
        RPCClientError (MALFORMED_REPLY) when it does not have the shape."""
        return cls._parse(_At(obj, cls.__name__))

    @classmethod
    def _parse(cls, at: _At) -> Self:
        raise NotImplementedError


# --- blocks ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockID(_Result):
    hash: bytes
    parts_total: int
    parts_hash: bytes
    raw: dict[str, Any] = field(repr=False, compare=False)  # the node's JSON

    @classmethod
    def _parse(cls, at: _At) -> Self:
        parts = at["parts"]
        absent = parts.value is _MISSING or parts.value is None
        return cls(
            hash=at["hash"].hex_bytes(optional=True),
            parts_total=0 if absent else parts["total"].integer(optional=True),
            parts_hash=b"" if absent else parts["hash"].hex_bytes(optional=True),
            raw=at.mapping(),
        )


@dataclass(frozen=True)
class Header(_Result):
    chain_id: str
    height: int
    time_ns: int
    last_block_id: BlockID
    last_commit_hash: bytes
    data_hash: bytes
    validators_hash: bytes
    next_validators_hash: bytes
    consensus_hash: bytes
    app_hash: bytes  # the state after the previous block
    last_results_hash: bytes
    evidence_hash: bytes
    proposer_address: bytes
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def _parse(cls, at: _At) -> Self:
        return cls(
            chain_id=at["chain_id"].text(),
            height=at["height"].integer(),
            time_ns=at["time"].time_ns(),
            last_block_id=BlockID._parse(at["last_block_id"]),
            last_commit_hash=at["last_commit_hash"].hex_bytes(optional=True),
            data_hash=at["data_hash"].hex_bytes(optional=True),
            validators_hash=at["validators_hash"].hex_bytes(optional=True),
            next_validators_hash=at["next_validators_hash"].hex_bytes(optional=True),
            consensus_hash=at["consensus_hash"].hex_bytes(optional=True),
            app_hash=at["app_hash"].hex_bytes(optional=True),
            last_results_hash=at["last_results_hash"].hex_bytes(optional=True),
            evidence_hash=at["evidence_hash"].hex_bytes(optional=True),
            proposer_address=at["proposer_address"].hex_bytes(),
            raw=at.mapping(),
        )


@dataclass(frozen=True)
class CommitSig(_Result):
    """One validator's precommit in a commit; an absent vote has an empty address and
    signature (block_id_flag 1 in CometBFT, 2 for a vote for the block)."""

    block_id_flag: int
    validator_address: bytes
    timestamp_ns: int
    signature: bytes
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def _parse(cls, at: _At) -> Self:
        return cls(
            block_id_flag=at["block_id_flag"].integer(),
            validator_address=at["validator_address"].hex_bytes(optional=True),
            timestamp_ns=at["timestamp"].time_ns(),
            signature=at["signature"].b64_bytes(optional=True),
            raw=at.mapping(),
        )


@dataclass(frozen=True)
class BlockCommit(_Result):
    """The precommits that finalised a block: a block's `last_commit`, or the `commit`
    of a signed header (CometBFT's `Commit` type)."""

    height: int
    round: int
    block_id: BlockID
    signatures: tuple[CommitSig, ...]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def _parse(cls, at: _At) -> Self:
        return cls(
            height=at["height"].integer(),
            round=at["round"].integer(optional=True),
            block_id=BlockID._parse(at["block_id"]),
            signatures=tuple(CommitSig._parse(s) for s in at["signatures"].items(optional=True)),
            raw=at.mapping(),
        )


@dataclass(frozen=True)
class Block(_Result):
    """The result of `block` and `block_by_hash`."""

    block_id: BlockID
    header: Header
    txs: tuple[bytes, ...]
    last_commit: BlockCommit
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def height(self) -> int:
        return self.header.height

    @property
    def hash(self) -> bytes:
        return self.block_id.hash

    @classmethod
    def _parse(cls, at: _At) -> Self:
        block = at["block"]
        return cls(
            block_id=BlockID._parse(at["block_id"]),
            header=Header._parse(block["header"]),
            txs=tuple(tx.b64_bytes() for tx in block["data"]["txs"].items(optional=True)),
            last_commit=BlockCommit._parse(block["last_commit"]),
            raw=at.mapping(),
        )


@dataclass(frozen=True)
class Commit(_Result):
    """The result of `commit`: a header and the precommits that finalised it;
    `canonical` is false when they are the node's own, not yet in the next block."""

    header: Header
    commit: BlockCommit
    canonical: bool
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def _parse(cls, at: _At) -> Self:
        signed = at["signed_header"]
        return cls(
            header=Header._parse(signed["header"]),
            commit=BlockCommit._parse(signed["commit"]),
            canonical=at["canonical"].flag(),
            raw=at.mapping(),
        )


@dataclass(frozen=True)
class BlockMeta(_Result):
    block_id: BlockID
    block_size: int
    header: Header
    num_txs: int
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def _parse(cls, at: _At) -> Self:
        return cls(
            block_id=BlockID._parse(at["block_id"]),
            block_size=at["block_size"].integer(optional=True),
            header=Header._parse(at["header"]),
            num_txs=at["num_txs"].integer(optional=True),
            raw=at.mapping(),
        )


@dataclass(frozen=True)
class BlockchainInfo(_Result):
    """The result of `blockchain`: block metas, highest first."""

    last_height: int
    block_metas: tuple[BlockMeta, ...]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def _parse(cls, at: _At) -> Self:
        return cls(
            last_height=at["last_height"].integer(),
            block_metas=tuple(BlockMeta._parse(m) for m in at["block_metas"].items(optional=True)),
            raw=at.mapping(),
        )


# --- transactions -----------------------------------------------------------------------


@dataclass(frozen=True)
class Event(_Result):
    type: str
    attributes: tuple[tuple[str, str], ...]  # (key, value), in the order emitted
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def _parse(cls, at: _At) -> Self:
        return cls(
            type=at["type"].text(),
            attributes=tuple(
                (a["key"].text(optional=True), a["value"].text(optional=True))
                for a in at["attributes"].items(optional=True)
            ),
            raw=at.mapping(),
        )


def _events(at: _At) -> tuple[Event, ...]:
    return tuple(Event._parse(e) for e in at.items(optional=True))


@dataclass(frozen=True)
class TxResult(_Result):
    """What the application said of a transaction: CheckTx's answer in the mempool, or
    the result of executing it in a block. Code 0 is success."""

    code: int
    codespace: str
    log: str
    info: str
    data: bytes
    gas_wanted: int
    gas_used: int
    events: tuple[Event, ...]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.code == 0

    @classmethod
    def _parse(cls, at: _At) -> Self:
        return cls(
            code=at["code"].integer(optional=True),  # CometBFT may leave out a zero code
            codespace=at["codespace"].text(optional=True),
            log=at["log"].text(optional=True),
            info=at["info"].text(optional=True),
            data=at["data"].b64_bytes(optional=True),
            gas_wanted=at["gas_wanted"].integer(optional=True),
            gas_used=at["gas_used"].integer(optional=True),
            events=_events(at["events"]),
            raw=at.mapping(),
        )


@dataclass(frozen=True)
class TxResponse(_Result):
    """The result of `tx`, and each of `tx_search`'s."""

    hash: bytes
    height: int
    index: int
    tx_result: TxResult
    tx: bytes
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def _parse(cls, at: _At) -> Self:
        return cls(
            hash=at["hash"].hex_bytes(),
            height=at["height"].integer(),
            index=at["index"].integer(),
            tx_result=TxResult._parse(at["tx_result"]),
            tx=at["tx"].b64_bytes(),
            raw=at.mapping(),
        )


@dataclass(frozen=True)
class TxSearch(_Result):
    """The result of `tx_search`: one page of matches, and how many match in all."""

    txs: tuple[TxResponse, ...]
    total_count: int
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def _parse(cls, at: _At) -> Self:
        return cls(
            txs=tuple(TxResponse._parse(t) for t in at["txs"].items(optional=True)),
            total_count=at["total_count"].integer(),
            raw=at.mapping(),
        )


@dataclass(frozen=True)
class BroadcastResult(_Result):
    """The result of `broadcast_tx_sync` (the mempool's check) and `broadcast_tx_async`
    (always code 0: nothing was checked yet)."""

    code: int
    codespace: str
    log: str
    data: bytes
    hash: bytes
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.code == 0

    @classmethod
    def _parse(cls, at: _At) -> Self:
        return cls(
            code=at["code"].integer(optional=True),
            codespace=at["codespace"].text(optional=True),
            log=at["log"].text(optional=True),
            data=at["data"].hex_bytes(optional=True),  # HexBytes in CometBFT's ResultBroadcastTx
            hash=at["hash"].hex_bytes(),
            raw=at.mapping(),
        )


@dataclass(frozen=True)
class BroadcastCommitResult(_Result):
    """The result of `broadcast_tx_commit`. A transaction the mempool refused has
    `check_tx.code` non-zero and height 0; one that failed in its block has
    `tx_result.code` non-zero."""

    check_tx: TxResult
    tx_result: TxResult
    hash: bytes
    height: int
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.check_tx.ok and self.tx_result.ok

    @property
    def failure(self) -> TxResult | None:
        """The result that refused the transaction, if one did."""
        if not self.check_tx.ok:
            return self.check_tx
        return None if self.tx_result.ok else self.tx_result

    @classmethod
    def _parse(cls, at: _At) -> Self:
        return cls(
            check_tx=TxResult._parse(at["check_tx"]),
            tx_result=TxResult._parse(at["tx_result"]),
            hash=at["hash"].hex_bytes(),
            height=at["height"].integer(),
            raw=at.mapping(),
        )


@dataclass(frozen=True)
class BlockResults(_Result):
    """The result of `block_results`: each transaction's result, in block order."""

    height: int
    txs_results: tuple[TxResult, ...]
    finalize_block_events: tuple[Event, ...]
    app_hash: bytes
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def _parse(cls, at: _At) -> Self:
        return cls(
            height=at["height"].integer(),
            txs_results=tuple(TxResult._parse(r) for r in at["txs_results"].items(optional=True)),
            finalize_block_events=_events(at["finalize_block_events"]),
            app_hash=at["app_hash"].b64_bytes(optional=True),
            raw=at.mapping(),
        )


@dataclass(frozen=True)
class UnconfirmedTxs(_Result):
    """The result of `unconfirmed_txs` and `num_unconfirmed_txs` (whose `txs` is null)."""

    n_txs: int
    total: int
    total_bytes: int
    txs: tuple[bytes, ...]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def _parse(cls, at: _At) -> Self:
        return cls(
            n_txs=at["n_txs"].integer(),
            total=at["total"].integer(),
            total_bytes=at["total_bytes"].integer(),
            txs=tuple(tx.b64_bytes() for tx in at["txs"].items(optional=True)),
            raw=at.mapping(),
        )


# --- the node, its validators and the application -----------------------------------------


@dataclass(frozen=True)
class Status(_Result):
    """The result of `status`: the node's identity, its latest block, and its own
    validator key and power (empty and 0 on a node that does not validate)."""

    node_id: str
    network: str  # the chain id
    moniker: str
    version: str
    latest_block_height: int
    latest_block_hash: bytes  # empty before the first block
    latest_app_hash: bytes
    latest_block_time_ns: int
    earliest_block_height: int
    catching_up: bool
    validator_address: bytes
    validator_pub_key: bytes
    voting_power: int
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def chain_id(self) -> str:
        return self.network

    @classmethod
    def _parse(cls, at: _At) -> Self:
        node, sync, validator = at["node_info"], at["sync_info"], at["validator_info"]
        return cls(
            node_id=node["id"].text(),
            network=node["network"].text(),
            moniker=node["moniker"].text(optional=True),
            version=node["version"].text(optional=True),
            latest_block_height=sync["latest_block_height"].integer(),
            latest_block_hash=sync["latest_block_hash"].hex_bytes(optional=True),
            latest_app_hash=sync["latest_app_hash"].hex_bytes(optional=True),
            latest_block_time_ns=sync["latest_block_time"].time_ns(),
            earliest_block_height=sync["earliest_block_height"].integer(optional=True),
            catching_up=sync["catching_up"].flag(),
            validator_address=validator["address"].hex_bytes(optional=True),
            validator_pub_key=validator["pub_key"]["value"].b64_bytes(optional=True),
            voting_power=validator["voting_power"].integer(optional=True),
            raw=at.mapping(),
        )


@dataclass(frozen=True)
class Validator(_Result):
    address: bytes
    pub_key: bytes
    pub_key_type: str  # "tendermint/PubKeyEd25519"
    voting_power: int
    proposer_priority: int
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def _parse(cls, at: _At) -> Self:
        return cls(
            address=at["address"].hex_bytes(),
            pub_key=at["pub_key"]["value"].b64_bytes(),
            pub_key_type=at["pub_key"]["type"].text(optional=True),
            voting_power=at["voting_power"].integer(),
            proposer_priority=at["proposer_priority"].integer(optional=True),
            raw=at.mapping(),
        )


@dataclass(frozen=True)
class Validators(_Result):
    """The result of `validators`: the set at `block_height` (`count` of them on this
    page, `total` in all)."""

    block_height: int
    validators: tuple[Validator, ...]
    count: int
    total: int
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def total_power(self) -> int:
        return sum(v.voting_power for v in self.validators)

    @classmethod
    def _parse(cls, at: _At) -> Self:
        validators = tuple(Validator._parse(v) for v in at["validators"].items())
        return cls(
            block_height=at["block_height"].integer(),
            validators=validators,
            count=at["count"].integer(optional=True) or len(validators),
            total=at["total"].integer(optional=True) or len(validators),
            raw=at.mapping(),
        )


@dataclass(frozen=True)
class QueryResponse(_Result):
    """The result of `abci_query` (its `response`). Code 0 is an answer; anything else
    is a refusal whose reason is in `log`. `value` is the answer's msgpack bytes."""

    code: int
    codespace: str
    log: str
    info: str
    index: int
    key: bytes
    value: bytes
    height: int
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.code == 0

    @classmethod
    def _parse(cls, at: _At) -> Self:
        response = at["response"]
        return cls(
            code=response["code"].integer(optional=True),
            codespace=response["codespace"].text(optional=True),
            log=response["log"].text(optional=True),
            info=response["info"].text(optional=True),
            index=response["index"].integer(optional=True),
            key=response["key"].b64_bytes(optional=True),
            value=response["value"].b64_bytes(optional=True),
            height=response["height"].integer(optional=True),
            raw=at.mapping(),
        )


@dataclass(frozen=True)
class ABCIInfo(_Result):
    """The result of `abci_info` (its `response`): the application's height and app hash."""

    data: str
    version: str
    app_version: int
    last_block_height: int
    last_block_app_hash: bytes
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def _parse(cls, at: _At) -> Self:
        response = at["response"]
        return cls(
            data=response["data"].text(optional=True),
            version=response["version"].text(optional=True),
            app_version=response["app_version"].integer(optional=True),
            last_block_height=response["last_block_height"].integer(optional=True),
            last_block_app_hash=response["last_block_app_hash"].b64_bytes(optional=True),
            raw=at.mapping(),
        )


@dataclass(frozen=True)
class Peer(_Result):
    node_id: str
    is_outbound: bool
    remote_ip: str
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def _parse(cls, at: _At) -> Self:
        return cls(
            node_id=at["node_info"]["id"].text(),
            is_outbound=at["is_outbound"].flag(),
            remote_ip=at["remote_ip"].text(optional=True),
            raw=at.mapping(),
        )


@dataclass(frozen=True)
class NetInfo(_Result):
    """The result of `net_info`: the node's listeners and connected peers."""

    listening: bool
    listeners: tuple[str, ...]
    n_peers: int
    peers: tuple[Peer, ...]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def _parse(cls, at: _At) -> Self:
        return cls(
            listening=at["listening"].flag(),
            listeners=tuple(a.text() for a in at["listeners"].items(optional=True)),
            n_peers=at["n_peers"].integer(),
            peers=tuple(Peer._parse(p) for p in at["peers"].items(optional=True)),
            raw=at.mapping(),
        )


@dataclass(frozen=True)
class Genesis(_Result):
    """The result of `genesis`. The document itself is the application's to define;
    `document` is it as the node sent it, in CometBFT's shape (initial_height,
    app_hash and consensus_params added to what the genesis file holds)."""

    chain_id: str
    genesis_time_ns: int
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def document(self) -> dict[str, Any]:
        return self.raw["genesis"]

    @classmethod
    def _parse(cls, at: _At) -> Self:
        document = at["genesis"]
        return cls(
            chain_id=document["chain_id"].text(),
            genesis_time_ns=document["genesis_time"].time_ns(),
            raw=at.mapping(),
        )


# --- blobs (node/blob_http.py: POST /blobs, blob_stat, blob_gc) -------------------------


@dataclass(frozen=True)
class BlobPut(_Result):
    cid: str
    size: int
    replicas: tuple[str, ...]  # ids of the nodes that hold the whole blob
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def _parse(cls, at: _At) -> Self:
        return cls(
            at["cid"].text(),
            at["size"].integer(),
            tuple(r.text() for r in at["replicas"].items()),
            at.mapping(),
        )


@dataclass(frozen=True)
class BlobStat(_Result):
    cid: str
    size: int
    complete: bool
    blocks_local: int
    blocks_missing: int
    pinned: bool
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def _parse(cls, at: _At) -> Self:
        return cls(
            at["cid"].text(),
            at["size"].integer(),
            at["complete"].flag(),
            at["blocks_local"].integer(),
            at["blocks_missing"].integer(),
            at["pinned"].flag(),
            at.mapping(),
        )


@dataclass(frozen=True)
class BlobGC(_Result):
    blocks_removed: int
    bytes_freed: int
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def _parse(cls, at: _At) -> Self:
        return cls(at["blocks_removed"].integer(), at["bytes_freed"].integer(), at.mapping())
