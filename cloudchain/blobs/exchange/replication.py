"""Replication: having r nodes hold a whole DAG, and holding it when a peer asks.

The protocol: fetch-request {cid} asks a peer to fetch the DAG under cid from
us; it answers have-all once the whole DAG is stored and leased there, or
fetch-failed. A replica is held under a lease, not a pin: it counts against the
peer's quota of unanchored bytes (a peer cannot fill our disk by asking us to
replicate), and a fetch that would go past it fails, removing what it stored.

What it owns:
- `Replication`, one `replicate` of ours: it asks one peer per replica still
  needed, the next candidate whenever one fails (fetch-failed, a disconnect)
  or does not answer within the timeout, and returns the holders, this node
  first; ReplicationError, naming the holders, once the candidates run out.
- `ReplicaFetcher`, the other side: for each peer, the fetch-requests it sent
  us that we are serving by fetching from it and leasing, at most
  REPLICATIONS_PER_PEER_MAX at once (more are answered fetch-failed).

What it does not know: how a DAG is fetched (the facade's `fetch`, given as a
callable), the store, sockets. Messages arrive through the facade.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from cloudchain.blobs.cid import CID
from cloudchain.blobs.exchange.errors import FetchError, ReplicationError
from cloudchain.blobs.exchange.messages import ExchangeMessage, FetchFailed, FetchRequest, HaveAll
from cloudchain.blobs.exchange.wake import wait_for_wake
from cloudchain.blobs.store import BlobStoreError
from cloudchain.logfields import fields as log_fields

log = logging.getLogger(__name__)

# How long a replica may take to fetch a whole DAG: 200 MB at 10 MB/s is 20 s.
REPLICATE_TIMEOUT_S = 300.0
# fetch-requests we serve for one peer at once; more are answered fetch-failed.
REPLICATIONS_PER_PEER_MAX = 4

SendMessage = Callable[[str, ExchangeMessage], None]
# Fetch the DAG under a root from these peers, and lease it (raises FetchError, ...).
FetchAndLease = Callable[[CID, list[str]], Awaitable[object]]


@dataclass(eq=False)
class Replication:
    """The state of one `replicate`: whom it may still ask, and whom it waits for."""

    root: CID
    candidates: deque[str]
    holders: list[str] = field(default_factory=list)
    waiting: dict[str, float] = field(default_factory=dict)  # peer -> deadline
    inbox: deque[tuple[str, HaveAll | FetchFailed]] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def on_message(self, peer_id: str, message: HaveAll | FetchFailed) -> None:
        if message.cid == self.root and peer_id in self.waiting:
            self.inbox.append((peer_id, message))
            self.wake.set()

    def on_peer_disconnected(self, peer_id: str) -> None:
        self.on_message(peer_id, FetchFailed(self.root))

    async def run(
        self, send: SendMessage, node_id: str, replicas: int, timeout_s: float
    ) -> list[str]:
        loop = asyncio.get_running_loop()
        self.holders = [node_id]
        while len(self.holders) < replicas:
            while self.candidates and len(self.holders) + len(self.waiting) < replicas:
                peer = self.candidates.popleft()
                self.waiting[peer] = loop.time() + timeout_s
                send(peer, FetchRequest(self.root))
            if not self.waiting:
                raise ReplicationError(self.root, replicas, self.holders)
            self.wake.clear()
            await wait_for_wake(self.wake, min(self.waiting.values()) - loop.time())
            while self.inbox:
                peer, message = self.inbox.popleft()
                if self.waiting.pop(peer, None) is not None and isinstance(message, HaveAll):
                    self.holders.append(peer)
            now = loop.time()
            for peer in [p for p, deadline in self.waiting.items() if deadline <= now]:
                del self.waiting[peer]
        return self.holders


class ReplicaFetcher:
    """Serves peers' fetch-requests: fetch the DAG from the asker, lease it, answer."""

    def __init__(self, send: SendMessage, fetch_and_lease: FetchAndLease) -> None:
        self._send = send
        self._fetch_and_lease = fetch_and_lease
        self._tasks: dict[str, set[asyncio.Task[None]]] = {}  # by the peer that asked

    def on_fetch_request(self, peer_id: str, cid: CID) -> None:
        tasks = self._tasks.setdefault(peer_id, set())
        if len(tasks) >= REPLICATIONS_PER_PEER_MAX:
            self._send(peer_id, FetchFailed(cid))
            return
        task = asyncio.create_task(self._replicate_for(peer_id, cid))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def tasks(self) -> list[asyncio.Task[None]]:
        """The replica fetches running now (for the facade's close)."""
        return [task for group in self._tasks.values() for task in group]

    def forget_all(self) -> None:
        self._tasks.clear()

    async def _replicate_for(self, peer_id: str, cid: CID) -> None:
        try:
            await self._fetch_and_lease(cid, [peer_id])
        except (FetchError, BlobStoreError, ValueError) as exc:
            log.info(
                "replica fetch failed", extra=log_fields(peer=peer_id, cid=str(cid), error=str(exc))
            )
            self._send(peer_id, FetchFailed(cid))
            return
        self._send(peer_id, HaveAll(cid))
