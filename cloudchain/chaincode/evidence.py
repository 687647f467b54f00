"""Evidence of a validator's double vote: when a block may carry it, and what it leaves
in state (ABCI's FinalizeBlock `misbehavior`).

State:
    evidence/<hash>   the height of the block that committed this piece of evidence

A piece of evidence (ledger.DuplicateVoteEvidence) may be committed in a block of
height H and time T if, checked in this order:

1. its validator is in the genesis validator set with the power it names, and the
   set's total power is the one it names;
2. its votes' height is below H, and the block this chain committed at that height
   has the time it names (so the evidence is dated by the chain, not by its finder);
3. it has not expired at (H, T) under the genesis consensus_params.evidence;
4. no earlier block committed it (one equivocation is punished once);
5. both votes' signatures verify with the validator's key over this chain's sign
   bytes (so evidence of another chain, or a forged vote, is refused).

The rules read only state, the genesis and the block store through `EvidenceState`,
so the mempool-like evidence pool of the node (node/evidence_pool.py) and a block's
validation (Application.process_proposal) apply the same ones.
"""

from __future__ import annotations

from typing import Protocol

from cloudchain import codec
from cloudchain.chaincode.context import Overlay, StateReader
from cloudchain.genesis import Genesis
from cloudchain.ledger import Block, DuplicateVoteEvidence, Event

COMMITTED = b"evidence/"
DUPLICATE_VOTE_EVENT = "duplicate_vote"


class Blocks(Protocol):
    def block(self, height: int) -> Block | None: ...


def committed_key(evidence: DuplicateVoteEvidence) -> bytes:
    return COMMITTED + evidence.hash.hex().encode()


def committed_at(state: StateReader, evidence: DuplicateVoteEvidence) -> int | None:
    """The height of the block that committed `evidence`, or None."""
    raw = state.get(committed_key(evidence))
    return None if raw is None else int(codec.decode(raw))


def evidence_error(
    evidence: DuplicateVoteEvidence,
    height: int,
    time_ns: int,
    genesis: Genesis,
    state: StateReader,
    blocks: Blocks,
) -> str:
    """Why `evidence` may not be committed in a block of `height` and `time_ns`, or ''."""
    address = evidence.validator_address
    validator = next((v for v in genesis.validators if v.address == address), None)
    # Verify that the validator is the genesis set's, with the powers the evidence names.
    if validator is None:
        return f"validator {address.hex()} is not in the validator set"
    if validator.power != evidence.validator_power:
        return f"validator power {evidence.validator_power}, the set says {validator.power}"
    total = genesis.total_power()
    if total != evidence.total_voting_power:
        return f"total voting power {evidence.total_voting_power}, the set says {total}"
    # Verify that the chain dates the evidence: its height is committed, at its time.
    if evidence.height >= height:
        return f"evidence of height {evidence.height} in a block of height {height}"
    block = blocks.block(evidence.height)
    if block is None:
        return f"the block of height {evidence.height} is not available to date the evidence"
    if block.header.time_ns != evidence.timestamp_ns:
        return (
            f"timestamp {evidence.timestamp_ns} is not the time of block {evidence.height} "
            f"({block.header.time_ns})"
        )
    # Verify that it is fresh and new.
    if evidence.is_expired(
        height, time_ns, genesis.evidence_max_age_blocks, genesis.evidence_max_age_ns
    ):
        return f"evidence of height {evidence.height} has expired"
    committed = committed_at(state, evidence)
    if committed is not None:
        return f"evidence already committed at height {committed}"
    # Verify that the validator signed both votes, on this chain.
    for name, vote in (("vote_a", evidence.vote_a), ("vote_b", evidence.vote_b)):
        if not vote.verify(genesis.chain_id, validator.public_key):
            return f"{name}: the signature does not verify"
    return ""


def record(kv: Overlay, evidence: DuplicateVoteEvidence, height: int) -> Event:
    """Mark `evidence` committed at `height`; the block event that reports it."""
    kv.set(committed_key(evidence), codec.encode(height))
    vote = evidence.vote_a
    return Event(
        DUPLICATE_VOTE_EVENT,
        (
            ("hash", evidence.hash.hex()),
            ("height", str(evidence.height)),
            ("round", str(vote.round)),
            ("type", vote.type),
            ("validator", evidence.validator_address.hex()),
            ("validator_power", str(evidence.validator_power)),
        ),
    )
