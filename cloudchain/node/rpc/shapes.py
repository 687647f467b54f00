"""Our blocks, commits, results and events in the JSON shapes of CometBFT v0.38's RPC.

Pure functions from our types to JSON values; no I/O and no node state. The
encodings are CometBFT's: heights and counts as decimal strings, hashes as
upper-case hex, transactions as base64, times as RFC 3339 with nanoseconds.
The methods (chain.py, info.py, broadcast.py) answer with these; the
WebSocket (websocket.py) sends the event payloads built here.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from cloudchain import codec
from cloudchain.ledger import (
    Block,
    BlockHeader,
    Commit,
    DuplicateVoteEvidence,
    Event,
    EvidenceVote,
    Transaction,
    TxResult,
    Validator,
)
from cloudchain.storage.chain import BlockResults
from cloudchain.timefmt import format_rfc3339_ns

Tags = dict[str, list[str]]
BLOCK_ID_FLAG_ABSENT, BLOCK_ID_FLAG_COMMIT = 1, 2  # CometBFT's BlockIDFlag
ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time, an absent vote's timestamp


def hex_upper(data: bytes) -> str:
    return data.hex().upper()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def block_id_json(block_hash: bytes) -> dict[str, Any]:
    # We do not split blocks into parts; one part whose hash is the block's.
    return {
        "hash": hex_upper(block_hash),
        "parts": {"total": 1 if block_hash else 0, "hash": hex_upper(block_hash)},
    }


def header_json(header: BlockHeader) -> dict[str, Any]:
    return {
        "version": {"block": "11", "app": "0"},
        "chain_id": header.chain_id,
        "height": str(header.height),
        "time": format_rfc3339_ns(header.time_ns),
        "last_block_id": block_id_json(header.last_block_hash),
        "last_commit_hash": hex_upper(header.last_commit_hash),
        "data_hash": hex_upper(header.data_hash),
        "validators_hash": hex_upper(header.validators_hash),
        "next_validators_hash": hex_upper(header.validators_hash),  # the set never changes
        "consensus_hash": "",
        "app_hash": hex_upper(header.app_hash),
        "last_results_hash": hex_upper(header.last_results_hash),
        # No evidence: RFC 6962's empty root, as CometBFT writes it.
        "evidence_hash": hex_upper(header.evidence_hash or codec.sha256(b"")),
        "proposer_address": hex_upper(header.proposer_address),
    }


def commit_json(commit: Commit | None, validators: Sequence[Validator]) -> dict[str, Any]:
    """A commit as CometBFT lists it: one signature per validator of the set, in the set's
    order; a validator whose precommit the commit does not carry is absent (flag 1, no
    address, Go's zero time, a null signature). No commit (before height 1): empty."""
    if commit is None:
        return {"height": "0", "round": 0, "block_id": block_id_json(b""), "signatures": []}
    signed = {s.validator_address: s for s in commit.signatures}
    signatures = []
    for validator in validators:
        sig = signed.get(validator.address)
        if sig is None:
            signatures.append(
                {
                    "block_id_flag": BLOCK_ID_FLAG_ABSENT,
                    "validator_address": "",
                    "timestamp": ZERO_TIME,
                    "signature": None,
                }
            )
            continue
        signatures.append(
            {
                "block_id_flag": BLOCK_ID_FLAG_COMMIT,
                "validator_address": hex_upper(sig.validator_address),
                "timestamp": format_rfc3339_ns(sig.timestamp_ns),
                "signature": b64(sig.signature),
            }
        )
    return {
        "height": str(commit.height),
        "round": commit.round,
        "block_id": block_id_json(commit.block_hash),
        "signatures": signatures,
    }


def block_json(block: Block, validators: Sequence[Validator]) -> dict[str, Any]:
    """A block; `validators` the set that signed its last commit (ours never changes)."""
    return {
        "block_id": block_id_json(block.hash),
        "block": {
            "header": header_json(block.header),
            "data": {"txs": [b64(tx.to_bytes()) for tx in block.txs]},
            "evidence": {"evidence": [evidence_json(e, validators) for e in block.evidence]},
            "last_commit": commit_json(block.last_commit, validators),
        },
    }


VOTE_TYPE_NUMBERS = {"prevote": 1, "precommit": 2}  # CometBFT's SignedMsgType


def evidence_vote_json(vote: EvidenceVote, validators: Sequence[Validator]) -> dict[str, Any]:
    index = next((i for i, v in enumerate(validators) if v.address == vote.validator_address), -1)
    return {
        "type": VOTE_TYPE_NUMBERS[vote.type],
        "height": str(vote.height),
        "round": vote.round,
        "block_id": block_id_json(vote.block_hash),
        "timestamp": format_rfc3339_ns(vote.timestamp_ns),
        "validator_address": hex_upper(vote.validator_address),
        "validator_index": index,
        "signature": b64(vote.signature),
    }


def evidence_json(
    evidence: DuplicateVoteEvidence, validators: Sequence[Validator]
) -> dict[str, Any]:
    """CometBFT's DuplicateVoteEvidence in its amino-JSON envelope, as `block` lists it."""
    return {
        "type": "tendermint/DuplicateVoteEvidence",
        "value": {
            "vote_a": evidence_vote_json(evidence.vote_a, validators),
            "vote_b": evidence_vote_json(evidence.vote_b, validators),
            "TotalVotingPower": str(evidence.total_voting_power),
            "ValidatorPower": str(evidence.validator_power),
            "Timestamp": format_rfc3339_ns(evidence.timestamp_ns),
        },
    }


def events_json(events: tuple[Event, ...]) -> list[dict[str, Any]]:
    return [
        {
            "type": e.type,
            "attributes": [{"key": k, "value": v, "index": True} for k, v in e.attributes],
        }
        for e in events
    ]


def tx_result_json(result: TxResult) -> dict[str, Any]:
    return {
        "code": int(result.code),
        "data": None,
        "log": result.log,
        "info": "",
        "gas_wanted": "0",
        "gas_used": "0",
        "events": events_json(result.events),
        "codespace": result.codespace,
    }


# --- events for subscriptions (the WebSocket's `data` and `events`) ----------------------------


def event_json(kind: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"type": f"tendermint/event/{kind}", "value": value}


def event_tags(events: tuple[Event, ...], tags: Tags) -> Tags:
    """An event's tags for subscriptions: `tags` plus every attribute as type.key."""
    for event in events:
        for key, value in event.attributes:
            tags.setdefault(f"{event.type}.{key}", []).append(value)
    return tags


def new_block_event(
    block: Block, results: BlockResults, validators: Sequence[Validator]
) -> dict[str, Any]:
    """EventDataNewBlock. Its result_finalize_block is a ResponseFinalizeBlock, which
    CometBFT's encoder writes with Go's omitempty (it has no jsonpb MarshalJSON, unlike
    the ExecTxResults in it): no validator updates and no consensus param updates, since
    we have neither (nil in Go), rather than [] and null."""
    return event_json(
        "NewBlock",
        dict(
            block_json(block, validators),
            result_finalize_block={
                "events": events_json(results.block_events),
                "tx_results": [tx_result_json(r) for r in results.tx_results],
                "app_hash": b64(block.header.app_hash),
            },
        ),
    )


def new_block_tags(block: Block, results: BlockResults) -> Tags:
    return event_tags(
        results.block_events, {"tm.event": ["NewBlock"], "block.height": [str(block.height)]}
    )


def new_block_header_event(header: BlockHeader) -> dict[str, Any]:
    return event_json("NewBlockHeader", {"header": header_json(header)})


def new_block_header_tags(header: BlockHeader) -> Tags:
    return {"tm.event": ["NewBlockHeader"], "block.height": [str(header.height)]}


def tx_event(height: int, tx: Transaction, result: TxResult) -> dict[str, Any]:
    """EventDataTx: an abci.TxResult, written (as CometBFT's encoder writes it) with Go's
    omitempty, so the first transaction of a block, index 0, has no "index"."""
    value: dict[str, Any] = {"height": str(height)}
    if result.index:
        value["index"] = result.index
    value.update(tx=b64(tx.to_bytes()), result=tx_result_json(result))
    return event_json("Tx", {"TxResult": value})


def tx_tags(height: int, tx: Transaction, result: TxResult) -> Tags:
    return event_tags(
        result.events,
        {"tm.event": ["Tx"], "tx.hash": [hex_upper(tx.hash)], "tx.height": [str(height)]},
    )
