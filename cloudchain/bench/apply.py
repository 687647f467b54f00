"""`cloudchain bench apply`: what executing and committing blocks costs, without consensus.

A single in-process chain on LevelDB applies blocks of signed transfers; each
phase of the ABCI flow is timed separately (prepare_proposal, process_proposal,
finalize_block, commit), so later changes can see which one they moved. The
transactions are signed before the clock starts: signing is the client's cost.
Each pays the minimum fee of the default schedule (charged, and burnt, in
finalize_block, as on any chain).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cloudchain.chaincode.application import Application
from cloudchain.crypto import PrivateKey
from cloudchain.fees import priced_transaction
from cloudchain.genesis import Genesis
from cloudchain.ledger import Validator
from cloudchain.node.solo import build_block, sign_commit
from cloudchain.storage.chain import ChainStore
from cloudchain.storage.kv import LevelDBKV

PHASES = ("prepare", "process", "finalize", "commit")


@dataclass(frozen=True)
class ApplyReport:
    blocks: int
    txs_per_block: int
    median_ms: dict[str, float]  # per phase, per block
    txs_per_s: float  # over all phases


def run_apply_bench(blocks: int, txs_per_block: int, accounts: int) -> ApplyReport:
    keys = [PrivateKey.generate() for _ in range(accounts)]
    validator = PrivateKey.generate()
    genesis = Genesis(
        chain_id="cloudchain-bench",
        genesis_time_ns=time.time_ns(),
        validators=(Validator(validator.public_key, 10),),
        authority=keys[0].address,
        balances=tuple(sorted((k.address, 10**12) for k in keys)),
        params={},
    )
    nonces = [0] * accounts
    with tempfile.TemporaryDirectory(prefix="cloudchain-bench-") as home:
        store = ChainStore(LevelDBKV(Path(home) / "data"))
        app = Application(store, genesis)
        timings: dict[str, list[float]] = {phase: [] for phase in PHASES}
        total_s = 0.0
        for height in range(1, blocks + 1):
            txs = []
            for i in range(txs_per_block):
                sender = (height * txs_per_block + i) % accounts
                recipient = (sender + 1 + i) % accounts
                tx = priced_transaction(
                    keys[sender],
                    genesis.chain_id,
                    nonces[sender],
                    "token",
                    "transfer",
                    {"to": keys[recipient].address, "amount": 1},
                    genesis.fees,
                )
                nonces[sender] += 1
                txs.append(tx.to_bytes())
            last = store.last_block
            last_commit = None if last is None else sign_commit(genesis.chain_id, last, validator)
            started = time.perf_counter()
            chosen = app.prepare_proposal(txs)
            t1 = time.perf_counter()
            block = build_block(app, chosen, validator, last_commit)
            t2 = time.perf_counter()
            # A fresh copy, as a peer would decode it: no cached verdict to lean on.
            verdict = app.process_proposal(type(block).from_bytes(block.to_bytes()))
            t3 = time.perf_counter()
            assert verdict.accept, verdict.reason
            app.finalize_block(block)
            t4 = time.perf_counter()
            app.commit()
            t5 = time.perf_counter()
            assert len(chosen) == txs_per_block
            for phase, seconds in zip(
                PHASES, (t1 - started, t3 - t2, t4 - t3, t5 - t4), strict=True
            ):
                timings[phase].append(seconds * 1e3)
            total_s += (t1 - started) + (t5 - t2)
        store.close()
    medians = {phase: statistics.median(values) for phase, values in timings.items()}
    return ApplyReport(blocks, txs_per_block, medians, blocks * txs_per_block / total_s)


def format_report(report: ApplyReport) -> str:
    lines = [
        f"blocks {report.blocks}, {report.txs_per_block} transfers per block (LevelDB, synced)",
        "phase      median ms/block",
    ]
    for phase in PHASES:
        lines.append(f"{phase:<10} {report.median_ms[phase]:>10.2f}")
    lines.append(f"throughput {report.txs_per_s:>10.0f} tx/s (all four phases)")
    return "\n".join(lines)
