"""The latest committed value of recently used state keys, bounded in bytes.

What it owns: a least-recently-used map from a state key to its value at the
chain store's committed height (None for a key that is absent there), and its
own size bound. It is a pure memo: everything in it is also in the KV store,
so dropping any entry, or all of them, never changes an answer.

What it does not know: heights, the KV store, or when a commit happens. Its
owner (storage/chain.py's ChainStore) keeps it exact: it fills it only with
values read at the committed height, passes it every effective change of a
block only after that block's write batch succeeded, and reads through it only
at the committed height. A process that dies between the write and that update
loses the cache with it, and a restarted store starts with an empty one.

Not thread-safe: the store has one owner (the node's event loop).
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Mapping
from typing import Final, Literal

# What the cache may hold: keys and values, bytes, plus ENTRY_OVERHEAD_BYTES an entry.
# 32 MiB keep about 150,000 account nonces and balances (~50-byte keys).
STATE_CACHE_BYTES: Final = 32 * 1024 * 1024
# Counted per entry beside its key and value: the map's slot and link, the two bytes
# objects' headers (CPython 3.11, 64-bit: about 160 bytes).
ENTRY_OVERHEAD_BYTES: Final = 160
# Values larger than this, bytes, are not kept (read from the KV store each time), so
# that one large record cannot push out thousands of small hot ones.
STATE_CACHE_MAX_VALUE_BYTES: Final = 16 * 1024


class Unknown(enum.Enum):
    """The answer of `LatestValues.lookup` for a key it holds nothing about."""

    UNKNOWN = enum.auto()


UNKNOWN: Final = Unknown.UNKNOWN


class LatestValues:
    """Key -> latest committed value (None: absent), least recently used out first."""

    def __init__(
        self,
        max_bytes: int = STATE_CACHE_BYTES,
        max_value_bytes: int = STATE_CACHE_MAX_VALUE_BYTES,
    ) -> None:
        if max_bytes < 0 or max_value_bytes < 0:
            raise ValueError("cache bounds are bytes, at least 0")
        self._max_bytes = max_bytes
        self._max_value_bytes = max_value_bytes
        self._entries: OrderedDict[bytes, bytes | None] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        """What the entries count for against `max_bytes`."""
        return self._bytes

    def lookup(self, key: bytes) -> bytes | Literal[Unknown.UNKNOWN] | None:
        """The held value of `key` (None: known absent), or UNKNOWN."""
        value = self._entries.get(key, UNKNOWN)
        if value is not UNKNOWN:
            self._entries.move_to_end(key)
        return value

    def put(self, key: bytes, value: bytes | None) -> None:
        """Hold `value` as the latest of `key`; a value too large to hold drops the key."""
        old = self._entries.pop(key, UNKNOWN)
        if old is not UNKNOWN:
            self._bytes -= _cost(key, old)
        if value is not None and len(value) > self._max_value_bytes:
            return
        cost = _cost(key, value)
        if cost > self._max_bytes:
            return
        self._entries[key] = value
        self._bytes += cost
        while self._bytes > self._max_bytes:
            evicted, evicted_value = self._entries.popitem(last=False)
            self._bytes -= _cost(evicted, evicted_value)

    def apply(self, changes: Mapping[bytes, bytes | None]) -> None:
        """A committed block's effective changes. All or nothing: if this fails part
        way (out of memory), everything is dropped rather than leaving stale entries."""
        try:
            for key, value in changes.items():
                self.put(key, value)
        except BaseException:
            self.clear()
            raise

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0


def _cost(key: bytes, value: bytes | None) -> int:
    return len(key) + (0 if value is None else len(value)) + ENTRY_OVERHEAD_BYTES
