"""Which transactions' signatures this node has verified: each is verified once.

A transaction reaches the application up to four times on one node: `check_tx` when
it arrives, `prepare_proposal` when this node proposes it, `process_proposal` when a
block carries it, and `finalize_block` (which repeats `process_proposal` for a block not
accepted before). Its signature is checked the first time only: a hash of its canonical
bytes, signature included, that verified once always verifies, so remembering it cannot
change any verdict, only what it costs. That keeps the decision deterministic: a node
that never saw the transaction before verifies it, and reaches the same answer.

Only successes are remembered, and at most `capacity` of them, the least recently used
leaving first; a committed transaction leaves at once (`forget`), as nothing on this
node asks about it again. This module knows nothing of state, fees or the mempool.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable

from cloudchain.ledger import Transaction

# Enough for a full mempool (5,000 ready and 1,000 gapped by default) and a block being
# proposed or processed beside it; an entry is a 32-byte hash, about 100 bytes in all.
DEFAULT_CAPACITY = 20_000

# Whether a transaction's signature verifies against its sender key.
TxVerifier = Callable[[Transaction], bool]


class VerifiedSignatures:
    """`verify(tx)`: `verifier(tx)` unless this tx's bytes verified before."""

    def __init__(self, verifier: TxVerifier, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._verifier = verifier
        self._capacity = capacity
        self._verified: OrderedDict[bytes, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._verified)

    def __contains__(self, tx: Transaction) -> bool:
        return tx.hash in self._verified

    def verify(self, tx: Transaction) -> bool:
        key = tx.hash
        if key in self._verified:
            self._verified.move_to_end(key)
            return True
        if not self._verifier(tx):
            return False
        self._verified[key] = None
        if len(self._verified) > self._capacity:
            self._verified.popitem(last=False)
        return True

    def forget(self, txs: Iterable[Transaction]) -> None:
        """These are committed: nothing asks about them again."""
        for tx in txs:
            self._verified.pop(tx.hash, None)
