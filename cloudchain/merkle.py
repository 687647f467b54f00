"""The Merkle root of a list of byte strings, as RFC 6962 and CometBFT define it.

Leaves and inner nodes are hashed with distinct one-byte prefixes so that a leaf
can never be passed off as an inner node (second-preimage resistance):

    empty list:  SHA-256("")
    leaf:        SHA-256(0x00 || item)
    inner node:  SHA-256(0x01 || left || right)

and a list of n > 1 items splits at the largest power of two strictly below n.
This is the construction of CometBFT's `crypto/merkle` (`HashFromByteSlices`).
"""

from __future__ import annotations

from collections.abc import Sequence

from cloudchain.codec import sha256

LEAF_PREFIX = b"\x00"
INNER_PREFIX = b"\x01"


def merkle_root(items: Sequence[bytes]) -> bytes:
    """The 32-byte Merkle root of `items`."""
    n = len(items)
    if n == 0:
        return sha256(b"")
    if n == 1:
        return sha256(LEAF_PREFIX + items[0])
    k = _split_point(n)
    return sha256(INNER_PREFIX + merkle_root(items[:k]) + merkle_root(items[k:]))


def _split_point(n: int) -> int:
    """The largest power of two strictly less than n (n >= 2)."""
    assert n >= 2
    return 1 << ((n - 1).bit_length() - 1)
