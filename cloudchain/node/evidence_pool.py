"""The node's evidence pool: double votes seen, waiting to be committed in a block.

Evidence comes from two places. The consensus core reports two conflicting votes
it verified (EvidenceFound); they wait in `found` until this node has committed
their height, since a piece of evidence is dated by the time of the block at that
height (CometBFT buffers them the same way, until its next Update). Peers and
clients send finished evidence (the "evidence" channel, `broadcast_evidence`),
which the application checks before it is kept (Application.evidence_error).

Pending evidence is offered to every block this node proposes, oldest height first,
until a block commits it or it expires; `update` drops both after each commit. No
I/O here: the node (runtime.py) gossips what `add` and `update` return as new.
Everything is bounded: a Byzantine validator can equivocate at every round, and a
peer can send evidence as fast as it likes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cloudchain.consensus.messages import Vote
from cloudchain.ledger import Block, DuplicateVoteEvidence, EvidenceVote


class EvidenceRefused(ValueError):
    """A client's evidence that may not be committed; the message says why."""


MAX_PENDING = 256  # verified pieces waiting for a block: four blocks' worth
MAX_FOUND = 256  # conflicting vote pairs waiting for their height's block


@dataclass(frozen=True)
class FoundVotes:
    """Two conflicting votes the consensus core verified, not yet dated."""

    first: Vote
    second: Vote

    @property
    def height(self) -> int:
        return self.first.height


def evidence_vote(vote: Vote) -> EvidenceVote:
    return EvidenceVote(
        vote.type.label,
        vote.height,
        vote.round,
        vote.block_hash,
        vote.timestamp_ns,
        vote.validator_address,
        vote.signature,
    )


class EvidencePool:
    def __init__(self, powers: dict[bytes, int]) -> None:
        self._powers = powers
        self._total = sum(powers.values())
        self._found: list[FoundVotes] = []
        self._pending: dict[bytes, DuplicateVoteEvidence] = {}  # by hash

    def __len__(self) -> int:
        return len(self._pending)

    def pending(self) -> list[DuplicateVoteEvidence]:
        """What a proposal may carry, oldest height first (then by hash: deterministic)."""
        return sorted(self._pending.values(), key=lambda e: (e.height, e.hash))

    def found(self, first: Vote, second: Vote) -> None:
        """The core caught a validator voting twice; dated at `update` of its height."""
        if len(self._found) < MAX_FOUND and first.validator_address in self._powers:
            self._found.append(FoundVotes(first, second))

    def add(self, evidence: DuplicateVoteEvidence, error: str) -> bool:
        """Keep `evidence` if the application found no `error` in it and it is new and
        there is room; whether it was kept (then it is worth gossiping)."""
        if error or evidence.hash in self._pending or len(self._pending) >= MAX_PENDING:
            return False
        self._pending[evidence.hash] = evidence
        return True

    def update(
        self,
        committed: Block,
        block_time: Callable[[int], int | None],
        check: Callable[[DuplicateVoteEvidence], str],
    ) -> list[DuplicateVoteEvidence]:
        """After `committed`: date the found votes of committed heights (`block_time` of
        a height, None if unknown), drop what was committed or is no longer valid
        (`check` says why not, '' if valid); the evidence that became pending."""
        for evidence in committed.evidence:
            self._pending.pop(evidence.hash, None)
        for key, evidence in list(self._pending.items()):
            if check(evidence):
                del self._pending[key]
        ready = [f for f in self._found if f.height <= committed.height]
        self._found = [f for f in self._found if f.height > committed.height]
        new = []
        for pair in ready:
            time_ns = block_time(pair.height)
            if time_ns is None:
                continue
            power = self._powers[pair.first.validator_address]
            evidence = DuplicateVoteEvidence.of(
                evidence_vote(pair.first), evidence_vote(pair.second), self._total, power, time_ns
            )
            if self.add(evidence, check(evidence)):
                new.append(evidence)
        return new
