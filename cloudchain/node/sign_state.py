"""The validator's last signature, kept apart from the WAL: what stops a double sign
when the WAL is damaged.

The WAL (node/consensus_wal.py) already records every message the node signs, fsynced
before it is sent, and the core refuses to sign anything conflicting with what it reads
back. But a WAL whose tail was cut or corrupted after a crash loses those records, and a
node that replayed what was left would sign again at a height and round it had signed
at: the data loss Jepsen found in Tendermint's WAL in 2017. CometBFT's answer, taken
here, is a second, tiny record in its own file, `data/priv_validator_state.json`,
replaced atomically after every signature: the slot (height, round, step) last signed,
and, for a vote, the vote itself (a few hundred bytes), so that it can be sent again.

On a restart the core is told both (`ConsensusDriver`'s `sign_floor`): it re-sends that
vote if asked to vote there again, and signs nothing below that slot; a proposal of that
slot whose block is lost is not proposed again (its round times out, the next round
proposes). A file that exists but does not read back is refused with a clear message:
starting without it could sign twice.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudchain import codec
from cloudchain.consensus.messages import Proposal, Vote
from cloudchain.consensus.state_machine import NOTHING_SIGNED, SignSlot, sign_slot
from cloudchain.fsutil import replace_file
from cloudchain.ledger import MalformedError

FILE_NAME = "priv_validator_state.json"
STEPS = ("proposal", "prevote", "precommit")  # by _KIND_ORDER; the file names the step


class SignStateError(RuntimeError):
    """The sign state file exists but cannot be read: the node must not start."""


@dataclass(frozen=True)
class LastSigned:
    """The slot of the last signature, and the vote signed there (None for a proposal)."""

    slot: SignSlot
    vote: Vote | None = None

    def to_json(self) -> str:
        height, round_, step = self.slot
        document: dict[str, Any] = {"height": height, "round": round_, "step": STEPS[step]}
        if self.vote is not None:
            raw = codec.encode(self.vote.to_obj())
            document["vote"] = base64.b64encode(raw).decode()
        return json.dumps(document, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> LastSigned:
        """Raises ValueError (MalformedError, CodecError, JSONDecodeError) on bad input."""
        document = json.loads(text)
        if not isinstance(document, dict):
            raise ValueError("not a JSON object")
        height, round_, step = document.get("height"), document.get("round"), document.get("step")
        if not isinstance(height, int) or not isinstance(round_, int) or height < 1 or round_ < 0:
            raise ValueError("height and round must be integers, height from 1")
        if step not in STEPS:
            raise ValueError(f"step must be one of {', '.join(STEPS)}")
        vote = None
        if "vote" in document:
            obj = codec.decode(base64.b64decode(document["vote"], validate=True))
            vote = Vote.from_obj(obj)
        slot = (height, round_, STEPS.index(step))
        if vote is not None and sign_slot(vote) != slot:
            raise ValueError("the vote is not of the slot the file names")
        return cls(slot, vote)


class SignState:
    """`data/priv_validator_state.json`: read once at start, replaced after each signature."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.last: LastSigned | None = _read(path)

    def record(self, message: Proposal | Vote) -> None:
        """Remember a signature before the message is sent (atomic and durable)."""
        slot = sign_slot(message)
        if self.last is not None and slot <= self.last.slot:
            return  # the same message sent again (the core never signs below its last)
        self.last = LastSigned(slot, message if isinstance(message, Vote) else None)
        replace_file(self.path, self.last.to_json())

    def floor(self, height: int) -> tuple[list[Vote], SignSlot]:
        """For a core entering `height`: the vote to send again if asked for it, and the
        lowest slot it may still sign at (NOTHING_SIGNED if the state is below `height`)."""
        if self.last is None or self.last.slot[0] < height:
            return [], NOTHING_SIGNED
        height_, round_, step = self.last.slot
        if self.last.vote is not None:
            return [self.last.vote], self.last.slot  # the vote itself is re-sent there
        return [], (height_, round_, step + 1)  # a proposal it cannot send again


def _read(path: Path) -> LastSigned | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise SignStateError(f"cannot read {path}: {exc}") from None
    try:
        return LastSigned.from_json(text)
    except (ValueError, MalformedError) as exc:
        raise SignStateError(
            f"{path} is damaged ({exc}); refusing to start, as signing without it could "
            "sign twice. Restore it, or, if this validator has certainly not signed at "
            "a later height than the chain's, remove it"
        ) from None
