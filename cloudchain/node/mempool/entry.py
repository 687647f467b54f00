"""One waiting transaction, and the order of fee per byte.

A transaction's priority is its fee per byte of its encoding, fee / len(raw), a
rational compared exactly, never as a float. Where two are compared once, the
comparison is the integer cross product (`pays_more_per_byte`); where thousands are
ordered (heaps), each entry carries `rate_key`, an integer that orders entries exactly
as the cross product does, so that the heaps compare machine integers:

    rate_key(fee, size) = fee * RATE_SCALE // size,   RATE_SCALE = MAX_TX_BYTES ** 2

Why it is exact: sizes are at most N = MAX_TX_BYTES (check_tx refuses larger). If
a/b < c/d with b, d <= N, then c*b - a*d >= 1, so c/d - a/b >= 1/(b*d) >= 1/N**2;
scaled by N**2 the two differ by at least 1, and so do their floors. Equal rationals
have equal keys. tests/test_mempool_rules.py checks the equivalence.

Nothing here knows senders, nonces or limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cloudchain.ledger import MAX_TX_BYTES, Transaction

RATE_SCALE = MAX_TX_BYTES**2  # see the module docstring: keys are exact up to this size


def rate_key(fee: int, size: int) -> int:
    """An integer whose order is that of fee / size, for sizes up to MAX_TX_BYTES."""
    assert 0 < size <= MAX_TX_BYTES, size
    assert fee >= 0, fee
    return fee * RATE_SCALE // size


def pays_more_per_byte(fee_a: int, size_a: int, fee_b: int, size_b: int) -> bool:
    """Whether fee_a / size_a > fee_b / size_b, in integers."""
    return fee_a * size_b > fee_b * size_a


@dataclass(frozen=True, eq=False)  # identity matters: a heap item is valid while it is *this*
class Entry:
    """A transaction admitted by check_tx, as it waits."""

    seq: int  # arrival order, unique in a mempool; a replacement arrives anew
    raw: bytes
    tx: Transaction
    fee: int  # token units (CheckResult.fee)
    cost: int  # what it can take from the sender's balance (CheckResult.cost)
    height: int  # the committed height when it arrived (expiry by blocks)
    time_ns: int  # the node's clock when it arrived (expiry by time)
    rate: int = field(init=False)  # rate_key(fee, size)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate", rate_key(self.fee, len(self.raw)))

    @property
    def size(self) -> int:
        return len(self.raw)

    @property
    def sender(self) -> str:
        return self.tx.sender_address

    @property
    def nonce(self) -> int:
        return self.tx.nonce
