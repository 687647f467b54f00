"""A node's `config.toml`: every setting, its default, and what it is for.

    [node]        moniker
    [p2p]         listen_address, persistent_peers ("<node id>@<host>:<port>"), dial
                  backoff, frame and message limits come from network/secret_connection
    [rpc]         listen_address of the JSON-RPC server; limits on request bodies, batches,
                  open connections, WebSocket subscribers, subscriptions per client, and
                  events and bytes queued per WebSocket; unsafe (CometBFT's name, false by
                  default): whether the operator's methods that change the node's state
                  (blob_pin, blob_unpin, blob_gc: node/rpc/admin.py's OPERATOR_METHODS)
                  answer at all
    [consensus]   timeouts (milliseconds; propose/prevote/precommit grow by their
                  *_delta_ms each round); timeout_commit_ms, the wait after a commit
                  while the mempool is idle (a block about every second, empty or not),
                  and timeout_commit_busy_ms, the wait while transactions are ready
    [mempool]     the ready set's max_txs and max_bytes; max_txs_per_sender (ready and
                  gapped); the gapped pool's max_gapped_txs_per_sender, max_gapped_txs,
                  max_gapped_bytes; ttl_num_blocks and ttl_duration_s (0: no expiry), see
                  MempoolConfig and node/mempool/
    [blobs]       max_upload_bytes: the largest body `POST /blobs` accepts (the blob
                  store lives in <home>/data/blobs; see node/rpc/blob_http.py);
                  max_unanchored_bytes: the most bytes of uploads and replicas that no
                  anchor or pin refers to; unanchored_grace_s: how long such a blob is
                  kept for its anchor before it may be collected, oldest first
    [log]         level: debug, info, warning or error; format: plain (one line per
                  record, fields as key=value) or json (one object per line), see node/logs.py
    [debug]       TEST AIDS for the nemesis (cloudchain/chaos), never for a real network:
                  clock_offset_ms shifts the node's consensus clock (may be negative);
                  byzantine_equivocate makes the validator sign a second, conflicting
                  prevote for every prevote it sends. Written out only when set, and a
                  node with either set says so with a WARNING at start

Block limits (max_bytes, max_txs) are consensus parameters and live in the
genesis file, not here: every validator must agree on them.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from cloudchain.consensus.state_machine import TimeoutConfig
from cloudchain.node.mempool.limits import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_GAPPED_BYTES,
    DEFAULT_MAX_GAPPED_TXS,
    DEFAULT_MAX_GAPPED_TXS_PER_SENDER,
    DEFAULT_MAX_TXS,
    DEFAULT_MAX_TXS_PER_SENDER,
    MempoolLimits,
)

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("plain", "json")


class ConfigError(ValueError):
    """config.toml is missing, not TOML, or holds a bad value; the message says which."""


@dataclass(frozen=True)
class P2PConfig:
    listen_address: str = "127.0.0.1:26656"
    persistent_peers: tuple[str, ...] = ()  # "<node id>@<host>:<port>"
    dial_backoff_min_ms: int = 250  # reconnection backoff doubles up to the max
    dial_backoff_max_ms: int = 10_000


@dataclass(frozen=True)
class RPCConfig:
    """The RPC server and its limits; the defaults are CometBFT's."""

    listen_address: str = "127.0.0.1:26657"
    max_body_bytes: int = 1_000_000  # a transaction is at most 64 KiB; base64 and JSON add a third
    max_request_batch_size: int = 10
    max_open_connections: int = 900  # TCP connections, idle and WebSocket ones included
    max_subscription_clients: int = 100
    max_subscriptions_per_client: int = 5
    subscription_buffer_size: int = 200  # events queued for a WebSocket before it is cut off
    # Ours, not CometBFT's: bytes queued for one WebSocket, counted for replies and events
    # apart. Replies beyond it: its requests are not read until they drain; events beyond
    # it: its subscriptions are cancelled. One reply or event always fits, however large.
    max_websocket_outbox_bytes: int = 4 * 1024 * 1024
    # CometBFT's [rpc] unsafe: the operator's methods that change the node's state
    # (blob_pin, blob_unpin, blob_gc; rpc/admin.py's OPERATOR_METHODS) answer only when
    # true. Off by default, because anyone who reaches the RPC port could otherwise
    # delete what the blob store holds; a refused call is a -32601 naming this setting.
    unsafe: bool = False


# The [rpc] settings that are counts or sizes, each at least 1.
_RPC_LIMITS = tuple(f.name for f in fields(RPCConfig) if f.type == "int")


@dataclass(frozen=True)
class ConsensusConfig:
    timeout_propose_ms: int = 3_000
    timeout_propose_delta_ms: int = 500
    timeout_prevote_ms: int = 1_000
    timeout_prevote_delta_ms: int = 500
    timeout_precommit_ms: int = 1_000
    timeout_precommit_delta_ms: int = 500
    timeout_commit_ms: int = 1_000  # a block at least every ~second, even when idle
    # The wait after a commit while transactions are ready (the node's own timing, no
    # part of what is decided): blocks follow each other this fast under load.
    timeout_commit_busy_ms: int = 50

    def timeouts(self) -> TimeoutConfig:
        return TimeoutConfig(
            propose_ms=self.timeout_propose_ms,
            propose_delta_ms=self.timeout_propose_delta_ms,
            prevote_ms=self.timeout_prevote_ms,
            prevote_delta_ms=self.timeout_prevote_delta_ms,
            precommit_ms=self.timeout_precommit_ms,
            precommit_delta_ms=self.timeout_precommit_delta_ms,
            commit_ms=self.timeout_commit_ms,
        )


@dataclass(frozen=True)
class MempoolConfig:
    """The mempool's bounds (node/mempool/pool.py has the rules that use them).

    Ready transactions (nonces following on from the sender's next one: the only ones
    proposed and gossiped) are bounded by max_txs and max_bytes; gapped ones (a nonce
    ahead, waiting for the ones before it) by their own bounds, so they never take the
    ready set's room. A full mempool admits a transaction only by evicting ones that pay
    less per byte. A transaction leaves once more than ttl_num_blocks blocks were
    committed after it arrived, or once it waited more than ttl_duration_s seconds
    (checked at each commit; CometBFT's ttl-num-blocks and ttl-duration; 0 turns either
    off)."""

    max_txs: int = DEFAULT_MAX_TXS
    max_bytes: int = DEFAULT_MAX_BYTES
    max_txs_per_sender: int = DEFAULT_MAX_TXS_PER_SENDER
    max_gapped_txs_per_sender: int = DEFAULT_MAX_GAPPED_TXS_PER_SENDER
    max_gapped_txs: int = DEFAULT_MAX_GAPPED_TXS
    max_gapped_bytes: int = DEFAULT_MAX_GAPPED_BYTES
    ttl_num_blocks: int = 0
    ttl_duration_s: int = 0

    def limits(self) -> MempoolLimits:
        return MempoolLimits(
            max_txs=self.max_txs,
            max_bytes=self.max_bytes,
            max_txs_per_sender=self.max_txs_per_sender,
            max_gapped_txs_per_sender=self.max_gapped_txs_per_sender,
            max_gapped_txs=self.max_gapped_txs,
            max_gapped_bytes=self.max_gapped_bytes,
            ttl_num_blocks=self.ttl_num_blocks,
            ttl_duration_ns=self.ttl_duration_s * 1_000_000_000,
        )


@dataclass(frozen=True)
class BlobsConfig:
    # The largest upload `POST /blobs` takes: models and datasets run to several GB, so
    # this bounds a mistake (a disk filled by one request), not normal use.
    max_upload_bytes: int = 64 * 1024**3
    # The bytes of blobs that neither an anchor on chain nor an operator's pin refers to:
    # uploads, and replicas fetched because a peer asked, held under leases (blobs/store.py,
    # "Leases"), plus those being stored now. An upload past it is refused (HTTP 507) and
    # a replica fetch fails; nothing stored is lost. One largest upload's worth by default.
    max_unanchored_bytes: int = 64 * 1024**3
    # How long an unanchored upload or replica is kept for its anchor to arrive; older, it
    # may be collected (by blob_gc, or oldest first when an upload needs the room).
    unanchored_grace_s: int = 3600


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    format: str = "plain"  # or "json"


@dataclass(frozen=True)
class DebugConfig:
    """Test aids for the nemesis (cloudchain/chaos): faults a node applies to itself."""

    clock_offset_ms: int = 0  # added to the consensus clock: a skewed node's clock
    byzantine_equivocate: bool = False  # sign a conflicting prevote beside every prevote

    @property
    def active(self) -> bool:
        return self != DebugConfig()


# Settings that may be negative (every other integer setting is a count, a size or a time).
_SIGNED_SETTINGS = {"clock_offset_ms"}


@dataclass(frozen=True)
class NodeConfig:
    moniker: str = "node"
    p2p: P2PConfig = field(default_factory=P2PConfig)
    rpc: RPCConfig = field(default_factory=RPCConfig)
    consensus: ConsensusConfig = field(default_factory=ConsensusConfig)
    mempool: MempoolConfig = field(default_factory=MempoolConfig)
    blobs: BlobsConfig = field(default_factory=BlobsConfig)
    log: LogConfig = field(default_factory=LogConfig)
    debug: DebugConfig = field(default_factory=DebugConfig)

    def to_toml(self) -> str:
        lines = [f"moniker = {_toml(self.moniker)}", ""]
        sections = ["p2p", "rpc", "consensus", "mempool", "blobs", "log"]
        if self.debug.active:  # a test aid is written only where a test set it
            sections.append("debug")
        for section in sections:
            lines.append(f"[{section}]")
            for key, value in asdict(getattr(self, section)).items():
                lines.append(f"{key} = {_toml(value)}")
            lines.append("")
        return "\n".join(lines)

    def save(self, path: str | os.PathLike[str]) -> None:
        Path(path).write_text(self.to_toml())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NodeConfig:
        try:
            document = tomllib.loads(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
        return cls.from_dict(document, str(path))

    @classmethod
    def from_dict(cls, document: dict[str, Any], where: str = "config") -> NodeConfig:
        sections = {
            "p2p": P2PConfig,
            "rpc": RPCConfig,
            "consensus": ConsensusConfig,
            "mempool": MempoolConfig,
            "blobs": BlobsConfig,
            "log": LogConfig,
            "debug": DebugConfig,
        }
        unknown = sorted(set(document) - set(sections) - {"moniker"})
        if unknown:
            raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}")
        values: dict[str, Any] = {
            "moniker": _typed(document.get("moniker", "node"), str, f"{where}: moniker")
        }
        for name, section_type in sections.items():
            values[name] = _section(section_type, document.get(name, {}), f"{where}: [{name}]")
        config = cls(**values)
        if config.log.level not in LOG_LEVELS:
            raise ConfigError(f"{where}: [log] level must be one of {', '.join(LOG_LEVELS)}")
        if config.log.format not in LOG_FORMATS:
            raise ConfigError(f"{where}: [log] format must be one of {', '.join(LOG_FORMATS)}")
        for limit in _RPC_LIMITS:
            if getattr(config.rpc, limit) < 1:
                raise ConfigError(f"{where}: [rpc] {limit} must be at least 1")
        for limit in ("max_upload_bytes", "max_unanchored_bytes"):
            if getattr(config.blobs, limit) < 1:
                raise ConfigError(f"{where}: [blobs] {limit} must be at least 1")
        for limit in fields(MempoolConfig):
            if not limit.name.startswith("ttl_") and getattr(config.mempool, limit.name) < 1:
                raise ConfigError(f"{where}: [mempool] {limit.name} must be at least 1")
        for name in ("p2p", "rpc"):
            _check_address(
                getattr(config, name).listen_address, f"{where}: [{name}] listen_address"
            )
        for peer in config.p2p.persistent_peers:
            node_id, _, host_port = peer.partition("@")
            if len(node_id) != 40 or not host_port:
                raise ConfigError(f"{where}: [p2p] persistent peer {peer!r} is not id@host:port")
            _check_address(host_port, f"{where}: [p2p] persistent peer {peer!r}")
        return config


def _section(section_type: type, values: Any, where: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a table")
    known = {f.name: f for f in fields(section_type)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}")
    default = section_type()
    checked = {}
    for name, value in values.items():
        expected = type(getattr(default, name))
        if expected is tuple:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where} {name}: expected a list of strings")
            value = tuple(value)
        else:
            value = _typed(value, expected, f"{where} {name}")
            if expected is int and value < 0 and name not in _SIGNED_SETTINGS:
                raise ConfigError(f"{where} {name}: must not be negative")
        checked[name] = value
    return section_type(**checked)


def _typed(value: Any, expected: type, where: str) -> Any:
    if not isinstance(value, expected) or isinstance(value, bool) != (expected is bool):
        raise ConfigError(f"{where}: expected {expected.__name__}, got {value!r}")
    return value


def _check_address(address: str, where: str) -> None:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{where}: {address!r} is not host:port")


def _toml(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value).lower() if isinstance(value, bool) else str(value)
