"""The leases on disk: the blobs held for an anchor, when each came and how big it is.

    {"format": "cloudchain-leases", "version": 1,
     "leases": [{"cid": "Qm...", "bytes": 262158, "added_ns": 1767225600000000000}, ...]}

A lease is how the store keeps an upload (or a replica fetched for a peer) that
nothing on chain refers to yet: unlike a pin, it counts against the store's quota
of unanchored bytes, and once it is older than the grace period the store may
collect it, oldest first (store.py, "Leases"). What this module owns is the file:
its format and its durability, the same as the pin file's (`replace_file`: after a
crash it holds the old set or the new one) and as strict: a file it cannot read
whole is an error, never an empty set. It knows no clock, quota or GC.

The file is rewritten on every change, which is why the number of leases is
bounded (`LEASES_MAX`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cloudchain.blobs.cid import CID
from cloudchain.blobs.errors import CIDError
from cloudchain.fsutil import replace_file, temp_path

LEASES_FORMAT = "cloudchain-leases"
LEASES_VERSION = 1
# About 110 bytes a lease in the file: 10,000 leases is a 1.1 MB file rewritten per upload.
LEASES_MAX = 10_000
_FIELDS = frozenset({"cid", "bytes", "added_ns"})
INT64_MAX = 2**63 - 1


class LeaseFileError(RuntimeError):
    """The lease file exists but cannot be trusted; the store refuses to open."""


@dataclass(frozen=True, slots=True)
class Lease:
    """One blob held for an anchor: its root, the bytes it counts against the quota
    (those of the blocks its upload or fetch stored), and when it was added (ns since
    the epoch, the store's clock)."""

    root: CID
    bytes: int
    added_ns: int

    def __post_init__(self) -> None:
        # Verify that the numbers are what the file can hold.
        assert 0 <= self.bytes <= INT64_MAX, self.bytes
        assert 0 <= self.added_ns <= INT64_MAX, self.added_ns

    def order(self) -> tuple[int, str]:
        """Oldest first; leases of one instant by CID text, so the order is total."""
        return self.added_ns, str(self.root)


def load_leases(path: Path) -> dict[CID, Lease]:
    """The leases saved at `path`, by root; none if there is no file yet."""
    with contextlib.suppress(FileNotFoundError):
        temp_path(path).unlink()  # a save interrupted before its rename
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise LeaseFileError(f"{path}: not JSON: {exc}") from exc
    # Verify that the file is a lease file of a version we know.
    if not isinstance(document, dict) or document.get("format") != LEASES_FORMAT:
        raise LeaseFileError(f"{path}: not a {LEASES_FORMAT} file")
    if document.get("version") != LEASES_VERSION:
        raise LeaseFileError(f"{path}: version {document.get('version')!r}, not {LEASES_VERSION}")
    entries = document.get("leases")
    if not isinstance(entries, list):
        raise LeaseFileError(f"{path}: 'leases' is not a list")
    leases: dict[CID, Lease] = {}
    for entry in entries:
        lease = _lease_from(entry, path)
        # Verify that each root is leased once.
        if lease.root in leases:
            raise LeaseFileError(f"{path}: {lease.root} is leased twice")
        leases[lease.root] = lease
    return leases


def save_leases(path: Path, leases: Iterable[Lease]) -> None:
    """Replace the lease file with `leases`, atomically and durably, oldest first."""
    document = {
        "format": LEASES_FORMAT,
        "version": LEASES_VERSION,
        "leases": [
            {"cid": str(lease.root), "bytes": lease.bytes, "added_ns": lease.added_ns}
            for lease in sorted(leases, key=Lease.order)
        ],
    }
    replace_file(path, json.dumps(document, indent=0) + "\n")


def _lease_from(entry: object, path: Path) -> Lease:
    if not isinstance(entry, dict) or set(entry) != _FIELDS:
        raise LeaseFileError(f"{path}: a lease is not an object of {sorted(_FIELDS)}")
    cid, size, added = entry["cid"], entry["bytes"], entry["added_ns"]
    if not isinstance(cid, str):
        raise LeaseFileError(f"{path}: a lease's cid is not a string")
    for name, value in (("bytes", size), ("added_ns", added)):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= INT64_MAX:
            raise LeaseFileError(f"{path}: lease {cid}: {name} is not an integer in [0, 2^63)")
    try:
        return Lease(CID.parse(cid), size, added)
    except CIDError as exc:
        raise LeaseFileError(f"{path}: {exc}") from exc
