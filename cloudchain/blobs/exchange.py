"""The blob exchange: fetching and serving DAGs between nodes, in the manner of Bitswap.

What it owns: for each peer, the queue of its wants that we still have to answer;
for each `fetch` in progress, which blocks are wanted, asked of whom and until
when; for each `replicate`, whom it asked. Messages are in exchange_messages.py.

What it does not know: sockets, envelopes, node ids beyond opaque strings. It is
built with the store, a `send(peer_id, obj)` that queues one message map for a
peer (the node wraps it in {"ch": "blob", "m": obj}), `list_peers()`, and
optionally `wait_for_room(peer_id)`, awaited before each block is read and sent,
so that serving a large DAG follows the link's pace instead of filling memory
(False: the peer is gone, stop serving it). The node feeds it
`on_message(peer_id, obj)` and `on_peer_disconnected(peer_id)`.
All of it runs on one event loop; the store's blocking calls go to threads.

Serving. want-have is answered have/dont-have by presence; want-block with the
block read through `get_block`, which hashes it (a corrupt file is quarantined
and answered dont-have), so we only ever send verified blocks. Each peer may
have at most PEER_REQUESTS_MAX wants waiting; more is misbehaviour.

Fetching (`fetch`). The local part of the DAG is walked first; if nothing is
missing no peer is asked. Otherwise want-have for the root goes to the peers,
and every peer that answers have becomes a provider for the whole transfer.
Missing blocks are asked with want-block in breadth-first order (the DAG level
by level: a block's children are known once it arrives), round-robin over the
providers, at most IN_FLIGHT_PER_PEER per provider. Every block received is
stored through `store.hold(root)` (so GC keeps the partial transfer), which
checks it against its CID, on worker threads, up to STORES_IN_FLIGHT at once
(the blocks received and not yet stored count against the room to ask for
more, so memory stays bounded when the disk is slower than the network). The
renames are made durable once, at the end, before the fetch returns or pins.
A block that does not match is dropped, the sender is reported (`peer_faults`,
`on_fault`) and no longer asked, and the block is asked of another provider.
dont-have moves a block to another provider; a request unanswered for
`request_timeout_s` drops that provider. A block that no provider can give,
with no want-have answer still pending, is NoProvidersError.
Blocks already local are never asked for, so an interrupted fetch resumes.

Replicating (`replicate`). fetch-request {cid} asks a peer to fetch the DAG from
us; it answers have-all once the whole DAG is stored and pinned there, or
fetch-failed. We ask one peer per replica still needed, the next candidate
whenever one fails or times out, and return the holders (us first).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from cloudchain.blobs.cid import CID, RAW
from cloudchain.blobs.dagpb import decode_pbnode
from cloudchain.blobs.errors import BlockMismatchError, DecodeError
from cloudchain.blobs.exchange_messages import (
    BlockMessage,
    Cancel,
    DontHave,
    ExchangeMessage,
    ExchangeProtocolError,
    FetchFailed,
    FetchRequest,
    Have,
    HaveAll,
    WantBlock,
    WantHave,
    chunked,
    message_from_obj,
    message_to_obj,
)
from cloudchain.blobs.store import (
    BlobStore,
    BlobStoreError,
    BlockNotFoundError,
    BlockTooLargeError,
    CIDLike,
    CorruptBlockError,
    StoreSession,
)
from cloudchain.logfields import fields as log_fields

log = logging.getLogger(__name__)

# Blocks asked of one provider and not yet answered: with 256 KiB chunks, 4 MiB in
# flight per peer, enough to cover a LAN round trip at disk speed.
IN_FLIGHT_PER_PEER = 16
# Blocks received and being verified and written at once, on worker threads: enough
# to keep a disk's queue busy with fsyncs, a bound on the memory they hold (4 MiB).
STORES_IN_FLIGHT = 16
# Blocks read from disk and verified ahead of sending, per peer served: the next
# blocks are ready when the link has room, at 1 MiB of memory per peer.
SERVE_READS_AHEAD = 4
# Threads for the store's blocking calls (reads to serve, verified writes of what is
# fetched), shared by every peer and every fetch.
EXCHANGE_THREADS = 16
# Wants one peer may have waiting for our answer. An honest fetcher has at most
# IN_FLIGHT_PER_PEER want-blocks plus a want-have per fetch; 256 leaves room for
# sixteen concurrent fetches from the same peer.
PEER_REQUESTS_MAX = 256
# How long a provider may take to answer a want (or a peer a want-have).
REQUEST_TIMEOUT_S = 10.0
# How long a replica may take to fetch a whole DAG: 200 MB at 10 MB/s is 20 s.
REPLICATE_TIMEOUT_S = 300.0
# fetch-requests we serve for one peer at once; more are answered fetch-failed.
REPLICATIONS_PER_PEER_MAX = 4

Send = Callable[[str, dict[str, Any]], object]
Progress = Callable[[int, int], None]


class FetchError(BlobStoreError):
    """A fetch or replication that could not complete."""


class NoProvidersError(FetchError, LookupError):
    """No connected peer has (or will give us) a block of the DAG."""

    def __init__(self, root: CID, cid: CID) -> None:
        what = "the root" if cid == root else f"block {cid}"
        super().__init__(f"no peer has {what} of {root}")
        self.root = root
        self.cid = cid


class ReplicationError(FetchError):
    """Fewer nodes than asked for hold the blob; `holders` are those that do."""

    def __init__(self, root: CID, replicas: int, holders: Sequence[str]) -> None:
        super().__init__(
            f"{root}: only {len(holders)} of {replicas} replicas ({', '.join(holders)})"
        )
        self.holders = list(holders)


@dataclass(frozen=True, slots=True)
class FetchResult:
    root: CID
    dag_bytes: int  # serialised bytes of the whole DAG (the root's Tsize)
    blocks_fetched: int
    bytes_fetched: int
    blocks_local: int  # blocks that were already here when the fetch began
    served_by: Mapping[str, int]  # peer -> blocks it sent us that we stored


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
        self._wait_for_room = wait_for_room
        self._serving: dict[str, _Serving] = {}
        self._fetches: set[_Fetch] = set()
        self._replications: set[_Replication] = set()
        self._replicating: dict[str, set[asyncio.Task[None]]] = {}
        self._threads = ThreadPoolExecutor(EXCHANGE_THREADS, thread_name_prefix="blob-exchange")
        self._counts: Counter[str] = Counter()

    @property
    def counters(self) -> ExchangeCounters:
        return ExchangeCounters(
            self._counts["blocks_sent"],
            self._counts["bytes_sent"],
            self._counts["blocks_received"],
            self._counts["bytes_received"],
            sum(self.peer_faults.values()),
        )

    async def close(self) -> None:
        """Stop serving and replicating for peers (fetches belong to their callers)."""
        tasks = [s.task for s in self._serving.values() if s.task is not None]
        tasks += [t for group in self._replicating.values() for t in group]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._serving.clear()
        self._replicating.clear()
        await asyncio.to_thread(self._threads.shutdown, wait=True)

    # -- inputs from the node ----------------------------------------------

    def on_message(self, peer_id: str, obj: Any) -> None:
        """Handle one message from a peer; ExchangeProtocolError if it misbehaves."""
        message = message_from_obj(obj)
        if isinstance(message, WantHave | WantBlock):
            self._on_wants(peer_id, message)
        elif isinstance(message, Cancel):
            serving = self._serving.get(peer_id)
            if serving is not None:
                serving.cancel(message.cids)
        elif isinstance(message, FetchRequest):
            self._on_fetch_request(peer_id, message.cid)
        elif isinstance(message, HaveAll | FetchFailed):
            for replication in self._replications:
                replication.on_message(peer_id, message)
        else:
            if isinstance(message, BlockMessage):
                self._counts.update(blocks_received=1, bytes_received=len(message.data))
            for fetch in self._fetches:
                fetch.on_message(peer_id, message)

    def on_peer_disconnected(self, peer_id: str) -> None:
        serving = self._serving.pop(peer_id, None)
        if serving is not None and serving.task is not None:
            serving.task.cancel()
        for fetch in self._fetches:
            fetch.on_disconnected(peer_id)
        for replication in self._replications:
            replication.on_message(peer_id, FetchFailed(replication.root))

    # -- serving -----------------------------------------------------------

    def _on_wants(self, peer_id: str, message: WantHave | WantBlock) -> None:
        serving = self._serving.setdefault(peer_id, _Serving())
        # Verify that the peer stays within its bound of waiting wants.
        if len(serving.queue) + len(message.cids) > PEER_REQUESTS_MAX:
            raise ExchangeProtocolError(
                f"more than {PEER_REQUESTS_MAX} wants waiting for an answer"
            )
        kind = "block" if isinstance(message, WantBlock) else "have"
        serving.queue.extend((kind, cid) for cid in message.cids)
        if serving.task is None or serving.task.done():
            serving.task = asyncio.create_task(self._serve(peer_id, serving))

    async def _serve(self, peer_id: str, serving: _Serving) -> None:
        """Answer the peer's wants in order, reading up to SERVE_READS_AHEAD blocks from
        disk (and verifying them) while the ones before are being sent."""
        loop = asyncio.get_running_loop()
        reads: deque[tuple[CID, asyncio.Future[bytes]]] = deque()
        try:
            while serving.queue or reads:
                while serving.queue and len(reads) < SERVE_READS_AHEAD:
                    kind, cid = serving.queue.popleft()
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
                self._counts.update(blocks_sent=1, bytes_sent=len(data))
                self._send(peer_id, BlockMessage(cid, data))
        finally:
            for _, read in reads:  # reads nobody will send; they end on their threads
                read.cancel()

    def _send(self, peer_id: str, message: ExchangeMessage) -> None:
        self._send_obj(peer_id, message_to_obj(message))

    def _send_cids(
        self, peer_id: str, kind: type[WantHave | WantBlock | Cancel], cids: list[CID]
    ) -> None:
        for part in chunked(cids):
            self._send(peer_id, kind(part))

    def _fault(self, peer_id: str, reason: str) -> None:
        self.peer_faults[peer_id] += 1
        log.warning("blob peer misbehaved", extra=log_fields(peer=peer_id, error=reason))
        if self._on_fault is not None:
            self._on_fault(peer_id, reason)

    # -- fetching ----------------------------------------------------------

    async def fetch(
        self,
        root: CIDLike,
        peers: Iterable[str] | None = None,
        progress: Progress | None = None,
        *,
        pin: bool = False,
    ) -> FetchResult:
        """Fetch the whole DAG under `root` from `peers` (default: every connected
        peer), storing every block verified; pin it at the end if `pin`.

        `progress(bytes_done, bytes_total)` is called as blocks arrive, in bytes of
        the serialised DAG, once the root is known. Raises NoProvidersError if no
        peer can give some block, FetchError if the DAG itself is malformed.
        """
        root = root if isinstance(root, CID) else CID.parse(root)
        candidates = [
            p for p in (self._list_peers() if peers is None else peers) if p != self.node_id
        ]
        with self.store.hold(root) as session:
            fetch = _Fetch(self, session, root, list(dict.fromkeys(candidates)), progress)
            self._fetches.add(fetch)
            try:
                result = await fetch.run()
            finally:
                self._fetches.discard(fetch)
                await fetch.cancel_all()
            await asyncio.to_thread(session.sync)  # the renames, durable before any report
            if pin:
                await asyncio.to_thread(self.store.pin, root)
        return result

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
        candidates = [
            p for p in (self._list_peers() if peers is None else peers) if p != self.node_id
        ]
        replication = _Replication(root, deque(dict.fromkeys(candidates)))
        self._replications.add(replication)
        try:
            return await replication.run(self, replicas, timeout_s)
        finally:
            self._replications.discard(replication)

    def _on_fetch_request(self, peer_id: str, cid: CID) -> None:
        tasks = self._replicating.setdefault(peer_id, set())
        if len(tasks) >= REPLICATIONS_PER_PEER_MAX:
            self._send(peer_id, FetchFailed(cid))
            return
        task = asyncio.create_task(self._replicate_for(peer_id, cid))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _replicate_for(self, peer_id: str, cid: CID) -> None:
        try:
            await self.fetch(cid, [peer_id], pin=True)
        except (FetchError, BlobStoreError, ValueError) as exc:
            log.info(
                "replica fetch failed", extra=log_fields(peer=peer_id, cid=str(cid), error=str(exc))
            )
            self._send(peer_id, FetchFailed(cid))
            return
        self._send(peer_id, HaveAll(cid))


@dataclass(eq=False)
class _Serving:
    """One peer's wants waiting for our answer, oldest first."""

    queue: deque[tuple[str, CID]] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None

    def cancel(self, cids: Sequence[CID]) -> None:
        gone = set(cids)
        self.queue = deque(item for item in self.queue if item[1] not in gone)


@dataclass(eq=False)
class _InFlight:
    peer: str
    deadline: float


class _Fetch:
    """The state of one `fetch`. Inputs arrive in `inbox` (from on_message, on the
    loop) and are handled by `run`, the only code that changes the state."""

    def __init__(
        self,
        exchange: BlobExchange,
        session: StoreSession,
        root: CID,
        peers: list[str],
        progress: Progress | None,
    ) -> None:
        self.exchange = exchange
        self.session = session
        self.root = root
        self.progress = progress
        self.timeout_s = exchange.request_timeout_s
        self.asked: list[str] = peers  # asked want-have for the root
        self.answered: set[str] = set()  # answered that want-have, or timed out
        self.have_deadline = 0.0
        self.providers: list[str] = []  # said have, in the order they did
        self.excluded: set[str] = set()  # timed out, gone or lying: never asked again
        self.next_provider = 0
        self.pending: dict[CID, int] = {}  # wanted and not yet stored -> its Tsize
        self.todo: deque[CID] = deque()  # pending and not in flight, breadth first
        self.in_flight: dict[CID, _InFlight] = {}
        self.load: Counter[str] = Counter()  # in flight per provider
        self.refused: dict[CID, set[str]] = {}  # providers that answered dont-have
        self.inbox: deque[tuple[str, ExchangeMessage | _Stored | None]] = deque()
        self.wake = asyncio.Event()
        self.storing: set[CID] = set()  # received, being verified and written
        self.store_tasks: set[asyncio.Task[None]] = set()
        self.seen: set[CID] = set()
        self.served_by: Counter[str] = Counter()
        self.bytes_done = self.bytes_total = 0
        self.blocks_local = self.blocks_fetched = self.bytes_fetched = 0

    # -- inputs (on the loop, from BlobExchange) ----------------------------

    def on_message(self, peer_id: str, message: ExchangeMessage) -> None:
        if isinstance(message, BlockMessage):
            relevant = message.cid in self.pending
        else:
            relevant = peer_id in self.asked
        if relevant:
            self.inbox.append((peer_id, message))
            self.wake.set()

    def on_disconnected(self, peer_id: str) -> None:
        self.inbox.append((peer_id, None))
        self.wake.set()

    # -- the loop ----------------------------------------------------------

    async def run(self) -> FetchResult:
        loop = asyncio.get_running_loop()
        self._add_missing(await asyncio.to_thread(self._walk_local, [(self.root, 0)]))
        if self.pending:
            self.have_deadline = loop.time() + self.timeout_s
            for peer in self.asked:
                self.exchange._send(peer, WantHave((self.root,)))
        while self.pending:
            await self._handle_inbox()
            now = loop.time()
            self._expire(now)
            self._schedule(now)
            if not self.pending:
                break
            self._check_providers()
            self.wake.clear()
            await _wait(self.wake, self._next_deadline() - now)
        self._report()
        return FetchResult(
            self.root,
            self.bytes_total,
            self.blocks_fetched,
            self.bytes_fetched,
            self.blocks_local,
            dict(self.served_by),
        )

    async def _handle_inbox(self) -> None:
        while self.inbox:
            peer_id, message = self.inbox.popleft()
            if message is None:
                self._drop_provider(peer_id)
                self.answered.add(peer_id)
            elif isinstance(message, Have):
                if self.root in message.cids and peer_id not in self.answered:
                    self.answered.add(peer_id)
                    if peer_id not in self.excluded:
                        self.providers.append(peer_id)
            elif isinstance(message, DontHave):
                self._on_dont_have(peer_id, message.cids)
            elif isinstance(message, BlockMessage):
                self._on_block(peer_id, message.cid, message.data)
            elif isinstance(message, _Stored):
                await self._on_stored(peer_id, message)

    def _on_dont_have(self, peer_id: str, cids: Sequence[CID]) -> None:
        for cid in cids:
            if cid == self.root:
                self.answered.add(peer_id)
            request = self.in_flight.get(cid)
            if request is not None and request.peer == peer_id:
                self.refused.setdefault(cid, set()).add(peer_id)
                self._release(cid)

    def _on_block(self, peer_id: str, cid: CID, data: bytes) -> None:
        """A block arrived: out of flight, into a store task (its result comes back
        through the inbox as _Stored)."""
        if cid not in self.pending or cid in self.storing:
            return  # a duplicate, or late
        request = self.in_flight.get(cid)
        if request is not None:
            self._release(cid)
            if request.peer != peer_id:
                self.exchange._send(request.peer, Cancel((cid,)))
        self.storing.add(cid)
        task = asyncio.create_task(self._store(peer_id, cid, data))
        self.store_tasks.add(task)
        task.add_done_callback(self.store_tasks.discard)

    async def _store(self, peer_id: str, cid: CID, data: bytes) -> None:
        try:
            loop = asyncio.get_running_loop()
            links = await loop.run_in_executor(self.exchange._threads, self._store_block, cid, data)
        except Exception as exc:  # every outcome goes back: a block left "storing" would hang
            self.inbox.append((peer_id, _Stored(cid, len(data), (), exc)))
        else:
            self.inbox.append((peer_id, _Stored(cid, len(data), links, None)))
        self.wake.set()

    async def _on_stored(self, peer_id: str, stored: _Stored) -> None:
        cid = stored.cid
        self.storing.discard(cid)
        error = stored.error
        if isinstance(error, FetchError | BlobStoreError | OSError):
            raise error  # a malformed DAG or our own disk: no peer can fix that
        if error is not None and not isinstance(error, BlockMismatchError | BlockTooLargeError):
            raise FetchError(f"storing {cid} failed: {error!r}") from error
        if error is not None:
            # One fault per peer and fetch: the blocks it had in flight when it was
            # dropped may still arrive, and say nothing new.
            if peer_id not in self.excluded:
                self.exchange._fault(peer_id, f"sent a bad block for {cid}: {error}")
                self._drop_provider(peer_id)
            self.todo.appendleft(cid)  # still pending: ask another provider
            return
        del self.pending[cid]
        self.seen.add(cid)
        self.served_by[peer_id] += 1
        self.blocks_fetched += 1
        self.bytes_fetched += stored.size
        self._count_block(cid, stored.size, stored.links)
        if stored.links:
            self._add_missing(await asyncio.to_thread(self._walk_local, list(stored.links)))
        self._report()

    def _expire(self, now: float) -> None:
        if now >= self.have_deadline:
            self.answered.update(self.asked)
        late = {r.peer for r in self.in_flight.values() if r.deadline <= now}
        for peer in late:
            log.info("blob provider timed out", extra=log_fields(peer=peer, root=str(self.root)))
            self._drop_provider(peer)

    def _schedule(self, now: float) -> None:
        """Ask the blocks in `todo` of providers with room, round-robin."""
        batches: dict[str, list[CID]] = {}
        skipped: list[CID] = []
        while self.todo and self._has_room():
            cid = self.todo.popleft()
            if cid not in self.pending or cid in self.in_flight or cid in self.storing:
                continue
            peer = self._pick(cid)
            if peer is None:
                skipped.append(cid)
                continue
            self.in_flight[cid] = _InFlight(peer, now + self.timeout_s)
            self.load[peer] += 1
            batches.setdefault(peer, []).append(cid)
        self.todo.extendleft(reversed(skipped))
        for peer, cids in batches.items():
            self.exchange._send_cids(peer, WantBlock, cids)

    def _check_providers(self) -> None:
        """NoProvidersError if a wanted block has no provider left to ask, and no
        want-have answer is still to come."""
        if len(self.answered) < len(self.asked):
            return
        if not self.providers:  # nobody left to ask for anything not yet here
            for cid in self.pending:
                if cid not in self.in_flight and cid not in self.storing:
                    raise NoProvidersError(self.root, cid)
            return
        # Otherwise only a block some provider refused can have run out of providers.
        for cid, refused in self.refused.items():
            waiting = cid in self.pending and cid not in self.in_flight and cid not in self.storing
            if waiting and all(p in refused for p in self.providers):
                raise NoProvidersError(self.root, cid)

    def _next_deadline(self) -> float:
        deadlines = [r.deadline for r in self.in_flight.values()]
        if len(self.answered) < len(self.asked):
            deadlines.append(self.have_deadline)
        return min(deadlines, default=asyncio.get_running_loop().time() + self.timeout_s)

    # -- helpers -----------------------------------------------------------

    def _has_room(self) -> bool:
        if len(self.storing) >= STORES_IN_FLIGHT:
            return False  # received blocks wait for the disk: ask for no more yet
        return any(self.load[p] < IN_FLIGHT_PER_PEER for p in self.providers)

    def _pick(self, cid: CID) -> str | None:
        refused = self.refused.get(cid, ())
        count = len(self.providers)
        for i in range(count):
            peer = self.providers[(self.next_provider + i) % count]
            if self.load[peer] < IN_FLIGHT_PER_PEER and peer not in refused:
                self.next_provider = (self.next_provider + i + 1) % count
                return peer
        return None

    def _release(self, cid: CID) -> None:
        """Take `cid` out of flight; ask it again (first) if it is still wanted."""
        request = self.in_flight.pop(cid)
        self.load[request.peer] -= 1
        if cid in self.pending:
            self.todo.appendleft(cid)

    def _drop_provider(self, peer_id: str) -> None:
        self.excluded.add(peer_id)
        if peer_id in self.providers:
            self.providers.remove(peer_id)
            self.next_provider = 0
        mine = [cid for cid, r in self.in_flight.items() if r.peer == peer_id]
        for cid in mine:
            self._release(cid)
        if mine:
            self.exchange._send_cids(peer_id, Cancel, mine)

    def _add_missing(self, missing: list[tuple[CID, int]]) -> None:
        for cid, tsize in missing:
            self.pending[cid] = tsize
            self.todo.append(cid)

    async def cancel_all(self) -> None:
        """Withdraw every want still in flight (the fetch ended or failed) and wait for
        the blocks being stored: once a fetch returns or raises, nothing of it writes."""
        by_peer: dict[str, list[CID]] = {}
        for cid, request in self.in_flight.items():
            by_peer.setdefault(request.peer, []).append(cid)
        for peer, cids in by_peer.items():
            self.exchange._send_cids(peer, Cancel, cids)
        self.in_flight.clear()
        await asyncio.gather(*self.store_tasks, return_exceptions=True)

    def _report(self) -> None:
        if self.progress is not None and self.bytes_total:
            self.progress(self.bytes_done, self.bytes_total)

    # -- in a worker thread (run awaits it; nothing else touches these fields) --

    def _store_block(self, cid: CID, data: bytes) -> tuple[tuple[CID, int], ...]:
        """Store a received block (verified by the store); its children, (cid, Tsize).
        Runs on several threads at once: it touches no field of the fetch."""
        self.session.put_block(cid, data, durable=False)
        return tuple(_links(self.root, cid, data))

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
            if cid.codec == RAW and tsize and self.exchange.store.has(cid):
                self.blocks_local += 1
                self.bytes_done += tsize
                continue
            try:
                data = self.exchange.store.get_block(cid)
            except (BlockNotFoundError, CorruptBlockError):
                missing.append((cid, tsize))
                continue
            self.blocks_local += 1
            links = _links(self.root, cid, data)
            self._count_block(cid, len(data), links)
            stack.extend(reversed(links))
        return missing

    def _count_block(self, cid: CID, size: int, links: Sequence[tuple[CID, int]]) -> None:
        self.bytes_done += size
        if cid == self.root:
            self.bytes_total = size + sum(t for _, t in links)


@dataclass(frozen=True, slots=True)
class _Stored:
    """A store task's outcome, back on the loop: the block's children, or why not."""

    cid: CID
    size: int
    links: tuple[tuple[CID, int], ...]
    error: Exception | None


@dataclass(eq=False)
class _Replication:
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

    async def run(self, exchange: BlobExchange, replicas: int, timeout_s: float) -> list[str]:
        loop = asyncio.get_running_loop()
        self.holders = [exchange.node_id]
        while len(self.holders) < replicas:
            while self.candidates and len(self.holders) + len(self.waiting) < replicas:
                peer = self.candidates.popleft()
                self.waiting[peer] = loop.time() + timeout_s
                exchange._send(peer, FetchRequest(self.root))
            if not self.waiting:
                raise ReplicationError(self.root, replicas, self.holders)
            self.wake.clear()
            await _wait(self.wake, min(self.waiting.values()) - loop.time())
            while self.inbox:
                peer, message = self.inbox.popleft()
                if self.waiting.pop(peer, None) is not None and isinstance(message, HaveAll):
                    self.holders.append(peer)
            now = loop.time()
            for peer in [p for p, deadline in self.waiting.items() if deadline <= now]:
                del self.waiting[peer]
        return self.holders


async def _wait(event: asyncio.Event, timeout_s: float) -> None:
    """Until `event` is set or `timeout_s` passes. asyncio.timeout, not wait_for: on
    Python 3.11 wait_for can swallow a cancellation that comes as the event is set."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(timeout_s, 0)):
            await event.wait()


def _links(root: CID, cid: CID, data: bytes) -> list[tuple[CID, int]]:
    """The children of a verified block, (cid, Tsize); FetchError if it is not dag-pb."""
    if cid.codec == RAW:
        return []
    try:
        node = decode_pbnode(data)
    except DecodeError as exc:
        raise FetchError(f"the DAG under {root} is malformed at {cid}: {exc}") from None
    return [(link.cid, link.tsize or 0) for link in node.links]
