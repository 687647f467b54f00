"""Whom a full mempool lets go: the cheapest per byte, never one that pays as much.

`CheapestFirst` is a lazy min-heap of eviction candidates ordered by fee per byte
(entry.py's rate key), among equals the newest first (the longest waiting keep their
place). Which entries are candidates is the caller's rule, asked again whenever an
entry reaches the top, so that entries which stopped being candidates (included,
replaced, promoted, no longer a tail) need not be found and removed: they are skipped
when met, and `compact` drops them all when they pile up.

`plan` only chooses; nothing is removed until the caller evicts the victims it
returns, so a mempool that cannot make room refuses the newcomer with nothing lost
(and one that refuses it after planning, for its signature, gives them back: `keep`).
It knows no senders and no limits: those come in as the callbacks.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable

from cloudchain.node.mempool.entry import Entry

_Item = tuple[int, int, int, Entry]  # (rate key, -arrival, push number, entry)

# Stale items kept before the heap is rebuilt: twice the candidates, and this many more.
COMPACT_SLACK_ITEMS = 4_096


class CheapestFirst:
    def __init__(self, is_candidate: Callable[[Entry], bool]) -> None:
        self._is_candidate = is_candidate
        self._heap: list[_Item] = []
        self._pushes = itertools.count()  # items never compare entries, even for one pushed twice

    def __len__(self) -> int:
        """Items held, stale ones included."""
        return len(self._heap)

    def holds(self, entry: Entry) -> bool:
        """Whether an item of `entry` is in the heap (for invariant checks: O(n))."""
        return any(item[3] is entry for item in self._heap)

    def push(self, entry: Entry) -> None:
        heapq.heappush(self._heap, self._item(entry))

    def compact_if_stale(self, candidates: int, live: Callable[[], Iterable[Entry]]) -> None:
        """Rebuild from `live()` once stale items outnumber `candidates` plus a slack."""
        if len(self._heap) > 2 * candidates + COMPACT_SLACK_ITEMS:
            self._heap = [self._item(e) for e in live()]
            heapq.heapify(self._heap)

    def plan(
        self,
        enough: Callable[[int, int], bool],
        rate: int,
        spare: Callable[[Entry], bool],
        exposes: Callable[[Entry], Entry | None] | None = None,
    ) -> list[Entry] | None:
        """Victims, cheapest first, each paying strictly less per byte than `rate`, until
        `enough(count, bytes)` of them; None if there are not enough such.

        `spare(entry)`: never taken (a newcomer's own sender). `exposes(entry)`: the
        candidate that taking `entry` makes one (a sender's ready transaction before its
        tail); it competes with the rest from then on. The heap is as it was afterwards,
        but for stale items dropped and the victims' items, which the caller's evictions
        replace (or `keep` puts back).
        """
        if enough(0, 0):
            return []
        popped: list[_Item] = []
        exposed: list[_Item] = []
        victims: list[Entry] = []
        taken: set[int] = set()  # ids of the victims: an entry pushed twice is met twice
        freed_bytes = 0
        found = False
        heap = self._heap
        while not found:
            while heap and not self._is_candidate(heap[0][3]):
                heapq.heappop(heap)  # stale: it stopped being a candidate
            if heap and (not exposed or heap[0] < exposed[0]):
                item = heapq.heappop(heap)
                popped.append(item)
            elif exposed:
                item = heapq.heappop(exposed)
            else:
                break
            entry = item[3]
            if entry.rate >= rate:
                break  # every other candidate pays at least as much
            if id(entry) in taken or spare(entry):
                continue
            taken.add(id(entry))
            victims.append(entry)
            freed_bytes += entry.size
            found = enough(len(victims), freed_bytes)
            below = None if exposes is None else exposes(entry)
            if below is not None:
                heapq.heappush(exposed, self._item(below))
        for item in popped:
            if not found or id(item[3]) not in taken:
                heapq.heappush(heap, item)
        return victims if found else None

    def keep(self, victims: Iterable[Entry]) -> None:
        """The caller evicts none of `plan`'s victims after all (the newcomer failed its
        last check): their items go back, and the heap holds every candidate again. A
        victim that is not a candidate now (one `plan` exposed) is skipped when met."""
        for entry in victims:
            self.push(entry)

    def _item(self, entry: Entry) -> _Item:
        return (entry.rate, -entry.seq, next(self._pushes), entry)
