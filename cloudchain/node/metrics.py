"""Prometheus metrics of a node, served as text at the RPC server's /metrics.

Each node has its own registry (several nodes may share a process in tests).
Names follow CometBFT's where one exists (cometbft_consensus_height becomes
cloudchain_consensus_height); a Counter's name gets "_total" when exposed.
The p2p byte counters are labelled by wire channel (consensus, tx, sync): the
node counts, since only it knows what a message is.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from cloudchain.node.mempool import MempoolStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.height = Gauge(
            "cloudchain_consensus_height", "Height of the last committed block", registry=r
        )
        self.rounds = Gauge(
            "cloudchain_consensus_rounds", "Rounds the last height took", registry=r
        )
        self.block_interval = Gauge(
            "cloudchain_consensus_block_interval_seconds",
            "Time between the last two blocks",
            registry=r,
        )
        self.txs_committed = Counter(
            "cloudchain_consensus_txs_committed", "Transactions committed", registry=r
        )
        self.mempool_size = Gauge(
            "cloudchain_mempool_size", "Transactions waiting, ready and gapped", registry=r
        )
        self.mempool_bytes = Gauge(
            "cloudchain_mempool_size_bytes", "Bytes waiting, ready and gapped", registry=r
        )
        self.mempool_ready = Gauge(
            "cloudchain_mempool_ready_size",
            "Transactions ready: their nonce follows on from the sender's next",
            registry=r,
        )
        self.mempool_gapped = Gauge(
            "cloudchain_mempool_gapped_size",
            "Transactions waiting apart for an earlier nonce of their sender",
            registry=r,
        )
        self.mempool_evicted = Counter(
            "cloudchain_mempool_evicted_txs",
            "Transactions evicted to make room for ones paying more per byte",
            registry=r,
        )
        self.mempool_expired = Counter(
            "cloudchain_mempool_expired_txs",
            "Transactions that waited past [mempool] ttl_num_blocks or ttl_duration_s",
            registry=r,
        )
        self.mempool_recheck_times = Counter(
            "cloudchain_mempool_recheck_times",
            "Transactions re-checked after a commit (recheck_tx, no signature verified)",
            registry=r,
        )
        self.mempool_recheck_failed = Counter(
            "cloudchain_mempool_recheck_failed_txs",
            "Transactions that left the mempool because the re-check after a commit refused them",
            registry=r,
        )
        self._mempool_seen = MempoolStats(0, 0, 0, 0, 0, 0, 0, 0)
        self.peers = Gauge("cloudchain_p2p_peers", "Connected peers", registry=r)
        self.refused_txs = Counter(
            "cloudchain_mempool_refused_txs", "Transactions refused by the mempool", registry=r
        )
        self.equivocations = Counter(
            "cloudchain_consensus_equivocations",
            "Double votes by a validator that the consensus core verified (evidence_pool.py)",
            registry=r,
        )
        self.dropped_gossip_txs = Counter(
            "cloudchain_p2p_dropped_gossip_txs",
            "Transactions gossiped by peers and dropped unchecked: the admission inbox was full",
            registry=r,
        )
        self.refused_peers = Gauge(
            "cloudchain_p2p_refused_peers", "Peers refused at the handshake", registry=r
        )
        self.refused_messages = Counter(
            "cloudchain_p2p_refused_messages",
            "Messages from connected peers refused as undecodable (the peer is disconnected)",
            registry=r,
        )
        self._refused_messages_seen = 0
        self.send_bytes = Counter(
            "cloudchain_p2p_message_send_bytes",
            "Message bytes queued for peers, by channel (a broadcast counts once per peer)",
            ["channel"],
            registry=r,
        )
        self.receive_bytes = Counter(
            "cloudchain_p2p_message_receive_bytes",
            "Message bytes received from peers, by channel",
            ["channel"],
            registry=r,
        )

    def count_refused_messages(self, total: int) -> None:
        """Bring the refused-messages counter up to `total`, the transport's running count."""
        assert total >= self._refused_messages_seen, "a running count never falls"
        self.refused_messages.inc(total - self._refused_messages_seen)
        self._refused_messages_seen = total

    def observe_mempool(self, stats: MempoolStats) -> None:
        """Set the mempool's gauges, and bring its counters up to its running counts."""
        self.mempool_size.set(stats.ready_txs + stats.gapped_txs)
        self.mempool_bytes.set(stats.ready_bytes + stats.gapped_bytes)
        self.mempool_ready.set(stats.ready_txs)
        self.mempool_gapped.set(stats.gapped_txs)
        seen = self._mempool_seen
        for counter, total, before in (
            (self.mempool_evicted, stats.evicted_txs, seen.evicted_txs),
            (self.mempool_expired, stats.expired_txs, seen.expired_txs),
            (self.mempool_recheck_times, stats.recheck_times, seen.recheck_times),
            (self.mempool_recheck_failed, stats.recheck_failed_txs, seen.recheck_failed_txs),
        ):
            assert total >= before, "a running count never falls"
            counter.inc(total - before)
        self._mempool_seen = stats

    def render(self) -> bytes:
        return generate_latest(self.registry)
