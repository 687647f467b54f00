"""Algorithm 1 of Buchman, Kwon and Milosevic, "The latest gossip on BFT consensus" (2018).

Theory of operation. `Consensus` owns the state of one validator at one height
(round, step, lockedValue/lockedRound, validValue/validRound, the messages
heard) and has one entry point, `handle(event, now_ns) -> list[Effect]`. After
every event it re-evaluates the paper's `upon` rules until none fires; each
rule is a method named after the paper's line number (`_upon_line_22` ...), so
the code can be read against the paper line by line.

What it deliberately does not know: sockets, clocks, disks, the application.
Time arrives as `now_ns` with each event; the application is asked through
effects (RequestProposal, ValidateBlock) and answers with events
(ProposalValue, BlockValidity); durability is the node's job, which it must
do when told (PersistSigned before the Broadcast that follows it).

Where we differ from CometBFT, we follow the paper:
- no explicit unlock on a nil polka (CometBFT's "unlock"): the paper never
  unlocks; its line 29 (prevote a re-proposed value whose proof-of-lock round
  is at least our locked round) is what frees a locked validator;
- the proposer schedules the propose timeout too (the paper's line 19 does so
  only for others): an application that never answers RequestProposal must not
  stall the round. OnTimeoutPropose acts only while the step is still propose,
  so this changes nothing when the proposal goes out;
- proposer(h, r) is defined as the height's priorities stepped r times one at a
  time, whatever path of rounds this node took, so every node agrees on it.

Signatures are checked by a `SignatureVerifier` given to the constructor: by
default `verify_ed25519`, each proposal's and vote's own Ed25519 check. The
simulator's tests pass one that accepts anything, to show that the checks they
make catch a core that counts forged votes. A Decision's commit certificate is
checked as a whole by `verify_commit`, the function a light client runs.

Safety against double signing: every message this node signs is remembered per
(height, round, kind) and, through the PersistSigned effect, on disk. Asked to
sign again at the same (height, round, kind), it re-sends what it signed before
and never signs anything else; it never signs at a (height, round, kind) below
the last one it signed.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from cloudchain.consensus.events import (
    BlockValidity,
    Broadcast,
    Decide,
    Effect,
    Event,
    EvidenceFound,
    MessageReceived,
    PersistSigned,
    ProposalValue,
    RequestProposal,
    ScheduleTimeout,
    Start,
    Step,
    TimeoutElapsed,
    TimeoutKind,
    ValidateBlock,
)
from cloudchain.consensus.messages import NIL, Decision, Message, Proposal, Vote, VoteType
from cloudchain.consensus.validator_set import (
    CommitError,
    ProposerPriority,
    ValidatorSet,
    verify_commit,
)
from cloudchain.consensus.vote_set import HeightVotes
from cloudchain.crypto import PrivateKey
from cloudchain.ledger import Block, Commit, CommitSig, Validator

# Messages for rounds further ahead than this are dropped: a Byzantine validator
# must not make us store votes for 2^31 rounds.
MAX_ROUNDS_AHEAD = 64
# An honest proposer sends one proposal a round; an equivocating one two or more.
# Keeping two lets us follow whichever one +2/3 end up voting for.
MAX_PROPOSALS_PER_ROUND = 2
# Messages for the next height, kept until we get there: only validators' messages
# with good signatures, one per (signer, round, kind), bounded in count and bytes.
MAX_FUTURE_MESSAGES = 4 * 1024
MAX_FUTURE_BYTES = 64 * 1024 * 1024
# Evidence kept in memory for inspection; each piece also leaves as an effect.
MAX_EVIDENCE = 1_024

_KIND_ORDER = {"proposal": 0, VoteType.PREVOTE: 1, VoteType.PRECOMMIT: 2}
SignSlot = tuple[int, int, int]  # (height, round, _KIND_ORDER of what was signed)
NOTHING_SIGNED: SignSlot = (0, -1, -1)


def sign_slot(message: Proposal | Vote) -> SignSlot:
    """Where a signed proposal or vote stands in the order a validator signs in."""
    kind: object = "proposal" if isinstance(message, Proposal) else message.type
    return (message.height, message.round, _KIND_ORDER[kind])


@dataclass(frozen=True)
class TimeoutConfig:
    """Timeouts grow linearly with the round, so that after GST they outgrow the delay."""

    propose_ms: int = 3_000
    propose_delta_ms: int = 500
    prevote_ms: int = 1_000
    prevote_delta_ms: int = 500
    precommit_ms: int = 1_000
    precommit_delta_ms: int = 500
    commit_ms: int = 1_000  # wait after a decision before the next height

    def duration_ms(self, kind: TimeoutKind, round_: int) -> int:
        if kind is TimeoutKind.PROPOSE:
            return self.propose_ms + round_ * self.propose_delta_ms
        if kind is TimeoutKind.PREVOTE:
            return self.prevote_ms + round_ * self.prevote_delta_ms
        if kind is TimeoutKind.PRECOMMIT:
            return self.precommit_ms + round_ * self.precommit_delta_ms
        return self.commit_ms


class SignatureVerifier(Protocol):
    """Whether `message` carries a good signature by the holder of `public_key`."""

    def __call__(self, message: Proposal | Vote, public_key: bytes) -> bool: ...


def verify_ed25519(message: Proposal | Vote, public_key: bytes) -> bool:
    """The verifier of every node: the message's own Ed25519 signature check."""
    return message.verify(public_key)


class ConsensusFactory(Protocol):
    """What builds a validator's core: `Consensus` itself, or (in tests) a variant of it."""

    def __call__(
        self,
        chain_id: str,
        validators: Sequence[Validator],
        key: PrivateKey | None,
        config: TimeoutConfig,
        height: int,
        last_block_time_ns: int,
        signed: Sequence[Message] = (),
        *,
        sign_floor: SignSlot = NOTHING_SIGNED,
    ) -> Consensus: ...


class Consensus:
    def __init__(
        self,
        chain_id: str,
        validators: Sequence[Validator],
        key: PrivateKey | None,
        config: TimeoutConfig,
        height: int,
        last_block_time_ns: int,
        signed: Sequence[Message] = (),
        *,
        sign_floor: SignSlot = NOTHING_SIGNED,
        verifier: SignatureVerifier = verify_ed25519,
    ) -> None:
        """A validator (or, with key None, an observer) entering `height`.

        `signed` are the messages this node signed before a restart, read back
        from its write-ahead log; it will never sign anything conflicting with them.
        `sign_floor` is the lowest (height, round, kind order) it may still sign at: a
        slot it signed at whose message it no longer holds (the node's sign state,
        node/sign_state.py, remembers the slot when a damaged WAL lost the message).
        `verifier` checks the signature of every proposal and vote received.
        """
        self._verify = verifier
        self.chain_id = chain_id
        self.validator_set = ValidatorSet(tuple(validators))
        self._powers = dict(self.validator_set.powers)
        self._key = key
        self._address = None if key is None else bytes.fromhex(key.address)
        self.config = config
        self._signed: dict[tuple[int, int, object], Message] = {}
        self._last_signed: SignSlot = NOTHING_SIGNED
        self._sign_floor = sign_floor
        for message in signed:
            self._remember_signed(message)
        self._height_priorities = ProposerPriority(validators)
        for _ in range(height - 1):
            self._height_priorities.step()
        self.counters: dict[str, int] = defaultdict(int)
        self.evidence: deque[EvidenceFound] = deque(maxlen=MAX_EVIDENCE)
        self._future: dict[tuple[bytes, int, object], Message] = {}
        self._future_bytes = 0
        self._enter_height(height, last_block_time_ns)

    # --- state of one height ----------------------------------------------------------

    def _enter_height(self, height: int, last_block_time_ns: int) -> None:
        # Line 2-5 (and line 53 for every later height).
        self.height = height
        self.round = 0
        self.step = Step.PROPOSE
        self.locked_value: Block | None = None
        self.locked_round = -1
        self.valid_value: Block | None = None
        self.valid_round = -1
        self.decision: Block | None = None
        self._decided_round: int | None = None
        self._catching_up = False  # a Decision message arrived for this height
        self._last_block_time_ns = last_block_time_ns
        self._votes = HeightVotes(height, self._powers)
        self._proposals: dict[int, dict[bytes, Proposal]] = defaultdict(dict)
        self._validity: dict[bytes, bool] = {}
        self._validation_requested: set[bytes] = set()
        self._awaiting_value: tuple[int, int] | None = None
        self._prevote_timeout_rounds: set[int] = set()
        self._precommit_timeout_rounds: set[int] = set()
        self._line_36_rounds: set[int] = set()
        self._proposers: list[Validator] = []
        self._far_rounds: dict[bytes, int] = {}  # validator -> highest round beyond the window
        self._proposer_walk = self._height_priorities.copy()
        self._started = False

    # --- the one entry point --------------------------------------------------------------

    def handle(self, event: Event, now_ns: int) -> list[Effect]:
        self._now_ns = now_ns
        self._effects: list[Effect] = []
        if isinstance(event, Start):
            if not self._started:
                self._start_round(0)
        elif isinstance(event, MessageReceived):
            self._on_message(event.message)
        elif isinstance(event, TimeoutElapsed):
            self._on_timeout(event)
        elif isinstance(event, ProposalValue):
            self._on_proposal_value(event)
        elif isinstance(event, BlockValidity):
            if event.block_hash in self._validation_requested:
                self._validity[event.block_hash] = event.valid
        else:  # pragma: no cover - the Event union is closed
            raise TypeError(f"unknown event {event!r}")
        self._evaluate()
        effects, self._effects = self._effects, []
        return effects

    # --- proposer selection ------------------------------------------------------------------

    def proposer(self, round_: int) -> Validator:
        """proposer(h_p, round): the height's priorities stepped `round` times."""
        while len(self._proposers) <= round_:
            if self._proposers:
                self._proposer_walk.step()
            self._proposers.append(self._proposer_walk.proposer())
        return self._proposers[round_]

    # --- StartRound (lines 11-21) ------------------------------------------------------------

    def _start_round(self, round_: int) -> None:
        self._started = True
        self.round = round_  # line 12
        self.step = Step.PROPOSE  # line 13
        if self._address is not None and self.proposer(round_).address == self._address:
            if self.valid_value is not None:  # line 15
                self._propose(self.valid_value, self.valid_round)
            else:
                earlier = self._signed.get((self.height, round_, "proposal"))
                if earlier is not None:  # signed before a restart: send the same again
                    self._send_signed(earlier)
                else:  # line 16: getValue()
                    self._awaiting_value = (self.height, round_)
                    self._effects.append(RequestProposal(self.height, round_))
        # Line 19 (for every validator; see the module docstring).
        self._schedule(TimeoutKind.PROPOSE, round_)

    def _on_proposal_value(self, event: ProposalValue) -> None:
        if self._awaiting_value != (event.height, event.round) or self.step is not Step.PROPOSE:
            return  # a late answer for a round we have left
        if event.height != self.height or event.round != self.round:
            return
        self._awaiting_value = None
        if event.block.height != self.height:
            self.counters["bad_proposal_value"] += 1
            return
        self._propose(event.block, -1)

    def _propose(self, block: Block, pol_round: int) -> None:
        # Line 17: broadcast <PROPOSAL, h_p, round_p, proposal, validRound_p>.
        self._validity[block.hash] = True  # our own value, or a valid value we hold
        self._validation_requested.add(block.hash)
        self._sign_and_send(
            (self.height, self.round, "proposal"),
            lambda key: Proposal.create(
                key, self.chain_id, self.height, self.round, pol_round, block, self._now_ns
            ),
        )

    # --- incoming messages ----------------------------------------------------------------

    def _on_message(self, message: Message) -> None:
        if message.chain_id != self.chain_id:
            self.counters["wrong_chain"] += 1
            return
        if message.height > self.height:
            self._buffer_future(message)
            return
        if message.height < self.height:
            self.counters["stale"] += 1
            return
        if isinstance(message, Decision):
            self._on_decision(message)  # it proves itself, whatever its round
            return
        if message.round > self.round + MAX_ROUNDS_AHEAD:
            self._note_far_round(message)
            return
        if isinstance(message, Vote):
            self._on_vote(message)
        else:
            self._on_proposal(message)

    def _buffer_future(self, message: Message) -> None:
        """Keep a validator's signed message for the next height, once, within bounds."""
        if message.height != self.height + 1 or isinstance(message, Decision):
            self.counters["future_dropped"] += 1
            return
        signer = _signer(message)
        validator = self.validator_set.get(signer)
        kind: object = message.type if isinstance(message, Vote) else "proposal"
        slot = (signer, message.round, kind)
        size = len(message.block.to_bytes()) if isinstance(message, Proposal) else 256
        if validator is None or slot in self._future:
            self.counters["future_dropped"] += 1
            return
        if len(self._future) >= MAX_FUTURE_MESSAGES or self._future_bytes + size > MAX_FUTURE_BYTES:
            self.counters["future_dropped"] += 1
            return
        if not self._verify(message, validator.public_key):
            self.counters["bad_signature"] += 1
            return
        self._future[slot] = message
        self._future_bytes += size

    def _note_far_round(self, message: Message) -> None:
        """A validator is more than MAX_ROUNDS_AHEAD rounds ahead: remember only the highest
        round each validator has shown us (bounded: one per validator), so that line 55
        can still take us there when +1/3 of the power is that far ahead."""
        signer = _signer(message)
        validator = self.validator_set.get(signer)
        if validator is None or message.round <= self._far_rounds.get(signer, -1):
            self.counters["too_far_ahead"] += 1
            return
        if not self._verify(message, validator.public_key):
            self.counters["bad_signature"] += 1
            return
        self._far_rounds[signer] = message.round

    def _on_vote(self, vote: Vote) -> None:
        validator = self.validator_set.get(vote.validator_address)
        if validator is None:
            self.counters["non_validator"] += 1
            return
        if self._votes.has(vote):
            return  # a duplicate: no need to verify it again
        conflicted = self._votes.is_conflicted(vote)
        countable = vote.is_nil or self._is_proposed(vote.round, vote.block_hash)
        if conflicted and not countable:
            self.counters["equivocation_ignored"] += 1
            return  # the evidence is in; a vote for no known block is not worth verifying
        if not self._verify(vote, validator.public_key):
            self.counters["bad_signature"] += 1
            return
        _, conflicting = self._votes.add(vote, countable=countable)
        if conflicting is not None and not conflicted:
            evidence = EvidenceFound(conflicting, vote)
            self.evidence.append(evidence)
            self._effects.append(evidence)
            self.counters["equivocation"] += 1

    def _on_decision(self, decision: Decision) -> None:
        """A lagging node's shortcut to line 49: a proposal and +2/3 precommits at once."""
        if self.decision is not None:
            return
        try:
            verify_commit(self.chain_id, self.validator_set, decision.commit, self.height)
        except CommitError:
            self.counters["bad_decision"] += 1
            return
        proposal = decision.proposal
        proposer = self.proposer(proposal.round)
        if proposal.proposer_address != proposer.address or not self._verify(
            proposal, proposer.public_key
        ):
            self.counters["bad_decision"] += 1
            return
        # The certificate is verified as a whole: its precommits count even where
        # an equivocator's other vote came first (vote_set.HeightVotes.add).
        self._proposals[proposal.round][proposal.block_hash] = proposal
        for vote in decision.precommits():
            self._votes.add(vote, countable=True)
        # Catching up: once this height is decided, go on at once, without the commit
        # timeout (whose purpose, gathering more precommits, is moot for a past height).
        self._catching_up = True
        if proposal.block_hash not in self._validation_requested:
            self._validation_requested.add(proposal.block_hash)
            self._effects.append(ValidateBlock(proposal.block))

    def _on_proposal(self, proposal: Proposal) -> None:
        proposer = self.proposer(proposal.round)
        if proposal.proposer_address != proposer.address:
            known = self.validator_set.get(proposal.proposer_address) is not None
            self.counters["wrong_proposer" if known else "non_validator"] += 1
            return
        held = self._proposals[proposal.round]
        if proposal.block_hash in held:
            return
        if len(held) >= MAX_PROPOSALS_PER_ROUND:
            self.counters["proposals_dropped"] += 1
            return
        if not self._verify(proposal, proposer.public_key):
            self.counters["bad_signature"] += 1
            return
        if held:
            self.counters["equivocating_proposer"] += 1
        held[proposal.block_hash] = proposal
        self._votes.note_sender(proposal.round, proposal.proposer_address)
        if proposal.block_hash not in self._validation_requested:
            self._validation_requested.add(proposal.block_hash)
            self._effects.append(ValidateBlock(proposal.block))

    # --- timeouts (lines 57-67) -----------------------------------------------------------------

    def _schedule(self, kind: TimeoutKind, round_: int) -> None:
        duration = self.config.duration_ms(kind, round_)
        self._effects.append(ScheduleTimeout(self.height, round_, kind, duration))

    def _on_timeout(self, timeout: TimeoutElapsed) -> None:
        if timeout.height != self.height:
            return  # stale: timeouts are values, and this one's height is gone
        if timeout.kind is TimeoutKind.COMMIT:
            if self.decision is not None:
                self._next_height()
            return
        if timeout.round != self.round:
            return
        if timeout.kind is TimeoutKind.PROPOSE and self.step is Step.PROPOSE:  # line 57
            self._vote(VoteType.PREVOTE, NIL)  # line 59
            self.step = Step.PREVOTE  # line 60
        elif timeout.kind is TimeoutKind.PREVOTE and self.step is Step.PREVOTE:  # line 61
            self._vote(VoteType.PRECOMMIT, NIL)  # line 63
            self.step = Step.PRECOMMIT  # line 64
        elif timeout.kind is TimeoutKind.PRECOMMIT and self.decision is None:  # line 65
            self._start_round(self.round + 1)  # line 67

    # --- the upon rules ---------------------------------------------------------------------

    def _evaluate(self) -> None:
        """Fire the paper's rules until none applies (each firing changes the state)."""
        if not self._started:
            return
        rules = (
            self._upon_line_49,
            self._upon_line_55,
            self._upon_line_22_and_28,
            self._upon_line_34,
            self._upon_line_36,
            self._upon_line_44,
            self._upon_line_47,
        )
        for _ in range(1_000):  # a bound: every firing advances step, round or a flag
            if self.step is Step.COMMIT or not any(rule() for rule in rules):
                return
        raise AssertionError("consensus rules did not settle")

    def _upon_line_22_and_28(self) -> bool:
        if self.step is not Step.PROPOSE:
            return False
        for proposal in self._proposals.get(self.round, {}).values():
            valid = self._validity.get(proposal.block_hash)
            if valid is None:
                continue  # valid(v) not known yet: wait for BlockValidity
            v, vr = proposal.block, proposal.pol_round
            if vr == -1:  # line 22
                # Line 23: valid(v) and (lockedRound = -1 or lockedValue = v).
                ok = valid and (self.locked_round == -1 or self._is_locked_on(v))
            elif vr < self.round and self._has_polka(vr, v.hash):  # line 28
                # Line 29: valid(v) and (lockedRound <= vr or lockedValue = v).
                ok = valid and (self.locked_round <= vr or self._is_locked_on(v))
            else:
                continue
            self._vote(VoteType.PREVOTE, v.hash if ok else NIL)  # lines 24/26, 30/32
            self.step = Step.PREVOTE  # lines 27, 33
            return True
        return False

    def _upon_line_34(self) -> bool:
        # 2f+1 <PREVOTE, h_p, round_p, *> while step = prevote, for the first time.
        if self.step is not Step.PREVOTE or self.round in self._prevote_timeout_rounds:
            return False
        if not self.validator_set.has_two_thirds(
            self._votes.power_any(self.round, VoteType.PREVOTE)
        ):
            return False
        self._prevote_timeout_rounds.add(self.round)
        self._schedule(TimeoutKind.PREVOTE, self.round)  # line 35
        return True

    def _upon_line_36(self) -> bool:
        # Proposal v for round_p and 2f+1 prevotes for id(v), valid(v), step >= prevote,
        # for the first time.
        if self.step not in (Step.PREVOTE, Step.PRECOMMIT) or self.round in self._line_36_rounds:
            return False
        for proposal in self._proposals.get(self.round, {}).values():
            v = proposal.block
            if self._validity.get(v.hash) and self._has_polka(self.round, v.hash):
                self._line_36_rounds.add(self.round)
                if self.step is Step.PREVOTE:  # line 37
                    self.locked_value = v  # line 38
                    self.locked_round = self.round  # line 39
                    self._vote(VoteType.PRECOMMIT, v.hash)  # line 40
                    self.step = Step.PRECOMMIT  # line 41
                self.valid_value = v  # line 42
                self.valid_round = self.round  # line 43
                return True
        return False

    def _upon_line_44(self) -> bool:
        # 2f+1 <PREVOTE, h_p, round_p, nil> while step = prevote.
        if self.step is not Step.PREVOTE or not self._has_polka(self.round, NIL):
            return False
        self._vote(VoteType.PRECOMMIT, NIL)  # line 45
        self.step = Step.PRECOMMIT  # line 46
        return True

    def _upon_line_47(self) -> bool:
        # 2f+1 <PRECOMMIT, h_p, round_p, *> for the first time.
        if self.round in self._precommit_timeout_rounds:
            return False
        power = self._votes.power_any(self.round, VoteType.PRECOMMIT)
        if not self.validator_set.has_two_thirds(power):
            return False
        self._precommit_timeout_rounds.add(self.round)
        self._schedule(TimeoutKind.PRECOMMIT, self.round)  # line 48
        return True

    def _upon_line_49(self) -> bool:
        # Proposal v of any round r and 2f+1 <PRECOMMIT, h_p, r, id(v)>, decision = nil.
        if self.decision is not None:
            return False
        for round_, held in sorted(self._proposals.items()):
            for proposal in held.values():
                v = proposal.block
                power = self._votes.power_for(round_, VoteType.PRECOMMIT, v.hash)
                if self.validator_set.has_two_thirds(power) and self._validity.get(v.hash):
                    self._decide(round_, proposal)  # lines 50-51
                    return True
        return False

    def _upon_line_55(self) -> bool:
        # f+1 messages of a round above round_p: skip to it (the highest such round).
        ahead = [
            r
            for r in self._votes.rounds()
            if r > self.round and self.validator_set.has_one_third(self._votes.sender_power(r))
        ]
        far = self._far_round_with_one_third()
        if far > self.round:
            # Validators more than MAX_ROUNDS_AHEAD ahead: +1/3 of the power has sent
            # messages of rounds >= far. Any round is safe to enter; this one is live.
            ahead.append(far)
        if not ahead:
            return False
        self._start_round(max(ahead))  # line 56
        return True

    def _far_round_with_one_third(self) -> int:
        """The highest r such that validators with +1/3 of the power sent rounds >= r."""
        power = 0
        for signer, round_ in sorted(self._far_rounds.items(), key=lambda item: -item[1]):
            power += self._powers[signer]
            if self.validator_set.has_one_third(power):
                return round_
        return -1

    # --- decisions and heights -----------------------------------------------------------------

    def _decide(self, round_: int, proposal: Proposal) -> None:
        block = proposal.block
        self.decision = block
        self._decided_round = round_
        precommits = self._votes.votes_for(round_, VoteType.PRECOMMIT, block.hash)
        order = {v.address: i for i, v in enumerate(self.validator_set.validators)}
        precommits.sort(key=lambda vote: order[vote.validator_address])
        sigs = tuple(
            CommitSig(v.validator_address, v.timestamp_ns, v.signature) for v in precommits
        )
        commit = Commit(self.height, round_, block.hash, sigs)
        self._effects.append(Decide(self.height, block, commit, proposal))
        self.step = Step.COMMIT
        if self._catching_up:
            self._effects.append(ScheduleTimeout(self.height, round_, TimeoutKind.COMMIT, 0))
        else:
            self._schedule(TimeoutKind.COMMIT, round_)

    def _next_height(self) -> None:
        # Lines 52-54, after the commit timeout.
        assert self.decision is not None
        block_time = self.decision.header.time_ns
        self._height_priorities.step()
        self._enter_height(self.height + 1, block_time)
        future, self._future, self._future_bytes = self._future, {}, 0
        self._start_round(0)
        for message in future.values():
            self._on_message(message)

    # --- signing -------------------------------------------------------------------------------

    def _vote(self, vote_type: VoteType, block_hash: bytes) -> None:
        timestamp = max(self._now_ns, self._last_block_time_ns + 1)
        self._sign_and_send(
            (self.height, self.round, vote_type),
            lambda key: Vote.create(
                key, self.chain_id, vote_type, self.height, self.round, block_hash, timestamp
            ),
        )

    def _sign_and_send(
        self, slot: tuple[int, int, object], make: Callable[[PrivateKey], Message]
    ) -> None:
        if self._key is None:
            return  # an observer signs nothing
        message = self._signed.get(slot)
        if message is None:
            order = (slot[0], slot[1], _KIND_ORDER[slot[2]])
            if order < self._last_signed or order < self._sign_floor:
                self.counters["sign_refused"] += 1
                return
            message = make(self._key)
            self._remember_signed(message)
            self._effects.append(PersistSigned(message))
        self._send_signed(message)

    def _send_signed(self, message: Message) -> None:
        self._effects.append(Broadcast(message))
        if isinstance(message, Vote):
            self._votes.add(message)
        else:
            self._proposals[message.round].setdefault(message.block_hash, message)
            self._votes.note_sender(message.round, message.proposer_address)
            self._validity.setdefault(message.block_hash, True)
            self._validation_requested.add(message.block_hash)

    def _remember_signed(self, message: Message) -> None:
        kind: object = "proposal" if isinstance(message, Proposal) else message.type
        self._signed[(message.height, message.round, kind)] = message
        self._last_signed = max(self._last_signed, sign_slot(message))

    # --- predicates -----------------------------------------------------------------------------

    def _has_polka(self, round_: int, block_hash: bytes) -> bool:
        power = self._votes.power_for(round_, VoteType.PREVOTE, block_hash)
        return self.validator_set.has_two_thirds(power)

    def _is_proposed(self, round_: int, block_hash: bytes) -> bool:
        """True if `block_hash` was proposed at this height (in `round_` or a later round
        that re-proposes it)."""
        return any(block_hash in held for held in self._proposals.values())

    def _is_locked_on(self, block: Block) -> bool:
        return self.locked_value is not None and self.locked_value.hash == block.hash

    def knows(self, message: Message) -> bool:
        """Whether handling `message` again would change nothing: a message of a height
        already decided (stale: the core drops it), a proposal of this height (or
        buffered for the next) already held as signed, or a decision of a height already
        decided.
        The node asks before logging a message to the WAL, so that the copies of a
        large proposal that several peers relay cost one record, not one each, and the
        late votes and old decisions peers send cost none."""
        if message.height < self.height:
            return True
        if message.height == self.height + 1 and isinstance(message, Proposal):
            held = self._future.get((message.proposer_address, message.round, "proposal"))
            return held is not None and held.signature == message.signature
        if message.height != self.height:
            return False
        if isinstance(message, Decision):
            return self.decision is not None
        if isinstance(message, Proposal):
            held = self._proposals.get(message.round, {}).get(message.block_hash)
            return held is not None and held.signature == message.signature
        return False

    def gossip_messages(self) -> list[Message]:
        """What peers may still need from us at this height: the proposals and votes of
        the rounds that matter (the current one; the one before, whose precommits a
        peer still in it needs to move on; and the rounds whose polkas justify our
        lock, our valid value and the current proposals), ours and relayed alike.
        Relaying others' votes is what lets every honest validator see a polka that
        includes an equivocator's vote (the paper's gossip assumption)."""
        if self.step is Step.COMMIT:
            # Decided: what peers still at this height need is the deciding round.
            assert self._decided_round is not None
            return [
                *self._proposals[self._decided_round].values(),
                *self._votes.votes_in(self._decided_round),
            ]
        rounds = {self.round, self.round - 1, self.locked_round, self.valid_round}
        rounds |= {p.pol_round for p in self._proposals.get(self.round, {}).values()}
        messages: list[Message] = []
        for round_ in sorted(r for r in rounds if r >= 0):
            messages.extend(self._proposals.get(round_, {}).values())
            messages.extend(self._votes.votes_in(round_))
        return messages


def _signer(message: Proposal | Vote) -> bytes:
    return message.validator_address if isinstance(message, Vote) else message.proposer_address
