"""Typed results of a node's JSON-RPC, declared in the shapes of CometBFT v0.38.

What this module owns: the frozen dataclass of each result and, on each field, where it
sits in the node's JSON and how it is encoded. Fields have Python types: heights,
counts and codes as `int`; hashes, addresses, public keys, transactions and query
values as `bytes`; times as integer nanoseconds since the epoch (UTC,
`cloudchain/timefmt.py`). Every type keeps the object it was read from in `raw`, so a
script can print exactly what the node said (`--json`) and read fields this module
does not know yet. Adding a field is one line.

What it does not know: how a declaration is read (`cloudchain/client/reader.py`, the one
reader, and where the error a malformed reply raises is worded) and transport
(`cloudchain/client/jsonrpc.py` fetches a result and calls `from_json`). The server's
side of the shapes is `cloudchain/node/rpc/shapes.py`.

The encodings (CometBFT's): int64 values as decimal strings, int32 and uint32 values
(codes, rounds, indexes) as JSON numbers, hashes and addresses as hex, transactions,
signatures, public keys and query values as base64, times as RFC 3339 with up to nine
fractional digits. Integers are accepted in either form. Fields a node may leave out or
send as null (CometBFT sends null for an empty list or empty bytes) are `optional`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cloudchain.client.reader import BASE64, HEX, TEXT, TIME_NS, Codec, Cursor, Result, at

# --- blocks ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockID(Result):
    hash: bytes = at("hash", HEX, optional=True)
    parts_total: int = at("parts?.total", optional=True)
    parts_hash: bytes = at("parts?.hash", HEX, optional=True)
    raw: dict[str, Any] = field(repr=False, compare=False)  # the node's JSON


@dataclass(frozen=True)
class Header(Result):
    chain_id: str = at("chain_id")
    height: int = at("height")
    time_ns: int = at("time", TIME_NS)
    last_block_id: BlockID = at("last_block_id")
    last_commit_hash: bytes = at("last_commit_hash", HEX, optional=True)
    data_hash: bytes = at("data_hash", HEX, optional=True)
    validators_hash: bytes = at("validators_hash", HEX, optional=True)
    next_validators_hash: bytes = at("next_validators_hash", HEX, optional=True)
    consensus_hash: bytes = at("consensus_hash", HEX, optional=True)
    app_hash: bytes = at("app_hash", HEX, optional=True)  # the state after the previous block
    last_results_hash: bytes = at("last_results_hash", HEX, optional=True)
    evidence_hash: bytes = at("evidence_hash", HEX, optional=True)
    proposer_address: bytes = at("proposer_address", HEX)
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class CommitSig(Result):
    """One validator's precommit in a commit; an absent vote has an empty address and
    signature (block_id_flag 1 in CometBFT, 2 for a vote for the block)."""

    block_id_flag: int = at("block_id_flag")
    validator_address: bytes = at("validator_address", HEX, optional=True)
    timestamp_ns: int = at("timestamp", TIME_NS)
    signature: bytes = at("signature", BASE64, optional=True)
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class BlockCommit(Result):
    """The precommits that finalised a block: a block's `last_commit`, or the `commit`
    of a signed header (CometBFT's `Commit` type)."""

    height: int = at("height")
    round: int = at("round", optional=True)
    block_id: BlockID = at("block_id")
    signatures: tuple[CommitSig, ...] = at("signatures", optional=True)
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class Block(Result):
    """The result of `block` and `block_by_hash`."""

    block_id: BlockID = at("block_id")
    header: Header = at("block.header")
    txs: tuple[bytes, ...] = at("block.data.txs", BASE64, optional=True)
    last_commit: BlockCommit = at("block.last_commit")
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def height(self) -> int:
        return self.header.height

    @property
    def hash(self) -> bytes:
        return self.block_id.hash


@dataclass(frozen=True)
class Commit(Result):
    """The result of `commit`: a header and the precommits that finalised it;
    `canonical` is false when they are the node's own, not yet in the next block."""

    header: Header = at("signed_header.header")
    commit: BlockCommit = at("signed_header.commit")
    canonical: bool = at("canonical")
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class BlockMeta(Result):
    block_id: BlockID = at("block_id")
    block_size: int = at("block_size", optional=True)
    header: Header = at("header")
    num_txs: int = at("num_txs", optional=True)
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class BlockchainInfo(Result):
    """The result of `blockchain`: block metas, highest first."""

    last_height: int = at("last_height")
    block_metas: tuple[BlockMeta, ...] = at("block_metas", optional=True)
    raw: dict[str, Any] = field(repr=False, compare=False)


# --- transactions -----------------------------------------------------------------------


def _key_value(attribute: Cursor) -> tuple[str, str]:
    return attribute["key"].read(TEXT, optional=True), attribute["value"].read(TEXT, optional=True)


# An event attribute, {"key": ..., "value": ..., "index": ...}, as the pair (key, value).
KEY_VALUE = Codec("key and value", _key_value)


@dataclass(frozen=True)
class Event(Result):
    type: str = at("type")
    # (key, value), in the order emitted
    attributes: tuple[tuple[str, str], ...] = at("attributes", KEY_VALUE, optional=True)
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class TxResult(Result):
    """What the application said of a transaction: CheckTx's answer in the mempool, or
    the result of executing it in a block. Code 0 is success."""

    code: int = at("code", optional=True)  # CometBFT may leave out a zero code
    codespace: str = at("codespace", optional=True)
    log: str = at("log", optional=True)
    info: str = at("info", optional=True)
    data: bytes = at("data", BASE64, optional=True)
    gas_wanted: int = at("gas_wanted", optional=True)
    gas_used: int = at("gas_used", optional=True)
    events: tuple[Event, ...] = at("events", optional=True)
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.code == 0


@dataclass(frozen=True)
class TxResponse(Result):
    """The result of `tx`, and each of `tx_search`'s."""

    hash: bytes = at("hash", HEX)
    height: int = at("height")
    index: int = at("index")
    tx_result: TxResult = at("tx_result")
    tx: bytes = at("tx", BASE64)
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class TxSearch(Result):
    """The result of `tx_search`: one page of matches, and how many match in all."""

    txs: tuple[TxResponse, ...] = at("txs", optional=True)
    total_count: int = at("total_count")
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class BroadcastResult(Result):
    """The result of `broadcast_tx_sync` (the mempool's check) and `broadcast_tx_async`
    (always code 0: nothing was checked yet)."""

    code: int = at("code", optional=True)
    codespace: str = at("codespace", optional=True)
    log: str = at("log", optional=True)
    data: bytes = at("data", HEX, optional=True)  # HexBytes in CometBFT's ResultBroadcastTx
    hash: bytes = at("hash", HEX)
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.code == 0


@dataclass(frozen=True)
class BroadcastCommitResult(Result):
    """The result of `broadcast_tx_commit`. A transaction the mempool refused has
    `check_tx.code` non-zero and height 0; one that failed in its block has
    `tx_result.code` non-zero."""

    check_tx: TxResult = at("check_tx")
    tx_result: TxResult = at("tx_result")
    hash: bytes = at("hash", HEX)
    height: int = at("height")
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


@dataclass(frozen=True)
class BlockResults(Result):
    """The result of `block_results`: each transaction's result, in block order."""

    height: int = at("height")
    txs_results: tuple[TxResult, ...] = at("txs_results", optional=True)
    finalize_block_events: tuple[Event, ...] = at("finalize_block_events", optional=True)
    app_hash: bytes = at("app_hash", BASE64, optional=True)
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class UnconfirmedTxs(Result):
    """The result of `unconfirmed_txs` and `num_unconfirmed_txs` (whose `txs` is null)."""

    n_txs: int = at("n_txs")
    total: int = at("total")
    total_bytes: int = at("total_bytes")
    txs: tuple[bytes, ...] = at("txs", BASE64, optional=True)
    raw: dict[str, Any] = field(repr=False, compare=False)


# --- the node, its validators and the application -----------------------------------------


@dataclass(frozen=True)
class Status(Result):
    """The result of `status`: the node's identity, its latest block, and its own
    validator key and power (empty and 0 on a node that does not validate)."""

    node_id: str = at("node_info.id")
    network: str = at("node_info.network")  # the chain id
    moniker: str = at("node_info.moniker", optional=True)
    version: str = at("node_info.version", optional=True)
    latest_block_height: int = at("sync_info.latest_block_height")
    # empty before the first block
    latest_block_hash: bytes = at("sync_info.latest_block_hash", HEX, optional=True)
    latest_app_hash: bytes = at("sync_info.latest_app_hash", HEX, optional=True)
    latest_block_time_ns: int = at("sync_info.latest_block_time", TIME_NS)
    earliest_block_height: int = at("sync_info.earliest_block_height", optional=True)
    catching_up: bool = at("sync_info.catching_up")
    validator_address: bytes = at("validator_info.address", HEX, optional=True)
    validator_pub_key: bytes = at("validator_info.pub_key.value", BASE64, optional=True)
    voting_power: int = at("validator_info.voting_power", optional=True)
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def chain_id(self) -> str:
        return self.network


@dataclass(frozen=True)
class Validator(Result):
    address: bytes = at("address", HEX)
    pub_key: bytes = at("pub_key.value", BASE64)
    pub_key_type: str = at("pub_key.type", optional=True)  # "tendermint/PubKeyEd25519"
    voting_power: int = at("voting_power")
    proposer_priority: int = at("proposer_priority", optional=True)
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class Validators(Result):
    """The result of `validators`: the set at `block_height` (`count` of them on this
    page, `total` in all)."""

    block_height: int = at("block_height")
    validators: tuple[Validator, ...] = at("validators")
    count: int = at("count", optional=True)
    total: int = at("total", optional=True)
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def total_power(self) -> int:
        return sum(v.voting_power for v in self.validators)

    @classmethod
    def _complete(cls, values: dict[str, Any]) -> None:
        """A count or total left out (or 0) is the number of validators on the page."""
        for name in ("count", "total"):
            values[name] = values[name] or len(values["validators"])


@dataclass(frozen=True)
class QueryResponse(Result):
    """The result of `abci_query` (its `response`). Code 0 is an answer; anything else
    is a refusal whose reason is in `log`. `value` is the answer's msgpack bytes."""

    code: int = at("response.code", optional=True)
    codespace: str = at("response.codespace", optional=True)
    log: str = at("response.log", optional=True)
    info: str = at("response.info", optional=True)
    index: int = at("response.index", optional=True)
    key: bytes = at("response.key", BASE64, optional=True)
    value: bytes = at("response.value", BASE64, optional=True)
    height: int = at("response.height", optional=True)
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.code == 0


@dataclass(frozen=True)
class ABCIInfo(Result):
    """The result of `abci_info` (its `response`): the application's height and app hash."""

    data: str = at("response.data", optional=True)
    version: str = at("response.version", optional=True)
    app_version: int = at("response.app_version", optional=True)
    last_block_height: int = at("response.last_block_height", optional=True)
    last_block_app_hash: bytes = at("response.last_block_app_hash", BASE64, optional=True)
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class Peer(Result):
    node_id: str = at("node_info.id")
    is_outbound: bool = at("is_outbound")
    remote_ip: str = at("remote_ip", optional=True)
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class NetInfo(Result):
    """The result of `net_info`: the node's listeners and connected peers."""

    listening: bool = at("listening")
    listeners: tuple[str, ...] = at("listeners", optional=True)
    n_peers: int = at("n_peers")
    peers: tuple[Peer, ...] = at("peers", optional=True)
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class Genesis(Result):
    """The result of `genesis`. The document itself is the application's to define;
    `document` is it as the node sent it, in CometBFT's shape (initial_height,
    app_hash and consensus_params added to what the genesis file holds)."""

    chain_id: str = at("genesis.chain_id")
    genesis_time_ns: int = at("genesis.genesis_time", TIME_NS)
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def document(self) -> dict[str, Any]:
        return self.raw["genesis"]


# --- blobs (node/rpc/blob_http.py: POST /blobs, blob_stat, blob_gc) -------------------------


@dataclass(frozen=True)
class BlobPut(Result):
    cid: str = at("cid")
    size: int = at("size")
    replicas: tuple[str, ...] = at("replicas")  # ids of the nodes that hold the whole blob
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class BlobStat(Result):
    cid: str = at("cid")
    size: int = at("size")
    complete: bool = at("complete")
    blocks_local: int = at("blocks_local")
    blocks_missing: int = at("blocks_missing")
    pinned: bool = at("pinned")
    leased: bool = at("leased")  # an upload or replica held until anchored, not pinned
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class BlobGC(Result):
    blocks_removed: int = at("blocks_removed")
    bytes_freed: int = at("bytes_freed")
    leases_released: int = at("leases_released")  # of roots anchored since: the anchor keeps them
    leases_expired: tuple[str, ...] = at("leases_expired")  # past the grace, oldest first
    raw: dict[str, Any] = field(repr=False, compare=False)
