"""The app hash: a multiset hash of the whole state, updated in O(changes) per block.

Construction (MuHash, as in Bitcoin Core's UTXO-set hash, over our own prime):

    p         = 2^3072 - 1103717                       (a safe prime)
    elem(k,v) = int_le(SHAKE-256(DOMAIN || u32be(len k) || k || v, 384 bytes)) mod p
    acc(S)    = product over (k, v) in S of elem(k, v)   (mod p; acc(empty) = 1)
    app_hash  = SHA-256(u384le(acc(S)))

The product is commutative, so acc depends only on the set of key-value pairs
in the state, never on the order or the history of writes: two nodes with the
same state compute the same bytes, and a node can update it per block by
multiplying in the new pairs and dividing out the old ones (one modular inverse
per block). Finding two different states with the same accumulator is the
discrete-logarithm problem in a 3072-bit group.

What it does not give: membership proofs for single keys (a Merkle tree would).
Queries are answered without proofs for now.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable

import gmpy2

MODULUS = 2**3072 - 1103717
ACC_BYTES = 384
DOMAIN = b"cloudchain/state/v1\x00"
# The products are taken with GMP (gmpy2): a 3072-bit multiplication and reduction costs
# half what it does with Python's integers, and a block's update takes one per changed
# pair. The integers are the same; the accumulator is a Python int outside `update`.
_P = gmpy2.mpz(MODULUS)


def element(key: bytes, value: bytes) -> int:
    """The group element of one key-value pair (never 0: p is prime and the map is mod p)."""
    digest = hashlib.shake_256(DOMAIN + struct.pack(">I", len(key)) + key + value).digest(ACC_BYTES)
    n = int.from_bytes(digest, "little") % MODULUS
    return n or 1  # unreachable in practice (probability 2^-3072); keeps the group closed


def update(
    acc: int, added: Iterable[tuple[bytes, bytes]], removed: Iterable[tuple[bytes, bytes]]
) -> int:
    """acc * prod(added) / prod(removed) mod p."""
    numerator = gmpy2.mpz(acc)
    for key, value in added:
        numerator = numerator * element(key, value) % _P
    denominator = gmpy2.mpz(1)
    for key, value in removed:
        denominator = denominator * element(key, value) % _P
    if denominator != 1:
        numerator = numerator * gmpy2.invert(denominator, _P) % _P
    return int(numerator)


def from_items(items: Iterable[tuple[bytes, bytes]]) -> int:
    """The accumulator of a whole state, computed from scratch (for checks and tests)."""
    return update(1, items, ())


def digest(acc: int) -> bytes:
    """The 32-byte app hash of an accumulator value."""
    return hashlib.sha256(acc.to_bytes(ACC_BYTES, "little")).digest()


def to_bytes(acc: int) -> bytes:
    return acc.to_bytes(ACC_BYTES, "little")


def from_bytes(data: bytes) -> int:
    if len(data) != ACC_BYTES:
        raise ValueError(f"accumulator must be {ACC_BYTES} bytes, got {len(data)}")
    return int.from_bytes(data, "little")
