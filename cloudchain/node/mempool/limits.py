"""The mempool's bounds and its rules of precedence, as numbers.

What a mempool may hold (the ready set by count and bytes, each sender, the gapped
pool), how long a transaction may wait, and what a replacement must pay. The values
come from `[mempool]` in config.toml (node/config.py documents them for operators);
nothing here knows transactions or the application.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

DEFAULT_MAX_TXS = 5_000  # ready transactions (CometBFT's mempool size)
DEFAULT_MAX_BYTES = 64 * 1024 * 1024  # bytes of ready transactions
DEFAULT_MAX_TXS_PER_SENDER = 64  # one sender's waiting transactions, ready and gapped
DEFAULT_MAX_GAPPED_TXS_PER_SENDER = 16  # one sender's gapped transactions
DEFAULT_MAX_GAPPED_TXS = 1_000  # gapped transactions of all senders
DEFAULT_MAX_GAPPED_BYTES = 8 * 1024 * 1024  # bytes of gapped transactions of all senders

# A waiting (sender, nonce) is replaced only by a fee at least this much higher
# (Ethereum's txpool price bump, 10%), and strictly higher: a fee of 0 is not outbid by 0.
REPLACEMENT_BUMP_PERCENT = 10

# Hashes of committed transactions the mempool remembers, so that a copy arriving late
# (gossip from a slower peer, a client's retry) is refused without decoding it or
# verifying its signature again (CometBFT's [mempool] cache_size).
COMMITTED_CACHE_TXS = 10_000


@dataclass(frozen=True)
class MempoolLimits:
    """Every bound of a mempool; 0 in a ttl turns that expiry off (CometBFT's meaning)."""

    max_txs: int = DEFAULT_MAX_TXS
    max_bytes: int = DEFAULT_MAX_BYTES
    max_txs_per_sender: int = DEFAULT_MAX_TXS_PER_SENDER
    max_gapped_txs_per_sender: int = DEFAULT_MAX_GAPPED_TXS_PER_SENDER
    max_gapped_txs: int = DEFAULT_MAX_GAPPED_TXS
    max_gapped_bytes: int = DEFAULT_MAX_GAPPED_BYTES
    ttl_num_blocks: int = 0  # leaves once more than this many blocks were committed after it
    ttl_duration_ns: int = 0  # ... or once it has waited longer than this (at a commit)

    def __post_init__(self) -> None:
        for limit in fields(self):
            value = getattr(self, limit.name)
            least = 0 if limit.name.startswith("ttl_") else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ValueError(f"mempool {limit.name} must be an integer >= {least}")


def min_replacement_fee(old_fee: int) -> int:
    """The least fee that replaces a waiting transaction paying `old_fee`."""
    bumped = -(-old_fee * (100 + REPLACEMENT_BUMP_PERCENT) // 100)  # ceiling, in integers
    return max(bumped, old_fee + 1)
