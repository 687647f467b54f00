"""The errors a fetch or a replication ends with, for the node to report.

A peer that breaks the protocol is `messages.ExchangeProtocolError`, raised while
decoding; a peer that sends a block that does not match its CID is counted as a
fault and routed around, never raised. What is here is what the caller of
`fetch` or `replicate` sees: the DAG could not be had, or not enough nodes
hold it. They are BlobStoreErrors: whoever handles the store's errors handles
these too.
"""

from __future__ import annotations

from collections.abc import Sequence

from cloudchain.blobs.cid import CID
from cloudchain.blobs.store import BlobStoreError


class FetchError(BlobStoreError):
    """A fetch or replication that could not complete."""


class NoProvidersError(FetchError, LookupError):
    """No connected peer has (or will give us) a block of the DAG."""

    def __init__(self, root: CID, cid: CID) -> None:
        what = "the root" if cid == root else f"block {cid}"
        super().__init__(f"no peer has {what} of {root}")
        self.root = root
        self.cid = cid


class ReplicationError(FetchError):
    """Fewer nodes than asked for hold the blob; `holders` are those that do."""

    def __init__(self, root: CID, replicas: int, holders: Sequence[str]) -> None:
        super().__init__(
            f"{root}: only {len(holders)} of {replicas} replicas ({', '.join(holders)})"
        )
        self.holders = list(holders)
