"""CometBFT's event query language, for tx_search: conditions joined by AND.

    tx.height = 5 AND transfer.recipient = 'ab12...'
    tx.hash = 'HEX'          tx.height >= 10          message.module EXISTS
    transfer.amount > 100    transfer.sender CONTAINS 'ab'      tm.event = 'Tx'

Keys are `tx.height`, `tx.hash`, `tm.event` or an event attribute `type.key`;
operators =, <, <=, >, >=, CONTAINS, EXISTS; operands are 'quoted strings' or
integers. Anything else is a QueryError saying where.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from cloudchain.storage.chain import ChainStore

MAX_CONDITIONS = 16
MAX_HEIGHTS_SCANNED = 10_000  # a query on tx.height alone may read this many blocks

_CONDITION = re.compile(
    r"^\s*([A-Za-z_][\w.\-]*)\s*(<=|>=|=|<|>|CONTAINS|EXISTS)\s*('([^']*)'|(-?\d+))?\s*$"
)
_COMPARE: dict[str, Callable[[int, int], bool]] = {
    "=": operator.eq, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}  # fmt: skip


class QueryError(ValueError):
    """A query that does not parse, or asks too much."""


@dataclass(frozen=True)
class Condition:
    key: str
    op: str
    value: str | int | None

    def accepts(self, text: str) -> bool:
        """Whether an attribute value satisfies this condition."""
        if self.op == "EXISTS":
            return True
        if self.op == "CONTAINS":
            return isinstance(self.value, str) and self.value in text
        if isinstance(self.value, int):
            try:
                return _COMPARE[self.op](int(text), self.value)
            except ValueError:
                return False
        return self.op == "=" and text == self.value


def parse(query: str) -> list[Condition]:
    if not isinstance(query, str) or not query.strip():
        raise QueryError("query must be a non-empty string")
    parts = re.split(r"\s+AND\s+", query.strip())
    if len(parts) > MAX_CONDITIONS:
        raise QueryError(f"at most {MAX_CONDITIONS} conditions")
    conditions = []
    for part in parts:
        match = _CONDITION.match(part)
        if match is None:
            raise QueryError(f"cannot parse condition {part!r}")
        key, op, operand, text, number = match.groups()
        if op == "EXISTS" and operand is not None:
            raise QueryError(f"{part!r}: EXISTS takes no operand")
        if op != "EXISTS" and operand is None:
            raise QueryError(f"{part!r}: {op} needs an operand")
        value: str | int | None = text if text is not None else (
            int(number) if number is not None else None)  # fmt: skip
        if op == "CONTAINS" and not isinstance(value, str):
            raise QueryError(f"{part!r}: CONTAINS needs a quoted string")
        if op in ("<", "<=", ">", ">=") and not isinstance(value, int):
            raise QueryError(f"{part!r}: {op} needs an integer")
        conditions.append(Condition(key, op, value))
    return conditions


def matches(conditions: Sequence[Condition], tags: Mapping[str, Sequence[str]]) -> bool:
    """Whether an event with these tags (composite key -> values) satisfies every
    condition: as in CometBFT, a condition holds if any value under its key does."""
    return all(any(c.accepts(value) for value in tags.get(c.key, ())) for c in conditions)


def search(store: ChainStore, conditions: list[Condition]) -> list[tuple[int, int]]:
    """(height, index) of every transaction matching all conditions, ascending."""
    found: set[tuple[int, int]] | None = None
    heights = [c for c in conditions if c.key == "tx.height"]
    for condition in conditions:
        if condition.key in ("tm.event", "tx.height"):
            continue  # every indexed transaction is a Tx event; heights filter below
        if condition.key == "tx.hash":
            matches = _by_hash(store, condition)
        else:
            value = condition.value if condition.op == "=" and isinstance(
                condition.value, str) else None  # fmt: skip
            matches = {where for text, where in store.txs_with_event(condition.key, value)
                       if condition.accepts(text)}  # fmt: skip
        found = matches if found is None else found & matches
    if found is None:
        found = _by_heights(store, heights)
    return sorted(w for w in found if all(c.accepts(str(w[0])) for c in heights))


def _by_hash(store: ChainStore, condition: Condition) -> set[tuple[int, int]]:
    if condition.op != "=" or not isinstance(condition.value, str):
        raise QueryError("tx.hash supports only = 'HEX'")
    try:
        location = store.tx_location(bytes.fromhex(condition.value))
    except ValueError:
        raise QueryError("tx.hash must be hex") from None
    return set() if location is None else {location}


def _by_heights(store: ChainStore, heights: list[Condition]) -> set[tuple[int, int]]:
    low, high = 1, store.height
    for c in heights:
        assert isinstance(c.value, int)
        if c.op in ("=", ">="):
            low = max(low, c.value)
        if c.op == ">":
            low = max(low, c.value + 1)
        if c.op in ("=", "<="):
            high = min(high, c.value)
        if c.op == "<":
            high = min(high, c.value - 1)
    if high - low + 1 > MAX_HEIGHTS_SCANNED:
        raise QueryError(f"query spans more than {MAX_HEIGHTS_SCANNED} heights; narrow it "
                         "with tx.height or an event condition")  # fmt: skip
    found = set()
    for height in range(low, high + 1):
        results = store.block_results(height)
        if results is not None:
            found.update((height, r.index) for r in results.tx_results)
    return found
