"""BlobExchange: the one object the node holds to fetch, serve and replicate blobs.

What it owns: the wiring. It builds the parts — the server (serving.py), a
fetch session per `fetch` (fetch.py, with its wantlist.py), a replication per
`replicate` and the replica fetcher (replication.py) — around one store, one
pool of worker threads for the store's blocking calls, and one `send`; it
routes each message from a peer to the part it is for; it counts what went
through and which peers misbehaved (`peer_faults`, `on_fault`).

What it does not know: sockets, envelopes, node ids beyond opaque strings. It
is built with the store, a `send(peer_id, obj)` that queues one message map
for a peer (the node wraps it in {"ch": "blob", "m": obj}), `list_peers()`,
and optionally `wait_for_room(peer_id)`, awaited before each block is read and
sent (serving.py). The node feeds it `on_message(peer_id, obj)` and
`on_peer_disconnected(peer_id)`. All of it runs on one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from cloudchain.blobs.cid import CID
from cloudchain.blobs.exchange.errors import FetchError
from cloudchain.blobs.exchange.fetch import FetchResult, FetchSession, Progress
from cloudchain.blobs.exchange.messages import (
    BlockMessage,
    Cancel,
    ExchangeMessage,
    FetchFailed,
    FetchRequest,
    HaveAll,
    WantBlock,
    WantHave,
    message_from_obj,
    message_to_obj,
)
from cloudchain.blobs.exchange.replication import REPLICATE_TIMEOUT_S, ReplicaFetcher, Replication
from cloudchain.blobs.exchange.serving import Server
from cloudchain.blobs.exchange.wantlist import REQUEST_TIMEOUT_S
from cloudchain.blobs.store import BlobStore, CIDLike, StoreSession
from cloudchain.logfields import fields as log_fields

log = logging.getLogger(__name__)

# Threads for the store's blocking calls (reads to serve, verified writes of what is
# fetched), shared by every peer and every fetch.
EXCHANGE_THREADS = 16

Send = Callable[[str, dict[str, Any]], object]


@dataclass(frozen=True, slots=True)
class ExchangeCounters:
    blocks_sent: int
    bytes_sent: int
    blocks_received: int
    bytes_received: int
    peer_faults: int


class BlobExchange:
    def __init__(
        self,
        store: BlobStore,
        send: Send,
        list_peers: Callable[[], Iterable[str]],
        node_id: str,
        *,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
        on_fault: Callable[[str, str], None] | None = None,
        wait_for_room: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self.store = store
        self.node_id = node_id
        self.request_timeout_s = request_timeout_s
        self.peer_faults: Counter[str] = Counter()
        self._send_obj = send
        self._list_peers = list_peers
        self._on_fault = on_fault
        self._threads = ThreadPoolExecutor(EXCHANGE_THREADS, thread_name_prefix="blob-exchange")
        self._server = Server(store, self._send, self._threads, wait_for_room)
        self._replica_fetcher = ReplicaFetcher(
            self._send, lambda cid, peers: self.fetch(cid, peers, lease=True)
        )
        self._fetches: set[FetchSession] = set()
        self._replications: set[Replication] = set()
        self._counts: Counter[str] = Counter()

    @property
    def counters(self) -> ExchangeCounters:
        return ExchangeCounters(
            self._server.blocks_sent,
            self._server.bytes_sent,
            self._counts["blocks_received"],
            self._counts["bytes_received"],
            sum(self.peer_faults.values()),
        )

    async def close(self) -> None:
        """Stop serving and replicating for peers (fetches belong to their callers)."""
        tasks = self._server.tasks() + self._replica_fetcher.tasks()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._server.forget_all()
        self._replica_fetcher.forget_all()
        await asyncio.to_thread(self._threads.shutdown, wait=True)

    # -- inputs from the node ----------------------------------------------

    def on_message(self, peer_id: str, obj: Any) -> None:
        """Handle one message from a peer; ExchangeProtocolError if it misbehaves."""
        message = message_from_obj(obj)
        if isinstance(message, WantHave | WantBlock):
            self._server.on_wants(peer_id, message)
        elif isinstance(message, Cancel):
            self._server.on_cancel(peer_id, message.cids)
        elif isinstance(message, FetchRequest):
            self._replica_fetcher.on_fetch_request(peer_id, message.cid)
        elif isinstance(message, HaveAll | FetchFailed):
            for replication in self._replications:
                replication.on_message(peer_id, message)
        else:
            if isinstance(message, BlockMessage):
                self._counts.update(blocks_received=1, bytes_received=len(message.data))
            for fetch in self._fetches:
                fetch.on_message(peer_id, message)

    def on_peer_disconnected(self, peer_id: str) -> None:
        self._server.on_peer_disconnected(peer_id)
        for fetch in self._fetches:
            fetch.on_disconnected(peer_id)
        for replication in self._replications:
            replication.on_peer_disconnected(peer_id)

    # -- fetching ----------------------------------------------------------

    async def fetch(
        self,
        root: CIDLike,
        peers: Iterable[str] | None = None,
        progress: Progress | None = None,
        *,
        pin: bool = False,
        lease: bool = False,
    ) -> FetchResult:
        """Fetch the whole DAG under `root` from `peers` (default: every connected
        peer), storing every block verified; pin it at the end if `pin`, or with
        `lease` (a replica a peer asked for) count what it stores against the store's
        quota of unanchored bytes as it comes and keep it under a lease at the end;
        such a fetch that fails removes what it stored (QuotaExceededError, a
        BlobStoreError, when the quota is full).

        `progress(bytes_done, bytes_total)` is called as blocks arrive, in bytes of
        the serialised DAG, once the root is known. Raises NoProvidersError if no
        peer can give some block, FetchError if the DAG itself is malformed.
        """
        root = root if isinstance(root, CID) else CID.parse(root)
        candidates = self._candidates(peers)
        if lease:
            await asyncio.to_thread(self.store.ensure_room, 0)  # may collect: off the loop
        with self.store.hold(root, counted=lease) as session:
            try:
                result = await self._run_fetch(session, root, candidates, progress)
                await asyncio.to_thread(session.sync)  # the renames, durable before any report
                if pin:
                    await asyncio.to_thread(self.store.pin, root)
                elif lease:
                    await asyncio.to_thread(session.lease, root)
            except BaseException:
                if lease:
                    await asyncio.to_thread(session.roll_back)
                raise
        return result

    async def _run_fetch(
        self, session: StoreSession, root: CID, candidates: list[str], progress: Progress | None
    ) -> FetchResult:
        fetch = FetchSession(
            self.store,
            session,
            root,
            candidates,
            progress,
            send=self._send,
            report_fault=self._fault,
            threads=self._threads,
            timeout_s=self.request_timeout_s,
        )
        self._fetches.add(fetch)
        try:
            return await fetch.run()
        finally:
            self._fetches.discard(fetch)
            await fetch.cancel_all()

    # -- replicating -------------------------------------------------------

    async def replicate(
        self,
        root: CIDLike,
        replicas: int,
        peers: Iterable[str] | None = None,
        *,
        timeout_s: float = REPLICATE_TIMEOUT_S,
    ) -> list[str]:
        """Have `replicas` nodes, this one included, hold the whole DAG under `root`
        (which must be complete here); return their ids, this node first.
        Raises ReplicationError, naming the holders, if the candidates run out."""
        root = root if isinstance(root, CID) else CID.parse(root)
        if replicas < 1:
            raise ValueError(f"replicas must be at least 1, not {replicas}")
        stat = await asyncio.to_thread(self.store.stat, root)
        if not stat.complete:
            raise FetchError(f"{root} is not complete here: {stat.blocks_missing} blocks missing")
        replication = Replication(root, deque(self._candidates(peers)))
        self._replications.add(replication)
        try:
            return await replication.run(self._send, self.node_id, replicas, timeout_s)
        finally:
            self._replications.discard(replication)

    # -- helpers -----------------------------------------------------------

    def _candidates(self, peers: Iterable[str] | None) -> list[str]:
        """`peers` (default: every connected peer) but this node, each once, in order."""
        chosen = self._list_peers() if peers is None else peers
        return list(dict.fromkeys(p for p in chosen if p != self.node_id))

    def _send(self, peer_id: str, message: ExchangeMessage) -> None:
        self._send_obj(peer_id, message_to_obj(message))

    def _fault(self, peer_id: str, reason: str) -> None:
        self.peer_faults[peer_id] += 1
        log.warning("blob peer misbehaved", extra=log_fields(peer=peer_id, error=reason))
        if self._on_fault is not None:
            self._on_fault(peer_id, reason)
