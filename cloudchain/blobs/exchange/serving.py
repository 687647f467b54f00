"""Serving: answering other peers' wants from our store.

What it owns: for each peer, the queue of its wants that we still have to
answer, oldest first, and the task answering them. want-have is answered have
or dont-have by presence; want-block with the block read through
`store.get_block`, which hashes it (a corrupt file is quarantined and answered
dont-have), so we only ever send verified blocks. Up to SERVE_READS_AHEAD
blocks are read ahead of sending, and before each block is sent
`wait_for_room(peer)` is awaited, so that serving a large DAG follows the
link's pace instead of filling memory (False: the peer is gone, stop serving
it). cancel takes wants out of the queue. A peer may have at most
PEER_REQUESTS_MAX wants waiting; more is misbehaviour (ExchangeProtocolError).

What it does not know: our own fetches and replications, sockets, envelopes.
It is given the store, a `send(peer, message)`, the shared worker threads for
the store's blocking calls, and `wait_for_room`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

from cloudchain.blobs.cid import CID
from cloudchain.blobs.exchange.messages import (
    BlockMessage,
    DontHave,
    ExchangeMessage,
    ExchangeProtocolError,
    Have,
    WantBlock,
    WantHave,
)
from cloudchain.blobs.store import BlobStore, BlobStoreError, BlockNotFoundError, CorruptBlockError
from cloudchain.logfields import fields as log_fields

log = logging.getLogger(__name__)

# Blocks read from disk and verified ahead of sending, per peer served: the next
# blocks are ready when the link has room, at 1 MiB of memory per peer.
SERVE_READS_AHEAD = 4
# Wants one peer may have waiting for our answer. An honest fetcher has at most
# IN_FLIGHT_PER_PEER (wantlist.py) want-blocks plus a want-have per fetch; 256
# leaves room for sixteen concurrent fetches from the same peer.
PEER_REQUESTS_MAX = 256

SendMessage = Callable[[str, ExchangeMessage], None]


@dataclass(eq=False)
class _PeerWants:
    """One peer's wants waiting for our answer, oldest first."""

    queue: deque[tuple[str, CID]] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None

    def cancel(self, cids: Sequence[CID]) -> None:
        gone = set(cids)
        self.queue = deque(item for item in self.queue if item[1] not in gone)


class Server:
    """Answers every peer's want-have and want-block, one task per peer."""

    def __init__(
        self,
        store: BlobStore,
        send: SendMessage,
        threads: Executor,
        wait_for_room: Callable[[str], Awaitable[bool]] | None,
    ) -> None:
        self.store = store
        self.blocks_sent = 0
        self.bytes_sent = 0
        self._send = send
        self._threads = threads
        self._wait_for_room = wait_for_room
        self._peers: dict[str, _PeerWants] = {}

    def on_wants(self, peer_id: str, message: WantHave | WantBlock) -> None:
        wants = self._peers.setdefault(peer_id, _PeerWants())
        # Verify that the peer stays within its bound of waiting wants.
        if len(wants.queue) + len(message.cids) > PEER_REQUESTS_MAX:
            raise ExchangeProtocolError(
                f"more than {PEER_REQUESTS_MAX} wants waiting for an answer"
            )
        kind = "block" if isinstance(message, WantBlock) else "have"
        wants.queue.extend((kind, cid) for cid in message.cids)
        if wants.task is None or wants.task.done():
            wants.task = asyncio.create_task(self._serve(peer_id, wants))

    def on_cancel(self, peer_id: str, cids: Sequence[CID]) -> None:
        wants = self._peers.get(peer_id)
        if wants is not None:
            wants.cancel(cids)

    def on_peer_disconnected(self, peer_id: str) -> None:
        wants = self._peers.pop(peer_id, None)
        if wants is not None and wants.task is not None:
            wants.task.cancel()

    def tasks(self) -> list[asyncio.Task[None]]:
        """The tasks serving peers now (for the facade's close)."""
        return [w.task for w in self._peers.values() if w.task is not None]

    def forget_all(self) -> None:
        self._peers.clear()

    async def _serve(self, peer_id: str, wants: _PeerWants) -> None:
        """Answer the peer's wants in order, reading up to SERVE_READS_AHEAD blocks from
        disk (and verifying them) while the ones before are being sent."""
        loop = asyncio.get_running_loop()
        reads: deque[tuple[CID, asyncio.Future[bytes]]] = deque()
        try:
            while wants.queue or reads:
                while wants.queue and len(reads) < SERVE_READS_AHEAD:
                    kind, cid = wants.queue.popleft()
                    if kind == "have":
                        present = await loop.run_in_executor(self._threads, self.store.has, cid)
                        self._send(peer_id, Have((cid,)) if present else DontHave((cid,)))
                        continue
                    read = loop.run_in_executor(self._threads, self.store.get_block, cid)
                    reads.append((cid, read))
                if not reads:
                    continue
                if self._wait_for_room is not None and not await self._wait_for_room(peer_id):
                    return  # the peer is gone
                cid, read = reads.popleft()
                try:
                    data = await read
                except (BlockNotFoundError, CorruptBlockError):
                    self._send(peer_id, DontHave((cid,)))
                    continue
                except BlobStoreError as exc:  # the store is closing: nothing more to serve
                    log.info("blob serving stopped", extra=log_fields(error=str(exc)))
                    return
                self.blocks_sent += 1
                self.bytes_sent += len(data)
                self._send(peer_id, BlockMessage(cid, data))
        finally:
            for _, read in reads:  # reads nobody will send; they end on their threads
                read.cancel()
