"""One test per locking rule of Algorithm 1 (Buchman, Kwon, Milosevic 2018): lines 22,
28, 36 and 49, each against one core fed messages by hand, and each with a variant
core that drops the rule's condition (tests/helpers/consensus_rules.py). The same
hand-fed events show the variant doing what the rule forbids, and a run of the
simulator, on a schedule a script imposes before GST, shows that this breaks
agreement where the real core passes every check: proof that each test can fail."""

from __future__ import annotations

import pytest

from cloudchain.consensus.events import (
    BlockValidity,
    Decide,
    Effect,
    Event,
    MessageReceived,
    PersistSigned,
    Start,
    TimeoutElapsed,
    TimeoutKind,
)
from cloudchain.consensus.messages import NIL, Decision, Message, Proposal, Vote, VoteType
from cloudchain.consensus.state_machine import Consensus, TimeoutConfig
from cloudchain.ledger import Block, BlockHeader, Validator
from cloudchain.sim.consensus_sim import CHAIN_ID as SIM_CHAIN_ID
from cloudchain.sim.consensus_sim import (
    NetworkScript,
    SimConfig,
    SimNode,
    Simulation,
    SimViolation,
    run_seed,
)
from tests.helpers.chain import key
from tests.helpers.consensus_rules import (
    DecidesOnOneThird,
    PrecommitsWithoutLocking,
    PrevotesFreshProposalsDespiteLock,
    PrevotesReproposalsDespiteLock,
)

CHAIN_ID = "cloudchain-locking"
KEYS = [key(f"locking-{i}") for i in range(4)]
VALIDATORS = [Validator(k.public_key, 10) for k in KEYS]
PREVOTE, PRECOMMIT = VoteType.PREVOTE, VoteType.PRECOMMIT


def block(tag: int) -> Block:
    """A block of height 1; the core looks only at its hash (validity comes as an event)."""
    header = BlockHeader(
        chain_id=CHAIN_ID,
        height=1,
        time_ns=1,
        last_block_hash=b"",
        last_commit_hash=b"",
        data_hash=bytes([tag]) * 32,
        app_hash=bytes(32),
        last_results_hash=bytes(32),
        validators_hash=bytes(32),
        proposer_address=bytes(20),
    )
    return Block(header, (), None)


V, W = block(1), block(2)


class OneCore:
    """One core at height 1, fed signed messages from the other three validators.

    The core's own key is the proposer of round 3, so that in rounds 0-2 it only
    votes; `others` are the other three validators' indexes."""

    def __init__(self, core_class: type[Consensus] = Consensus) -> None:
        observer = Consensus(CHAIN_ID, VALIDATORS, None, TimeoutConfig(), 1, 0)
        by_address = {k.address: i for i, k in enumerate(KEYS)}
        self.proposers = [by_address[observer.proposer(r).address.hex()] for r in range(4)]
        assert sorted(self.proposers) == [0, 1, 2, 3]
        self.me = self.proposers[3]
        self.others = [i for i in range(4) if i != self.me]
        self.core = core_class(CHAIN_ID, VALIDATORS, KEYS[self.me], TimeoutConfig(), 1, 0)
        self.now = 0
        self.signed: list[Vote] = []
        self.decided: list[Decide] = []
        self.handle(Start())

    def handle(self, event: Event) -> list[Effect]:
        self.now += 1
        effects = self.core.handle(event, self.now)
        for effect in effects:
            if isinstance(effect, PersistSigned) and isinstance(effect.message, Vote):
                self.signed.append(effect.message)
            elif isinstance(effect, Decide):
                self.decided.append(effect)
        return effects

    def propose(self, round_: int, value: Block, pol_round: int = -1) -> None:
        """The round's proposer proposes `value`, and the application finds it valid."""
        proposer = KEYS[self.proposers[round_]]
        proposal = Proposal.create(proposer, CHAIN_ID, 1, round_, pol_round, value, self.now)
        self.handle(MessageReceived(proposal))
        self.handle(BlockValidity(value.hash, True))

    def votes(self, kind: VoteType, round_: int, value: Block | None, count: int = 3) -> None:
        """Votes of `count` other validators for `value` (None: nil)."""
        block_hash = NIL if value is None else value.hash
        for i in self.others[:count]:
            vote = Vote.create(KEYS[i], CHAIN_ID, kind, 1, round_, block_hash, self.now)
            self.handle(MessageReceived(vote))

    def timeout(self, kind: TimeoutKind) -> None:
        self.handle(TimeoutElapsed(1, self.core.round, kind))

    def vote(self, kind: VoteType, round_: int) -> bytes | None:
        """What this core signed for (kind, round): a block hash, NIL, or None if nothing."""
        mine = [v for v in self.signed if (v.type, v.round) == (kind, round_)]
        assert len(mine) <= 1, "never two votes for one (round, kind)"
        return mine[0].block_hash if mine else None

    def lock_on_v_in_round_0(self) -> None:
        """Round 0: V is proposed and gets a polka; we lock on it; round 1 begins."""
        self.propose(0, V)
        self.votes(PREVOTE, 0, V, count=2)  # with ours, +2/3
        assert self.vote(PRECOMMIT, 0) == V.hash
        self.timeout(TimeoutKind.PRECOMMIT)
        assert self.core.round == 1


# --- line 22: a fresh proposal (validRound = -1) -----------------------------------------


def test_line_22_a_validator_locked_on_v_prevotes_nil_for_a_fresh_proposal_of_another_value():
    p = OneCore()
    p.lock_on_v_in_round_0()
    p.propose(1, W)
    assert p.vote(PREVOTE, 1) == NIL
    assert (p.core.locked_value, p.core.locked_round) == (V, 0)


def test_line_22_a_validator_locked_on_v_prevotes_a_fresh_proposal_of_v():
    p = OneCore()
    p.lock_on_v_in_round_0()
    p.propose(1, V)
    assert p.vote(PREVOTE, 1) == V.hash


def test_line_22_an_unlocked_validator_prevotes_a_fresh_valid_proposal_and_nil_for_an_invalid_one():
    p = OneCore()
    p.propose(0, V)
    assert p.vote(PREVOTE, 0) == V.hash
    q = OneCore()
    proposal = Proposal.create(KEYS[q.proposers[0]], CHAIN_ID, 1, 0, -1, V, 1)
    q.handle(MessageReceived(proposal))
    q.handle(BlockValidity(V.hash, False))
    assert q.vote(PREVOTE, 0) == NIL


def test_line_22_weakened_prevotes_a_fresh_proposal_against_its_lock():
    p = OneCore(PrevotesFreshProposalsDespiteLock)
    p.lock_on_v_in_round_0()
    p.propose(1, W)
    assert p.vote(PREVOTE, 1) == W.hash  # what the test above forbids


# --- line 28: a re-proposal with validRound vr >= 0 -------------------------------------


def lock_on_v_in_round_1_after_a_polka_for_w_in_round_0(p: OneCore) -> None:
    """Round 0: W is proposed, we prevote it and hear nothing more in time (we precommit
    nil); round 1: V is proposed and gets a polka, we lock on V; then the prevotes for W
    of round 0 arrive: W had a polka in round 0, before our lock's round."""
    p.propose(0, W)
    assert p.vote(PREVOTE, 0) == W.hash
    p.timeout(TimeoutKind.PREVOTE)
    assert p.vote(PRECOMMIT, 0) == NIL
    p.timeout(TimeoutKind.PRECOMMIT)
    p.propose(1, V)
    p.votes(PREVOTE, 1, V, count=2)
    assert (p.core.locked_value, p.core.locked_round) == (V, 1)
    p.votes(PREVOTE, 0, W, count=2)
    p.timeout(TimeoutKind.PRECOMMIT)
    assert p.core.round == 2


def test_line_28_a_validator_locked_after_vr_prevotes_nil_for_a_reproposal_of_another_value():
    p = OneCore()
    lock_on_v_in_round_1_after_a_polka_for_w_in_round_0(p)
    p.propose(2, W, pol_round=0)  # W with its polka of round 0, below our lock's round
    assert p.vote(PREVOTE, 2) == NIL
    assert (p.core.locked_value, p.core.locked_round) == (V, 1)


def test_line_28_a_validator_locked_at_or_before_vr_prevotes_the_reproposal():
    """The paper's unlock: a polka for W in a round at or after our lock frees us."""
    p = OneCore()
    p.lock_on_v_in_round_0()
    p.propose(1, W)
    assert p.vote(PREVOTE, 1) == NIL  # line 22: locked on V
    p.timeout(TimeoutKind.PREVOTE)  # the polka for W reaches us only after round 1
    p.timeout(TimeoutKind.PRECOMMIT)
    p.votes(PREVOTE, 1, W, count=3)
    p.propose(2, W, pol_round=1)
    assert p.vote(PREVOTE, 2) == W.hash
    assert (p.core.locked_value, p.core.locked_round) == (V, 0)  # prevoting is not locking


def test_line_28_a_reproposal_without_a_polka_in_vr_gets_no_prevote_until_the_timeout():
    p = OneCore()
    p.lock_on_v_in_round_0()
    p.propose(1, W, pol_round=0)  # claims a polka for W in round 0: there was none
    assert p.vote(PREVOTE, 1) is None
    p.timeout(TimeoutKind.PROPOSE)
    assert p.vote(PREVOTE, 1) == NIL


def test_line_28_weakened_prevotes_a_reproposal_against_a_later_lock():
    p = OneCore(PrevotesReproposalsDespiteLock)
    lock_on_v_in_round_1_after_a_polka_for_w_in_round_0(p)
    p.propose(2, W, pol_round=0)
    assert p.vote(PREVOTE, 2) == W.hash  # what the test above forbids


# --- line 36: a polka while prevoting locks; a polka seen later sets the valid value ----


def test_line_36_a_polka_in_the_prevote_step_locks_sets_valid_and_precommits():
    p = OneCore()
    p.propose(0, V)
    assert (p.core.locked_value, p.core.valid_value) == (None, None)
    p.votes(PREVOTE, 0, V, count=2)
    assert p.vote(PRECOMMIT, 0) == V.hash
    core = p.core
    assert (core.locked_value, core.locked_round, core.valid_value, core.valid_round) == (
        V,
        0,
        V,
        0,
    )


def test_line_36_a_polka_after_precommitting_nil_sets_valid_but_does_not_lock():
    p = OneCore()
    p.propose(0, V)
    p.timeout(TimeoutKind.PREVOTE)  # no polka in time
    assert p.vote(PRECOMMIT, 0) == NIL
    p.votes(PREVOTE, 0, V, count=2)  # then it comes: with ours, +2/3 for V
    core = p.core
    assert (core.locked_value, core.locked_round, core.valid_value, core.valid_round) == (
        None,
        -1,
        V,
        0,
    )


def test_line_36_a_later_polka_moves_the_lock():
    p = OneCore()
    p.lock_on_v_in_round_0()
    p.propose(1, W)
    assert p.vote(PREVOTE, 1) == NIL
    p.votes(PREVOTE, 1, W, count=3)
    assert p.vote(PRECOMMIT, 1) == W.hash
    assert (p.core.locked_value, p.core.locked_round) == (W, 1)


def test_line_36_weakened_precommits_without_locking():
    p = OneCore(PrecommitsWithoutLocking)
    p.propose(0, V)
    p.votes(PREVOTE, 0, V, count=2)
    assert p.vote(PRECOMMIT, 0) == V.hash
    assert (p.core.locked_value, p.core.locked_round) == (None, -1)  # forbidden above


# --- line 49: +2/3 precommits for a proposed, valid value decide it ----------------------


def test_line_49_two_thirds_of_precommits_decide_and_one_third_does_not():
    p = OneCore()
    p.propose(0, V)
    p.votes(PRECOMMIT, 0, V, count=2)  # 20 of 40: +1/3, not +2/3
    assert p.decided == [] and p.core.decision is None
    p.votes(PRECOMMIT, 0, V, count=3)
    assert [d.block for d in p.decided] == [V] and p.core.decision == V
    commit = p.decided[0].commit
    assert (commit.round, commit.block_hash, len(commit.signatures)) == (0, V.hash, 3)


def test_line_49_a_value_decided_in_an_earlier_round_is_decided_in_a_later_one():
    p = OneCore()
    p.lock_on_v_in_round_0()
    p.votes(PRECOMMIT, 0, V, count=2)  # with ours, +2/3 for V in round 0, heard in round 1
    assert [(d.block, d.commit.round) for d in p.decided] == [(V, 0)]


def test_line_49_precommits_for_an_invalid_value_decide_nothing():
    p = OneCore()
    proposal = Proposal.create(KEYS[p.proposers[0]], CHAIN_ID, 1, 0, -1, V, 1)
    p.handle(MessageReceived(proposal))
    p.handle(BlockValidity(V.hash, False))
    p.votes(PRECOMMIT, 0, V, count=3)
    assert p.decided == []


def test_line_49_weakened_decides_on_one_third():
    p = OneCore(DecidesOnOneThird)
    p.propose(0, V)
    p.votes(PRECOMMIT, 0, V, count=2)
    assert [d.block for d in p.decided] == [V]  # forbidden above


@pytest.mark.parametrize(
    "weakened",
    [
        PrevotesFreshProposalsDespiteLock,
        PrevotesReproposalsDespiteLock,
        PrecommitsWithoutLocking,
        DecidesOnOneThird,
    ],
)
def test_each_weakened_core_differs_from_the_real_one_in_its_rule_only(weakened):
    """Where no lock or re-proposal is involved, a weakened core votes and decides as the
    real one does: each variant changes its own rule and nothing else."""
    runs = []
    for core_class in (Consensus, weakened):
        p = OneCore(core_class)
        p.propose(0, V)
        p.votes(PREVOTE, 0, V, count=3)
        p.votes(PRECOMMIT, 0, V, count=3)
        runs.append(([(v.type, v.round, v.block_hash) for v in p.signed], p.core.decision))
    assert runs[0] == runs[1]


# --- the simulator: each weakened core breaks agreement, the real core does not ----------
#
# Random faults rarely line up into the schedule that a missing lock needs (the last
# test below). Here a NetworkScript plays the adversary the fault model allows before
# GST, losing exactly the messages that make the schedule; the network is otherwise
# reliable and fast, and the seed draws little more than delays. Each scenario runs
# the weakened core and the real one on the same seed and script: the first must
# break agreement, the second must pass every check.

SCRIPTED = SimConfig(
    validators=4,
    partitions=False,
    crashes=False,
    drop_rate=0.0,
    pre_gst_delay_ms=50,
    liveness_bound_ms=3_000,  # a weakened run ends in a fork that stalls: stop it soon
)


def proposers_at_height_1(sim: Simulation) -> list[int]:
    """The validator index proposing rounds 0-3 of height 1 (they are all different)."""
    observer = Consensus(SIM_CHAIN_ID, sim.validators, None, TimeoutConfig(), 1, 0)
    index = {v.address: i for i, v in enumerate(sim.validators)}
    return [index[observer.proposer(r).address] for r in range(4)]


def signer_index(sim: Simulation, message: Message) -> int:
    address = message.validator_address if isinstance(message, Vote) else message.proposer_address
    return next(i for i, v in enumerate(sim.validators) if v.address == address)


def violations(
    core_class: type[Consensus], config: SimConfig, script: NetworkScript | None, seed: int = 0
) -> tuple[str, ...]:
    """The kinds of violation a run finds (none: the empty tuple)."""
    try:
        run_seed(seed, config, core_class, script)
    except SimViolation as violation:
        return violation.kinds
    return ()


def fork_after_a_lock(roles: list[int]) -> NetworkScript:
    """A, B, C lock on v in round 0 and A decides it; D never sees v and proposes a fresh
    w in round 1. Lost before GST: round 0's proposal on its way to D, A's precommits,
    and every Decision (A, ahead, would otherwise hand B and C the decision of v)."""
    a, d = roles[0], roles[1]

    def lose(sim: Simulation, sender: SimNode, receiver: SimNode, message: Message) -> bool:
        if isinstance(message, Decision):
            return True
        if message.height != 1:
            return False
        if isinstance(message, Proposal):
            return message.round == 0 and receiver.index == d
        return message.type is PRECOMMIT and signer_index(sim, message) == a

    return lose


@pytest.mark.parametrize("weakened", [PrevotesFreshProposalsDespiteLock, PrecommitsWithoutLocking])
def test_lines_22_and_36_weakened_break_agreement_in_the_simulator(weakened):
    """Round 0: A proposes v; D, without the proposal, prevotes nil; A, B, C prevote v,
    lock on it and precommit it; A decides v, B and C hear only two precommits for v
    and move on. Round 1: D proposes w. Locked on v, the real B and C prevote nil, and
    v is decided again in round 2 (re-proposed with its polka). A core that ignores its
    lock for a fresh proposal (line 22), or never locks (line 36), prevotes w: B, C
    and D decide w, against A's v."""
    script = fork_after_a_lock(proposers_at_height_1(Simulation(0, SCRIPTED)))
    assert "agreement" in violations(weakened, SCRIPTED, script)
    assert violations(Consensus, SCRIPTED, script) == ()


def reproposal_below_a_lock(roles: list[int]) -> NetworkScript:
    """B proposes w in round 0 and only D sees its polka; A proposes v in round 1, and A,
    B, C lock on v; D re-proposes w with validRound 0 in round 2. Lost before GST: round
    0's proposal to C; D's round-0 prevote to A and B while they are in round 0; C's
    round-1 prevote to D; A's precommits; every Decision."""
    b, a, d, c = roles

    def lose(sim: Simulation, sender: SimNode, receiver: SimNode, message: Message) -> bool:
        if isinstance(message, Decision):
            return True
        if message.height != 1:
            return False
        if isinstance(message, Proposal):
            return message.round == 0 and receiver.index == c
        signer = signer_index(sim, message)
        if message.type is PRECOMMIT:
            return signer == a
        if message.round == 0:
            return signer == d and receiver.index in (a, b) and receiver.core.round == 0
        return message.round == 1 and signer == c and receiver.index == d

    return lose


def test_line_28_weakened_breaks_agreement_in_the_simulator():
    """Round 0: B proposes w; C, without it, prevotes nil; A, B, D prevote w; D sees the
    polka (locks on w, validValue w), A and B do not (D's prevote reaches them in round
    1) and precommit nil. Round 1: A proposes v; A, B, C prevote v, lock on it in round
    1 and precommit it; D, locked on w and missing C's prevote, precommits nil; A
    decides v, B and C hear two precommits for v and move on. Round 2: D re-proposes w
    with validRound 0. Locked on v since round 1 > 0, the real B and C prevote nil; a
    core that ignores its lock for a re-proposal (line 28) prevotes w: B, C and D
    decide w, against A's v."""
    script = reproposal_below_a_lock(proposers_at_height_1(Simulation(0, SCRIPTED)))
    assert "agreement" in violations(PrevotesReproposalsDespiteLock, SCRIPTED, script)
    assert violations(Consensus, SCRIPTED, script) == ()


# A decision on +1/3 takes a Byzantine validator to break agreement: an honest validator
# precommits v only on a polka, and then is locked on v, so +1/3 of honest precommits
# leave less than 2/3 of the power free to make a polka for anything else. Its
# precommit for v unbacked by a lock, a Byzantine validator can then prevote for w.
BYZANTINE = SimConfig(
    validators=4,
    byzantine=1,
    byzantine_mode="equivocate",
    partitions=False,
    crashes=False,
    drop_rate=0.0,
    pre_gst_delay_ms=50,
    liveness_bound_ms=3_000,
)
# The first seed whose equivocator is round 1's proposer and, in its random split of
# the peers, sends A its own round-0 votes for v (offline search over seeds 0-19).
BYZANTINE_SEED = 18


def decision_on_a_third(roles: list[int]) -> NetworkScript:
    """A proposes v in round 0, A and the equivocator Z (round 1's proposer) lock on v
    and precommit it; Z proposes a fresh w in round 1. Lost before GST: round 0's
    proposal to C; Z's round-0 prevote to B while B is in round 0; Z's round-0
    precommits to B and C; every Decision."""
    _, z, b, c = roles

    def lose(sim: Simulation, sender: SimNode, receiver: SimNode, message: Message) -> bool:
        if isinstance(message, Decision):
            return True
        if message.height != 1 or message.round != 0:
            return False
        if isinstance(message, Proposal):
            return receiver.index == c
        if signer_index(sim, message) != z:
            return False
        if message.type is PREVOTE:
            return receiver.index == b and receiver.core.round == 0
        return receiver.index in (b, c)

    return lose


def test_line_49_weakened_breaks_agreement_in_the_simulator():
    """Round 0: A proposes v; C, without it, prevotes nil; A, B and Z prevote v; A and
    Z see the polka and precommit v, B does not and precommits nil. A holds two
    precommits for v: +1/3, not +2/3. Round 1: Z (whose core re-proposes v) sends
    everyone a fresh w and votes for it; B and C, not locked, prevote w: B, C and Z
    decide w. The real A waits and follows them; a core that decides on +1/3 (line
    49) has decided v."""
    sim = Simulation(BYZANTINE_SEED, BYZANTINE)
    roles = proposers_at_height_1(sim)
    assert [n.index for n in sim.nodes if n.byzantine] == [roles[1]]
    script = decision_on_a_third(roles)
    found = violations(DecidesOnOneThird, BYZANTINE, script, BYZANTINE_SEED)
    assert "agreement" in found
    assert violations(Consensus, BYZANTINE, script, BYZANTINE_SEED) == ()


# The random faults of the suite's runs (one equivocator, drops, partitions, crashes)
# find these forks too, rarely. An offline search of seeds 0-999 found agreement broken
# at seeds 357 and 505 for lines 22 and 36, 654 and 679 for line 49 (whose certificate
# check, besides, fails in every seed), and none for line 28.
RANDOM = SimConfig(validators=4, byzantine=1, byzantine_mode="equivocate", liveness_bound_ms=3_000)


@pytest.mark.parametrize(
    "weakened, seed",
    [
        (PrevotesFreshProposalsDespiteLock, 357),
        (PrecommitsWithoutLocking, 357),
        (DecidesOnOneThird, 654),
    ],
)
def test_lines_22_36_and_49_weakened_also_fall_to_the_random_adversary(weakened, seed):
    assert "agreement" in violations(weakened, RANDOM, None, seed)
    assert violations(Consensus, RANDOM, None, seed) == ()
