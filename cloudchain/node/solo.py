"""A single-validator chain with no network: it proposes, decides and commits alone.

This drives the application exactly as consensus will (prepare_proposal,
process_proposal, finalize_block, commit) and builds well-formed blocks whose
last commit carries the validator's real signature. It serves the demo until
the networked node exists, and tests that need a chain without consensus.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cloudchain.chaincode.application import Application, FinalizeResult
from cloudchain.crypto import PrivateKey
from cloudchain.ledger import (
    Block,
    BlockHeader,
    Commit,
    CommitSig,
    DuplicateVoteEvidence,
    Transaction,
    evidence_bytes,
    evidence_hash,
    precommit_sign_bytes,
    txs_hash,
)


@dataclass(frozen=True)
class Produced:
    block: Block
    result: FinalizeResult


def bft_time_ns(app: Application, last_commit: Commit | None) -> int:
    """The time of the block after the committed chain: the genesis time at the first
    height, later the weighted median of the last commit's timestamps."""
    if last_commit is None:
        return app.genesis.genesis_time_ns
    return last_commit.median_time_ns({v.address: v.power for v in app.genesis.validators})


def build_block(
    app: Application,
    txs: Sequence[Transaction],
    proposer: PrivateKey,
    last_commit: Commit | None,
    time_ns: int | None = None,
    evidence: Sequence[DuplicateVoteEvidence] = (),
) -> Block:
    """A block that extends the application's committed chain with `txs` and
    `evidence`. Its time is BFT time (`bft_time_ns`) unless `time_ns` overrides it."""
    info = app.info()
    if time_ns is None:
        time_ns = bft_time_ns(app, last_commit)
    header = BlockHeader(
        chain_id=app.genesis.chain_id,
        height=info.height + 1,
        time_ns=time_ns,
        last_block_hash=info.last_block_hash,
        last_commit_hash=b"" if last_commit is None else last_commit.hash(),
        data_hash=txs_hash(list(txs)),
        app_hash=info.app_hash,
        last_results_hash=info.last_results_hash,
        validators_hash=app.genesis.validators_hash,
        proposer_address=bytes.fromhex(proposer.address),
        evidence_hash=evidence_hash(evidence),
    )
    return Block(header, tuple(txs), last_commit, tuple(evidence))


def sign_commit(
    chain_id: str, block: Block, key: PrivateKey, timestamp_ns: int | None = None
) -> Commit:
    """A lone validator's commit for `block`; its precommit is timestamped at
    `timestamp_ns`, which must be after the block's time (default: 1 ns after)."""
    if timestamp_ns is None:
        timestamp_ns = block.header.time_ns + 1
    assert timestamp_ns > block.header.time_ns, "a precommit follows its block"
    sign_bytes = precommit_sign_bytes(chain_id, block.height, 0, block.hash, timestamp_ns)
    sig = CommitSig(bytes.fromhex(key.address), timestamp_ns, key.sign(sign_bytes))
    return Commit(block.height, 0, block.hash, (sig,))


class SoloChain:
    def __init__(
        self,
        app: Application,
        key: PrivateKey,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if len(app.genesis.validators) != 1 or app.genesis.validators[0].public_key != (
            key.public_key
        ):
            raise ValueError("a solo chain needs a genesis whose only validator is its key")
        self._app = app
        self._key = key
        self._clock_ns = clock_ns

    @property
    def app(self) -> Application:
        return self._app

    def produce_block(
        self, candidates: Sequence[bytes], evidence: Sequence[DuplicateVoteEvidence] = ()
    ) -> Produced:
        """Propose a block from `candidates` and `evidence` (carried as given: a test may
        offer evidence the application refuses), check it, execute it and commit it."""
        app = self._app
        last = app.store.last_block
        last_commit = None
        if last is not None:
            # As a validator does: precommit at its clock's time, but never before the block.
            timestamp_ns = max(self._clock_ns(), last.header.time_ns + 1)
            last_commit = sign_commit(app.genesis.chain_id, last, self._key, timestamp_ns)
        txs = app.prepare_proposal(candidates, reserved_bytes=evidence_bytes(evidence))
        block = build_block(app, txs, self._key, last_commit, evidence=evidence)
        verdict = app.process_proposal(block)
        assert verdict.accept, f"own proposal rejected: {verdict.reason}"
        result = app.finalize_block(block)
        app.commit()
        return Produced(block, result)
