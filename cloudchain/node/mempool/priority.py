"""The order in which ready transactions fill a block.

Highest fee per byte first across senders, each sender's in nonce order: only a
sender's next ready transaction competes, with its own fee per byte; once it is
taken the sender's following one competes in its turn (CometBFT's priority mempool,
Ethereum's txpool ordering). Ties go to the earlier arrival. A heap over the
senders' heads does it in O(S + k log S) for k transactions of S senders; nothing is
sorted but what is taken.

Pure: it reads the ready runs (sender.py) and changes nothing.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator

from cloudchain.node.mempool.entry import Entry
from cloudchain.node.mempool.sender import SenderQueue


def block_order(
    queues: Iterable[SenderQueue], max_txs: int | None = None, max_bytes: int | None = None
) -> Iterator[Entry]:
    """Ready entries in block order, at most `max_txs` of them and `max_bytes` of raw
    transactions. A sender whose next transaction does not fit in the bytes left is
    passed over with all its later ones (they would leave a gap), the others go on."""
    heads = [(-q.ready[0].rate, q.ready[0].seq, 0, q) for q in queues if q.ready]
    heapq.heapify(heads)  # the seq is unique: the queue itself is never compared
    taken = 0
    room = max_bytes
    while heads and (max_txs is None or taken < max_txs):
        _, _, index, queue = heapq.heappop(heads)
        entry = queue.ready[index]
        if room is not None:
            if entry.size > room:
                continue
            room -= entry.size
        yield entry
        taken += 1
        index += 1
        if index < len(queue.ready):
            following = queue.ready[index]
            heapq.heappush(heads, (-following.rate, following.seq, index, queue))
