"""CometBFT's event query language (libs/pubsub/query), for tx_search and subscriptions.

    tx.height = 5 AND transfer.recipient = 'ab12...'
    tx.hash = 'HEX'          tx.height >= 10          message.module EXISTS
    transfer.amount > 3.5    transfer.sender CONTAINS 'ab'      tm.event = 'Tx'
    memo.text = 'cats AND dogs'     block.time >= TIME 2026-01-01T00:00:00Z
    block.date < DATE 2026-02-01

Conditions joined by AND; a key is `tx.height`, `tx.hash`, `tm.event` or an event
attribute `type.key`; operators =, <, <=, >, >=, CONTAINS, EXISTS. Operands are
'quoted strings' (no escapes: the text up to the next quote), unsigned numbers with
an optional fraction, TIME (RFC 3339, whole seconds) or DATE (yyyy-mm-dd) stamps,
their years within 1900-2999. The language is read token by token as CometBFT's
scanner and parser read it, and a query that does not parse is a QueryError in
their words ("offset 12: got string, wanted number, timestamp or datestamp"); where
the query ends too soon, their "offset 11: EOF" says what was missing too.

Matching is CometBFT's too: a number compares numerically with the number an
attribute value starts with ("100ucc" is 100; a value that starts with no digit
never matches), a TIME or DATE with a value that parses as one, a string only by
= (exact) or CONTAINS (substring); a condition holds if any value under its key
satisfies it.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from cloudchain.node.rpc.view import ChainReader

MAX_CONDITIONS = 16  # ours: CometBFT has only its 512-byte maximum query length
MAX_HEIGHTS_SCANNED = 10_000  # a query on tx.height alone may read this many blocks

_NS_PER_S = 1_000_000_000
_LEADING_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")  # CometBFT's extractNum ("8atom" -> 8)
_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})"
)
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_TIME_CHARS = frozenset("0123456789-T:+Z")
_DATE_CHARS = frozenset("0123456789-")

# The scanner's tokens, by the names CometBFT's errors give them.
TAG, STRING, NUMBER, TIME, DATE, AND = "tag", "string", "number", "timestamp", "datestamp", "AND"
INVALID = "invalid token"
_KEYWORDS = {"AND": AND, "CONTAINS": "CONTAINS", "EXISTS": "EXISTS"}
_OPERATORS = ("<=", ">=", "<", ">", "=", "CONTAINS", "EXISTS")  # the order of its errors
_OPERANDS = {
    "<": (NUMBER, TIME, DATE),
    "<=": (NUMBER, TIME, DATE),
    ">": (NUMBER, TIME, DATE),
    ">=": (NUMBER, TIME, DATE),
    "=": (NUMBER, TIME, DATE, STRING),
    "CONTAINS": (STRING,),
}


class QueryError(ValueError):
    """A query that does not parse, or asks too much."""


@dataclass(frozen=True)
class Stamp:
    """A TIME or DATE operand: nanoseconds since the epoch (a DATE is its midnight UTC)."""

    ns: int
    is_date: bool = False


@dataclass(frozen=True)
class Condition:
    key: str
    op: str
    value: str | Decimal | Stamp | None  # str: a quoted string; Decimal: a number

    def accepts(self, text: str) -> bool:
        """Whether an attribute value satisfies this condition."""
        if self.op == "EXISTS":
            return True
        if isinstance(self.value, str):
            return self.value in text if self.op == "CONTAINS" else text == self.value
        if isinstance(self.value, Stamp):
            parsed = parse_date(text) if self.value.is_date else parse_time(text)
            return parsed is not None and _compare(self.op, parsed, self.value.ns)
        assert isinstance(self.value, Decimal)
        number = parse_number(text)
        return number is not None and _compare(self.op, number, self.value)


def _compare(op: str, left: Decimal | int, right: Decimal | int) -> bool:
    if op == "=":
        return left == right
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    return left >= right


def parse_number(text: str) -> Decimal | None:
    """An attribute value as CometBFT compares it with a number: the decimal number it
    starts with, or None if it starts with none (a sign included: "-5" is None)."""
    match = _LEADING_NUMBER.match(text)
    return None if match is None else Decimal(match.group())


def parse_time(text: str) -> int | None:
    """RFC 3339 (Go's time.RFC3339, fractional seconds allowed) -> ns, or None."""
    match = _TIME.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    offset = 0 if zone == "Z" else int(zone[0] + "1") * (int(zone[1:3]) * 60 + int(zone[4:]))
    try:
        stamp = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            tzinfo=timezone(timedelta(minutes=offset)),
        )
    except ValueError:
        return None
    nanos = int((fraction or "0")[:9].ljust(9, "0"))
    return calendar.timegm(stamp.utctimetuple()) * _NS_PER_S + nanos


def parse_date(text: str) -> int | None:
    """yyyy-mm-dd -> ns at its midnight UTC, or None."""
    match = _DATE.fullmatch(text)
    if match is None:
        return None
    try:
        day = date(*(int(part) for part in match.groups()))
    except ValueError:
        return None
    return calendar.timegm(day.timetuple()) * _NS_PER_S


# --- reading a query, as CometBFT's syntax package does -------------------------------------


class _Scanner:
    """One token at a time; `pos` is the token's offset in bytes of UTF-8, as Go's."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._at = 0  # the next character
        self.pos = 0
        self.token = INVALID
        self.value = ""

    def _offset(self, at: int) -> int:
        # A lone surrogate (JSON's "\\udcff" reaches here as one) counts three bytes,
        # as the U+FFFD that Go's encoding/json makes of it.
        return len(self._text[:at].encode(errors="surrogatepass"))

    def next(self) -> str | None:
        """Advance; returns None, "EOF" at the end of the input, or an error's text."""
        text = self._text
        self.token, self.value = INVALID, ""
        while self._at < len(text) and text[self._at].isspace():
            self._at += 1
        self.pos = self._offset(self._at)
        if self._at == len(text):
            return "EOF"
        first = text[self._at]
        self._at += 1
        if "0" <= first <= "9":
            return self._number(first)
        if first == "_" or first.isalpha() or first.isdecimal():
            return self._tag_like(first)
        if first == "'":
            end = text.find("'", self._at)
            if end < 0:
                self._at = len(text)
                return "EOF"
            self.token, self.value, self._at = STRING, text[self._at : end], end + 1
            return None
        if first in "<>=":
            if first != "=" and text[self._at : self._at + 1] == "=":
                self._at += 1
                first += "="
            self.token = self.value = first
            return None
        return f"invalid input {first} at offset {self._offset(self._at)}"

    def _take(self, allowed: frozenset[str] | None) -> str:
        start = self._at
        text = self._text
        while self._at < len(text) and (
            text[self._at] in allowed if allowed is not None else _is_tag_char(text[self._at])
        ):
            self._at += 1
        return text[start : self._at]

    def _number(self, first: str) -> str | None:
        number = first + self._take(frozenset("0123456789"))
        if self._text[self._at : self._at + 1] == ".":
            self._at += 1
            number += "." + self._take(frozenset("0123456789"))
        self.token, self.value = NUMBER, number
        return None

    def _tag_like(self, first: str) -> str | None:
        word = first + self._take(None)
        spaced = self._text[self._at : self._at + 1] == " "
        if word in ("TIME", "DATE") and spaced:
            self._at += 1
            return self._stamp(word)
        self.token, self.value = _KEYWORDS.get(word, TAG), word
        return None

    def _stamp(self, word: str) -> str | None:
        is_date = word == "DATE"
        text = self._take(_DATE_CHARS if is_date else _TIME_CHARS)
        ns = parse_date(text) if is_date else parse_time(text)
        label = "DATE" if is_date else "TIME"
        if ns is None:
            layout = "2006-01-02" if is_date else "2006-01-02T15:04:05Z07:00"
            return f'invalid {label} value: parsing time "{text}" as "{layout}"'
        year = int(text[:4])
        if not 1900 <= year <= 2999:
            return f"{'datestamp' if is_date else 'timestamp'} year {year} out of range"
        self.token, self.value = (DATE if is_date else TIME), text
        return None


def _is_tag_char(char: str) -> bool:
    return char in "._-" or char.isalpha() or char.isdecimal()


def _token_name(token: str) -> str:
    if token in (TAG, STRING, NUMBER, TIME, DATE, INVALID):
        return token
    return f"{token} operator"


def _wanted(tokens: Sequence[str]) -> str:
    names = [_token_name(t) for t in tokens]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def parse(query: str) -> list[Condition]:
    if not isinstance(query, str):
        raise QueryError("query must be a string")
    scanner = _Scanner(query)
    conditions = [_condition(scanner)]
    while scanner.next() != "EOF":  # another error leaves an invalid token: not AND
        if scanner.token != AND:
            raise QueryError(
                f"offset {scanner.pos}: got {_token_name(scanner.token)}, want {_token_name(AND)}"
            )
        conditions.append(_condition(scanner))
        if len(conditions) > MAX_CONDITIONS:
            raise QueryError(f"at most {MAX_CONDITIONS} conditions")
    return conditions


def _require(scanner: _Scanner, *tokens: str, missing: str) -> None:
    failure = scanner.next()
    if failure == "EOF":
        raise QueryError(f"offset {scanner.pos}: EOF ({missing})")
    if failure is not None:
        raise QueryError(f"offset {scanner.pos}: {failure}")
    if scanner.token not in tokens:
        raise QueryError(
            f"offset {scanner.pos}: got {_token_name(scanner.token)}, wanted {_wanted(tokens)}"
        )


def _condition(scanner: _Scanner) -> Condition:
    _require(scanner, TAG, missing="a condition needs a key")
    key = scanner.value
    _require(scanner, *_OPERATORS, missing=f"{key} needs an operator")
    op = scanner.token
    if op == "EXISTS":
        return Condition(key, op, None)
    _require(scanner, *_OPERANDS[op], missing=f"{op} needs an operand")
    kind, text = scanner.token, scanner.value
    if kind == STRING:
        return Condition(key, op, text)
    if kind == NUMBER:
        return Condition(key, op, Decimal(text))
    ns = parse_date(text) if kind == DATE else parse_time(text)
    assert ns is not None  # the scanner checked it
    return Condition(key, op, Stamp(ns, kind == DATE))


def matches(conditions: Sequence[Condition], tags: Mapping[str, Sequence[str]]) -> bool:
    """Whether an event with these tags (composite key -> values) satisfies every
    condition: as in CometBFT, a condition holds if any value under its key does."""
    return all(any(c.accepts(value) for value in tags.get(c.key, ())) for c in conditions)


# --- tx_search over the chain store's index -------------------------------------------------


def search(store: ChainReader, conditions: list[Condition]) -> list[tuple[int, int]]:
    """(height, index) of every transaction matching all conditions, ascending."""
    found: set[tuple[int, int]] | None = None
    heights = [c for c in conditions if c.key == "tx.height"]
    for condition in conditions:
        if condition.key in ("tm.event", "tx.height"):
            continue  # every indexed transaction is a Tx event; heights filter below
        if condition.key == "tx.hash":
            matches = _by_hash(store, condition)
        else:
            value = (
                condition.value
                if condition.op == "=" and isinstance(condition.value, str)
                else None
            )
            matches = {
                where
                for text, where in store.txs_with_event(condition.key, value)
                if condition.accepts(text)
            }
        found = matches if found is None else found & matches
    if found is None:
        found = _by_heights(store, heights)
    return sorted(w for w in found if all(c.accepts(str(w[0])) for c in heights))


def _by_hash(store: ChainReader, condition: Condition) -> set[tuple[int, int]]:
    if condition.op != "=" or not isinstance(condition.value, str):
        raise QueryError("tx.hash supports only = 'HEX'")
    try:
        location = store.tx_location(bytes.fromhex(condition.value))
    except ValueError:
        raise QueryError("tx.hash must be hex") from None
    return set() if location is None else {location}


def _by_heights(store: ChainReader, heights: list[Condition]) -> set[tuple[int, int]]:
    """Every transaction in the heights the conditions on tx.height allow (they are
    checked one by one afterwards; here they only narrow the blocks read)."""
    low, high = 1, store.height
    for c in heights:
        bound = _height_bound(c)
        if bound is None:
            if c.op != "EXISTS" and c.op != "CONTAINS":
                return set()  # a TIME, DATE or non-numeric string: no height satisfies it
            continue
        if c.op in ("=", ">="):
            low = max(low, int(bound.to_integral_value(ROUND_CEILING)))
        if c.op == ">":
            low = max(low, int(bound.to_integral_value(ROUND_FLOOR)) + 1)
        if c.op in ("=", "<="):
            high = min(high, int(bound.to_integral_value(ROUND_FLOOR)))
        if c.op == "<":
            high = min(high, int(bound.to_integral_value(ROUND_CEILING)) - 1)
    if high - low + 1 > MAX_HEIGHTS_SCANNED:
        raise QueryError(
            f"query spans more than {MAX_HEIGHTS_SCANNED} heights; narrow it "
            "with tx.height or an event condition"
        )
    found = set()
    for height in range(low, high + 1):
        results = store.block_results(height)
        if results is not None:
            found.update((height, r.index) for r in results.tx_results)
    return found


def _height_bound(condition: Condition) -> Decimal | None:
    value = condition.value
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str) and condition.op == "=" and value.isascii() and value.isdigit():
        return Decimal(value)  # tx.height = '5' holds where the text is exactly "5"
    return None
