"""One fetch: bringing the whole DAG under a root here, verified, from several peers.

What it owns: the run of one `BlobExchange.fetch` once its store session is
open. The local part of the DAG is walked first; if nothing is missing no peer
is asked. Otherwise the wantlist (wantlist.py) decides what to ask whom, and
this module does the rest: it hands the wantlist's messages to `send`, stores
every block received through the session (`store.hold(root)`, so GC keeps the
partial transfer), which checks it against its CID, on worker threads, up to
STORES_IN_FLIGHT at once; it learns each stored block's children and wants the
missing ones; it reports a peer whose block does not match (`report_fault`) and
counts the bytes for `progress`. Blocks already local are never asked for, so
an interrupted fetch resumes where it stopped. The renames are made durable by
the caller, once, at the end.

What it does not know: sockets, envelopes, which messages belong to which fetch
(the facade routes them here through `on_message`), pins, or replication. It
runs on one event loop; its only blocking calls, the store's, go to `threads`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

from cloudchain.blobs.cid import CID, RAW
from cloudchain.blobs.dagpb import decode_pbnode
from cloudchain.blobs.errors import BlockMismatchError, DecodeError
from cloudchain.blobs.exchange.errors import FetchError, NoProvidersError
from cloudchain.blobs.exchange.messages import BlockMessage, DontHave, ExchangeMessage, Have
from cloudchain.blobs.exchange.wake import wait_for_wake
from cloudchain.blobs.exchange.wantlist import Wantlist
from cloudchain.blobs.store import (
    BlobStore,
    BlobStoreError,
    BlockNotFoundError,
    BlockTooLargeError,
    CorruptBlockError,
    StoreSession,
)
from cloudchain.logfields import fields as log_fields

log = logging.getLogger(__name__)

SendMessage = Callable[[str, ExchangeMessage], None]
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class FetchResult:
    root: CID
    dag_bytes: int  # serialised bytes of the whole DAG (the root's Tsize)
    blocks_fetched: int
    bytes_fetched: int
    blocks_local: int  # blocks that were already here when the fetch began
    served_by: Mapping[str, int]  # peer -> blocks it sent us that we stored


@dataclass(frozen=True, slots=True)
class _Stored:
    """A store task's outcome, back on the loop: the block's children, or why not."""

    cid: CID
    size: int
    links: tuple[tuple[CID, int], ...]
    error: Exception | None


class FetchSession:
    """The state of one fetch. Inputs arrive in `inbox` (from on_message, on the
    loop) and are handled by `run`, the only code that changes the state."""

    def __init__(
        self,
        store: BlobStore,
        session: StoreSession,
        root: CID,
        peers: list[str],
        progress: Progress | None,
        *,
        send: SendMessage,
        report_fault: Callable[[str, str], None],
        threads: Executor,
        timeout_s: float,
    ) -> None:
        self.store = store
        self.session = session
        self.root = root
        self.progress = progress
        self.timeout_s = timeout_s
        self.wants = Wantlist(root, peers, timeout_s)
        self._send = send
        self._report_fault = report_fault
        self._threads = threads
        self.inbox: deque[tuple[str, ExchangeMessage | _Stored | None]] = deque()
        self.wake = asyncio.Event()
        self.store_tasks: set[asyncio.Task[None]] = set()
        self.seen: set[CID] = set()
        self.served_by: Counter[str] = Counter()
        self.bytes_done = self.bytes_total = 0
        self.blocks_local = self.blocks_fetched = self.bytes_fetched = 0

    # -- inputs (on the loop, from the facade) -------------------------------

    def on_message(self, peer_id: str, message: ExchangeMessage) -> None:
        if isinstance(message, BlockMessage):
            relevant = self.wants.is_wanted(message.cid)
        else:
            relevant = self.wants.was_asked(peer_id)
        if relevant:
            self.inbox.append((peer_id, message))
            self.wake.set()

    def on_disconnected(self, peer_id: str) -> None:
        self.inbox.append((peer_id, None))
        self.wake.set()

    # -- the loop ----------------------------------------------------------

    async def run(self) -> FetchResult:
        loop = asyncio.get_running_loop()
        wants = self.wants
        wants.add(await asyncio.to_thread(self._walk_local, [(self.root, 0)]))
        if not wants.done:
            wants.start(loop.time())
            self._flush()
        while not wants.done:
            await self._handle_inbox()
            now = loop.time()
            for peer in wants.expire(now):
                log.info(
                    "blob provider timed out", extra=log_fields(peer=peer, root=str(self.root))
                )
            self._flush()
            wants.schedule(now)
            self._flush()
            if wants.done:
                break
            unservable = wants.unservable()
            if unservable is not None:
                raise NoProvidersError(self.root, unservable)
            self.wake.clear()
            deadline = wants.next_deadline()
            if deadline is None:
                deadline = loop.time() + self.timeout_s
            await wait_for_wake(self.wake, deadline - now)
        self._report()
        return FetchResult(
            self.root,
            self.bytes_total,
            self.blocks_fetched,
            self.bytes_fetched,
            self.blocks_local,
            dict(self.served_by),
        )

    async def cancel_all(self) -> None:
        """Withdraw every want still in flight (the fetch ended or failed) and wait for
        the blocks being stored: once a fetch returns or raises, nothing of it writes."""
        self.wants.cancel_all()
        self._flush()
        await asyncio.gather(*self.store_tasks, return_exceptions=True)

    async def _handle_inbox(self) -> None:
        while self.inbox:
            peer_id, message = self.inbox.popleft()
            if message is None:
                self.wants.on_disconnected(peer_id)
                self._flush()
            elif isinstance(message, Have):
                self.wants.on_have(peer_id, message.cids)
            elif isinstance(message, DontHave):
                self.wants.on_dont_have(peer_id, message.cids)
            elif isinstance(message, BlockMessage):
                self._on_block(peer_id, message.cid, message.data)
            elif isinstance(message, _Stored):
                await self._on_stored(peer_id, message)

    def _on_block(self, peer_id: str, cid: CID, data: bytes) -> None:
        """A block arrived: out of flight, into a store task (its result comes back
        through the inbox as _Stored)."""
        if not self.wants.on_block(peer_id, cid):
            return  # a duplicate, or late
        self._flush()
        task = asyncio.create_task(self._store(peer_id, cid, data))
        self.store_tasks.add(task)
        task.add_done_callback(self.store_tasks.discard)

    async def _store(self, peer_id: str, cid: CID, data: bytes) -> None:
        try:
            loop = asyncio.get_running_loop()
            links = await loop.run_in_executor(self._threads, self._store_block, cid, data)
        except Exception as exc:  # every outcome goes back: a block left "storing" would hang
            self.inbox.append((peer_id, _Stored(cid, len(data), (), exc)))
        else:
            self.inbox.append((peer_id, _Stored(cid, len(data), links, None)))
        self.wake.set()

    async def _on_stored(self, peer_id: str, stored: _Stored) -> None:
        cid = stored.cid
        error = stored.error
        if isinstance(error, FetchError | BlobStoreError | OSError):
            raise error  # a malformed DAG or our own disk: no peer can fix that
        if error is not None and not isinstance(error, BlockMismatchError | BlockTooLargeError):
            raise FetchError(f"storing {cid} failed: {error!r}") from error
        if error is not None:
            if self.wants.on_bad_block(peer_id, cid):
                self._report_fault(peer_id, f"sent a bad block for {cid}: {error}")
            self._flush()
            return
        self.wants.on_stored(cid)
        self.seen.add(cid)
        self.served_by[peer_id] += 1
        self.blocks_fetched += 1
        self.bytes_fetched += stored.size
        self._count_block(cid, stored.size, stored.links)
        if stored.links:
            self.wants.add(await asyncio.to_thread(self._walk_local, list(stored.links)))
        self._report()

    def _flush(self) -> None:
        """Send what the wantlist decided, in the order it did."""
        for peer_id, message in self.wants.take_messages():
            self._send(peer_id, message)

    def _report(self) -> None:
        if self.progress is not None and self.bytes_total:
            self.progress(self.bytes_done, self.bytes_total)

    # -- in a worker thread (run awaits it; nothing else touches these fields) --

    def _store_block(self, cid: CID, data: bytes) -> tuple[tuple[CID, int], ...]:
        """Store a received block (verified by the store); its children, (cid, Tsize).
        Runs on several threads at once: it touches no field of the fetch."""
        self.session.put_block(cid, data, durable=False)
        return tuple(links_of(self.root, cid, data))

    def _walk_local(self, items: list[tuple[CID, int]]) -> list[tuple[CID, int]]:
        """Walk the local part of the DAG below `items` ((cid, Tsize) pairs); return
        the blocks to fetch, (cid, Tsize), in the order met."""
        missing: list[tuple[CID, int]] = []
        stack = list(reversed(items))
        while stack:
            cid, tsize = stack.pop()
            if cid in self.seen:
                self.bytes_done += tsize  # a repeat (a file of zeros): its bytes are counted
                continue
            self.seen.add(cid)
            if cid.codec == RAW and tsize and self.store.has(cid):
                self.blocks_local += 1
                self.bytes_done += tsize
                continue
            try:
                data = self.store.get_block(cid)
            except (BlockNotFoundError, CorruptBlockError):
                missing.append((cid, tsize))
                continue
            self.blocks_local += 1
            links = links_of(self.root, cid, data)
            self._count_block(cid, len(data), links)
            stack.extend(reversed(links))
        return missing

    def _count_block(self, cid: CID, size: int, links: Sequence[tuple[CID, int]]) -> None:
        self.bytes_done += size
        if cid == self.root:
            self.bytes_total = size + sum(t for _, t in links)


def links_of(root: CID, cid: CID, data: bytes) -> list[tuple[CID, int]]:
    """The children of a verified block, (cid, Tsize); FetchError if it is not dag-pb."""
    if cid.codec == RAW:
        return []
    try:
        node = decode_pbnode(data)
    except DecodeError as exc:
        raise FetchError(f"the DAG under {root} is malformed at {cid}: {exc}") from None
    return [(link.cid, link.tsize or 0) for link in node.links]
