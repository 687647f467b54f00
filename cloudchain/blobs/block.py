"""A block: the bytes a CID names, and the check that they match.

Every block that enters the store, from the importer, from disk or from a peer,
is one of these. `verify_block` is the single place where bytes are checked
against the CID they arrived under; a mismatch is the sender's fault (a corrupt
disk, a lying peer), never ours, and is reported as `BlockMismatchError`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cloudchain.blobs.cid import CID
from cloudchain.blobs.errors import BlockMismatchError


@dataclass(frozen=True, slots=True)
class Block:
    """A block and its CID. Built by the importer or after `verify_block`."""

    cid: CID
    data: bytes

    @classmethod
    def build(cls, data: bytes, codec: int, version: int) -> Block:
        """Hash `data` and wrap it with its CID."""
        return cls(CID.for_data(data, codec, version), data)

    @classmethod
    def verified(cls, cid: CID, data: bytes) -> Block:
        """Wrap bytes that claim to be `cid`, after checking that they are."""
        verify_block(cid, data)
        return cls(cid, data)


def is_block_valid(cid: CID, data: bytes) -> bool:
    """Whether `data` hashes to `cid`'s digest."""
    return hashlib.sha256(data).digest() == cid.digest


def verify_block(cid: CID, data: bytes) -> None:
    """Raise `BlockMismatchError` unless `data` hashes to `cid`'s digest."""
    if not is_block_valid(cid, data):
        raise BlockMismatchError(f"block of {len(data)} bytes does not hash to {cid}")
