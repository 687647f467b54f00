"""The ordered key-value engine under every store: LevelDB on disk, a dict in tests.

The interface is deliberately small: point reads, forward range scans, and one
atomic write of many keys. Atomicity of that write is the whole crash-safety
story of the state and block stores: a block's state changes, its results and
the block itself go to disk in one `write`, so after a crash the store holds
either all of them or none.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterator, Mapping
from typing import Protocol

import plyvel

# Writes are a map from key to new value; None deletes the key.
Changes = Mapping[bytes, bytes | None]


class KVStore(Protocol):
    def get(self, key: bytes) -> bytes | None: ...

    def scan(self, start: bytes, stop: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        """Items with start <= key < stop (no upper bound if stop is None), keys ascending."""
        ...

    def first(self, start: bytes, stop: bytes) -> tuple[bytes, bytes] | None:
        """The item with the smallest key in start <= key < stop, if any: a point read
        by seek, without the cost of a scan's generator."""
        ...

    def write(self, changes: Changes, *, sync: bool = True) -> None:
        """Apply all changes atomically; durably unless sync=False, when the next synced
        write makes them durable too (LevelDB's log is one sequence)."""
        ...

    def close(self) -> None: ...


class MemoryKV:
    """An in-memory KVStore for tests and simulations (not durable)."""

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._keys: list[bytes] = []

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def scan(self, start: bytes, stop: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        """Read in growing chunks, each a snapshot found again after the last key read:
        a caller may write while it iterates (as with LevelDB), and a scan abandoned
        early (a seek, a prefix's first key) copies only what it read, not the range."""
        keys, data = self._keys, self._data
        i, chunk = bisect.bisect_left(keys, start), 16
        while True:
            end = len(keys) if stop is None else bisect.bisect_left(keys, stop)
            taken = [(key, data[key]) for key in keys[i : min(end, i + chunk)]]
            if not taken:
                return
            yield from taken
            i = bisect.bisect_right(keys, taken[-1][0])
            chunk = min(chunk * 2, 4096)

    def first(self, start: bytes, stop: bytes) -> tuple[bytes, bytes] | None:
        i = bisect.bisect_left(self._keys, start)
        if i == len(self._keys) or self._keys[i] >= stop:
            return None
        return self._keys[i], self._data[self._keys[i]]

    def write(self, changes: Changes, *, sync: bool = True) -> None:
        for key, value in changes.items():
            present = key in self._data
            if value is None:
                if present:
                    del self._data[key]
                    del self._keys[bisect.bisect_left(self._keys, key)]
            else:
                if not present:
                    bisect.insort(self._keys, key)
                self._data[key] = value

    def close(self) -> None:
        pass


class LevelDBKV:
    """A KVStore on LevelDB (plyvel). Every write is one synced write batch."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        os.makedirs(path, exist_ok=True)
        self._db = plyvel.DB(os.fspath(path), create_if_missing=True)

    def get(self, key: bytes) -> bytes | None:
        return self._db.get(key)

    def scan(self, start: bytes, stop: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        # Forward iterators only: plyvel's reverse range iterators have been seen
        # to skip keys, and the stores are laid out so that forward is enough.
        with self._db.iterator(start=start, stop=stop) as it:
            yield from it

    def first(self, start: bytes, stop: bytes) -> tuple[bytes, bytes] | None:
        it = self._db.iterator(start=start, stop=stop)
        try:
            return next(it, None)
        finally:
            it.close()

    def write(self, changes: Changes, *, sync: bool = True) -> None:
        # Built whole, then written once: an exception while building writes nothing.
        batch = self._db.write_batch(sync=sync)
        for key, value in changes.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        batch.write()

    def close(self) -> None:
        self._db.close()
