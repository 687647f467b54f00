"""The wantlist of one fetch: what we still want, whom we may ask, what is in flight.

What it owns: the blocks of the DAG still wanted (`pending`) and the order they
are asked in (`todo`, breadth first: a block's children are known once it
arrives); the peers asked want-have for the root and which of them answered;
the providers (peers that said have, in the order they did) and the ones
excluded for good (timed out, gone, or sent a bad block); every want-block in
flight, with its provider and deadline; how many each provider has in flight;
who refused which block; and the blocks received and still being stored.

What it does not know: sockets, threads, the store, the clock. It is a state
machine: the fetch feeds it what happened (`on_have`, `on_block`, `on_stored`,
`expire(now)`, ...), and takes the messages it wants sent with
`take_messages()`, in the order they were decided; time comes in as `now`.

The rules, as the fetch relies on them:
- want-block goes out round-robin over the providers, at most
  IN_FLIGHT_PER_PEER per provider, and only while fewer than STORES_IN_FLIGHT
  received blocks wait for the disk (so memory stays bounded when the disk is
  slower than the network);
- dont-have moves a block to another provider; a want unanswered by its
  deadline drops that provider, and every block it had in flight is asked again;
- a block that arrives from another peer than the one asked is cancelled there;
- a block with no provider left to ask, once every want-have is answered or
  timed out, is `unservable()`: the fetch ends with NoProvidersError.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cloudchain.blobs.cid import CID
from cloudchain.blobs.exchange.messages import (
    Cancel,
    ExchangeMessage,
    WantBlock,
    WantHave,
    chunked,
)

# Blocks asked of one provider and not yet answered: with 256 KiB chunks, 4 MiB in
# flight per peer, enough to cover a LAN round trip at disk speed.
IN_FLIGHT_PER_PEER = 16
# Blocks received and being verified and written at once, on worker threads: enough
# to keep a disk's queue busy with fsyncs, a bound on the memory they hold (4 MiB).
STORES_IN_FLIGHT = 16
# How long a provider may take to answer a want (or a peer a want-have).
REQUEST_TIMEOUT_S = 10.0

Outgoing = tuple[str, ExchangeMessage]  # (peer id, message to send it)


@dataclass(eq=False, slots=True)
class InFlight:
    """A want-block sent: to whom, and until when we wait for the answer."""

    peer: str
    deadline: float


class Wantlist:
    """The wants of one fetch of the DAG under `root`, from the peers in `asked`."""

    def __init__(self, root: CID, asked: list[str], timeout_s: float) -> None:
        self.root = root
        self.timeout_s = timeout_s
        self.asked: list[str] = asked  # asked want-have for the root
        self.answered: set[str] = set()  # answered that want-have, or timed out
        self.have_deadline = 0.0
        self.providers: list[str] = []  # said have, in the order they did
        self.excluded: set[str] = set()  # timed out, gone or lying: never asked again
        self.next_provider = 0
        self.pending: dict[CID, int] = {}  # wanted and not yet stored -> its Tsize
        self.todo: deque[CID] = deque()  # pending and not in flight, breadth first
        self.in_flight: dict[CID, InFlight] = {}
        self.load: Counter[str] = Counter()  # in flight per provider
        self.refused: dict[CID, set[str]] = {}  # providers that answered dont-have
        self.storing: set[CID] = set()  # received, being verified and written
        self._outbox: list[Outgoing] = []

    # -- queries -----------------------------------------------------------

    @property
    def done(self) -> bool:
        """Whether every block wanted has been stored."""
        return not self.pending

    def is_wanted(self, cid: CID) -> bool:
        return cid in self.pending

    def was_asked(self, peer_id: str) -> bool:
        return peer_id in self.asked

    def unservable(self) -> CID | None:
        """A wanted block that no provider is left to give, once no want-have answer
        is still to come; None while every wanted block may yet arrive."""
        if len(self.answered) < len(self.asked):
            return None
        if not self.providers:  # nobody left to ask for anything not yet here
            for cid in self.pending:
                if cid not in self.in_flight and cid not in self.storing:
                    return cid
            return None
        # Otherwise only a block some provider refused can have run out of providers.
        for cid, refused in self.refused.items():
            if self._waiting(cid) and all(p in refused for p in self.providers):
                return cid
        return None

    def next_deadline(self) -> float | None:
        """The nearest deadline of a want in flight or of the want-have; None if none."""
        deadlines = [r.deadline for r in self.in_flight.values()]
        if len(self.answered) < len(self.asked):
            deadlines.append(self.have_deadline)
        return min(deadlines, default=None)

    def take_messages(self) -> list[Outgoing]:
        """The messages decided since the last call, in order; the caller sends them."""
        out, self._outbox = self._outbox, []
        return out

    # -- inputs ------------------------------------------------------------

    def add(self, missing: Iterable[tuple[CID, int]]) -> None:
        """Want these blocks, (cid, Tsize), after those already wanted."""
        for cid, tsize in missing:
            self.pending[cid] = tsize
            self.todo.append(cid)

    def start(self, now: float) -> None:
        """Ask every peer whether it has the root; the answers are due by now + timeout."""
        self.have_deadline = now + self.timeout_s
        for peer in self.asked:
            self._outbox.append((peer, WantHave((self.root,))))

    def on_have(self, peer_id: str, cids: Sequence[CID]) -> None:
        if self.root in cids and peer_id not in self.answered:
            self.answered.add(peer_id)
            if peer_id not in self.excluded:
                self.providers.append(peer_id)

    def on_dont_have(self, peer_id: str, cids: Sequence[CID]) -> None:
        for cid in cids:
            if cid == self.root:
                self.answered.add(peer_id)
            request = self.in_flight.get(cid)
            if request is not None and request.peer == peer_id:
                self.refused.setdefault(cid, set()).add(peer_id)
                self._release(cid)

    def on_disconnected(self, peer_id: str) -> None:
        """`peer_id` is gone: it provides nothing more, and its want-have counts as
        answered if it was asked one (a peer never asked must not count, or the fetch
        would stop waiting for one that was)."""
        self._drop_provider(peer_id)
        if peer_id in self.asked:
            self.answered.add(peer_id)

    def on_block(self, peer_id: str, cid: CID) -> bool:
        """A block arrived from `peer_id`: whether to store it (False: a duplicate, or
        late). It is out of flight, and cancelled at the provider asked if another
        peer sent it."""
        if cid not in self.pending or cid in self.storing:
            return False
        request = self.in_flight.get(cid)
        if request is not None:
            self._release(cid)
            if request.peer != peer_id:
                self._outbox.append((request.peer, Cancel((cid,))))
        self.storing.add(cid)
        return True

    def on_stored(self, cid: CID) -> None:
        """The block is verified and written: no longer wanted."""
        self.storing.discard(cid)
        del self.pending[cid]

    def on_bad_block(self, peer_id: str, cid: CID) -> bool:
        """The block `peer_id` sent does not match its CID (or is too large): ask
        another provider. Whether this is news (the peer was not already excluded,
        so it is one fault per peer and fetch: the blocks it had in flight when it
        was dropped may still arrive, and say nothing new)."""
        self.storing.discard(cid)
        news = peer_id not in self.excluded
        if news:
            self._drop_provider(peer_id)
        self.todo.appendleft(cid)  # still pending: ask another provider
        return news

    def expire(self, now: float) -> list[str]:
        """Count an unanswered want-have past its deadline as answered, and drop every
        provider with a want past its deadline; return those providers."""
        if now >= self.have_deadline:
            self.answered.update(self.asked)
        late = list(dict.fromkeys(r.peer for r in self.in_flight.values() if r.deadline <= now))
        for peer in late:
            self._drop_provider(peer)
        return late

    def schedule(self, now: float) -> None:
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
            self.in_flight[cid] = InFlight(peer, now + self.timeout_s)
            self.load[peer] += 1
            batches.setdefault(peer, []).append(cid)
        self.todo.extendleft(reversed(skipped))
        for peer, cids in batches.items():
            self._queue_cids(peer, WantBlock, cids)

    def cancel_all(self) -> None:
        """Withdraw every want still in flight (the fetch ended or failed)."""
        by_peer: dict[str, list[CID]] = {}
        for cid, request in self.in_flight.items():
            by_peer.setdefault(request.peer, []).append(cid)
        for peer, cids in by_peer.items():
            self._queue_cids(peer, Cancel, cids)
        self.in_flight.clear()

    # -- helpers -----------------------------------------------------------

    def _waiting(self, cid: CID) -> bool:
        return cid in self.pending and cid not in self.in_flight and cid not in self.storing

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
            self._queue_cids(peer_id, Cancel, mine)

    def _queue_cids(self, peer_id: str, kind: type[WantBlock | Cancel], cids: list[CID]) -> None:
        for part in chunked(cids):
            self._outbox.append((peer_id, kind(part)))
