"""The blob store: files as UnixFS DAGs of verified blocks on disk, pins, and GC.

What it owns: one directory,

    DIR/LOCK          held (flock) while a BlobStore has the directory open
    DIR/blocks/       every block, one file each, in kubo's flatfs layout (flatfs.py)
    DIR/quarantine/   blocks found not to match their hash, moved aside
    DIR/pins.json     the pinned roots (pinfile.py)
    DIR/leases.json   the leased roots, with their bytes and when they came (leasefile.py)

What it does not know: the network, the chain, asyncio. It is a synchronous
library; the node calls the blocking methods from a thread executor, and any
number of threads may use one store at once. Of the chain it knows only what the
node tells it: the `keep` roots of a GC, and the `anchored` callable (the roots
anchored now) it is built with; its clock is injected too (`clock`, ns).

The promises, and where each is kept:

- A block under a valid name is whole: `FlatFS.write` goes through a temporary
  file, fsync and rename; temporary files left by a crash are removed on open.
- A block is never served unless it hashes to its CID: every read from disk is
  hashed (`_read_block`), and so is every block handed to `put_block`. A file
  that does not match is reported (`CorruptBlockError`, the `corrupt_blocks`
  counter, a log line) and moved to quarantine, so that the block is simply
  missing and `missing_blocks` asks for it again. Where the store only walks a
  DAG's structure (`stat`, `missing_blocks`, GC) it reads and verifies the
  nodes with links, and a corrupt one counts as missing; leaves are checked by
  presence (all a crash can do to them) unless `verify=True`. Storing a block
  whose file is corrupt replaces the file.
- Memory is bounded by blocks, not by the file: `add` writes blocks as the
  importer makes them, at most WRITE_WINDOW_BLOCKS in flight, and `read` /
  `open` load one block at a time, skipping with the UnixFS blocksizes every
  subtree outside the requested range.
- GC never deletes a block of a pinned or leased DAG, of a DAG in `keep`, of a
  DAG held by an open session (`hold`, and every `add` in progress), or any block
  that a session stored, or that anyone stored after the GC started. See `gc`.
- A failed `add` (or a failed counted session, `roll_back`) leaves nothing of its
  own behind: the block files it wrote are deleted, except those another writer
  claimed meanwhile (see "Rolling back"). Blocks it found already here are kept.

Leases and the quota. A pin is the operator's: it keeps a DAG until unpinned, and
costs nothing against any quota. A lease is how an upload (`add(lease=True)`) or a
replica fetched for a peer (`hold(root, counted=True)` then `session.lease(root)`)
is kept while nothing on chain refers to it yet. Every lease, and every counted
session still storing, counts its bytes (those of the distinct blocks it stored or
found here) against `LeasePolicy.max_unanchored_bytes`, and the leases themselves
against LEASES_MAX. A block that would go past either is refused before it is
written (QuotaExceededError), after the store has tried to make room
(`_make_room`): first it releases every lease whose root is anchored now (the
anchor keeps it from then on: `anchored`), then it drops leases older than
`LeasePolicy.grace_ns`, oldest first, only as many as the new bytes need, and
collects their blocks with a GC. A lease younger than the grace is never dropped
for room: that is the time its uploader has to anchor it, and why an upload can be
refused at all. `gc` releases and drops in the same way, every expired lease,
oldest first. Pinning a leased root turns it into a pin; unpinning drops either.

Rolling back. A session records the files it wrote (`written`). Whenever a
session claims a key that another open session also holds, both mark it `shared`:
the other may rely on the file, whichever wrote it (every writer is a session: a
bare `put_block` opens one for its block). `roll_back` deletes, under `_lock`, each
written key that is neither shared nor held by another open session. Every claim
is made under the same lock before its writer looks for the file, so a writer
either claims while the failed session is open (the key is then shared, and kept)
or, claiming after the delete, finds no file and writes its own; and one whose
session ended before the failed session's claim had its file in place by then,
so the failed session found it intact and never wrote it. A pinned DAG that needed
one of those blocks, and whose owner never claimed it, is left as it was before
the failed session: missing it.

Theory of operation of GC against concurrent writers. GC marks every block
reachable from its roots (pins, leases, held roots and `keep`), then lists the blocks
directory and deletes what is not marked. Writers never wait for it. Each
delete happens under `_lock` and only after checking, under that lock, that
(a) the roots have not changed since the mark (`_roots_generation`; if they
have, the new roots are marked first), (b) no open session has recorded the
block, and (c) the block was not stored since the GC began (`_gc_fresh`).
Writers record a block in their session and in `_gc_fresh` under the same lock
*before* they look for its file. So for any block, either the writer's record
comes first and GC skips it, or GC's delete comes first and the writer finds no
file and writes it. A root added while GC runs (a `pin`, the pin at the end of
an `add`, a `hold`) bumps the generation under the lock before its session
lets go of its blocks, so GC marks its DAG before deleting anything else.

Limits of "partially local": GC, `stat` and `missing_blocks` can only follow
links out of blocks that are here. A block whose parent is missing is not known
to belong to any DAG; a fetcher should store a parent before its children, or
store through the session of a `hold` (which protects what it stores).
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import logging
import math
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import TracebackType

from cloudchain.blobs.block import Block, is_block_valid, verify_block
from cloudchain.blobs.cid import CID, RAW
from cloudchain.blobs.dagpb import decode_pbnode
from cloudchain.blobs.errors import BlobFormatError, DecodeError
from cloudchain.blobs.flatfs import FlatFS, key_of
from cloudchain.blobs.importer import DEFAULT_OPTIONS, BinaryReader, ImportOptions, import_stream
from cloudchain.blobs.leasefile import LEASES_MAX, Lease, load_leases, save_leases
from cloudchain.blobs.pinfile import PINS_MAX, load_pins, save_pins
from cloudchain.blobs.traverse import HEAD_BYTES, has_no_links, iter_range, walk_dag
from cloudchain.blobs.walk import FileNode, decode_file_node
from cloudchain.fsutil import fsync_directory
from cloudchain.logfields import fields as log_fields

log = logging.getLogger(__name__)

# The largest block we store or read: twice kubo's 1 MiB soft limit for a block
# (`ipfs block put` refuses more without --allow-big-block), and above our own
# largest (a 1 MiB chunk, the importer's maximum, plus framing). A file bigger
# than this under a block's name is corrupt without hashing it.
BLOCK_BYTES_MAX = 2 * 1024 * 1024

# Block files written at once by an `add`. Creating a file dominates the cost of a
# block on the ext4 disks we measured (about 0.8 ms each, fsync or not) and
# overlaps across threads: 4 threads gave about 2x one; on 2026-12-03, 8 threads
# and a window of 32 added 200 MB in 0.61-0.70 s against 0.72-0.76 s for 4 and 16
# (16 threads no better). In-flight blocks are bounded by the window: 32 blocks,
# 8 MiB of kubo-default chunks.
WRITER_THREADS = 8
WRITE_WINDOW_BLOCKS = 32

LOCK_FILE = "LOCK"
BLOCKS_DIR = "blocks"
QUARANTINE_DIR = "quarantine"
PINS_FILE = "pins.json"
LEASES_FILE = "leases.json"

# What a store that is not told otherwise allows: any number of unanchored bytes, and an
# hour for an upload to be anchored before its lease may be dropped.
UNBOUNDED_BYTES = 2**63 - 1
DEFAULT_GRACE_NS = 3600 * 1_000_000_000

CIDLike = CID | str
# A block's links, or None when it is not here (what `walk_dag` calls).
LinksOf = Callable[[CID], Sequence[CID] | None]


# -- errors ------------------------------------------------------------------------


class BlobStoreError(Exception):
    """A store operation that failed for a reason other than malformed input."""


class StoreLockedError(BlobStoreError):
    """Another BlobStore (in this process or another) has the directory open."""


class BlockNotFoundError(BlobStoreError, LookupError):
    """The block is not in this store (never stored, collected, or quarantined)."""

    def __init__(self, cid: CID) -> None:
        super().__init__(f"block {cid} is not in the store")
        self.cid = cid


class CorruptBlockError(BlobStoreError):
    """A block's file does not hash to its CID: our disk's fault, not the caller's.

    The block was not served; if `quarantined` is set, the file was moved there and
    the block is now missing, to be fetched again.
    """

    def __init__(self, cid: CID, path: Path, quarantined: Path | None) -> None:
        where = f"; moved to {quarantined}" if quarantined else ""
        super().__init__(f"block {cid} at {path} does not match its hash{where}")
        self.cid = cid
        self.path = path
        self.quarantined = quarantined


class RangeNotSatisfiableError(BlobStoreError, ValueError):
    """A read that starts past the end of the file (HTTP 416, `Content-Range: bytes */size`)."""

    def __init__(self, cid: CID, start: int, size: int) -> None:
        super().__init__(f"range starts at byte {start}, past the end of {cid} ({size} bytes)")
        self.cid = cid
        self.start = start
        self.size = size


class InputSizeError(BlobStoreError, ValueError):
    """`add` read a different number of bytes than the caller said it would (a
    truncated upload, say). Nothing was pinned."""


class BlockTooLargeError(BlobFormatError):
    """A block bigger than BLOCK_BYTES_MAX, refused by `put_block`."""


class PinLimitError(BlobStoreError):
    """Pinning would exceed PINS_MAX pins."""


class QuotaExceededError(BlobStoreError):
    """Storing more would put the unanchored bytes over the quota, or the leases over
    LEASES_MAX, even after making room. Nothing stored before is lost; what the
    refused add or counted session wrote is rolled back.

    `unanchored_bytes`: all that was counted, `session_bytes` of it by the refused add
    or session itself (rolled back with it), `needed_bytes` what it asked for more;
    `too_many_leases`: refused for the count of leases, not for bytes;
    `retry_after_s`: when the oldest lease still in its grace period ends (room may
    come then, if it is not anchored first), or None if no lease is waiting.
    """

    def __init__(
        self,
        needed_bytes: int,
        unanchored_bytes: int,
        max_unanchored_bytes: int,
        leases: int,
        retry_after_s: int | None,
        *,
        session_bytes: int = 0,
        too_many_leases: bool = False,
    ) -> None:
        assert 0 <= session_bytes <= unanchored_bytes
        if too_many_leases:
            message = f"the store holds {leases} unanchored blobs, the most it keeps"
        else:
            message = (
                f"{needed_bytes} more bytes would put the unanchored blobs at "
                f"{unanchored_bytes + needed_bytes} bytes, over the quota of "
                f"{max_unanchored_bytes}"
            )
        super().__init__(message)
        self.needed_bytes = needed_bytes
        self.unanchored_bytes = unanchored_bytes
        self.max_unanchored_bytes = max_unanchored_bytes
        self.leases = leases
        self.retry_after_s = retry_after_s
        self.too_many_leases = too_many_leases
        self.session_bytes = session_bytes


# -- results -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddResult:
    root: CID
    size: int  # bytes of file content
    blocks: int  # blocks of the DAG as made, counting repeats (a file of zeros repeats its leaf)
    blocks_written: int  # blocks that were not already in the store
    dag_size: int  # serialised bytes of the whole DAG (the root's Tsize)
    pinned: bool
    leased: bool = False


@dataclass(frozen=True, slots=True)
class BlobStat:
    cid: CID
    size: int  # bytes of file content, from the root node
    complete: bool  # every block of the DAG is local
    blocks_local: int  # distinct blocks of the DAG that are here
    blocks_missing: int  # distinct blocks known to be missing (their children are unknown)


@dataclass(frozen=True, slots=True)
class GCResult:
    blocks_removed: int
    bytes_freed: int
    blocks_kept: int  # blocks found on disk and kept
    roots: int  # roots marked from: pins, leases, held roots and `keep`, also those added during GC
    leases_released: int = 0  # leases whose root is in `keep` (anchored): the anchor keeps it now
    leases_expired: tuple[CID, ...] = ()  # leases past their grace, dropped, oldest first


@dataclass(frozen=True, slots=True)
class StoreCounters:
    """Totals since the store was opened, for metrics."""

    blocks_written: int = 0
    bytes_written: int = 0
    blocks_deduplicated: int = 0  # stores of a block that was already here and intact
    blocks_read: int = 0
    bytes_read: int = 0
    corrupt_blocks: int = 0  # block files found not to match their hash
    blocks_quarantined: int = 0
    blocks_repaired: int = 0  # corrupt files replaced by a good copy
    temp_files_removed: int = 0  # left by interrupted writes, removed on open
    gc_runs: int = 0
    gc_blocks_removed: int = 0
    gc_bytes_freed: int = 0
    blocks_rolled_back: int = 0  # written by a failed add or counted session, then deleted
    leases_expired: int = 0  # dropped past their grace, by GC or to make room
    quota_refusals: int = 0  # blocks or leases refused by QuotaExceededError


_COUNTER_NAMES = frozenset(f.name for f in fields(StoreCounters))


@dataclass(frozen=True, slots=True)
class LeasePolicy:
    """How the store bounds what nothing on chain refers to yet (see "Leases")."""

    max_unanchored_bytes: int = UNBOUNDED_BYTES  # leased and being stored by counted sessions
    grace_ns: int = DEFAULT_GRACE_NS  # a lease younger than this is never dropped

    def __post_init__(self) -> None:
        assert self.max_unanchored_bytes >= 0, self.max_unanchored_bytes
        assert self.grace_ns >= 0, self.grace_ns


# -- sessions ----------------------------------------------------------------------


@dataclass(eq=False)
class StoreSession:
    """Blocks and roots that GC must not touch while the session is open.

    Made by `BlobStore.hold` (and internally by `add`). Blocks stored through
    `put_block` here are protected until the session closes; so is the whole DAG
    under each held root. A counted session's blocks count against the quota of
    unanchored bytes until it closes or `lease`s them.
    """

    store: BlobStore
    roots: tuple[CID, ...]
    counted: bool = False
    keys: set[str] = field(default_factory=set)  # flatfs keys stored or found intact
    is_open: bool = True
    dirty: set[Path] = field(default_factory=set)  # shard directories `sync` must fsync
    reserved: int = 0  # bytes counted against the quota for it (a counted session)
    written: set[str] = field(default_factory=set)  # keys whose files it wrote
    shared: set[str] = field(default_factory=set)  # of its keys, those another writer claimed

    def put_block(self, cid: CIDLike, data: bytes, *, durable: bool = True) -> bool:
        """`BlobStore.put_block`, protected by this session. With durable=False the
        block's file is fsynced but its rename is made durable only by `sync`: a
        transfer of many blocks syncs each shard directory once, at its end."""
        if not self.is_open:
            raise BlobStoreError("the session is closed: its blocks are no longer protected")
        return self.store._put_verified(self, cid, data, durable=durable)

    def sync(self) -> None:
        """Make the renames of every `put_block(..., durable=False)` so far durable."""
        with self.store._lock:
            dirty, self.dirty = self.dirty, set()
        self.store._sync_dirs(dirty)

    def lease(self, root: CIDLike) -> Lease | None:
        """Keep the DAG under `root` under a lease of the bytes this session counted
        (None if `root` is pinned: the pin keeps it). Call before the session ends."""
        if not self.is_open:
            raise BlobStoreError("the session is closed: its blocks are no longer protected")
        return self.store._lease(self, self.store._cid(root))

    def roll_back(self) -> int:
        """Delete the block files this session wrote that no other writer claimed (a
        failed transfer); the number deleted. Call before the session ends."""
        return self.store._roll_back(self)


# -- the store ---------------------------------------------------------------------


class BlobStore:
    """Content-addressed blobs in one directory. Open with `BlobStore(directory)`."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        quarantine: bool = True,
        policy: LeasePolicy | None = None,
        clock: Callable[[], int] = time.time_ns,
        anchored: Callable[[], Iterable[CIDLike]] | None = None,
    ) -> None:
        """`policy`: the quota and grace of leases (default: no quota, an hour's grace);
        `clock`: ns since the epoch, when a lease is added and its age; `anchored`: the
        roots anchored on chain now, whose leases may be released (called only when
        room is short, on the calling thread)."""
        self.directory = Path(directory)
        self.policy = policy or LeasePolicy()
        self._clock = clock
        self._anchored = anchored
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock_directory(self.directory / LOCK_FILE)
        try:
            self._quarantine_dir: Path | None = None
            if quarantine:
                self._quarantine_dir = self.directory / QUARANTINE_DIR
                self._quarantine_dir.mkdir(exist_ok=True)
            self._fs = FlatFS(self.directory / BLOCKS_DIR)
            self._pins_path = self.directory / PINS_FILE
            self._pins: frozenset[CID] = load_pins(self._pins_path)
            self._leases_path = self.directory / LEASES_FILE
            self._leases: dict[CID, Lease] = load_leases(self._leases_path)
            removed = self._fs.clean_temp()
        except BaseException:
            os.close(self._lock_fd)
            raise
        # _lock guards everything below, the pin and lease files, and every GC delete.
        self._lock = threading.Lock()
        self._gc_mutex = threading.Lock()  # one GC at a time
        self._room_mutex = threading.Lock()  # one `_make_room` at a time
        self._leased_bytes = sum(lease.bytes for lease in self._leases.values())
        self._reserved_bytes = 0  # counted by the open counted sessions
        self._sessions: list[StoreSession] = []
        self._held: Counter[CID] = Counter()
        self._roots_generation = 0  # bumped whenever a GC root is added
        self._gc_fresh: set[str] | None = None  # keys stored since the running GC began
        self._unsynced: set[Path] = set()  # shard directories with renames not yet durable
        self._counts: Counter[str] = Counter(temp_files_removed=removed)
        self._writers = ThreadPoolExecutor(WRITER_THREADS, thread_name_prefix="blob-write")
        self._closed = False
        if removed:
            log.info(
                "blob store removed interrupted writes",
                extra=log_fields(directory=str(self.directory), temp_files=removed),
            )

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._writers.shutdown(wait=True)
            os.close(self._lock_fd)

    def __enter__(self) -> BlobStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def counters(self) -> StoreCounters:
        with self._lock:
            return StoreCounters(**self._counts)

    # -- blocks ------------------------------------------------------------

    def has(self, cid: CIDLike) -> bool:
        """Whether the block `cid` names is here (not checked against its hash)."""
        return self._fs.exists(key_of(self._cid(cid)))

    def get_block(self, cid: CIDLike) -> bytes:
        """The block's bytes, verified against its hash."""
        cid = self._cid(cid)
        return self._read_block(cid, key_of(cid))

    def put_block(self, cid: CIDLike, data: bytes) -> bool:
        """Store a block from outside (a peer, a client) after checking it hashes to
        `cid`; True if it was not here before. Raises BlockMismatchError or
        BlockTooLargeError (both ValueError) for bad input, storing nothing.

        Nothing protects the block from a GC that starts after this returns unless it
        belongs to a pinned, leased, kept or held DAG: fetchers store through `hold`.
        """
        with self.hold() as session:  # a writer like any other, for the roll backs' sake
            return self._put_verified(session, cid, data)

    def _put_verified(
        self, session: StoreSession, cid: CIDLike, data: bytes, *, durable: bool = True
    ) -> bool:
        cid = self._cid(cid)
        # Verify that the block is of a size we store and hashes to its CID.
        if len(data) > BLOCK_BYTES_MAX:
            raise BlockTooLargeError(f"block of {len(data)} bytes exceeds {BLOCK_BYTES_MAX}")
        verify_block(cid, data)
        key = key_of(cid)
        if not self._claim(session, key, len(data)):
            return False
        written, shard_dir = self._write_unless_intact(
            cid, key, bytes(data), sync_dir=durable, session=session
        )
        if shard_dir is not None:
            with self._lock:
                session.dirty.add(shard_dir)
        return written

    def _sync_dirs(self, directories: Iterable[Path]) -> None:
        """fsync shard directories on the writer threads at once: a transfer of a few
        hundred blocks touches a few hundred shards, and one fsync at a time would
        wait for each in turn. Every directory with a rename not yet durable is synced
        too, whoever wrote it: a block found here may be another session's, not yet
        synced (a failed fetch's), and what is reported must be durable whole. Not to
        be called from a writer thread."""
        with self._lock:
            pending = set(directories) | self._unsynced
        for _ in self._writers.map(fsync_directory, sorted(pending)):
            pass
        with self._lock:
            self._unsynced -= pending

    def _claim(self, session: StoreSession, key: str, size: int) -> bool:
        """Protect `key` (a block of `size` bytes) from GC before its file is looked
        for (see the module docstring), and from another session's roll back; count it
        against the quota for a counted session, making room once if it would not fit
        (QuotaExceededError if it still does not). False if the session already
        stored it or found it intact."""
        self._check_open()
        made_room = False
        while True:
            with self._lock:
                if key in session.keys:
                    return False
                if not session.counted or self._fits_locked(size, 0):
                    for other in self._sessions:
                        if other is not session and key in other.keys:
                            other.shared.add(key)
                            session.shared.add(key)
                    session.keys.add(key)
                    if session.counted:
                        session.reserved += size
                        self._reserved_bytes += size
                    if self._gc_fresh is not None:
                        self._gc_fresh.add(key)
                    return True
                if made_room:
                    raise self._quota_error_locked(size, 0, session)
            self._make_room(size, 0)
            made_room = True

    def _write_unless_intact(
        self, cid: CID, key: str, data: bytes, *, sync_dir: bool, session: StoreSession
    ) -> tuple[bool, Path | None]:
        """Write a verified, claimed block unless an intact copy is here; return whether
        it was written and, with sync_dir=False, the shard directory to fsync."""
        existing = self._fs.read(key, BLOCK_BYTES_MAX)
        if existing is not None:
            if len(existing) <= BLOCK_BYTES_MAX and is_block_valid(cid, existing):
                self._count(blocks_deduplicated=1)
                return False, None
            log.warning(
                "corrupt block replaced",
                extra=log_fields(cid=str(cid), path=str(self._fs.path_of(key))),
            )
            self._count(corrupt_blocks=1, blocks_repaired=1)
        shard_dir = self._fs.write(key, data, sync_dir=sync_dir)
        with self._lock:
            if not sync_dir:
                self._unsynced.add(shard_dir)
            session.written.add(key)
        self._count(blocks_written=1, bytes_written=len(data))
        return True, None if sync_dir else shard_dir

    def _read_block(self, cid: CID, key: str) -> bytes:
        """The block's bytes from disk, verified; a mismatch is quarantined and raised."""
        self._check_open()
        data = self._fs.read(key, BLOCK_BYTES_MAX)
        if data is None:
            raise BlockNotFoundError(cid)
        if len(data) > BLOCK_BYTES_MAX or not is_block_valid(cid, data):
            raise self._corrupt(cid, key)
        self._count(blocks_read=1, bytes_read=len(data))
        return data

    def _corrupt(self, cid: CID, key: str) -> CorruptBlockError:
        """Report a block whose file does not match its hash; move it aside."""
        path = self._fs.path_of(key)
        moved = None
        if self._quarantine_dir is not None:
            # A good copy stored between our read and this move would be moved too:
            # harmless, the block is then missing and fetched again.
            moved = self._fs.move_to(key, self._quarantine_dir)
        self._count(corrupt_blocks=1, blocks_quarantined=int(moved is not None))
        log.error(
            "corrupt block",
            extra=log_fields(
                cid=str(cid), path=str(path), quarantined=str(moved) if moved else None
            ),
        )
        return CorruptBlockError(cid, path, moved)

    # -- files -------------------------------------------------------------

    def add(
        self,
        reader: BinaryReader,
        options: ImportOptions = DEFAULT_OPTIONS,
        *,
        pin: bool = True,
        lease: bool = False,
        expected_size: int | None = None,
    ) -> AddResult:
        """Import a file as `ipfs add` would (kubo's defaults unless `options` says
        otherwise), storing blocks as they are made; pin the root unless pin=False,
        or with lease=True (and pin=False) keep it under a lease, its blocks counted
        against the quota as they are stored (QuotaExceededError past it).

        Memory is one chunk and the open DAG nodes, whatever the file's size. If
        `expected_size` is given and the reader yields another number of bytes,
        InputSizeError is raised and nothing is pinned. An add that fails, for any
        reason, deletes the block files it wrote (see "Rolling back"). The blocks
        written are protected from GC until `add` returns; neither pinned nor leased,
        they are then collectable.
        """
        if expected_size is not None and expected_size < 0:
            raise ValueError(f"expected_size must be >= 0, not {expected_size}")
        if pin and lease:
            raise ValueError("an add pins its root or leases it, not both")
        stream = import_stream(reader, options)
        if lease:
            self.ensure_room(expected_size or 0)
        with self.hold(counted=lease) as session:
            try:
                written, dirty = self._write_blocks(session, stream)
                result = stream.result
                if expected_size is not None and result.size != expected_size:
                    raise InputSizeError(
                        f"input had {result.size} bytes, {expected_size} were announced"
                    )
                # The renames must be durable before the root is pinned or reported.
                self._sync_dirs(dirty)
                # A root from now on; then the session may end.
                if pin:
                    self.pin(result.root)
                elif lease:
                    session.lease(result.root)
            except BaseException:
                session.roll_back()
                raise
        return AddResult(
            result.root, result.size, result.blocks, written, result.dag_size, pin, lease
        )

    def _write_blocks(
        self, session: StoreSession, blocks: Iterable[Block]
    ) -> tuple[int, set[Path]]:
        """Store `blocks` (from our importer, so verified) on the writer threads, at most
        WRITE_WINDOW_BLOCKS at a time; return the number written and the shard
        directories to fsync. Returns or raises only once no write is in flight."""
        in_flight: deque[Future[tuple[bool, Path | None]]] = deque()
        written = 0
        dirty: set[Path] = set()

        def settle(future: Future[tuple[bool, Path | None]]) -> None:
            nonlocal written
            was_written, shard_dir = future.result()
            written += was_written
            if shard_dir is not None:
                dirty.add(shard_dir)

        try:
            for block in blocks:
                key = key_of(block.cid)
                if not self._claim(session, key, len(block.data)):
                    continue
                if len(in_flight) >= WRITE_WINDOW_BLOCKS:
                    settle(in_flight.popleft())
                in_flight.append(
                    self._writers.submit(
                        self._write_unless_intact,
                        block.cid,
                        key,
                        block.data,
                        sync_dir=False,
                        session=session,
                    )
                )
            while in_flight:
                settle(in_flight.popleft())
        finally:
            for future in in_flight:
                future.cancel()
            wait(in_flight)
        return written, dirty

    def read(self, cid: CIDLike, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The file's bytes [start, end) as a stream of pieces, each block verified.

        `end` defaults to, and is clamped to, the file's size. A `start` past the end
        raises RangeNotSatisfiableError now (not when iterating); `start` equal to the
        size gives no bytes. Only blocks holding bytes of the range are read.
        """
        cid = self._cid(cid)
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"invalid byte range start={start} end={end}")
        root = self._load_file_node(cid)
        size = root.filesize
        if start > size:
            raise RangeNotSatisfiableError(cid, start, size)
        end = size if end is None else min(end, size)
        return iter_range(root, self._load_file_node, start, end)

    def open(self, cid: CIDLike) -> BlobReader:
        """A seekable binary file object over the file's bytes, verified as it reads."""
        cid = self._cid(cid)
        return BlobReader(self, cid, self._load_file_node(cid).filesize)

    def _load_file_node(self, cid: CID) -> FileNode:
        return decode_file_node(cid, self._read_block(cid, key_of(cid)))

    def stat(self, cid: CIDLike, *, verify: bool = False) -> BlobStat:
        """Size and completeness of the file under `cid` (whose root must be here).

        Internal nodes are read and verified; leaves are checked by their presence
        (a crash never leaves a partial block under a valid name), or read and
        verified too with verify=True. A corrupt block counts as missing.
        """
        cid = self._cid(cid)
        size = self._load_file_node(cid).filesize
        local = missing = 0
        for _, is_local in walk_dag([cid], self._links_reader(verify), set()):
            local += is_local
            missing += not is_local
        return BlobStat(cid, size, missing == 0, local, missing)

    def missing_blocks(self, root: CIDLike, *, verify: bool = False) -> list[CID]:
        """The blocks of the DAG under `root` that are not here and whose parent is,
        in DAG order: what a transfer still has to fetch at this point (their own
        children become known once they arrive). [root] if the root is missing."""
        root = self._cid(root)
        walk = walk_dag([root], self._links_reader(verify), set())
        return [cid for cid, is_local in walk if not is_local]

    def _links_reader(self, verify: bool, *, lenient: bool = False) -> LinksOf:
        """`links_of` for `walk_dag`: a block's links, or None if it is not here (or
        corrupt). With `lenient`, a block that does not decode has no links."""

        def links_of(cid: CID) -> Sequence[CID] | None:
            key = key_of(cid)
            if not verify:
                if cid.codec == RAW:
                    return () if self._fs.exists(key) else None
                head = self._fs.peek(key, HEAD_BYTES)
                if head is None:
                    return None
                if has_no_links(*head):
                    return ()
            try:
                data = self._read_block(cid, key)
            except (BlockNotFoundError, CorruptBlockError):
                return None
            if cid.codec == RAW:
                return ()
            try:
                return tuple(link.cid for link in decode_pbnode(data).links)
            except DecodeError:
                if lenient:
                    return ()
                raise

        return links_of

    # -- pins and sessions -------------------------------------------------

    def pin(self, cid: CIDLike) -> bool:
        """Keep the DAG under `cid` from GC, durably; True if it was not pinned.
        The DAG need not be here yet (pin first, then fetch). A lease of `cid` becomes
        the pin: it no longer counts against the quota."""
        cid = self._cid(cid)
        with self._lock:
            if cid in self._pins:
                return False
            if len(self._pins) >= PINS_MAX:
                raise PinLimitError(f"already {len(self._pins)} pins, the most a store keeps")
            pins = self._pins | {cid}
            save_pins(self._pins_path, pins)
            self._pins = pins
            self._roots_generation += 1
            if cid in self._leases:
                self._drop_leases_locked([cid])
        return True

    def unpin(self, cid: CIDLike) -> bool:
        """Let GC collect the DAG under `cid` (unless another root reaches it): drop its
        pin and its lease; True if it had either. Pins are exact: a CIDv1 does not
        unpin its CIDv0."""
        cid = self._cid(cid)
        with self._lock:
            if cid not in self._pins and cid not in self._leases:
                return False
            if cid in self._pins:
                pins = self._pins - {cid}
                save_pins(self._pins_path, pins)
                self._pins = pins
            if cid in self._leases:
                self._drop_leases_locked([cid])
        return True

    def pins(self) -> list[CID]:
        with self._lock:
            return sorted(self._pins, key=str)

    # -- leases and the quota ----------------------------------------------

    def leases(self) -> list[Lease]:
        """Every lease, oldest first."""
        with self._lock:
            return sorted(self._leases.values(), key=Lease.order)

    def lease_of(self, cid: CIDLike) -> Lease | None:
        cid = self._cid(cid)
        with self._lock:
            return self._leases.get(cid)

    @property
    def unanchored_bytes(self) -> int:
        """The bytes counted against the quota: leases' and counted sessions' (leases
        anchored since the last time room was made are still counted)."""
        with self._lock:
            return self._leased_bytes + self._reserved_bytes

    def ensure_room(self, extra_bytes: int, extra_leases: int = 1) -> None:
        """Make room for `extra_bytes` more unanchored bytes and `extra_leases` more
        leases, or raise QuotaExceededError: an early answer for an upload whose size
        is announced (the blocks are counted again as they come)."""
        if not self._make_room(extra_bytes, extra_leases):
            with self._lock:
                raise self._quota_error_locked(extra_bytes, extra_leases)

    def _fits_locked(self, extra_bytes: int, extra_leases: int) -> bool:
        assert self._lock.locked()
        used = self._leased_bytes + self._reserved_bytes
        return (
            used + extra_bytes <= self.policy.max_unanchored_bytes
            and len(self._leases) + extra_leases <= LEASES_MAX
        )

    def _quota_error_locked(
        self, extra_bytes: int, extra_leases: int, session: StoreSession | None = None
    ) -> QuotaExceededError:
        assert self._lock.locked()
        self._counts.update(quota_refusals=1)
        now = self._clock()
        ends = [lease.added_ns + self.policy.grace_ns for lease in self._leases.values()]
        waiting = [end - now for end in ends if end > now]
        retry_after_s = math.ceil(min(waiting) / 1e9) if waiting else None
        return QuotaExceededError(
            extra_bytes,
            self._leased_bytes + self._reserved_bytes,
            self.policy.max_unanchored_bytes,
            len(self._leases),
            retry_after_s,
            session_bytes=0 if session is None else session.reserved,
            too_many_leases=len(self._leases) + extra_leases > LEASES_MAX,
        )

    def _make_room(self, extra_bytes: int, extra_leases: int) -> bool:
        """Whether `extra_bytes` and `extra_leases` fit, after releasing the leases whose
        root is anchored now and dropping expired leases, oldest first, only as many as
        needed; their blocks are then collected by a GC (keeping the anchored roots)."""
        with self._room_mutex:
            with self._lock:
                if self._fits_locked(extra_bytes, extra_leases):
                    return True
            anchored = self._anchored_now()
            with self._lock:
                released = self._release_locked(anchored)
                expired: list[Lease] = []
                if not self._fits_locked(extra_bytes, extra_leases):
                    expired = self._expire_locked(extra_bytes, extra_leases)
                fits = self._fits_locked(extra_bytes, extra_leases)
            if released or expired:
                log.info(
                    "blob store made room",
                    extra=log_fields(
                        released=released,
                        expired=[str(lease.root) for lease in expired],
                        fits=fits,
                    ),
                )
            if expired:
                self.gc(anchored, expire=False)
            return fits

    def _anchored_now(self) -> set[CID]:
        return set() if self._anchored is None else {self._cid(c) for c in self._anchored()}

    def _release_locked(self, anchored: set[CID] | frozenset[CID]) -> int:
        """Drop the leases of anchored roots (the anchor keeps them now); how many."""
        roots = [root for root in self._leases if root in anchored]
        if roots:
            self._drop_leases_locked(roots)
        return len(roots)

    def _expire_locked(self, extra_bytes: int | None, extra_leases: int = 0) -> list[Lease]:
        """Drop leases past their grace, oldest first: every one (extra_bytes None), or
        only until `extra_bytes` and `extra_leases` fit. The dropped, in order."""
        deadline = self._clock() - self.policy.grace_ns
        dropped: list[Lease] = []
        for lease in sorted(self._leases.values(), key=Lease.order):
            if extra_bytes is not None and self._fits_locked(extra_bytes, extra_leases):
                break
            if lease.added_ns > deadline:
                break  # the rest are younger still
            self._drop_lease_locked(lease)
            dropped.append(lease)
        if dropped:
            save_leases(self._leases_path, self._leases.values())
            self._counts.update(leases_expired=len(dropped))
        return dropped

    def _drop_leases_locked(self, roots: Iterable[CID]) -> None:
        for root in roots:
            self._drop_lease_locked(self._leases[root])
        save_leases(self._leases_path, self._leases.values())

    def _drop_lease_locked(self, lease: Lease) -> None:
        """Forget a lease in memory (the caller saves the file)."""
        assert self._lock.locked()
        del self._leases[lease.root]
        self._leased_bytes -= lease.bytes

    def _lease(self, session: StoreSession, root: CID) -> Lease | None:
        made_room = False
        while True:
            with self._lock:
                if root in self._pins:
                    return None
                previous = self._leases.get(root)
                if previous is not None or self._fits_locked(0, 1):
                    lease = Lease(root, session.reserved, self._clock())
                    leases = {**self._leases, root: lease}
                    save_leases(self._leases_path, leases.values())
                    self._leases = leases
                    self._leased_bytes += lease.bytes - (previous.bytes if previous else 0)
                    self._reserved_bytes -= session.reserved
                    session.reserved = 0
                    self._roots_generation += 1
                    return lease
                if made_room:
                    raise self._quota_error_locked(0, 1)
            self._make_room(0, 1)
            made_room = True

    def _roll_back(self, session: StoreSession) -> int:
        """See "Rolling back" in the module docstring."""
        removed = 0
        with self._lock:
            written, session.written = sorted(session.written), set()
        for key in written:
            with self._lock:
                if key in session.shared:
                    continue
                if any(key in other.keys for other in self._sessions if other is not session):
                    continue
                removed += self._fs.delete(key) is not None
        if removed:
            self._count(blocks_rolled_back=removed)
            log.info("blob store rolled back a failed write", extra=log_fields(blocks=removed))
        return removed

    @contextlib.contextmanager
    def hold(self, *roots: CIDLike, counted: bool = False) -> Iterator[StoreSession]:
        """A session: while open, GC keeps the DAGs under `roots` (not persisted, unlike
        pins) and every block stored through the session. A `counted` session (what a
        peer asked us to hold) counts what it stores against the quota, and needs room
        for one lease more when it opens (QuotaExceededError if there is none: call
        `ensure_room(0)` first to make some).

        with store.hold(root) as session:
            for cid in store.missing_blocks(root): session.put_block(cid, fetch(cid))
        """
        session = StoreSession(self, tuple(self._cid(root) for root in roots), counted)
        with self._lock:
            # Verify that a counted session can end in a lease (room is made by
            # `ensure_room`, which the caller runs first where a GC may wait).
            if counted and not self._fits_locked(0, 1):
                raise self._quota_error_locked(0, 1)
            self._sessions.append(session)
            if session.roots:
                self._held.update(session.roots)
                self._roots_generation += 1
        try:
            yield session
        finally:
            with self._lock:
                session.is_open = False
                self._sessions.remove(session)
                self._held.subtract(session.roots)
                self._held = +self._held  # drop zero counts
                self._reserved_bytes -= session.reserved
                session.reserved = 0

    # -- garbage collection ------------------------------------------------

    def gc(self, keep: Iterable[CIDLike] = (), *, expire: bool = True) -> GCResult:
        """Delete every block not reachable from a pin, a lease, a held root or `keep`
        (the node passes the CIDs anchored on chain), nor protected by a session.
        First the leases of roots in `keep` are released (the anchor keeps them now)
        and, with `expire`, every lease past its grace is dropped, oldest first.

        Runs alongside adds, reads and transfers (see the module docstring); a
        second GC waits for the first. Blocks that are missing do not stop it: what
        is here of a partially local DAG is kept. Memory: the set of live blocks,
        about 250 bytes per block (1 GB of 256 KiB chunks is 4,100 blocks, 1 MB).
        """
        keep_roots = {self._cid(cid) for cid in keep}  # a malformed CID fails before any work
        self._check_open()
        with self._gc_mutex:
            with self._lock:
                released = self._release_locked(keep_roots)
                expired = self._expire_locked(None) if expire else []
                self._gc_fresh = set()
                roots = self._roots_locked() | keep_roots
                generation = self._roots_generation
            if expired:
                log.info(
                    "blob store leases expired",
                    extra=log_fields(expired=[str(lease.root) for lease in expired]),
                )
            try:
                result = self._collect(roots, generation)
            finally:
                with self._lock:
                    self._gc_fresh = None
        return replace(
            result,
            leases_released=released,
            leases_expired=tuple(lease.root for lease in expired),
        )

    def _roots_locked(self) -> set[CID]:
        """What GC marks from, besides `keep`: pins, leases and held roots."""
        assert self._lock.locked()
        return set(self._pins) | self._held.keys() | self._leases.keys()

    def _collect(self, roots: set[CID] | frozenset[CID], generation: int) -> GCResult:
        mark = _Mark(generation, self._links_reader(False, lenient=True))
        mark.add_roots(roots)
        removed = freed = kept = 0
        for key in self._fs.iter_keys():
            size = self._sweep(key, mark)
            if size is None:
                kept += 1
            else:
                removed += 1
                freed += size
        self._count(gc_runs=1, gc_blocks_removed=removed, gc_bytes_freed=freed)
        log.info(
            "blob store gc",
            extra=log_fields(removed=removed, freed_bytes=freed, kept=kept, roots=len(mark.roots)),
        )
        return GCResult(removed, freed, kept, len(mark.roots))

    def _sweep(self, key: str, mark: _Mark) -> int | None:
        """Delete the block `key` unless it is live or protected; the bytes freed
        (0 if the file went away meanwhile), or None if it is kept."""
        while key not in mark.live:
            with self._lock:
                if self._roots_generation == mark.generation:
                    if self._is_protected(key):
                        return None
                    return self._fs.delete(key) or 0
                mark.generation = self._roots_generation
                new_roots = self._roots_locked() - mark.roots
            # Roots were added since the mark: mark their DAGs before any delete.
            mark.add_roots(new_roots)
        return None

    def _is_protected(self, key: str) -> bool:
        """Whether a session or a store since GC began has claimed `key` (hold _lock)."""
        assert self._lock.locked()
        if self._gc_fresh is not None and key in self._gc_fresh:
            return True
        return any(key in session.keys for session in self._sessions)

    # -- helpers -----------------------------------------------------------

    def _cid(self, cid: CIDLike) -> CID:
        """A CID from a caller: CID text is parsed (CIDError, a ValueError, if malformed)."""
        self._check_open()
        if isinstance(cid, CID):
            return cid
        if isinstance(cid, str):
            return CID.parse(cid)
        raise TypeError(f"expected a CID or CID text, not {type(cid).__name__}")

    def _check_open(self) -> None:
        if self._closed:
            raise BlobStoreError(f"blob store {self.directory} is closed")

    def _count(self, **deltas: int) -> None:
        assert _COUNTER_NAMES.issuperset(deltas)
        with self._lock:
            self._counts.update(deltas)


class _Mark:
    """GC's mark: the keys of every block reachable from the roots marked so far."""

    def __init__(self, generation: int, links_of: LinksOf) -> None:
        self.generation = generation  # the roots generation the marked roots reflect
        self.roots: set[CID] = set()
        self.live: set[str] = set()
        self._links_of = links_of
        self._seen: set[tuple[int, bytes]] = set()

    def add_roots(self, roots: Iterable[CID]) -> None:
        roots = set(roots) - self.roots
        self.roots |= roots
        self.live.update(key_of(cid) for cid, _ in walk_dag(roots, self._links_of, self._seen))


class BlobReader(io.RawIOBase):
    """A read-only, seekable file over a blob; every block is verified as it is read.

    Reads continue from a stream of `BlobStore.read`; a seek starts a new stream at
    the new position, which skips straight to the blocks it needs.
    """

    def __init__(self, store: BlobStore, cid: CID, size: int) -> None:
        super().__init__()
        self.cid = cid
        self.size = size
        self._store = store
        self._position = 0
        self._pieces: Iterator[bytes] | None = None
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._checkClosed()  # type: ignore[attr-defined]
        bases = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}
        if whence not in bases:
            raise ValueError(f"invalid whence {whence}")
        position = bases[whence] + offset
        if position < 0:
            raise ValueError(f"negative seek position {position}")
        if position != self._position:
            self._position = position
            self._pieces = None
            self._pending = memoryview(b"")
        return position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill `buffer` whole unless the file ends first (no short reads before EOF)."""
        self._checkClosed()  # type: ignore[attr-defined]
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view) and self._position < self.size:
            if not self._pending:
                if self._pieces is None:
                    self._pieces = self._store.read(self.cid, self._position)
                piece = next(self._pieces, None)
                assert piece is not None, "the stream ended before the file's size"
                self._pending = memoryview(piece)
            count = min(len(view) - filled, len(self._pending))
            view[filled : filled + count] = self._pending[:count]
            self._pending = self._pending[count:]
            self._position += count
            filled += count
        return filled

    def close(self) -> None:
        self._pieces = None
        self._pending = memoryview(b"")
        super().close()


def _lock_directory(path: Path) -> int:
    """Hold an exclusive flock on `path` for as long as the returned descriptor is open."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        raise StoreLockedError(f"blob store {path.parent} is open elsewhere") from exc
    except BaseException:
        os.close(fd)
        raise
    fsync_directory(path.parent)
    return fd
