"""One sender's waiting transactions: the ready run and the gapped ones.

    next_nonce ─┬─ ready[0] ─ ready[1] ─ ... ─ ready[-1] ─┐   ready_end  (gap)  gapped ...
                └─ nonces next_nonce, next_nonce + 1, ...  ┘

The ready run holds the transactions whose nonces follow on from the sender's next
nonce without a hole: the only ones that may go into a block, in this order. A
transaction whose nonce lies beyond the run's end waits in `gapped` until the hole
before it fills. The invariant: every gapped nonce is at least `ready_end`, and one
equal to it (the hole is filled) waits only while the ready set has no room for it.

The queue keeps the sum of its transactions' costs (what check_tx's `pending_cost`
asks for). It knows nothing of other senders, of limits or of the application; the
mempool (pool.py) moves entries between the two and keeps the global counts.
"""

from __future__ import annotations

from collections.abc import Iterator

from cloudchain.node.mempool.entry import Entry


class SenderQueue:
    __slots__ = ("address", "gapped", "next_nonce", "pending_cost", "ready")

    def __init__(self, address: str, next_nonce: int) -> None:
        self.address = address
        self.next_nonce = next_nonce  # the committed state's, as the mempool last learned it
        self.ready: list[Entry] = []  # ready[i] has nonce next_nonce + i
        self.gapped: dict[int, Entry] = {}  # nonce -> entry, every nonce >= ready_end
        self.pending_cost = 0

    def __len__(self) -> int:
        return len(self.ready) + len(self.gapped)

    @property
    def ready_end(self) -> int:
        """The nonce that would extend the ready run."""
        return self.next_nonce + len(self.ready)

    @property
    def tail(self) -> Entry | None:
        return self.ready[-1] if self.ready else None

    def entry_at(self, nonce: int) -> Entry | None:
        index = nonce - self.next_nonce
        if 0 <= index < len(self.ready):
            return self.ready[index]
        return self.gapped.get(nonce)

    def is_ready(self, entry: Entry) -> bool:
        index = entry.nonce - self.next_nonce
        return 0 <= index < len(self.ready) and self.ready[index] is entry

    def is_gapped(self, entry: Entry) -> bool:
        return self.gapped.get(entry.nonce) is entry

    def highest_gapped(self) -> Entry | None:
        return self.gapped[max(self.gapped)] if self.gapped else None

    def entries(self) -> Iterator[Entry]:
        """Every waiting entry, in nonce order."""
        yield from self.ready
        for nonce in sorted(self.gapped):
            yield self.gapped[nonce]

    # --- changes (the mempool keeps the global counts in step) ---------------------------

    def append_ready(self, entry: Entry) -> None:
        assert entry.nonce == self.ready_end and entry.nonce not in self.gapped
        self.ready.append(entry)
        self.pending_cost += entry.cost

    def pop_tail(self) -> Entry:
        entry = self.ready.pop()
        self.pending_cost -= entry.cost
        return entry

    def add_gapped(self, entry: Entry) -> None:
        assert entry.nonce >= self.ready_end and entry.nonce not in self.gapped
        self.gapped[entry.nonce] = entry
        self.pending_cost += entry.cost

    def remove_gapped(self, entry: Entry) -> None:
        assert self.gapped[entry.nonce] is entry
        del self.gapped[entry.nonce]
        self.pending_cost -= entry.cost

    def replace(self, old: Entry, new: Entry) -> None:
        """Put `new` where `old` waits (same nonce, ready or gapped)."""
        assert old.nonce == new.nonce
        if self.is_ready(old):
            self.ready[old.nonce - self.next_nonce] = new
        else:
            assert self.is_gapped(old)
            self.gapped[old.nonce] = new
        self.pending_cost += new.cost - old.cost

    def next_gapped(self) -> Entry | None:
        """The gapped entry that would extend the ready run, if it waits."""
        return self.gapped.get(self.ready_end)

    def clear(self, next_nonce: int) -> list[Entry]:
        """Empty the queue, now starting at `next_nonce`; the entries, in nonce order."""
        entries = list(self.entries())
        self.next_nonce = next_nonce
        self.ready = []
        self.gapped = {}
        self.pending_cost = 0
        return entries
