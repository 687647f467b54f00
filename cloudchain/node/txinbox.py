"""Gossiped transactions waiting for admission: the link's priorities, on arrival.

Each link already sends consensus messages before transaction batches
(network/peers.py), but a node that admitted every batch as it read it would
still handle a proposal or vote read after a flood of batches only once all of
them had been checked: under overload, every consensus step of every node
waited behind seconds of admissions and blocks came ever more slowly. So a
peer's batch is put here as it is read, and the node admits one batch per turn
of its event loop (runtime.py): whatever consensus message arrives meanwhile is
handled on the next turn, before the rest of the batches.

Bounded in transactions: a batch that does not fit is dropped whole and counted.
Gossip is best effort (its sender keeps the transactions and proposes them in
its turn, and clients see their admission from the node they sent them to), so
dropping it under overload only spares this node work it could not keep up with.

Pure: no I/O, no clock; the node schedules the turns.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

# About two seconds of a peer's gossip at the bench's 2x overload, and 5,000 ready
# transactions' worth of checks behind which nothing else of gossip may wait.
TX_INBOX_MAX_TXS = 8_192


class TxInbox:
    """Batches of raw transactions in arrival order, at most `max_txs` in all."""

    def __init__(self, max_txs: int = TX_INBOX_MAX_TXS) -> None:
        if max_txs < 1:
            raise ValueError("the inbox must hold at least one transaction")
        self._max_txs = max_txs
        self._batches: deque[Sequence[bytes]] = deque()
        self._txs = 0
        self.dropped_txs = 0  # running count, for /metrics

    def __len__(self) -> int:
        """Transactions waiting, in all batches."""
        return self._txs

    def put(self, batch: Sequence[bytes]) -> bool:
        """Queue `batch`; False (and counted as dropped) if it does not fit."""
        if self._txs + len(batch) > self._max_txs:
            self.dropped_txs += len(batch)
            return False
        self._batches.append(batch)
        self._txs += len(batch)
        return True

    def take(self) -> Sequence[bytes] | None:
        """The oldest batch, or None when there is none."""
        if not self._batches:
            return None
        batch = self._batches.popleft()
        self._txs -= len(batch)
        return batch
