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
from cloudchain.consensus.messages import Decision, Message, message_from_obj
from cloudchain.ledger import Block, MalformedError


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
    kind = obj["type"]
    if kind == "start":
        return Start()
    if kind == "message":
        return MessageReceived(message_from_obj(obj["message"]))
    if kind == "timeout":
        return TimeoutElapsed(obj["height"], obj["round"], TimeoutKind(obj["timeout"]))
    if kind == "proposal_value":
        return ProposalValue(obj["height"], obj["round"], Block.from_bytes(obj["block"]))
    if kind == "validity":
        return BlockValidity(obj["block_hash"], obj["valid"])
    raise MalformedError(f"WAL: unknown event type {kind!r}")


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
    """(kind, payload, now_ns) of a WAL record; now_ns is 0 for signed messages."""
    if obj["kind"] == "event":
        return "event", event_from_obj(obj["event"]), obj["now_ns"]
    if obj["kind"] == "signed":
        return "signed", message_from_obj(obj["message"]), 0
    if obj["kind"] == "decided":
        return "decided", Decision.from_obj(obj["decision"]), 0
    raise MalformedError(f"WAL: unknown record kind {obj['kind']!r}")
