"""What a handler sees: the execution context and buffered key-value views of state.

A handler gets a `Context` (sender, block height, block time, a key-value view
and an event emitter) and nothing else: no store, no clock, no randomness.
Its writes go to an `Overlay` that the application merges into the block's
changes only if the handler returns normally, which makes each transaction
atomic.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from cloudchain import codec
from cloudchain.chaincode.codes import Code, TxError
from cloudchain.ledger import MAX_EVENTS, DuplicateVoteEvidence, Event

MAX_KEY_BYTES = 512
# The application adds a "fee" and a "message" event to every successful transaction.
MAX_HANDLER_EVENTS = MAX_EVENTS - 2
MAX_VALUE_BYTES = 64 * 1024


class StateReader(Protocol):
    def get(self, key: bytes) -> bytes | None: ...

    def iterate(self, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]: ...


def read_value(state: StateReader, key: bytes, default: Any = None) -> Any:
    """The decoded value at `key` (state values are canonical msgpack), or `default`."""
    raw = state.get(key)
    return default if raw is None else codec.decode(raw)


class Overlay:
    """Writes buffered over a reader; reads see the buffered writes first."""

    def __init__(self, parent: StateReader) -> None:
        self._parent = parent
        self.writes: dict[bytes, bytes | None] = {}

    def get(self, key: bytes) -> bytes | None:
        if key in self.writes:
            return self.writes[key]
        return self._parent.get(key)

    def set(self, key: bytes, value: bytes) -> None:
        _check_key(key)
        if not isinstance(value, bytes):
            raise TypeError(f"state values are bytes, got {type(value).__name__}")
        if len(value) > MAX_VALUE_BYTES:
            raise ValueError(f"state value of {len(value)} bytes exceeds {MAX_VALUE_BYTES}")
        self.writes[key] = value

    def delete(self, key: bytes) -> None:
        _check_key(key)
        self.writes[key] = None

    def iterate(self, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """Live pairs under `prefix` in ascending key order, buffered writes included.

        Lazy: the parent's pairs are merged with the buffered writes (as they were
        when iteration began) one at a time, so a caller that stops early (a scan of
        an index up to a deadline) reads no further than it needs."""
        own = sorted((k, v) for k, v in self.writes.items() if k.startswith(prefix))
        mine = 0
        for key, value in self._parent.iterate(prefix):
            while mine < len(own) and own[mine][0] < key:
                if own[mine][1] is not None:
                    yield own[mine]  # type: ignore[misc]
                mine += 1
            if mine < len(own) and own[mine][0] == key:
                if own[mine][1] is not None:
                    yield own[mine]  # type: ignore[misc]
                mine += 1
                continue
            yield key, value
        for key, buffered in own[mine:]:
            if buffered is not None:
                yield key, buffered

    # Typed helpers: values in state are canonical msgpack.

    def get_value(self, key: bytes, default: Any = None) -> Any:
        return read_value(self, key, default)

    def set_value(self, key: bytes, value: Any) -> None:
        self.set(key, codec.encode(value))

    def merge_into(self, other: Overlay) -> None:
        other.writes.update(self.writes)


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or not key:
        raise TypeError("state keys are non-empty bytes")
    if len(key) > MAX_KEY_BYTES:
        raise ValueError(f"state key of {len(key)} bytes exceeds {MAX_KEY_BYTES}")


@dataclass
class EventLog:
    """Events emitted during one transaction (dropped if the transaction fails), or
    during a block's end-of-block work."""

    events: list[Event] = field(default_factory=list)
    limit: int = MAX_HANDLER_EVENTS

    def emit(self, type_: str, **attributes: object) -> None:
        if len(self.events) >= self.limit:
            raise TxError(Code.LIMIT_EXCEEDED, f"at most {self.limit} events may be emitted")
        attrs = tuple((k, _attribute_text(k, v)) for k, v in attributes.items())
        self.events.append(Event(type_, attrs))


def _attribute_text(key: str, value: object) -> str:
    """Event values as text; only types whose text is the same on every node."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[return-value]
    if kind is int:
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"event attribute {key}: {type(value).__name__} is not str, int, bool or bytes")


@dataclass(frozen=True)
class Context:
    """Everything a transaction handler may use."""

    sender: str  # address of the signer
    height: int
    time_ns: int  # block time from the header, nanoseconds since the epoch
    kv: Overlay
    _events: EventLog

    def emit(self, type_: str, **attributes: object) -> None:
        """Record an event, e.g. ctx.emit("transfer", recipient=addr, amount=5)."""
        self._events.emit(type_, **attributes)


@dataclass(frozen=True)
class BlockContext:
    """What a module's end-of-block work may use (ABCI's FinalizeBlock after the
    transactions): the height, the block time from the header, the block's state
    with every transaction applied, an emitter of block-level events, and the
    validators' misbehaviour the block commits (ABCI's `misbehavior`: evidence the
    application verified, chaincode/evidence.py)."""

    height: int
    time_ns: int
    kv: Overlay
    _events: EventLog
    misbehavior: tuple[DuplicateVoteEvidence, ...] = ()

    def emit(self, type_: str, **attributes: object) -> None:
        self._events.emit(type_, **attributes)
