"""The seed corpus: real encodings, made by the project's own code, for each target.

A fuzzer that starts from valid inputs mutates its way into the deep branches (a
proposal's block's evidence, a WAL frame whose CRC holds) far sooner than one that
starts from nothing. Everything here is deterministic (keys from fixed seeds, fixed
times), so `python -m fuzz seeds` rewrites the same files; each input is small (the
corpus is checked in).
"""

from __future__ import annotations

import base64
import json

from cloudchain import codec
from cloudchain.blobs.cid import CID, DAG_PB, RAW, encode_multihash
from cloudchain.blobs.dagpb import decode_pbnode
from cloudchain.blobs.exchange import messages as blob_messages
from cloudchain.blobs.importer import CID_V1_OPTIONS, DEFAULT_OPTIONS, FileImporter, ImportOptions
from cloudchain.blobs.multibase import encode_base32, encode_base58btc
from cloudchain.blobs.varint import PROTOBUF_VARINT, UNSIGNED_VARINT, encode_uvarint
from cloudchain.consensus import wal_records
from cloudchain.consensus.events import (
    BlockValidity,
    MessageReceived,
    ProposalValue,
    Start,
    TimeoutElapsed,
    TimeoutKind,
)
from cloudchain.consensus.messages import NIL, Decision, Proposal, Vote, VoteType
from cloudchain.crypto import PrivateKey
from cloudchain.ledger import (
    Block,
    BlockHeader,
    Commit,
    CommitSig,
    DuplicateVoteEvidence,
    Event,
    EvidenceVote,
    Transaction,
    TxResult,
    evidence_hash,
    txs_hash,
)
from cloudchain.node.rpc.params import PARAM_NAMES
from cloudchain.storage.wal import _frame
from cloudchain.timefmt import format_rfc3339_ns
from cloudchain.workload.manifest import canonical_bytes, parse_manifest
from cloudchain.workload.result import ResultIndex

CHAIN_ID = "fuzz-chain"
TIME_NS = 1_767_225_600_123_456_789  # 2026-01-01T00:00:00.123456789Z
KEYS = [PrivateKey(bytes([i + 1]) * 32) for i in range(3)]


def _transactions() -> list[Transaction]:
    key = KEYS[0]
    return [
        Transaction.create(
            key, CHAIN_ID, 0, "bank", "transfer", {"to": "ab" * 20, "amount": 5}, fee=10
        ),
        Transaction.create(
            key,
            CHAIN_ID,
            1,
            "market",
            "submit_task",
            {"inputs": ["bafkqaaa"], "price": 1_000, "terms": {"replicas": 2, "sealed": None}},
            fee=250,
        ),
        Transaction.create(
            KEYS[1], CHAIN_ID, 7, "storage", "pin", {"cid": b"\x01\x55", "ok": True}, fee=0
        ),
    ]


def _header(
    height: int, txs: list[Transaction], evidence: tuple[DuplicateVoteEvidence, ...]
) -> BlockHeader:
    return BlockHeader(
        chain_id=CHAIN_ID,
        height=height,
        time_ns=TIME_NS + height,
        last_block_hash=b"" if height == 1 else bytes([height]) * 32,
        last_commit_hash=b"" if height == 1 else bytes([height + 1]) * 32,
        data_hash=txs_hash(txs),
        app_hash=bytes(32),
        last_results_hash=bytes([7]) * 32,
        validators_hash=bytes([9]) * 32,
        proposer_address=bytes.fromhex(KEYS[0].address),
        evidence_hash=evidence_hash(evidence) if evidence else b"",
    )


def _commit(height: int, round_: int, block_hash: bytes) -> Commit:
    sigs = []
    for key in KEYS:
        vote = Vote.create(key, CHAIN_ID, VoteType.PRECOMMIT, height, round_, block_hash, TIME_NS)
        sigs.append(CommitSig(vote.validator_address, vote.timestamp_ns, vote.signature))
    return Commit(height, round_, block_hash, tuple(sigs))


def _evidence() -> DuplicateVoteEvidence:
    key = KEYS[2]
    votes = []
    for block_hash in (bytes([1]) * 32, bytes([2]) * 32):
        vote = Vote.create(key, CHAIN_ID, VoteType.PREVOTE, 3, 0, block_hash, TIME_NS)
        votes.append(
            EvidenceVote(
                "prevote", 3, 0, block_hash, TIME_NS, vote.validator_address, vote.signature
            )
        )
    return DuplicateVoteEvidence.of(votes[0], votes[1], 30, 10, TIME_NS)


def _blocks() -> list[Block]:
    txs = _transactions()
    first = Block(_header(1, [], ()), (), None)
    second = Block(_header(2, txs[:2], ()), tuple(txs[:2]), _commit(1, 0, first.hash))
    evidence = (_evidence(),)
    third = Block(
        _header(3, txs[2:], evidence), tuple(txs[2:]), _commit(2, 1, second.hash), evidence
    )
    return [first, second, third]


def _consensus() -> tuple[list[Vote], list[Proposal], list[Decision]]:
    blocks = _blocks()
    votes = [
        Vote.create(KEYS[0], CHAIN_ID, VoteType.PREVOTE, 2, 0, blocks[1].hash, TIME_NS),
        Vote.create(KEYS[1], CHAIN_ID, VoteType.PRECOMMIT, 2, 0, blocks[1].hash, TIME_NS + 1),
        Vote.create(KEYS[2], CHAIN_ID, VoteType.PREVOTE, 5, 3, NIL, TIME_NS + 2),
    ]
    proposals = [
        Proposal.create(KEYS[0], CHAIN_ID, 1, 0, -1, blocks[0], TIME_NS),
        Proposal.create(KEYS[0], CHAIN_ID, 3, 2, 1, blocks[2], TIME_NS),
    ]
    decision = Decision(proposals[0], _commit(1, 0, blocks[0].hash))
    return votes, proposals, [decision]


def _wal_records() -> list[dict[str, object]]:
    votes, proposals, decisions = _consensus()
    block = _blocks()[1]
    return [
        wal_records.event_record(Start(), TIME_NS),
        wal_records.event_record(MessageReceived(votes[0]), TIME_NS + 1),
        wal_records.event_record(MessageReceived(proposals[1]), TIME_NS + 2),
        wal_records.event_record(TimeoutElapsed(2, 1, TimeoutKind.PREVOTE), TIME_NS + 3),
        wal_records.event_record(ProposalValue(2, 0, block), TIME_NS + 4),
        wal_records.event_record(BlockValidity(block.hash, True), TIME_NS + 5),
        wal_records.signed_record(votes[1]),
        wal_records.signed_record(proposals[0]),
        wal_records.decided_record(decisions[0]),
    ]


def _file_blocks() -> list[tuple[CID, bytes]]:
    """The blocks of a few small files, as `ipfs add` would make them (several links
    per node: a small chunk size)."""
    out = []
    options = [
        DEFAULT_OPTIONS,
        CID_V1_OPTIONS,
        ImportOptions(chunk_size=16, max_links=3),
        ImportOptions(cid_version=1, raw_leaves=False, chunk_size=32, max_links=4),
    ]
    for i, opts in enumerate(options):
        importer = FileImporter(opts)
        data = bytes(range(256))[: 40 + 60 * i] * 2
        blocks = importer.add(data) + importer.finish()
        out.extend((b.cid, b.data) for b in blocks)
    empty = FileImporter()
    out.extend((b.cid, b.data) for b in empty.finish())
    return out


def _manifests() -> list[bytes]:
    cid = str(CID.for_data(b"label,x\na,1\n", RAW, 1))
    limits = {"cpu_seconds": 60, "memory_mb": 1024, "deadline_s": 120, "output_bytes": 50_000_000}
    forest = {
        "version": 1,
        "kind": "train",
        "seed": 7,
        "data": {"train": {"cid": cid, "format": "csv", "bytes": 12, "target": "label"}},
        "model": {
            "library": "sklearn",
            "estimator": "random_forest_classifier",
            "params": {"n_estimators": 20},
        },
        "evaluate": {"metric": "accuracy", "split": "holdout", "holdout_fraction": 0.25},
        "limits": limits,
    }
    mlp = dict(forest)
    mlp["model"] = {
        "library": "torch",
        "input_shape": [6],
        "layers": [{"type": "linear", "out": 16}, {"type": "relu"}, {"type": "linear", "out": 2}],
        "loss": "cross_entropy",
        "params": {"epochs": 5, "batch_size": 32, "learning_rate": 0.01},
    }
    out = []
    for obj in (forest, mlp):
        out.append(json.dumps(obj).encode())  # as a requester writes it
        out.append(canonical_bytes(parse_manifest(obj)))  # as its blob holds it
    return out


def _spread(items: list[bytes], count: int) -> list[bytes]:
    """At most `count` of the distinct `items`, taken evenly from first to last."""
    distinct = list(dict.fromkeys(items))
    step = max(1, len(distinct) / count)
    return [distinct[int(i * step)] for i in range(min(count, len(distinct)))]


def seeds() -> dict[str, list[bytes]]:
    """Each target's seed inputs."""
    txs = _transactions()
    blocks = _blocks()
    votes, proposals, decisions = _consensus()
    messages = [*votes, *proposals, *decisions]
    records = _wal_records()
    file_blocks = _file_blocks()
    cids = [cid for cid, _ in file_blocks]
    dag_pb = _spread([data for cid, data in file_blocks if cid.codec == DAG_PB], 16)
    unixfs_data = _spread(
        [node.data for node in map(decode_pbnode, dag_pb) if node.data is not None], 16
    )
    result = TxResult(0, "", "", (Event("transfer", (("amount", "5"), ("to", "ab"))),), 2, 0)
    failed = TxResult(5, "bank", "insufficient funds", (), 2, 1)
    frames = [_frame(r) for r in records]
    wal_files = [b"".join(frames[:3]), b"".join(frames), frames[0] + frames[1][:-3], frames[-1]]
    blob_msgs = [
        blob_messages.WantHave(tuple(cids[:3])),
        blob_messages.Have(tuple(cids[:1])),
        blob_messages.DontHave(tuple(cids[1:2])),
        blob_messages.WantBlock(tuple(cids[2:4])),
        blob_messages.Cancel(tuple(cids[:2])),
        blob_messages.BlockMessage(*file_blocks[0]),
        blob_messages.FetchRequest(cids[-1]),
        blob_messages.HaveAll(cids[-1]),
        blob_messages.FetchFailed(cids[0]),
    ]
    tx_b64 = base64.b64encode(txs[0].to_bytes()).decode()
    rpc_bodies = [
        {"jsonrpc": "2.0", "id": 1, "method": "block", "params": {"height": "2"}},
        {"jsonrpc": "2.0", "id": "a", "method": "tx", "params": [txs[0].hash.hex(), False]},
        {"jsonrpc": "2.0", "id": 2, "method": "broadcast_tx_sync", "params": {"tx": tx_b64}},
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tx_search",
            "params": {"query": "tx.height>1", "page": "1", "per_page": 30, "order_by": "asc"},
        },
        [
            {"jsonrpc": "2.0", "id": 4, "method": "validators", "params": [1, 1, 100]},
            {"jsonrpc": "2.0", "method": "blockchain", "params": {"minHeight": 1, "maxHeight": 9}},
        ],
    ]
    methods = sorted(PARAM_NAMES)

    def uri(method: str, query: str) -> bytes:
        return bytes([methods.index(method)]) + query.encode()

    index = ResultIndex(
        task=4,
        manifest=str(cids[1]),
        status="done",
        message="",
        cpu_ms=1_200,
        wall_ms=1_500,
        units=3,
        executor="local",
        files={"model.skops": str(cids[0]), "metrics.json": str(cids[2])},
        log=str(cids[3]),
    )
    return {
        "codec": [
            codec.encode(v)
            for v in (
                0,
                -1,
                2**64 - 1,
                "text",
                b"\x00" * 40,
                [1, [2, [3]]],
                {"a": 1, "b": {"c": None}},
            )
        ]
        + [txs[0].to_bytes()],
        "transaction": [tx.to_bytes() for tx in txs],
        "block": [b.to_bytes() for b in blocks],
        "block_header": [b.header.to_bytes() for b in blocks],
        "tx_result": [result.to_bytes(), failed.to_bytes()],
        "evidence": [_evidence().to_bytes()],
        "consensus_message": [codec.encode(m.to_obj()) for m in messages],
        "wal_record": [codec.encode(r) for r in records],
        "wal_file": wal_files,
        "blob_message": [blob_messages.encode_message(m) for m in blob_msgs],
        "dagpb": dag_pb,
        "unixfs": unixfs_data,
        "file_node": dag_pb,
        "cid_bytes": [c.to_bytes() for c in cids[:6]],
        "cid_text": [
            text.encode()
            for text in (
                *(str(c) for c in cids[:4]),
                *(str(c.to_v1()) for c in cids[:2]),
                str(cids[1].to_v1()).upper(),
                "z" + encode_base58btc(cids[1].to_v1().to_bytes()),
            )
        ],
        "multihash": [encode_multihash(c.digest) for c in cids[:3]],
        "varint": [
            bytes([1]) + encode_uvarint(v, UNSIGNED_VARINT) for v in (0, 127, 128, 300, 2**63 - 1)
        ]
        + [bytes([0]) + encode_uvarint(v, PROTOBUF_VARINT) for v in (1, 2**64 - 1)],
        "multibase": [bytes([1]) + encode_base32(c.to_bytes()).encode() for c in cids[:2]]
        + [bytes([0]) + encode_base58btc(c.to_bytes()).encode() for c in cids[:2]],
        "rpc_request": [json.dumps(body).encode() for body in rpc_bodies],
        "rpc_uri": [
            uri("block", "height=2"),
            uri("tx", f"hash=0x{txs[0].hash.hex()}&prove=true"),
            uri("tx_search", 'query="tx.height=2"&page=1&per_page=10'),
            uri("broadcast_tx_async", f'tx="{tx_b64}"'),
            uri("abci_query", 'path="/store"&data=0x0102&height=1'),
        ],
        "tx_query": [
            q.encode()
            for q in (
                "tx.height=5",
                "tx.hash='" + txs[0].hash.hex().upper() + "'",
                "transfer.amount>=10 AND transfer.to CONTAINS 'ab'",
                "block.time>TIME 2026-01-01T00:00:00Z AND tx.height<=DATE 2026-01-02",
                "market.task EXISTS",
            )
        ],
        "blob_range": [
            (1000).to_bytes(4, "big") + h.encode()
            for h in ("bytes=0-99", "bytes=500-", "bytes=-10", "bytes=0-0,5-9")
        ],
        "manifest": _manifests(),
        "result_index": [index.to_bytes()],
        "rfc3339": [
            format_rfc3339_ns(TIME_NS).encode(),
            b"2026-01-01T00:00:00Z",
            b"1999-12-31T23:59:59.5+05:30",
        ],
    }
