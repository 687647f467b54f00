"""The chain store: versioned application state, blocks and results, committed together.

One `KVStore` holds everything, so that one atomic write commits a block, its
results and its state changes (see `commit`). After a crash the store is at
the old height or the new one, never between.

Key layout (all integers big-endian, so byte order is numeric order):

    m/height                       last committed height (absent: empty store)
    m/acc                          state accumulator after that height (see apphash)
    h/<height:8>                   app hash after <height> (height 0 is genesis)
    R/<height:8>                   results hash of block <height> (see types.results_hash)
    s/<esc(key)>\\x00\\x01<~height:8> state version: \\x01 + value, or \\x00 (deleted)
    b/<height:8>                   block bytes
    B/<block hash>                 height of that block
    r/<height:8><index:4>          result of the block's transaction <index>
    e/<height:8>                   events of the block itself (end-of-block work), if any
    t/<tx hash>                    height and index of the transaction's first inclusion
    x/<esc(type.key)>\x00\x01<esc(value)>\x00\x01<height:8><index:4>
                                   event index: the transactions whose events carry
                                   attribute type.key = value (for tx_search)
    d/<height:8>                   what decided block <height>: its proposal without the
                                   block, and its commit (written by the consensus driver)

State keys are escaped (0x00 -> 0x00 0xFF) and terminated by 0x00 0x01, which
keeps them in the order of the raw keys and makes a key's versions contiguous.
Heights in version keys are inverted (~height = 2^64-1-height), so a forward
scan from ~h meets the newest version at or below h first. Every version is
kept, so state can be read at any committed height (`get(key, height)`), unless the
store is opened with `keep_heights=N` (pruning, as a Cosmos node's `pruning`): then the
state of only the last N heights can be read, and at each commit the versions that no
longer answer for any of them are deleted in the same batch (of each key written N
heights before: every older version, and that version too if it records a deletion,
so that a deleted key leaves nothing behind to step over). So are the block, the
results and the transaction and event index entries of the height N before (as
CometBFT's retain height): only app hashes and results hashes stay for every height.
The keys to prune are kept in memory: those written before a restart are not pruned
afterwards (they only cost room).

Reads of the latest state (check_tx's nonces and balances, a block's execution) go
through a bounded cache of the latest committed value per key (storage/statecache.py):
filled by reads at the committed height and updated from each block's effective
changes right after its write batch succeeded, so it always answers what the KV store
would. Reads at an older height go to the KV store.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from cloudchain import codec
from cloudchain.ledger import Block, Event, TxResult, results_hash
from cloudchain.storage import apphash
from cloudchain.storage.kv import KVStore
from cloudchain.storage.statecache import STATE_CACHE_BYTES, UNKNOWN, LatestValues

_META_HEIGHT = b"m/height"
_META_ACC = b"m/acc"
_APP_HASH = b"h/"
_RESULTS_HASH = b"R/"
_STATE = b"s/"
_BLOCK = b"b/"
_BLOCK_BY_HASH = b"B/"
_RESULTS = b"r/"
_BLOCK_EVENTS = b"e/"
_TX = b"t/"
_EVENT_INDEX = b"x/"
_DECISION = b"d/"

_TERM = b"\x00\x01"
_U64 = struct.Struct(">Q")
_MAX_U64 = 2**64 - 1
_PRESENT = b"\x01"
# Stale versions stepped over one by one before a seek is cheaper (a seek costs
# about as much as a few steps of a LevelDB iterator).
_SKIPS_BEFORE_SEEK = 8
_DELETED = b"\x00"
MAX_BLOCK_EVENTS = 4_096  # events the end-of-block work of one block may emit
MAX_BLOCK_EVENTS_BYTES = 8 * 1024 * 1024
MAX_BLOCK_EVENTS_OBJECTS = MAX_BLOCK_EVENTS * (4 + 3 * 16)  # 16 attributes an event, typically


class StoreError(RuntimeError):
    """The store was asked for something inconsistent with what it holds."""


def _escape(key: bytes) -> bytes:
    return key.replace(b"\x00", b"\x00\xff")


def _unescape(escaped: bytes) -> bytes:
    return escaped.replace(b"\x00\xff", b"\x00")


def _version_key(key: bytes, height: int) -> bytes:
    return _STATE + _escape(key) + _TERM + _U64.pack(_MAX_U64 - height)


def _event_prefix(composite_key: str, value: str | None = None) -> bytes:
    prefix = _EVENT_INDEX + _escape(composite_key.encode()) + _TERM
    return prefix if value is None else prefix + _escape(value.encode()) + _TERM


def _result_key(height: int, index: int) -> bytes:
    return _RESULTS + _U64.pack(height) + struct.pack(">I", index)


_BLOCK_STORE = (_BLOCK, _BLOCK_BY_HASH, _RESULTS, _BLOCK_EVENTS, _TX, _EVENT_INDEX)


def _block_keys(batch: Mapping[bytes, Any]) -> tuple[bytes, ...]:
    """The keys of a commit's batch that store its block, results and index entries."""
    return tuple(key for key in batch if key.startswith(_BLOCK_STORE))


def _successor(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string that starts with `prefix`."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


@dataclass(frozen=True)
class StateDiff:
    """A block's effective state changes and the accumulator they lead to."""

    height: int
    changes: Mapping[bytes, bytes | None]  # only keys whose value really changes
    accumulator: int

    @property
    def app_hash(self) -> bytes:
        return apphash.digest(self.accumulator)


@dataclass(frozen=True)
class BlockResults:
    """What executing a block produced, stored beside the block (one key per result,
    so that reading one result is bounded by MAX_TX_RESULT_BYTES)."""

    tx_results: tuple[TxResult, ...]
    block_events: tuple[Event, ...] = ()  # CometBFT's finalize_block_events


class ChainStore:
    """Reads of committed state and blocks, and the single atomic `commit`.

    One owner (the node's event loop): reads and commits are not synchronised.
    `cache_bytes` bounds the latest-value cache (0: no cache, every read goes to `kv`).
    """

    def __init__(
        self, kv: KVStore, *, cache_bytes: int = STATE_CACHE_BYTES, keep_heights: int | None = None
    ) -> None:
        if keep_heights is not None and keep_heights < 1:
            raise ValueError(f"keep_heights {keep_heights}: at least 1")
        self._kv = kv
        self._keep = keep_heights
        # per height: the state keys it wrote, and the keys of its block and results
        self._written: deque[tuple[int, tuple[bytes, ...], tuple[bytes, ...]]] = deque()
        self._latest = LatestValues(cache_bytes)
        raw_height = kv.get(_META_HEIGHT)
        self._height = -1 if raw_height is None else _U64.unpack(raw_height)[0]
        raw_acc = kv.get(_META_ACC)
        self._acc = 1 if raw_acc is None else apphash.from_bytes(raw_acc)
        self._last_block = self.block(self._height) if self._height > 0 else None
        self._last_results: BlockResults | None = None  # of the block committed last here
        last_results_hash = self.results_hash_at(self._height)
        assert last_results_hash is not None, "every committed block has a results hash"
        self._last_results_hash = last_results_hash

    def close(self) -> None:
        self._kv.close()

    # --- heights and hashes --------------------------------------------------------

    @property
    def height(self) -> int:
        """Last committed height; -1 for an empty store, 0 once genesis is committed."""
        return self._height

    @property
    def app_hash(self) -> bytes:
        return apphash.digest(self._acc)

    @property
    def last_block(self) -> Block | None:
        """The block at the committed height (None at genesis), kept in memory."""
        return self._last_block

    @property
    def last_results_hash(self) -> bytes:
        """The results hash of the block at the committed height (of none at genesis)."""
        return self._last_results_hash

    def results_hash_at(self, height: int) -> bytes | None:
        """The results hash of block `height`; that of no results at genesis."""
        if height <= 0:
            return results_hash(())
        return self._kv.get(_RESULTS_HASH + _U64.pack(height))

    def app_hash_at(self, height: int) -> bytes | None:
        return self._kv.get(_APP_HASH + _U64.pack(height))

    # --- state -----------------------------------------------------------------------

    def get(self, key: bytes, height: int | None = None) -> bytes | None:
        """The value of `key` after block `height` (default: the latest)."""
        if height is None or height == self._height >= 0:
            value = self._latest.lookup(key)
            if value is UNKNOWN:
                value = self._read(key, max(self._height, 0))
                self._latest.put(key, value)
            return value
        return self._read(key, self._read_height(height))

    def _read(self, key: bytes, height: int) -> bytes | None:
        """From the KV store: the newest version of `key` at or below `height`, found by
        one seek (versions are ordered newest first)."""
        escaped = _escape(key)
        found = self._kv.first(
            _STATE + escaped + _TERM + _U64.pack(_MAX_U64 - height),
            _STATE + escaped + b"\x00\x02",
        )
        if found is None:
            return None
        version = found[1]
        return version[1:] if version[:1] == _PRESENT else None

    def iterate(
        self, prefix: bytes = b"", height: int | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """Live (key, value) pairs whose key starts with `prefix`, keys ascending.

        Versions of a key that do not answer for `height` are stepped over; after
        _SKIPS_BEFORE_SEEK of them in a row the scan seeks past the rest, so a key
        rewritten at every height costs a seek, not a walk through its history.
        """
        height = self._read_height(height)
        start: bytes | None = _STATE + _escape(prefix)
        stop = _successor(_STATE + _escape(prefix))
        current: bytes | None = None  # the escaped key last decided
        while start is not None:
            scan, start, skipped = self._kv.scan(start, stop), None, 0
            for row, version in scan:
                escaped = row[len(_STATE) : -10]
                if escaped == current:
                    target = _STATE + escaped + b"\x00\x02"  # past all its versions
                elif _MAX_U64 - _U64.unpack(row[-8:])[0] > height:
                    target = _version_key(_unescape(escaped), height)  # written later
                else:
                    current, skipped = escaped, 0
                    if version[:1] == _PRESENT:
                        yield _unescape(escaped), version[1:]
                    continue
                skipped += 1
                if skipped > _SKIPS_BEFORE_SEEK:
                    start = target
                    break
            scan.close()

    def _read_height(self, height: int | None) -> int:
        if height is None:
            return max(self._height, 0)
        if not 0 <= height <= self._height:
            raise StoreError(f"height {height} is not committed (latest is {self._height})")
        if self._keep is not None and height <= self._height - self._keep:
            raise StoreError(
                f"height {height} is pruned (only the last {self._keep} heights are kept)"
            )
        return height

    def diff(self, changes: Mapping[bytes, bytes | None]) -> StateDiff:
        """The effective changes of a block on top of the latest state, and the new app hash."""
        effective: dict[bytes, bytes | None] = {}
        added: list[tuple[bytes, bytes]] = []
        removed: list[tuple[bytes, bytes]] = []
        for key in sorted(changes):
            new = changes[key]
            old = self.get(key)
            if new == old:
                continue
            effective[key] = new
            if old is not None:
                removed.append((key, old))
            if new is not None:
                added.append((key, new))
        acc = apphash.update(self._acc, added, removed)
        return StateDiff(self._height + 1, effective, acc)

    def recompute_app_hash(self, height: int | None = None) -> bytes:
        """The app hash computed from scratch over the whole state (slow; for checks)."""
        return apphash.digest(apphash.from_items(self.iterate(b"", height)))

    # --- blocks and results -------------------------------------------------------------

    def block(self, height: int) -> Block | None:
        raw = self._kv.get(_BLOCK + _U64.pack(height))
        return None if raw is None else Block.from_bytes(raw)

    def put_decision(self, height: int, record: bytes) -> None:
        """Keep what decided a committed block besides the block itself (the signed
        proposal's fields and the commit certificate, as the consensus driver encodes
        them), so that a lagging peer can be sent the decision of any height. Not
        part of the block's atomic commit, nor synced (the next block's commit syncs it):
        the latest one is also in the WAL."""
        self._kv.write({_DECISION + _U64.pack(height): record}, sync=False)

    def decision_record(self, height: int) -> bytes | None:
        return self._kv.get(_DECISION + _U64.pack(height))

    def block_height(self, block_hash: bytes) -> int | None:
        raw = self._kv.get(_BLOCK_BY_HASH + block_hash)
        return None if raw is None else _U64.unpack(raw)[0]

    def block_results(self, height: int) -> BlockResults | None:
        if not 1 <= height <= self._height:
            return None
        if height == self._height and self._last_results is not None:
            return self._last_results  # the node publishes them at every commit
        if self._keep is not None and self._kv.get(_BLOCK + _U64.pack(height)) is None:
            return None  # pruned with its block
        prefix = _RESULTS + _U64.pack(height)
        results = tuple(
            TxResult.from_bytes(raw) for _, raw in self._kv.scan(prefix, _successor(prefix))
        )
        raw_events = self._kv.get(_BLOCK_EVENTS + _U64.pack(height))
        events = (
            ()
            if raw_events is None
            else tuple(
                Event.from_obj(e)
                for e in codec.decode(
                    raw_events,
                    max_bytes=MAX_BLOCK_EVENTS_BYTES,
                    max_objects=MAX_BLOCK_EVENTS_OBJECTS,
                )
            )
        )
        return BlockResults(results, events)

    def tx_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        """(height, index) of a transaction by hash, or None."""
        raw = self._kv.get(_TX + tx_hash)
        if raw is None:
            return None
        height, index = codec.decode(raw)
        return height, index

    def txs_with_event(
        self, composite_key: str, value: str | None = None
    ) -> Iterator[tuple[str, tuple[int, int]]]:
        """(value, (height, index)) of the transactions whose events carry the attribute
        `type.key` (with exactly `value`, when given), in index order."""
        prefix = _event_prefix(composite_key, value)
        for row, _ in self._kv.scan(prefix, _successor(prefix)):
            rest = row[len(_event_prefix(composite_key)) :]
            escaped_value, location = rest[:-14], rest[-12:]
            height, index = _U64.unpack(location[:8])[0], struct.unpack(">I", location[8:])[0]
            yield _unescape(escaped_value).decode(), (height, index)

    def tx_result(self, tx_hash: bytes) -> TxResult | None:
        location = self.tx_location(tx_hash)
        if location is None:
            return None
        raw = self._kv.get(_result_key(*location))
        assert raw is not None, "a transaction index points at a missing result"
        return TxResult.from_bytes(raw)

    # --- the one write ---------------------------------------------------------------------

    def commit(
        self,
        diff: StateDiff,
        block: Block | None = None,
        results: BlockResults | None = None,
    ) -> None:
        """Write the state diff, the block and its results in one atomic batch.

        Height 0 (genesis) has no block; every later height must have one.
        """
        height = diff.height
        if height != self._height + 1:
            raise StoreError(f"commit of height {height} on top of height {self._height}")
        if (block is None) != (height == 0) or (block is None) != (results is None):
            raise StoreError("a block and its results are required above height 0")
        batch: dict[bytes, bytes | None] = {}
        for key, value in diff.changes.items():
            batch[_version_key(key, height)] = _DELETED if value is None else _PRESENT + value
        if block is not None and results is not None:
            if block.height != height:
                raise StoreError(f"block of height {block.height} in a commit of {height}")
            self._put_block(batch, block, results)
        if self._keep is not None:
            self._prune(batch, height, tuple(diff.changes), _block_keys(batch))
        batch[_APP_HASH + _U64.pack(height)] = diff.app_hash
        batch[_META_ACC] = apphash.to_bytes(diff.accumulator)
        batch[_META_HEIGHT] = _U64.pack(height)
        self._kv.write(batch)
        # Only after the write succeeded does the in-memory view move on (the cache
        # last: it is all-or-nothing, and until it moves on nothing reads in between).
        self._height = height
        self._acc = diff.accumulator
        self._last_block = block
        self._last_results = results
        if results is not None:
            self._last_results_hash = batch[_RESULTS_HASH + _U64.pack(height)]
        self._latest.apply(diff.changes)

    def _prune(
        self,
        batch: dict[bytes, bytes | None],
        height: int,
        written: tuple[bytes, ...],
        block_keys: tuple[bytes, ...],
    ) -> None:
        """Add to `batch` the deletion of the versions no height still kept reads: of
        each key written at `height - keep`, every older version, and that one too if it
        is a deletion (the key then has no versions: absent, as the deletion said); and
        of that height's block, results and index entries."""
        assert self._keep is not None
        self._written.append((height, written, block_keys))
        while self._written and self._written[0][0] <= height - self._keep:
            at, keys, old_block_keys = self._written.popleft()
            for key in old_block_keys:
                batch.setdefault(key, None)
            for key in keys:
                version = _version_key(key, at)
                stop = _STATE + _escape(key) + b"\x00\x02"
                for row, value in self._kv.scan(version, stop):
                    if row != version or value == _DELETED:
                        batch.setdefault(row, None)

    def _put_block(self, batch: dict[bytes, Any], block: Block, results: BlockResults) -> None:
        height = block.height
        batch[_BLOCK + _U64.pack(height)] = block.to_bytes()
        batch[_BLOCK_BY_HASH + block.hash] = _U64.pack(height)
        assert len(results.tx_results) == len(block.txs), "one result per transaction"
        for result in results.tx_results:
            batch[_result_key(height, result.index)] = result.to_bytes()
        batch[_RESULTS_HASH + _U64.pack(height)] = results_hash(results.tx_results)
        if results.block_events:
            batch[_BLOCK_EVENTS + _U64.pack(height)] = codec.encode(
                [e.to_obj() for e in results.block_events]
            )
        for result in results.tx_results:
            where = _U64.pack(height) + struct.pack(">I", result.index)
            for event in result.events:
                for key, value in event.attributes:
                    batch[_event_prefix(f"{event.type}.{key}", value) + where] = b""
        for index, tx in enumerate(block.txs):
            key = _TX + tx.hash
            # The first inclusion wins: a replayed copy (rejected by its nonce) must not
            # hide the result of the original.
            if key not in batch and self._kv.get(key) is None:
                batch[key] = codec.encode([height, index])
