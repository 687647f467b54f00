"""Unit tests of the consensus core's parts: proposer selection, commits, messages,
message filtering, evidence and the signing guard."""

import pytest

from cloudchain import codec
from cloudchain.consensus.events import (
    Broadcast,
    EvidenceFound,
    MessageReceived,
    PersistSigned,
    Start,
    TimeoutElapsed,
    TimeoutKind,
)
from cloudchain.consensus.messages import Decision, Proposal, Vote, VoteType, message_from_obj
from cloudchain.consensus.state_machine import Consensus, TimeoutConfig
from cloudchain.consensus.validator_set import (
    CommitError,
    ProposerPriority,
    ValidatorSet,
    verify_commit,
)
from cloudchain.ledger import Commit, CommitSig, Validator
from cloudchain.sim.consensus_sim import CHAIN_ID, SimConfig, Simulation
from tests.helpers.chain import key

KEYS = [key(f"validator-{i}") for i in range(4)]
VALIDATORS = [Validator(k.public_key, 10) for k in KEYS]


def core(index=0, signed=()):
    return Consensus(CHAIN_ID, VALIDATORS, KEYS[index], TimeoutConfig(), 1, 0, signed)


def test_proposers_rotate_in_proportion_to_power():
    powers = [1, 2, 3, 4]
    validators = [Validator(key(f"p{p}").public_key, p) for p in powers]
    priorities = ProposerPriority(validators)
    counts = {v.address: 0 for v in validators}
    for _ in range(10 * sum(powers)):
        counts[priorities.proposer().address] += 1
        priorities.step()
    assert [counts[v.address] for v in validators] == [10 * p for p in powers]


def test_equal_powers_take_turns():
    priorities = ProposerPriority(VALIDATORS)
    seen = []
    for _ in range(8):
        seen.append(priorities.proposer().address)
        priorities.step()
    assert len(set(seen[:4])) == 4 and seen[:4] == seen[4:]


def test_quorums_are_measured_in_power():
    validators = ValidatorSet(
        tuple(Validator(key(f"q{i}").public_key, p) for i, p in enumerate([70, 10, 10, 10]))
    )
    assert validators.has_two_thirds(70) and not validators.has_two_thirds(66)
    assert validators.has_one_third(34) and not validators.has_one_third(33)


def decided_commit():
    sim = Simulation(1, SimConfig(crashes=False, partitions=False))
    sim.run()
    node = sim.honest[0]
    decision = node.decision(1)  # height 1 is no longer kept whole: rebuilt from the store
    return sim, decision


def test_a_decided_commit_verifies_with_only_the_validator_set():
    sim, decision = decided_commit()
    verify_commit(CHAIN_ID, sim.validator_set, decision.commit, 1)
    commit = decision.commit
    sigs = commit.signatures
    broken = [
        (Commit(commit.height, commit.round, commit.block_hash, sigs[:2]), "not \\+2/3"),
        (Commit(commit.height, commit.round, commit.block_hash, (sigs[0], *sigs)), "twice"),
        (Commit(commit.height, commit.round, bytes(32), sigs), "bad signature"),
        (
            Commit(
                commit.height,
                commit.round,
                commit.block_hash,
                (CommitSig(bytes(20), 1, bytes(64)), *sigs),
            ),
            "non-validator",
        ),
    ]
    for bad, message in broken:
        with pytest.raises(CommitError, match=message):
            verify_commit(CHAIN_ID, sim.validator_set, bad, 1)
    with pytest.raises(CommitError, match="height"):
        verify_commit(CHAIN_ID, sim.validator_set, commit, 2)


def test_messages_round_trip_through_the_canonical_encoding():
    _, decision = decided_commit()
    vote = Vote.create(KEYS[1], CHAIN_ID, VoteType.PREVOTE, 1, 0, bytes(32), 5)
    for message in (vote, decision.proposal, Decision(decision.proposal, decision.commit)):
        again = message_from_obj(codec.decode(codec.encode(message.to_obj())))
        assert again == message


def test_votes_from_strangers_with_bad_signatures_or_for_other_chains_are_dropped_and_counted():
    c = core()
    c.handle(Start(), 1)
    stranger = key("stranger")
    messages = [
        Vote.create(stranger, CHAIN_ID, VoteType.PREVOTE, 1, 0, b"", 5),
        Vote.create(KEYS[1], CHAIN_ID, VoteType.PREVOTE, 1, 0, b"", 5).with_signature(bytes(64)),
        Vote.create(KEYS[1], "another-chain", VoteType.PREVOTE, 1, 0, b"", 5),
    ]
    for message in messages:
        assert c.handle(MessageReceived(message), 2) == []
    assert (
        c.counters["non_validator"],
        c.counters["bad_signature"],
        c.counters["wrong_chain"],
    ) == (1, 1, 1)


def test_two_conflicting_votes_are_evidence():
    c = core()
    c.handle(Start(), 1)
    first = Vote.create(KEYS[2], CHAIN_ID, VoteType.PREVOTE, 1, 0, b"", 5)
    second = Vote.create(KEYS[2], CHAIN_ID, VoteType.PREVOTE, 1, 0, bytes(32), 5)
    c.handle(MessageReceived(first), 2)
    effects = c.handle(MessageReceived(second), 3)
    assert EvidenceFound(first, second) in effects
    assert list(c.evidence) == [EvidenceFound(first, second)]
    assert c.handle(MessageReceived(second), 4) == []  # the same pair is reported once


def test_a_restarted_validator_resends_what_it_signed_and_never_signs_anything_else():
    before = core(index=1)
    before.handle(Start(), 1)
    effects = before.handle(TimeoutElapsed(1, 0, TimeoutKind.PROPOSE), 2)
    nil_prevote = next(e.message for e in effects if isinstance(e, PersistSigned))
    assert nil_prevote.is_nil and nil_prevote.type is VoteType.PREVOTE

    # After a restart the proposal arrives in time: the core would now prevote the
    # block, but it already signed a nil prevote for (height 1, round 0).
    after = core(index=1, signed=[nil_prevote])
    after.handle(Start(), 3)
    proposer = KEYS.index(next(k for k in KEYS if k.address == after.proposer(0).address.hex()))
    sim = Simulation(1, SimConfig())
    block = sim.nodes[0].build_block(1)
    proposal = Proposal.create(KEYS[proposer], CHAIN_ID, 1, 0, -1, block, 4)
    after.handle(MessageReceived(proposal), 4)
    from cloudchain.consensus.events import BlockValidity

    effects = after.handle(BlockValidity(block.hash, True), 5)
    assert Broadcast(nil_prevote) in effects
    assert not any(isinstance(e, PersistSigned) for e in effects)


def test_validators_far_ahead_still_pull_a_lagging_validator_to_their_round():
    """More than MAX_ROUNDS_AHEAD rounds ahead: one remembered round per validator,
    enough for line 55 once +1/3 of the power is there."""
    c = core()
    c.handle(Start(), 1)
    c.handle(MessageReceived(Vote.create(KEYS[1], CHAIN_ID, VoteType.PREVOTE, 1, 70, b"", 5)), 2)
    assert c.round == 0  # one validator (1/4 of the power) is not enough
    c.handle(MessageReceived(Vote.create(KEYS[2], CHAIN_ID, VoteType.PREVOTE, 1, 90, b"", 5)), 3)
    assert c.round == 70  # +1/3 of the power sent rounds >= 70
    forged = Vote.create(KEYS[3], CHAIN_ID, VoteType.PREVOTE, 1, 500, b"", 5)
    c.handle(MessageReceived(forged.with_signature(bytes(64))), 4)
    assert c.counters["bad_signature"] == 1 and c.round == 70


def test_only_validators_signed_messages_wait_for_the_next_height():
    c = core()
    c.handle(Start(), 1)
    stranger = Vote.create(key("stranger"), CHAIN_ID, VoteType.PREVOTE, 2, 0, b"", 5)
    unsigned = Vote.create(KEYS[1], CHAIN_ID, VoteType.PREVOTE, 2, 0, b"", 5).with_signature(
        bytes(64)
    )
    honest = Vote.create(KEYS[2], CHAIN_ID, VoteType.PREVOTE, 2, 0, b"", 5)
    for message in (stranger, unsigned, honest, honest):
        c.handle(MessageReceived(message), 2)
    assert list(c._future.values()) == [honest]
    assert c.counters["future_dropped"] == 2 and c.counters["bad_signature"] == 1


def test_the_wal_keeps_every_record_of_later_heights_after_a_commit():
    from cloudchain.consensus import wal_records

    vote = Vote.create(KEYS[1], CHAIN_ID, VoteType.PREVOTE, 3, 0, b"", 5)
    old = Vote.create(KEYS[1], CHAIN_ID, VoteType.PREVOTE, 2, 0, b"", 5)
    keep = wal_records.keep_after_commit
    assert keep("event", MessageReceived(vote), 2)  # buffered for the next height
    assert keep("signed", vote, 2)
    assert not keep("event", MessageReceived(old), 2) and not keep("signed", old, 2)
    assert keep("event", TimeoutElapsed(3, 0, TimeoutKind.PROPOSE), 2)
    assert not keep("event", Start(), 2)
