"""Signed consensus messages: proposals, votes, and decisions for lagging peers.

Each message names its chain, height and round, and is signed over all of its
fields but the signature, so it cannot be replayed on another chain, height,
round or step. A precommit's sign bytes are exactly those a `CommitSig` in a
block's last commit is verified against (`types.vote_sign_bytes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from functools import cached_property
from typing import Any

from cloudchain import codec
from cloudchain.crypto import ADDRESS_BYTES, SIGNATURE_BYTES, PrivateKey, verify
from cloudchain.ledger import (
    HASH_BYTES,
    INT64_MAX,
    MAX_BLOCK_BYTES,
    Block,
    Commit,
    MalformedError,
    _bytes,
    _fields,
    _int,
    vote_sign_bytes,
)

PROPOSAL_SIGN_DOMAIN = b"cloudchain/proposal/v1\x00"
MAX_ROUND = 2**31 - 1
NIL = b""  # the block hash of a vote for nil


class VoteType(IntEnum):
    PREVOTE = 1
    PRECOMMIT = 2

    @property
    def label(self) -> str:
        return "prevote" if self is VoteType.PREVOTE else "precommit"


@dataclass(frozen=True)
class Vote:
    """A prevote or precommit for `block_hash` (NIL for nil) at (height, round)."""

    chain_id: str
    type: VoteType
    height: int
    round: int
    block_hash: bytes
    timestamp_ns: int
    validator_address: bytes
    signature: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", VoteType(self.type))
        _int(self.height, "vote.height", 1, INT64_MAX)
        _int(self.round, "vote.round", 0, MAX_ROUND)
        _bytes(self.block_hash, "vote.block_hash", (0, HASH_BYTES))
        _int(self.timestamp_ns, "vote.timestamp_ns", 0, INT64_MAX)
        _bytes(self.validator_address, "vote.validator_address", (ADDRESS_BYTES,))
        _bytes(self.signature, "vote.signature", (0, SIGNATURE_BYTES))

    @classmethod
    def create(
        cls,
        key: PrivateKey,
        chain_id: str,
        vote_type: VoteType,
        height: int,
        round_: int,
        block_hash: bytes,
        timestamp_ns: int,
    ) -> Vote:
        unsigned = cls(
            chain_id,
            vote_type,
            height,
            round_,
            block_hash,
            timestamp_ns,
            bytes.fromhex(key.address),
            b"",
        )
        return unsigned.with_signature(key.sign(unsigned.sign_bytes()))

    def with_signature(self, signature: bytes) -> Vote:
        return Vote(
            self.chain_id,
            self.type,
            self.height,
            self.round,
            self.block_hash,
            self.timestamp_ns,
            self.validator_address,
            signature,
        )

    def sign_bytes(self) -> bytes:
        return vote_sign_bytes(
            self.chain_id,
            self.type.label,
            self.height,
            self.round,
            self.block_hash,
            self.timestamp_ns,
        )

    def verify(self, public_key: bytes) -> bool:
        return verify(public_key, self.sign_bytes(), self.signature)

    @property
    def is_nil(self) -> bool:
        return self.block_hash == NIL

    def to_obj(self) -> dict[str, Any]:
        return {
            "kind": "vote",
            "chain_id": self.chain_id,
            "type": int(self.type),
            "height": self.height,
            "round": self.round,
            "block_hash": self.block_hash,
            "timestamp_ns": self.timestamp_ns,
            "validator_address": self.validator_address,
            "signature": self.signature,
        }

    @cached_property
    def digest(self) -> bytes:
        """SHA-256 of the canonical encoding: what the signing record remembers."""
        return codec.hash_value(self.to_obj())

    @classmethod
    def from_obj(cls, obj: Any) -> Vote:
        f = _fields(
            obj,
            "vote",
            (
                "kind",
                "chain_id",
                "type",
                "height",
                "round",
                "block_hash",
                "timestamp_ns",
                "validator_address",
                "signature",
            ),
        )
        if f["kind"] != "vote" or f["type"] not in (1, 2) or not isinstance(f["chain_id"], str):
            raise MalformedError("vote: bad kind, type or chain id")
        return cls(
            f["chain_id"],
            VoteType(f["type"]),
            f["height"],
            f["round"],
            f["block_hash"],
            f["timestamp_ns"],
            f["validator_address"],
            f["signature"],
        )


@dataclass(frozen=True)
class Proposal:
    """The proposer's block for (height, round), with the round of its proof of lock.

    `pol_round` is the paper's validRound: -1, or the earlier round in which the
    block gathered +2/3 prevotes.
    """

    chain_id: str
    height: int
    round: int
    pol_round: int
    block: Block
    timestamp_ns: int
    proposer_address: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _int(self.height, "proposal.height", 1, INT64_MAX)
        _int(self.round, "proposal.round", 0, MAX_ROUND)
        _int(self.pol_round, "proposal.pol_round", -1, MAX_ROUND)
        if self.pol_round >= self.round:
            raise MalformedError("proposal.pol_round must be below its round")
        if not isinstance(self.block, Block) or self.block.height != self.height:
            raise MalformedError("proposal.block must be a block of the proposal's height")
        _int(self.timestamp_ns, "proposal.timestamp_ns", 0, INT64_MAX)
        _bytes(self.proposer_address, "proposal.proposer_address", (ADDRESS_BYTES,))
        _bytes(self.signature, "proposal.signature", (0, SIGNATURE_BYTES))

    @property
    def block_hash(self) -> bytes:
        return self.block.hash

    @classmethod
    def create(
        cls,
        key: PrivateKey,
        chain_id: str,
        height: int,
        round_: int,
        pol_round: int,
        block: Block,
        timestamp_ns: int,
    ) -> Proposal:
        unsigned = cls(
            chain_id,
            height,
            round_,
            pol_round,
            block,
            timestamp_ns,
            bytes.fromhex(key.address),
            b"",
        )
        return unsigned.with_signature(key.sign(unsigned.sign_bytes()))

    def with_signature(self, signature: bytes) -> Proposal:
        return Proposal(
            self.chain_id,
            self.height,
            self.round,
            self.pol_round,
            self.block,
            self.timestamp_ns,
            self.proposer_address,
            signature,
        )

    def sign_bytes(self) -> bytes:
        body = {
            "chain_id": self.chain_id,
            "type": "proposal",
            "height": self.height,
            "round": self.round,
            "pol_round": self.pol_round,
            "block_hash": self.block_hash,
            "timestamp_ns": self.timestamp_ns,
        }
        return PROPOSAL_SIGN_DOMAIN + codec.encode(body)

    def verify(self, public_key: bytes) -> bool:
        return verify(public_key, self.sign_bytes(), self.signature)

    def to_obj(self) -> dict[str, Any]:
        return {
            "kind": "proposal",
            "chain_id": self.chain_id,
            "height": self.height,
            "round": self.round,
            "pol_round": self.pol_round,
            "block": self.block.to_bytes(),
            "timestamp_ns": self.timestamp_ns,
            "proposer_address": self.proposer_address,
            "signature": self.signature,
        }

    @cached_property
    def digest(self) -> bytes:
        return codec.hash_value(self.to_obj())

    @classmethod
    def from_obj(cls, obj: Any) -> Proposal:
        f = _fields(
            obj,
            "proposal",
            (
                "kind",
                "chain_id",
                "height",
                "round",
                "pol_round",
                "block",
                "timestamp_ns",
                "proposer_address",
                "signature",
            ),
        )
        if f["kind"] != "proposal" or not isinstance(f["chain_id"], str):
            raise MalformedError("proposal: bad kind or chain id")
        if not isinstance(f["block"], bytes):
            raise MalformedError("proposal.block: expected bytes")
        block = Block.from_bytes(f["block"], MAX_BLOCK_BYTES)
        return cls(
            f["chain_id"],
            f["height"],
            f["round"],
            f["pol_round"],
            block,
            f["timestamp_ns"],
            f["proposer_address"],
            f["signature"],
        )


@dataclass(frozen=True)
class Decision:
    """A decided height as one message: the signed proposal and its commit certificate.

    Sent to a peer that lags behind. Taken as a whole (the certificate verified
    against the validator set), its precommits count even where the peer had seen
    a conflicting vote from an equivocating validator first, which vote-by-vote
    gossip could not overcome.
    """

    proposal: Proposal
    commit: Commit

    def __post_init__(self) -> None:
        if (self.proposal.height, self.proposal.round, self.proposal.block_hash) != (
            self.commit.height,
            self.commit.round,
            self.commit.block_hash,
        ):
            raise MalformedError("decision: the commit is not for the proposal's block")

    @property
    def chain_id(self) -> str:
        return self.proposal.chain_id

    @property
    def height(self) -> int:
        return self.commit.height

    @property
    def round(self) -> int:
        return self.commit.round

    def precommits(self) -> list[Vote]:
        """The commit's signatures as the precommit votes they are."""
        c = self.commit
        return [
            Vote(
                self.chain_id,
                VoteType.PRECOMMIT,
                c.height,
                c.round,
                c.block_hash,
                s.timestamp_ns,
                s.validator_address,
                s.signature,
            )
            for s in c.signatures
        ]

    def to_obj(self) -> dict[str, Any]:
        return {
            "kind": "decision",
            "proposal": self.proposal.to_obj(),
            "commit": self.commit.to_obj(),
        }

    @classmethod
    def from_obj(cls, obj: Any) -> Decision:
        f = _fields(obj, "decision", ("kind", "proposal", "commit"))
        return cls(Proposal.from_obj(f["proposal"]), Commit.from_obj(f["commit"]))


Message = Proposal | Vote | Decision


def message_from_obj(obj: Any) -> Message:
    """Decode a proposal or vote from its canonical object form."""
    kind = obj.get("kind") if hasattr(obj, "get") else None
    if kind == "vote":
        return Vote.from_obj(obj)
    if kind == "proposal":
        return Proposal.from_obj(obj)
    if kind == "decision":
        return Decision.from_obj(obj)
    raise MalformedError(f"consensus message: unknown kind {kind!r}")
