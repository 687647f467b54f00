"""What the consensus WAL holds, as canonical values (the bytes are storage/wal.py's job).

Two kinds of record, both written by the node before it acts:

    {"kind": "event", "event": <event>, "now_ns": int}   every input, before it is handled
    {"kind": "signed", "message": <proposal or vote>}     every message we sign, fsynced
                                                          before it is broadcast
    {"kind": "decided", "decision": <decision>}           the last committed height's
                                                          proposal and commit, needed to
                                                          propose the next block

After a height is committed, the WAL is rewritten to the records of later heights
(`keep_after_commit`). Recovery: build the core at the height after the
application's last block,
hand it the signed messages of that height (so it never signs anything that
conflicts with them), and replay the event records in order. The core is a
function of its inputs, so the replay rebuilds its locks, valid value and round;
a crash between any two effects loses nothing that was acted on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloudchain.consensus.events import (
    BlockValidity,
    Event,
    MessageReceived,
    ProposalValue,
    Start,
    TimeoutElapsed,
    TimeoutKind,
)
from cloudchain.consensus.messages import MAX_ROUND, Decision, Message, message_from_obj
from cloudchain.ledger import (
    HASH_BYTES,
    INT64_MAX,
    Block,
    MalformedError,
    _bytes,
    _fields,
    _int,
)


def event_record(event: Event, now_ns: int) -> dict[str, Any]:
    return {"kind": "event", "event": event_to_obj(event), "now_ns": now_ns}


def signed_record(message: Message) -> dict[str, Any]:
    return {"kind": "signed", "message": message.to_obj()}


def decided_record(decision: Decision) -> dict[str, Any]:
    return {"kind": "decided", "decision": decision.to_obj()}


def event_to_obj(event: Event) -> dict[str, Any]:
    if isinstance(event, Start):
        return {"type": "start"}
    if isinstance(event, MessageReceived):
        return {"type": "message", "message": event.message.to_obj()}
    if isinstance(event, TimeoutElapsed):
        return {
            "type": "timeout",
            "height": event.height,
            "round": event.round,
            "timeout": event.kind.value,
        }
    if isinstance(event, ProposalValue):
        return {
            "type": "proposal_value",
            "height": event.height,
            "round": event.round,
            "block": event.block.to_bytes(),
        }
    if isinstance(event, BlockValidity):
        return {"type": "validity", "block_hash": event.block_hash, "valid": event.valid}
    raise TypeError(f"unknown event {event!r}")


def event_from_obj(obj: Any) -> Event:
    """The event of a WAL record; MalformedError for anything `event_to_obj` would not
    have written (a record that passed its CRC but was damaged or written by a bug)."""
    kind = obj.get("type") if isinstance(obj, Mapping) else None
    if kind == "start":
        _fields(obj, "WAL event", ("type",))
        return Start()
    if kind == "message":
        f = _fields(obj, "WAL event", ("type", "message"))
        return MessageReceived(message_from_obj(f["message"]))
    if kind == "timeout":
        f = _fields(obj, "WAL event", ("type", "height", "round", "timeout"))
        try:
            timeout = TimeoutKind(f["timeout"])
        except ValueError:
            raise MalformedError(f"WAL event: unknown timeout {f['timeout']!r}") from None
        return TimeoutElapsed(_height(f["height"]), _round(f["round"]), timeout)
    if kind == "proposal_value":
        f = _fields(obj, "WAL event", ("type", "height", "round", "block"))
        block = Block.from_bytes(f["block"])
        return ProposalValue(_height(f["height"]), _round(f["round"]), block)
    if kind == "validity":
        f = _fields(obj, "WAL event", ("type", "block_hash", "valid"))
        if not isinstance(f["valid"], bool):
            raise MalformedError("WAL event.valid: expected a bool")
        return BlockValidity(
            _bytes(f["block_hash"], "WAL event.block_hash", (HASH_BYTES,)), f["valid"]
        )
    raise MalformedError(f"WAL: unknown event type {kind!r}")


def _height(value: Any) -> int:
    return _int(value, "WAL event.height", 1, INT64_MAX)


def _round(value: Any) -> int:
    return _int(value, "WAL event.round", 0, MAX_ROUND)


def record_height(kind: str, payload: Event | Message) -> int | None:
    """The height a WAL record belongs to (None: Start and validity verdicts, which
    belong to whatever height is current)."""
    if kind in ("signed", "decided"):
        return payload.height  # type: ignore[union-attr]
    if isinstance(payload, MessageReceived):
        return payload.message.height
    if isinstance(payload, TimeoutElapsed | ProposalValue):
        return payload.height
    return None


def keep_after_commit(kind: str, payload: Event | Message, committed_height: int) -> bool:
    """Whether a record must survive the WAL rewrite after `committed_height` is committed.

    Everything about later heights stays: not only what we signed, but also the
    events (messages buffered for the next height) a replay needs to rebuild the
    locks they led to.
    """
    height = record_height(kind, payload)
    return height is not None and height > committed_height


def decode_record(obj: Any) -> tuple[str, Event | Message, int]:
    """(kind, payload, now_ns) of a WAL record; now_ns is 0 for signed messages.
    MalformedError for anything the record functions above would not have written."""
    kind = obj.get("kind") if isinstance(obj, Mapping) else None
    if kind == "event":
        f = _fields(obj, "WAL record", ("kind", "event", "now_ns"))
        now_ns = _int(f["now_ns"], "WAL record.now_ns", 0, INT64_MAX)
        return "event", event_from_obj(f["event"]), now_ns
    if kind == "signed":
        f = _fields(obj, "WAL record", ("kind", "message"))
        return "signed", message_from_obj(f["message"]), 0
    if kind == "decided":
        f = _fields(obj, "WAL record", ("kind", "decision"))
        return "decided", Decision.from_obj(f["decision"]), 0
    raise MalformedError(f"WAL: unknown record kind {kind!r}")
