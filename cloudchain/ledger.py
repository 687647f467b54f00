"""Core data types: transactions, block headers, commits, blocks, events and results.

Every type here is an immutable dataclass with one canonical byte form
(`to_bytes`, via `cloudchain.codec`) and a `from_bytes` that accepts only that
form: bytes from a peer or a client are checked field by field (exact field
set, types, sizes) and rejected with a `MalformedError` naming the field, so
that nothing downstream ever sees a half-valid object.

These types know nothing of state, consensus rules or the network. Whether a
transaction's nonce is right or a block's proposer is the expected one is
decided elsewhere; here we only decide whether bytes are well-formed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from types import MappingProxyType
from typing import Any

from cloudchain import codec
from cloudchain.crypto import (
    ADDRESS_BYTES,
    PUBLIC_KEY_BYTES,
    SIGNATURE_BYTES,
    PrivateKey,
    address,
    verify,
)
from cloudchain.merkle import merkle_root

HASH_BYTES = 32
UINT64_MAX = 2**64 - 1
INT64_MAX = 2**63 - 1

# Protocol limits. They bound what a peer can make us decode; a chain may set
# tighter ones in its genesis consensus parameters.
MAX_TX_BYTES = 64 * 1024  # blobs live off chain; a transaction is a small message
MAX_BLOCK_BYTES = 16 * 1024 * 1024
MAX_BLOCK_TXS = 10_000
MAX_CHAIN_ID_CHARS = 50  # as CometBFT
MAX_NAME_CHARS = 32  # module and method names
MAX_COMMIT_SIGS = 1_000  # bound on validators that can sign one commit
MAX_LOG_CHARS = 1_024
MAX_TX_RESULT_BYTES = 64 * 1024  # a result whose events exceed this fails instead
MAX_EVENTS = 256
MAX_EVENT_ATTRIBUTES = 64
MAX_EVENT_STRING_CHARS = 256
# Bounds on decoded objects (see codec.decode): what a well-formed value can need.
MAX_TX_OBJECTS = 4_096  # a transaction's arguments are a small map
MAX_EVIDENCE_BYTES = 1_024  # one piece of evidence, encoded (about 450 bytes)
MAX_BLOCK_EVIDENCE = 64  # pieces of evidence in one block (each about 450 bytes)
EVIDENCE_OBJECTS = 48  # decoded objects in one piece of evidence: keys and values count
MAX_BLOCK_OBJECTS = (  # transactions are opaque bytes
    256 + MAX_BLOCK_TXS + 8 * MAX_COMMIT_SIGS + EVIDENCE_OBJECTS * MAX_BLOCK_EVIDENCE
)
MAX_TX_RESULT_OBJECTS = 8 + MAX_EVENTS * (6 + 3 * MAX_EVENT_ATTRIBUTES)

TX_SIGN_DOMAIN = b"cloudchain/tx/v1\x00"
VOTE_SIGN_DOMAIN = b"cloudchain/vote/v1\x00"
VOTE_TYPES = ("prevote", "precommit")

# Sign bytes from a transaction's encoding (Transaction._sign_bytes): the body's map
# header (7 entries, a fixmap), and the length of the last entry, the signature's.
_TX_BODY_MAP_HEADER = b"\x87"
_TX_SIGNATURE_ENTRY_BYTES = len(codec.encode({"signature": bytes(SIGNATURE_BYTES)})) - 1

_NAME = re.compile(r"\A[a-z][a-z0-9_]*\Z")
CHAIN_ID_PATTERN = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]*\Z")


class MalformedError(ValueError):
    """Bytes or values that do not form a valid object; the message names the field."""


class TooLargeError(MalformedError):
    """An encoded object exceeds its size limit."""


# --- field checks: each returns the value or raises MalformedError -------------------


def _fields(obj: Any, where: str, names: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise MalformedError(f"{where}: expected a map, got {type(obj).__name__}")
    missing = [n for n in names if n not in obj]
    if missing:
        raise MalformedError(f"{where}: missing field(s) {', '.join(missing)}")
    extra = sorted(set(obj) - set(names))
    if extra:
        raise MalformedError(f"{where}: unknown field(s) {', '.join(extra)}")
    return obj


def _has(obj: Any, name: str) -> bool:
    """Whether `obj` is a map holding `name` (an optional field's presence)."""
    return isinstance(obj, Mapping) and name in obj


def _int(value: Any, where: str, low: int = 0, high: int = UINT64_MAX) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedError(f"{where}: expected an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise MalformedError(f"{where}: {value} is outside [{low}, {high}]")
    return value


def _bytes(value: Any, where: str, sizes: tuple[int, ...]) -> bytes:
    if not isinstance(value, bytes):
        raise MalformedError(f"{where}: expected bytes, got {type(value).__name__}")
    if len(value) not in sizes:
        allowed = " or ".join(str(s) for s in sizes)
        raise MalformedError(f"{where}: expected {allowed} bytes, got {len(value)}")
    return value


def _str(value: Any, where: str, max_chars: int, pattern: re.Pattern[str] | None = None) -> str:
    if not isinstance(value, str):
        raise MalformedError(f"{where}: expected a string, got {type(value).__name__}")
    if len(value) > max_chars:
        raise MalformedError(f"{where}: {len(value)} characters, limit is {max_chars}")
    if pattern is not None and not pattern.match(value):
        raise MalformedError(f"{where}: {value!r} does not match {pattern.pattern}")
    return value


def _tuple(value: Any, where: str, max_items: int) -> tuple[Any, ...]:
    if not isinstance(value, tuple | list):
        raise MalformedError(f"{where}: expected an array, got {type(value).__name__}")
    if len(value) > max_items:
        raise MalformedError(f"{where}: {len(value)} items, limit is {max_items}")
    return tuple(value)


def _decode(data: bytes, where: str, max_bytes: int, max_objects: int) -> Any:
    if not isinstance(data, bytes | bytearray):
        raise MalformedError(f"{where}: expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise TooLargeError(f"{where}: {len(data)} bytes, limit is {max_bytes}")
    try:
        return codec.decode(bytes(data), max_bytes=max_bytes, max_objects=max_objects)
    except codec.CodecError as exc:
        raise MalformedError(f"{where}: {exc}") from None


def _check_all(obj: Any, where: str, builder: Callable[[Any], Any]) -> Any:
    """Run a constructor's own validation and report it as malformed input."""
    try:
        return builder(obj)
    except MalformedError:
        raise
    except (ValueError, TypeError, codec.CodecError) as exc:
        raise MalformedError(f"{where}: {exc}") from None


# --- transactions ----------------------------------------------------------------------


@dataclass(frozen=True)
class Transaction:
    """A signed request to run `module.method(args)` as the holder of `sender`.

    `nonce` is the sender's count of transactions already included on chain;
    it makes replays fail, and `chain_id` makes cross-chain replays fail. `fee`
    is what the sender pays, in token units, for the transaction's inclusion,
    whether its handler succeeds or not (the minimum is the genesis fee schedule's,
    `cloudchain/fees.py`). The signature covers the canonical encoding of every
    other field.
    """

    chain_id: str
    sender: bytes  # Ed25519 public key
    nonce: int
    fee: int  # token units
    module: str
    method: str
    args: Mapping[str, Any]
    signature: bytes

    FIELDS = ("chain_id", "sender", "nonce", "fee", "module", "method", "args", "signature")
    # The fields in their encoding's order (sorted by UTF-8 bytes, as codec.encode does).
    _ENCODED_ORDER = tuple(sorted(FIELDS, key=str.encode))

    def __post_init__(self) -> None:
        self._check_fields()
        object.__setattr__(self, "args", codec.freeze(self.args))

    def _check_fields(self) -> None:
        _str(self.chain_id, "transaction.chain_id", MAX_CHAIN_ID_CHARS, CHAIN_ID_PATTERN)
        _bytes(self.sender, "transaction.sender", (PUBLIC_KEY_BYTES,))
        _int(self.nonce, "transaction.nonce", 0, INT64_MAX)  # so that nonce + 1 always fits
        _int(self.fee, "transaction.fee", 0, INT64_MAX)  # an amount, as every balance
        _str(self.module, "transaction.module", MAX_NAME_CHARS, _NAME)
        _str(self.method, "transaction.method", MAX_NAME_CHARS, _NAME)
        if not isinstance(self.args, Mapping):
            raise MalformedError("transaction.args: expected a map")
        _bytes(self.signature, "transaction.signature", (SIGNATURE_BYTES,))

    @classmethod
    def create(
        cls,
        key: PrivateKey,
        chain_id: str,
        nonce: int,
        module: str,
        method: str,
        args: Mapping[str, Any],
        *,
        fee: int,
    ) -> Transaction:
        """Build and sign a transaction with `key`, paying `fee` (`cloudchain.fees.
        priced_transaction` finds the minimum a chain's schedule asks)."""
        unsigned = cls(
            chain_id, key.public_key, nonce, fee, module, method, args, bytes(SIGNATURE_BYTES)
        )
        return unsigned.with_signature(key.sign(unsigned.sign_bytes()))

    def with_signature(self, signature: bytes) -> Transaction:
        """This transaction signed with `signature` (checked as any field). Its encoding
        and sign bytes follow from this one's: the body is the same, the signature is
        the last `SIGNATURE_BYTES` of the encoding."""
        signed = replace(self, signature=signature)
        cached = self.__dict__
        if "_encoded" in cached:
            signed.__dict__["_encoded"] = cached["_encoded"][:-SIGNATURE_BYTES] + signature
        if "_sign_bytes" in cached:
            signed.__dict__["_sign_bytes"] = cached["_sign_bytes"]
        return signed

    def _body(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "sender": self.sender,
            "nonce": self.nonce,
            "fee": self.fee,
            "module": self.module,
            "method": self.method,
            "args": self.args,
        }

    def sign_bytes(self) -> bytes:
        """The bytes the sender signs: a domain tag and the canonical body."""
        return self._sign_bytes

    @cached_property
    def _sign_bytes(self) -> bytes:
        # The body's encoding is the transaction's without its last entry: `signature`
        # sorts last among the fields and its value is always SIGNATURE_BYTES long. So
        # it is a map header for one entry fewer, then the encoding up to that entry
        # (test_codec_vectors and test_ledger check it against encoding the body).
        return TX_SIGN_DOMAIN + _TX_BODY_MAP_HEADER + self._encoded[1:-_TX_SIGNATURE_ENTRY_BYTES]

    def verify_signature(self) -> bool:
        return verify(self.sender, self.sign_bytes(), self.signature)

    @cached_property
    def sender_address(self) -> str:
        return address(self.sender)

    def to_bytes(self) -> bytes:
        return self._encoded

    @cached_property
    def _encoded(self) -> bytes:
        return codec.encode({**self._body(), "signature": self.signature})

    @cached_property
    def hash(self) -> bytes:
        """SHA-256 of the transaction's canonical bytes (its id, as in CometBFT)."""
        return codec.sha256(self._encoded)

    @classmethod
    def from_bytes(cls, data: bytes, max_bytes: int = MAX_TX_BYTES) -> Transaction:
        """Decode a transaction; the same bytes decoded lately give the same object
        (`_recently_decoded`), as decoding is a pure function of them."""
        if type(data) is bytes and len(data) <= min(max_bytes, MAX_TX_BYTES):
            return _recently_decoded(data)
        return cls._decode_new(data, max_bytes)

    @classmethod
    def _decode_new(cls, data: bytes, max_bytes: int = MAX_TX_BYTES) -> Transaction:
        obj = _decode(data, "transaction", max_bytes, MAX_TX_OBJECTS)
        if isinstance(obj, MappingProxyType) and tuple(obj) == cls._ENCODED_ORDER:
            tx = cls._from_decoded(obj)
        else:
            tx = cls.from_obj(obj)  # which names what is wrong
        # codec.decode accepts only the canonical encoding of `obj`, which has exactly
        # the transaction's fields: `data` is what `_encoded` would compute.
        tx.__dict__["_encoded"] = bytes(data)
        return tx

    @classmethod
    def _from_decoded(cls, obj: Mapping[str, Any]) -> Transaction:
        """`from_obj` for a map codec.decode made, with exactly the fields: the same
        checks but none of `_fields`, and no `freeze` of the arguments, which decoding
        left frozen and key-sorted already (test_ledger checks this stays `cls(...)`)."""
        tx = object.__new__(cls)
        for name in cls.FIELDS:
            object.__setattr__(tx, name, obj[name])
        _check_all(tx, "transaction", cls._check_fields)
        return tx

    @classmethod
    def from_obj(cls, obj: Any) -> Transaction:
        f = _fields(obj, "transaction", cls.FIELDS)
        return _check_all(
            f,
            "transaction",
            lambda f: cls(
                f["chain_id"],
                f["sender"],
                f["nonce"],
                f["fee"],
                f["module"],
                f["method"],
                f["args"],
                f["signature"],
            ),
        )


# A node decodes each transaction when a client or a peer sends it, and again in the
# proposal that includes it; the second decode is the first one's object (Transaction
# is immutable, and its signature's verdict is not part of it: chaincode/signatures.py
# keeps that). Bounded: the least recently used go first. Malformed bytes raise and
# are not kept.
RECENT_TXS = 16_384


@lru_cache(maxsize=RECENT_TXS)
def _recently_decoded(data: bytes) -> Transaction:
    return Transaction._decode_new(data)


# --- evidence --------------------------------------------------------------------------


@dataclass(frozen=True)
class EvidenceVote:
    """One of the two votes of a duplicate vote, as a block carries it (a consensus
    vote without its chain id, which the chain's sign bytes supply)."""

    type: str  # "prevote" or "precommit"
    height: int
    round: int
    block_hash: bytes  # empty: a vote for nil
    timestamp_ns: int
    validator_address: bytes
    signature: bytes

    FIELDS = (
        "type",
        "height",
        "round",
        "block_hash",
        "timestamp_ns",
        "validator_address",
        "signature",
    )

    def __post_init__(self) -> None:
        if self.type not in VOTE_TYPES:
            raise MalformedError(f"evidence.vote.type: {self.type!r} is not one of {VOTE_TYPES}")
        _int(self.height, "evidence.vote.height", 1, INT64_MAX)
        _int(self.round, "evidence.vote.round", 0, 2**31 - 1)
        _bytes(self.block_hash, "evidence.vote.block_hash", (0, HASH_BYTES))
        _int(self.timestamp_ns, "evidence.vote.timestamp_ns", 0, INT64_MAX)
        _bytes(self.validator_address, "evidence.vote.validator_address", (ADDRESS_BYTES,))
        _bytes(self.signature, "evidence.vote.signature", (SIGNATURE_BYTES,))

    def sign_bytes(self, chain_id: str) -> bytes:
        return vote_sign_bytes(
            chain_id, self.type, self.height, self.round, self.block_hash, self.timestamp_ns
        )

    def verify(self, chain_id: str, public_key: bytes) -> bool:
        return verify(public_key, self.sign_bytes(chain_id), self.signature)

    def to_obj(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.FIELDS}

    @classmethod
    def from_obj(cls, obj: Any) -> EvidenceVote:
        f = _fields(obj, "evidence.vote", cls.FIELDS)
        if not isinstance(f["type"], str):
            raise MalformedError("evidence.vote.type: expected a string")
        return _check_all(f, "evidence.vote", lambda f: cls(**{n: f[n] for n in cls.FIELDS}))


@dataclass(frozen=True)
class DuplicateVoteEvidence:
    """A validator signed two votes of one type for different blocks at one height and
    round: CometBFT's DuplicateVoteEvidence. Well-formed means the two votes agree on
    validator, height, round and type and differ in block, `vote_a` holding the smaller
    block hash (so one equivocation has one encoding, hence one hash); whether the
    signatures verify and the powers are the validator set's is the application's to
    check (Application.evidence_error), as it is for a last commit.

    `timestamp_ns` is the time of the block at the votes' height, which dates the
    evidence for expiry; the powers are the validator's and the set's at that height."""

    vote_a: EvidenceVote
    vote_b: EvidenceVote
    total_voting_power: int
    validator_power: int
    timestamp_ns: int

    FIELDS = ("vote_a", "vote_b", "total_voting_power", "validator_power", "timestamp_ns")

    def __post_init__(self) -> None:
        a, b = self.vote_a, self.vote_b
        if not isinstance(a, EvidenceVote) or not isinstance(b, EvidenceVote):
            raise MalformedError("evidence: expected two EvidenceVote")
        if (a.validator_address, a.height, a.round, a.type) != (
            b.validator_address,
            b.height,
            b.round,
            b.type,
        ):
            raise MalformedError("evidence: the votes differ in validator, height, round or type")
        if not a.block_hash < b.block_hash:
            raise MalformedError(
                "evidence: vote_a's block hash must sort before vote_b's (and differ from it)"
            )
        _int(self.total_voting_power, "evidence.total_voting_power", 1, INT64_MAX)
        _int(self.validator_power, "evidence.validator_power", 1, self.total_voting_power)
        _int(self.timestamp_ns, "evidence.timestamp_ns", 0, INT64_MAX)

    @classmethod
    def of(
        cls,
        first: EvidenceVote,
        second: EvidenceVote,
        total_voting_power: int,
        validator_power: int,
        timestamp_ns: int,
    ) -> DuplicateVoteEvidence:
        """The evidence of two conflicting votes, in whichever order they came."""
        a, b = sorted((first, second), key=lambda v: v.block_hash)
        return cls(a, b, total_voting_power, validator_power, timestamp_ns)

    @property
    def height(self) -> int:
        return self.vote_a.height

    @property
    def validator_address(self) -> bytes:
        return self.vote_a.validator_address

    def is_expired(self, height: int, time_ns: int, max_age_blocks: int, max_age_ns: int) -> bool:
        """CometBFT's rule: too old to be committed at (`height`, `time_ns`) once both
        more than `max_age_blocks` blocks and more than `max_age_ns` have passed."""
        return height - self.height > max_age_blocks and time_ns - self.timestamp_ns > max_age_ns

    def to_obj(self) -> dict[str, Any]:
        return {
            "vote_a": self.vote_a.to_obj(),
            "vote_b": self.vote_b.to_obj(),
            "total_voting_power": self.total_voting_power,
            "validator_power": self.validator_power,
            "timestamp_ns": self.timestamp_ns,
        }

    def to_bytes(self) -> bytes:
        return codec.encode(self.to_obj())

    @cached_property
    def hash(self) -> bytes:
        return codec.sha256(self.to_bytes())

    @classmethod
    def from_obj(cls, obj: Any) -> DuplicateVoteEvidence:
        f = _fields(obj, "evidence", cls.FIELDS)
        a = EvidenceVote.from_obj(f["vote_a"])
        b = EvidenceVote.from_obj(f["vote_b"])
        return _check_all(
            f,
            "evidence",
            lambda f: cls(a, b, f["total_voting_power"], f["validator_power"], f["timestamp_ns"]),
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> DuplicateVoteEvidence:
        return cls.from_obj(_decode(data, "evidence", MAX_EVIDENCE_BYTES, EVIDENCE_OBJECTS))


def evidence_bytes(evidence: Sequence[DuplicateVoteEvidence]) -> int:
    """An upper bound on what `evidence` adds to a block's encoding: each piece, and the
    framing of the list and its items (a few bytes each)."""
    return sum(len(e.to_bytes()) + 8 for e in evidence)


def evidence_hash(evidence: Sequence[DuplicateVoteEvidence]) -> bytes:
    """What a header's evidence_hash holds: the Merkle root of the evidence's hashes
    (empty for none, so that the field is left out)."""
    return merkle_root([e.hash for e in evidence]) if evidence else b""


# --- blocks ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockHeader:
    """What a block commits to. `app_hash` is the state root after the previous block."""

    chain_id: str
    height: int
    time_ns: int
    last_block_hash: bytes  # empty at the first height
    last_commit_hash: bytes  # empty at the first height
    data_hash: bytes  # Merkle root of the transactions' hashes
    app_hash: bytes  # state after the previous block
    last_results_hash: bytes  # results of the previous block's transactions
    validators_hash: bytes
    proposer_address: bytes
    # Merkle root of the evidence's hashes; empty, and left out of the encoding, when
    # the block carries none (so that blocks without evidence hash as they always did).
    evidence_hash: bytes = b""

    FIELDS = (
        "chain_id",
        "height",
        "time_ns",
        "last_block_hash",
        "last_commit_hash",
        "data_hash",
        "app_hash",
        "last_results_hash",
        "validators_hash",
        "proposer_address",
    )

    def __post_init__(self) -> None:
        _str(self.chain_id, "header.chain_id", MAX_CHAIN_ID_CHARS, CHAIN_ID_PATTERN)
        _int(self.height, "header.height", 1, INT64_MAX)
        _int(self.time_ns, "header.time_ns", 0, INT64_MAX)
        _bytes(self.last_block_hash, "header.last_block_hash", (0, HASH_BYTES))
        _bytes(self.last_commit_hash, "header.last_commit_hash", (0, HASH_BYTES))
        _bytes(self.data_hash, "header.data_hash", (HASH_BYTES,))
        _bytes(self.app_hash, "header.app_hash", (HASH_BYTES,))
        _bytes(self.last_results_hash, "header.last_results_hash", (HASH_BYTES,))
        _bytes(self.validators_hash, "header.validators_hash", (HASH_BYTES,))
        _bytes(self.proposer_address, "header.proposer_address", (ADDRESS_BYTES,))
        _bytes(self.evidence_hash, "header.evidence_hash", (0, HASH_BYTES))

    def to_obj(self) -> dict[str, Any]:
        obj = {name: getattr(self, name) for name in self.FIELDS}
        if self.evidence_hash:
            obj["evidence_hash"] = self.evidence_hash
        return obj

    def to_bytes(self) -> bytes:
        return codec.encode(self.to_obj())

    @cached_property
    def hash(self) -> bytes:
        """The block hash: SHA-256 of the header's canonical bytes."""
        return codec.sha256(self.to_bytes())

    @classmethod
    def from_obj(cls, obj: Any) -> BlockHeader:
        names = (*cls.FIELDS, "evidence_hash") if _has(obj, "evidence_hash") else cls.FIELDS
        f = _fields(obj, "header", names)
        if "evidence_hash" in f and f["evidence_hash"] == b"":
            raise MalformedError("header.evidence_hash: present but empty (leave it out)")
        return _check_all(f, "header", lambda f: cls(**{n: f[n] for n in names}))

    @classmethod
    def from_bytes(cls, data: bytes) -> BlockHeader:
        return cls.from_obj(_decode(data, "header", 4096, 64))


def vote_sign_bytes(
    chain_id: str, vote_type: str, height: int, round_: int, block_hash: bytes, timestamp_ns: int
) -> bytes:
    """The bytes a validator signs to vote for `block_hash` (empty: nil).

    Chain id, height, round and type are all inside, so a vote can be replayed
    neither on another chain nor at another step.
    """
    assert vote_type in VOTE_TYPES
    body = {
        "chain_id": chain_id,
        "height": height,
        "round": round_,
        "type": vote_type,
        "block_hash": block_hash,
        "timestamp_ns": timestamp_ns,
    }
    return VOTE_SIGN_DOMAIN + codec.encode(body)


def precommit_sign_bytes(
    chain_id: str, height: int, round_: int, block_hash: bytes, timestamp_ns: int
) -> bytes:
    """The bytes a validator signs to precommit `block_hash` (what a commit carries)."""
    return vote_sign_bytes(chain_id, "precommit", height, round_, block_hash, timestamp_ns)


@dataclass(frozen=True)
class CommitSig:
    """One validator's signed precommit for the committed block."""

    validator_address: bytes
    timestamp_ns: int
    signature: bytes

    def __post_init__(self) -> None:
        _bytes(self.validator_address, "commit_sig.validator_address", (ADDRESS_BYTES,))
        _int(self.timestamp_ns, "commit_sig.timestamp_ns", 0, INT64_MAX)
        _bytes(self.signature, "commit_sig.signature", (SIGNATURE_BYTES,))

    def to_obj(self) -> dict[str, Any]:
        return {
            "validator_address": self.validator_address,
            "timestamp_ns": self.timestamp_ns,
            "signature": self.signature,
        }

    @classmethod
    def from_obj(cls, obj: Any) -> CommitSig:
        f = _fields(obj, "commit_sig", ("validator_address", "timestamp_ns", "signature"))
        return cls(f["validator_address"], f["timestamp_ns"], f["signature"])


@dataclass(frozen=True)
class Commit:
    """Precommit signatures for the block `block_hash` at `height`, decided in `round`.

    Whether the signers hold +2/3 of the voting power is for the consensus layer
    to check against the validator set; this type only carries them.
    """

    height: int
    round: int
    block_hash: bytes
    signatures: tuple[CommitSig, ...]

    def __post_init__(self) -> None:
        _int(self.height, "commit.height", 1, INT64_MAX)
        _int(self.round, "commit.round", 0, 2**31 - 1)
        _bytes(self.block_hash, "commit.block_hash", (HASH_BYTES,))
        sigs = _tuple(self.signatures, "commit.signatures", MAX_COMMIT_SIGS)
        if not all(isinstance(s, CommitSig) for s in sigs):
            raise MalformedError("commit.signatures: expected CommitSig items")
        object.__setattr__(self, "signatures", sigs)

    def to_obj(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "round": self.round,
            "block_hash": self.block_hash,
            "signatures": [s.to_obj() for s in self.signatures],
        }

    def hash(self) -> bytes:
        return codec.hash_value(self.to_obj())

    def median_time_ns(self, powers: Mapping[bytes, int]) -> int:
        """BFT time, as CometBFT: the signers' timestamps' median weighted by power.

        The next block's time must equal it, so no single proposer chooses the
        time: it moves only as +2/3 of the power's clocks move. `powers` maps
        validator address to power and must name every signer.
        """
        assert self.signatures, "a commit has signatures"
        weighted = sorted((s.timestamp_ns, powers[s.validator_address]) for s in self.signatures)
        median = sum(power for _, power in weighted) // 2
        for timestamp, power in weighted:
            if median <= power:
                return timestamp
            median -= power
        raise AssertionError("unreachable: the weights sum past the median")

    @classmethod
    def from_obj(cls, obj: Any) -> Commit:
        f = _fields(obj, "commit", ("height", "round", "block_hash", "signatures"))
        sigs = _tuple(f["signatures"], "commit.signatures", MAX_COMMIT_SIGS)
        return _check_all(
            f,
            "commit",
            lambda f: cls(
                f["height"], f["round"], f["block_hash"], tuple(CommitSig.from_obj(s) for s in sigs)
            ),
        )


@dataclass(frozen=True)
class Block:
    """A header, its transactions, the commit that finalised the previous block, and
    evidence of validators' misbehaviour (left out of the encoding when there is none)."""

    header: BlockHeader
    txs: tuple[Transaction, ...]
    last_commit: Commit | None  # None exactly at the first height
    evidence: tuple[DuplicateVoteEvidence, ...] = ()

    def __post_init__(self) -> None:
        txs = _tuple(self.txs, "block.txs", MAX_BLOCK_TXS)
        if not all(isinstance(t, Transaction) for t in txs):
            raise MalformedError("block.txs: expected Transaction items")
        object.__setattr__(self, "txs", txs)
        evidence = _tuple(self.evidence, "block.evidence", MAX_BLOCK_EVIDENCE)
        if not all(isinstance(e, DuplicateVoteEvidence) for e in evidence):
            raise MalformedError("block.evidence: expected DuplicateVoteEvidence items")
        object.__setattr__(self, "evidence", evidence)

    @property
    def height(self) -> int:
        return self.header.height

    @property
    def hash(self) -> bytes:
        return self.header.hash

    def to_bytes(self) -> bytes:
        return self._encoded

    @cached_property
    def _encoded(self) -> bytes:
        obj: dict[str, Any] = {
            "header": self.header.to_obj(),
            "txs": [tx.to_bytes() for tx in self.txs],
            "last_commit": None if self.last_commit is None else self.last_commit.to_obj(),
        }
        if self.evidence:
            obj["evidence"] = [e.to_obj() for e in self.evidence]
        return codec.encode(obj)

    @classmethod
    def from_bytes(cls, data: bytes, max_bytes: int = MAX_BLOCK_BYTES) -> Block:
        block = cls._from_decoded(_decode(data, "block", max_bytes, MAX_BLOCK_OBJECTS))
        # Canonical (codec.decode proved it) and of exactly a block's fields, each of
        # which encodes back as decoded: `data` is what `_encoded` would compute.
        block.__dict__["_encoded"] = bytes(data)
        return block

    @classmethod
    def _from_decoded(cls, obj: Any) -> Block:
        names = ("header", "txs", "last_commit")
        if _has(obj, "evidence"):
            names = (*names, "evidence")
        f = _fields(obj, "block", names)
        header = BlockHeader.from_obj(f["header"])
        raw_txs = _tuple(f["txs"], "block.txs", MAX_BLOCK_TXS)
        txs = []
        for i, raw in enumerate(raw_txs):
            try:
                txs.append(Transaction.from_bytes(_bytes_any(raw, f"block.txs[{i}]")))
            except MalformedError as exc:
                raise MalformedError(f"block.txs[{i}]: {exc}") from None
        last = None if f["last_commit"] is None else Commit.from_obj(f["last_commit"])
        evidence: tuple[DuplicateVoteEvidence, ...] = ()
        if "evidence" in f:
            raw_evidence = _tuple(f["evidence"], "block.evidence", MAX_BLOCK_EVIDENCE)
            if not raw_evidence:
                raise MalformedError("block.evidence: present but empty (leave it out)")
            evidence = tuple(DuplicateVoteEvidence.from_obj(e) for e in raw_evidence)
        return cls(header, tuple(txs), last, evidence)


# What a block's encoding may spend besides its transactions: the header and the
# map around it (under 1 KiB with a 50-character chain id) and the last commit
# (each signature is 139 bytes encoded); each transaction adds a bin32 framing.
BLOCK_FIXED_OVERHEAD_BYTES = 1_024
COMMIT_SIG_OVERHEAD_BYTES = 160
TX_FRAMING_BYTES = 5


def block_overhead_bytes(validator_count: int) -> int:
    """An upper bound on a block's encoded size when it holds no transaction."""
    return BLOCK_FIXED_OVERHEAD_BYTES + COMMIT_SIG_OVERHEAD_BYTES * validator_count


def _bytes_any(value: Any, where: str) -> bytes:
    if not isinstance(value, bytes):
        raise MalformedError(f"{where}: expected bytes, got {type(value).__name__}")
    return value


def txs_hash(txs: tuple[Transaction, ...] | list[Transaction]) -> bytes:
    """The header's data_hash: the Merkle root over the transactions' hashes.

    As CometBFT's `Txs.Hash`, leaves are SHA-256(tx bytes), so a transaction's
    inclusion can later be proven by its hash alone.
    """
    return merkle_root([tx.hash for tx in txs])


# --- execution results -----------------------------------------------------------------


def _is_plain_event(type_: Any, attributes: Any) -> bool:
    """An event as handlers make them, checked in one pass: a name, and a tuple of
    (name, string) tuples, each within its bounds."""
    if not (
        type(type_) is str
        and len(type_) <= MAX_EVENT_STRING_CHARS
        and _NAME.match(type_)
        and type(attributes) is tuple
        and len(attributes) <= MAX_EVENT_ATTRIBUTES
    ):
        return False
    for pair in attributes:
        if type(pair) is not tuple or len(pair) != 2:
            return False
        key, value = pair
        if not (
            type(key) is str
            and len(key) <= MAX_EVENT_STRING_CHARS
            and _NAME.match(key)
            and type(value) is str
            and len(value) <= MAX_EVENT_STRING_CHARS
        ):
            return False
    return True


@dataclass(frozen=True)
class Event:
    """A typed, attributed record a handler emits, as in ABCI (`transfer`, `amount=5`)."""

    type: str
    attributes: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not _is_plain_event(self.type, self.attributes):
            self._check_and_normalise()

    def _check_and_normalise(self) -> None:
        """The checks of `_is_plain_event` one by one, naming what fails; and pairs given
        as lists become tuples."""
        _str(self.type, "event.type", MAX_EVENT_STRING_CHARS, _NAME)
        attrs = _tuple(self.attributes, "event.attributes", MAX_EVENT_ATTRIBUTES)
        for pair in attrs:
            if not (isinstance(pair, tuple | list) and len(pair) == 2):
                raise MalformedError("event.attributes: expected (key, value) pairs")
            _str(pair[0], "event.attribute.key", MAX_EVENT_STRING_CHARS, _NAME)
            _str(pair[1], "event.attribute.value", MAX_EVENT_STRING_CHARS)
        object.__setattr__(self, "attributes", tuple((k, v) for k, v in attrs))

    def to_obj(self) -> dict[str, Any]:
        return {"type": self.type, "attributes": [list(a) for a in self.attributes]}

    def ordered(self) -> dict[str, Any]:
        """`to_obj()` in encoding order (keys sorted, pairs as tuples): codec.encode_ordered
        encodes it as codec.encode would encode `to_obj()`."""
        return {"attributes": self.attributes, "type": self.type}

    @classmethod
    def from_obj(cls, obj: Any) -> Event:
        f = _fields(obj, "event", ("type", "attributes"))
        return _check_all(
            f, "event", lambda f: cls(f["type"], tuple(tuple(a) for a in f["attributes"]))
        )


@dataclass(frozen=True)
class TxResult:
    """The outcome of one transaction in a block: code 0 is success."""

    code: int
    codespace: str
    log: str
    events: tuple[Event, ...]
    height: int
    index: int

    FIELDS = ("code", "codespace", "log", "events", "height", "index")

    def __post_init__(self) -> None:
        _int(self.code, "tx_result.code", 0, 2**32 - 1)
        _str(self.codespace, "tx_result.codespace", MAX_NAME_CHARS)
        _str(self.log, "tx_result.log", MAX_LOG_CHARS)
        object.__setattr__(self, "events", _tuple(self.events, "tx_result.events", MAX_EVENTS))
        _int(self.height, "tx_result.height", 1, INT64_MAX)
        _int(self.index, "tx_result.index", 0, MAX_BLOCK_TXS)

    @property
    def ok(self) -> bool:
        return self.code == 0

    def to_obj(self) -> dict[str, Any]:
        obj = {name: getattr(self, name) for name in self.FIELDS}
        obj["events"] = [e.to_obj() for e in self.events]
        return obj

    def to_bytes(self) -> bytes:
        return self._encoded

    @cached_property
    def _encoded(self) -> bytes:  # measured against MAX_TX_RESULT_BYTES, then stored
        # `to_obj()` in encoding order: the fields' names sort as written here.
        return codec.encode_ordered(
            {
                "code": self.code,
                "codespace": self.codespace,
                "events": [e.ordered() for e in self.events],
                "height": self.height,
                "index": self.index,
                "log": self.log,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> TxResult:
        obj = _decode(data, "tx_result", MAX_TX_RESULT_BYTES, MAX_TX_RESULT_OBJECTS)
        f = _fields(obj, "tx_result", cls.FIELDS)
        events = tuple(Event.from_obj(e) for e in _tuple(f["events"], "events", MAX_EVENTS))
        result = _check_all(
            f,
            "tx_result",
            lambda f: cls(f["code"], f["codespace"], f["log"], events, f["height"], f["index"]),
        )
        # Canonical, of exactly a result's fields (and its events' exactly theirs).
        result.__dict__["_encoded"] = bytes(data)
        return result


def results_hash(results: Sequence[TxResult]) -> bytes:
    """The Merkle root over the deterministic part of each result: code and codespace.

    Logs and events are left out, as CometBFT leaves them out of LastResultsHash:
    they are for people, and a module may word them differently across versions.
    """
    return merkle_root([codec.encode({"code": r.code, "codespace": r.codespace}) for r in results])


@dataclass(frozen=True)
class Validator:
    """A validator named in genesis: its public key and voting power."""

    public_key: bytes
    power: int
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        _bytes(self.public_key, "validator.public_key", (PUBLIC_KEY_BYTES,))
        _int(self.power, "validator.power", 1, INT64_MAX // 8)

    @property
    def address(self) -> bytes:
        return bytes.fromhex(address(self.public_key))


def validators_hash(validators: tuple[Validator, ...] | list[Validator]) -> bytes:
    """Merkle root over each validator's canonical (public key, power), in set order."""
    return merkle_root(
        [codec.encode({"public_key": v.public_key, "power": v.power}) for v in validators]
    )
