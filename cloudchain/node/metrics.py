"""Prometheus metrics of a node, served as text at the RPC server's /metrics.

Each node has its own registry (several nodes may share a process in tests).
Names follow CometBFT's where one exists (cometbft_consensus_height becomes
cloudchain_consensus_height).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.height = Gauge("cloudchain_consensus_height", "Height of the last committed block",
                            registry=r)  # fmt: skip
        self.rounds = Gauge("cloudchain_consensus_rounds", "Rounds the last height took",
                            registry=r)  # fmt: skip
        self.block_interval = Gauge("cloudchain_consensus_block_interval_seconds",
                                    "Time between the last two blocks", registry=r)  # fmt: skip
        self.txs_committed = Counter("cloudchain_consensus_txs_committed",
                                     "Transactions committed", registry=r)  # fmt: skip
        self.mempool_size = Gauge("cloudchain_mempool_size", "Transactions waiting", registry=r)
        self.mempool_bytes = Gauge("cloudchain_mempool_size_bytes", "Bytes waiting", registry=r)
        self.peers = Gauge("cloudchain_p2p_peers", "Connected peers", registry=r)
        self.refused_txs = Counter("cloudchain_mempool_refused_txs",
                                   "Transactions refused by the mempool", registry=r)  # fmt: skip
        self.refused_peers = Gauge("cloudchain_p2p_refused_peers",
                                   "Peers refused at the handshake", registry=r)  # fmt: skip

    def render(self) -> bytes:
        return generate_latest(self.registry)
