"""Consensus cores that each break one locking rule of Algorithm 1, for the tests only.

Buchman, Kwon and Milosevic, "The latest gossip on BFT consensus" (2018). Each
class below is the real `Consensus` with one `upon` step overridden to drop one
condition of the paper; tests/test_consensus_locking.py shows that the simulator
finds the safety violation each one allows. Nothing here may run in a node.
"""

from __future__ import annotations

from cloudchain.consensus.events import Step
from cloudchain.consensus.messages import NIL, VoteType
from cloudchain.consensus.state_machine import Consensus


class _LockIgnoringPrevotes(Consensus):
    """`_upon_line_22_and_28` as in the core, with the lock checks as flags."""

    checks_lock_on_fresh_proposals = True  # line 23: lockedRound = -1 or lockedValue = v
    checks_lock_on_reproposals = True  # line 29: lockedRound <= vr or lockedValue = v

    def _upon_line_22_and_28(self) -> bool:
        if self.step is not Step.PROPOSE:
            return False
        for proposal in self._proposals.get(self.round, {}).values():
            valid = self._validity.get(proposal.block_hash)
            if valid is None:
                continue
            v, vr = proposal.block, proposal.pol_round
            if vr == -1:
                ok = valid and (
                    not self.checks_lock_on_fresh_proposals
                    or self.locked_round == -1
                    or self._is_locked_on(v)
                )
            elif vr < self.round and self._has_polka(vr, v.hash):
                ok = valid and (
                    not self.checks_lock_on_reproposals
                    or self.locked_round <= vr
                    or self._is_locked_on(v)
                )
            else:
                continue
            self._vote(VoteType.PREVOTE, v.hash if ok else NIL)
            self.step = Step.PREVOTE
            return True
        return False


class PrevotesFreshProposalsDespiteLock(_LockIgnoringPrevotes):
    """Line 22 weakened: a fresh proposal (validRound -1) gets our prevote even while
    we are locked on another value."""

    checks_lock_on_fresh_proposals = False


class PrevotesReproposalsDespiteLock(_LockIgnoringPrevotes):
    """Line 28 weakened: a re-proposal with a polka in validRound gets our prevote even
    while we are locked on another value in a round after validRound."""

    checks_lock_on_reproposals = False


class PrecommitsWithoutLocking(Consensus):
    """Line 36 weakened: precommit a polka's value (and take it as valid) without
    locking on it (lines 38-39 dropped)."""

    def _upon_line_36(self) -> bool:
        if self.step not in (Step.PREVOTE, Step.PRECOMMIT) or self.round in self._line_36_rounds:
            return False
        for proposal in self._proposals.get(self.round, {}).values():
            v = proposal.block
            if self._validity.get(v.hash) and self._has_polka(self.round, v.hash):
                self._line_36_rounds.add(self.round)
                if self.step is Step.PREVOTE:
                    self._vote(VoteType.PRECOMMIT, v.hash)
                    self.step = Step.PRECOMMIT
                self.valid_value = v
                self.valid_round = self.round
                return True
        return False


class DecidesOnOneThird(Consensus):
    """Line 49 weakened: decide on precommits from +1/3 of the power, not +2/3."""

    def _upon_line_49(self) -> bool:
        if self.decision is not None:
            return False
        for round_, held in sorted(self._proposals.items()):
            for proposal in held.values():
                v = proposal.block
                power = self._votes.power_for(round_, VoteType.PRECOMMIT, v.hash)
                if self.validator_set.has_one_third(power) and self._validity.get(v.hash):
                    self._decide(round_, proposal)
                    return True
        return False
