"""Inputs to the consensus core (events) and its outputs (effects).

The node feeds events to `Consensus.handle(event, now_ns)` and executes the
effects it gets back, in order. `now_ns` is the node's clock reading, passed in
like any other input (and written to the WAL with the event), so a replay of
the same events gives the same effects, signatures included.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from cloudchain.consensus.messages import Message, Proposal, Vote
from cloudchain.ledger import Block, Commit


class Step(Enum):
    PROPOSE = 1
    PREVOTE = 2
    PRECOMMIT = 3
    COMMIT = 4  # decided; waiting for the commit timeout before the next height


class TimeoutKind(Enum):
    PROPOSE = "propose"
    PREVOTE = "prevote"
    PRECOMMIT = "precommit"
    COMMIT = "commit"


# --- events -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """Begin the current height (after construction or a replay)."""


@dataclass(frozen=True)
class MessageReceived:
    message: Message


@dataclass(frozen=True)
class TimeoutElapsed:
    height: int
    round: int
    kind: TimeoutKind


@dataclass(frozen=True)
class ProposalValue:
    """The application's block for a `RequestProposal`."""

    height: int
    round: int
    block: Block


@dataclass(frozen=True)
class BlockValidity:
    """The application's verdict on a `ValidateBlock` (the paper's valid(v))."""

    block_hash: bytes
    valid: bool


Event = Start | MessageReceived | TimeoutElapsed | ProposalValue | BlockValidity


# --- effects ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PersistSigned:
    """Durably record a message we signed. Must complete before the Broadcast after it."""

    message: Message


@dataclass(frozen=True)
class Broadcast:
    message: Message


@dataclass(frozen=True)
class ScheduleTimeout:
    height: int
    round: int
    kind: TimeoutKind
    duration_ms: int


@dataclass(frozen=True)
class RequestProposal:
    """Ask the application for a block to propose (the paper's getValue())."""

    height: int
    round: int


@dataclass(frozen=True)
class ValidateBlock:
    """Ask whether `block` is valid (the paper's valid(v)): answer with BlockValidity."""

    block: Block


@dataclass(frozen=True)
class Decide:
    """`block` is final at `height`, proven by `commit` (+2/3 precommits)."""

    height: int
    block: Block
    commit: Commit
    proposal: Proposal  # the signed proposal of the deciding round, for lagging peers


@dataclass(frozen=True)
class EvidenceFound:
    """A validator signed two conflicting votes for the same height, round and type."""

    first: Vote
    second: Vote


Effect = (
    PersistSigned
    | Broadcast
    | ScheduleTimeout
    | RequestProposal
    | ValidateBlock
    | Decide
    | EvidenceFound
)
