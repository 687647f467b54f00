"""The votes of one height, by round and type, tallied in voting power.

One vote per validator per (round, type) is counted; a second, different vote
from the same validator for the same (round, type) is equivocation: it is
returned as evidence and not counted, unless it arrives inside a verified
commit certificate (see `add`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from cloudchain.consensus.messages import Vote, VoteType


@dataclass
class _Tally:
    votes: dict[bytes, Vote] = field(default_factory=dict)  # first vote, by validator
    # Votes counted for a block: the first votes, plus the votes of a verified
    # commit certificate (which may be an equivocator's second vote).
    by_block: dict[bytes, dict[bytes, Vote]] = field(default_factory=lambda: defaultdict(dict))
    conflicted: set[bytes] = field(default_factory=set)  # validators caught equivocating
    power_any: int = 0


class HeightVotes:
    def __init__(self, height: int, powers: dict[bytes, int]) -> None:
        self.height = height
        self._powers = powers
        self._tallies: dict[tuple[int, VoteType], _Tally] = defaultdict(_Tally)
        # Who said anything (proposal or vote) in each round: for round skipping.
        self._senders: dict[int, set[bytes]] = defaultdict(set)

    def add(self, vote: Vote, countable: bool = False) -> tuple[bool, Vote | None]:
        """Count `vote`. Returns (added, the conflicting earlier vote if this equivocates).

        A validator's first vote at a (round, type) counts. A conflicting later one
        counts for its own block only if `countable` (the caller checked that its
        block is nil or a proposed block, which bounds what an equivocator can make
        us store). Counting it is safe: two +2/3 quorums for different blocks share
        more than a third of the power, hence an honest validator, who never votes
        twice. And it is needed: a polka that includes an equivocator's vote must be
        seen by every honest validator, whichever of its votes reached them first.
        Each validator still counts once towards "+2/3 of anything".
        """
        assert vote.height == self.height and vote.validator_address in self._powers
        address = vote.validator_address
        tally = self._tallies[(vote.round, vote.type)]
        earlier = tally.votes.get(address)
        if earlier is None:
            tally.votes[address] = vote
            tally.by_block[vote.block_hash][address] = vote
            tally.power_any += self._powers[address]
            self.note_sender(vote.round, address)
            return True, None
        if earlier.block_hash == vote.block_hash:
            return False, None  # a duplicate (or the same vote with another timestamp)
        tally.conflicted.add(address)
        if countable and address not in tally.by_block[vote.block_hash]:
            tally.by_block[vote.block_hash][address] = vote
            return True, earlier
        return False, earlier

    def has(self, vote: Vote) -> bool:
        """True if this exact vote (signature included) is already counted."""
        tally = self._tallies.get((vote.round, vote.type))
        return (
            tally is not None
            and tally.by_block.get(vote.block_hash, {}).get(vote.validator_address) == vote
        )

    def is_conflicted(self, vote: Vote) -> bool:
        """True if the vote's validator was already caught equivocating at this round and type."""
        tally = self._tallies.get((vote.round, vote.type))
        return tally is not None and vote.validator_address in tally.conflicted

    def votes_in(self, round_: int) -> list[Vote]:
        """Every counted vote of a round (prevotes, then precommits), for gossip."""
        found = []
        for vote_type in (VoteType.PREVOTE, VoteType.PRECOMMIT):
            tally = self._tallies.get((round_, vote_type))
            if tally is not None:
                for by_validator in tally.by_block.values():
                    found.extend(by_validator.values())
        return found

    def note_sender(self, round_: int, address: bytes) -> None:
        self._senders[round_].add(address)

    def power_for(self, round_: int, vote_type: VoteType, block_hash: bytes) -> int:
        tally = self._tallies.get((round_, vote_type))
        if tally is None:
            return 0
        return sum(self._powers[a] for a in tally.by_block.get(block_hash, {}))

    def power_any(self, round_: int, vote_type: VoteType) -> int:
        tally = self._tallies.get((round_, vote_type))
        return 0 if tally is None else tally.power_any

    def blocks_with_power(self, round_: int, vote_type: VoteType) -> dict[bytes, int]:
        tally = self._tallies.get((round_, vote_type))
        if tally is None:
            return {}
        return {h: self.power_for(round_, vote_type, h) for h in tally.by_block}

    def votes_for(self, round_: int, vote_type: VoteType, block_hash: bytes) -> list[Vote]:
        tally = self._tallies.get((round_, vote_type))
        return [] if tally is None else list(tally.by_block.get(block_hash, {}).values())

    def sender_power(self, round_: int) -> int:
        return sum(self._powers[a] for a in self._senders.get(round_, ()))

    def rounds(self) -> list[int]:
        """Rounds in which anything was heard, ascending."""
        return sorted(self._senders)
