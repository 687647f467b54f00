"""`cloudchain bench market`: what the market's transactions and end-of-block work cost.

One in-process chain on LevelDB, no consensus. Providers register, requesters
submit `tasks` tasks (more than the providers can take at once, so most wait),
then the chain runs idle blocks while tasks wait, and finally the assigned
tasks are completed and attested until they settle. Each block is timed from
finalize_block to the end of commit (execution and the durable write); the
transactions are signed before the clock starts. Reported: median milliseconds
per block and per transaction of each phase, side by side in one run.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudchain import codec
from cloudchain.chaincode.application import Application
from cloudchain.crypto import PrivateKey
from cloudchain.fees import priced_transaction
from cloudchain.genesis import Genesis
from cloudchain.ledger import Validator
from cloudchain.node.solo import build_block, sign_commit
from cloudchain.storage.chain import ChainStore
from cloudchain.storage.kv import LevelDBKV

GPU = "a100-80gb"
MAX_TXS_PER_BLOCK = 500
BLOCK_SECONDS = 1


@dataclass(frozen=True)
class PhaseTiming:
    name: str
    blocks: int
    txs: int
    median_block_ms: float
    ms_per_tx: float  # total time over total transactions (0 for idle blocks)


@dataclass(frozen=True)
class MarketReport:
    tasks: int
    providers: int
    waiting: int  # tasks waiting for a provider during the idle phase
    settled: int
    phases: tuple[PhaseTiming, ...]


class _Chain:
    def __init__(self, home: Path, genesis: Genesis, validator: PrivateKey) -> None:
        self.app = Application(ChainStore(LevelDBKV(home / "data")), genesis)
        self.genesis = genesis
        self.validator = validator
        self.nonces: dict[str, int] = defaultdict(int)
        self.time_ns = genesis.genesis_time_ns

    def tx(self, sender: PrivateKey, method: str, **args: Any) -> bytes:
        nonce = self.nonces[sender.address]
        self.nonces[sender.address] += 1
        return priced_transaction(
            sender, self.genesis.chain_id, nonce, "market", method, args, self.genesis.fees
        ).to_bytes()

    def block(self, txs: Sequence[bytes]) -> tuple[float, Any]:
        """Apply one block; (seconds from finalize to committed, its result)."""
        app = self.app
        last = app.store.last_block
        commit = None
        if last is not None:
            self.time_ns = last.header.time_ns + BLOCK_SECONDS * 10**9
            commit = sign_commit(self.genesis.chain_id, last, self.validator, self.time_ns)
        chosen = app.prepare_proposal(txs)
        assert len(chosen) == len(txs), "a transaction was left out"
        block = build_block(app, chosen, self.validator, commit)
        assert app.process_proposal(block).accept
        started = time.perf_counter()
        result = app.finalize_block(block)
        app.commit()
        return time.perf_counter() - started, result

    def query(self, path: str, data: str = "") -> Any:
        answer = self.app.query(path, data.encode())
        assert answer.code == 0, answer.log
        return codec.thaw(codec.decode(answer.value))


def run_market_bench(tasks: int, providers: int, idle_blocks: int = 10) -> MarketReport:
    validator = PrivateKey.generate()
    provider_keys = [PrivateKey.generate() for _ in range(providers)]
    requester_keys = [PrivateKey.generate() for _ in range(max(2, providers))]
    oracle_keys = [PrivateKey.generate() for _ in range(3)]
    everyone = [*provider_keys, *requester_keys, *oracle_keys]
    genesis = Genesis(
        chain_id="cloudchain-bench",
        genesis_time_ns=time.time_ns(),
        validators=(Validator(validator.public_key, 10),),
        authority=oracle_keys[0].address,
        balances=tuple(sorted((k.address, 10**15) for k in everyone)),
        params={
            "market": {
                "oracles": [k.address for k in oracle_keys],
                "epoch_blocks": 10,
                "attestation_blocks": 10,
                "dispute_blocks": 1,
            }
        },
    )
    phases = []
    with tempfile.TemporaryDirectory(prefix="cloudchain-bench-market-") as home:
        chain = _Chain(Path(home), genesis, validator)
        offer = {GPU: {"gpu": "A100", "gpus": 8, "memory_gb": 640, "units": 40, "price": 10}}
        phases.append(
            _phase(
                chain,
                "register",
                [
                    [
                        chain.tx(
                            k,
                            "register",
                            name=f"p{i}",
                            tier="community",
                            offers=offer,
                            stake=10_000,
                        )
                        for i, k in enumerate(provider_keys)
                    ]
                ],
            )
        )
        submits = [
            chain.tx(
                requester_keys[i % len(requester_keys)],
                "submit",
                kind="inference",
                inputs=[],
                resource_class=GPU,
                units=10,
                max_price=20,
                deadline_s=10**6,
                min_uptime_bps=9_000,
                max_latency_ms=500,
                penalty=10,
                provider="",
            )
            for i in range(tasks)
        ]
        phases.append(_phase(chain, "submit", _chunks(submits)))
        waiting = sum(t["state"] == "open" for t in _all_tasks(chain))
        phases.append(_phase(chain, f"idle ({waiting} waiting)", [[]] * idle_blocks))
        assigned = [t for t in _all_tasks(chain) if t["state"] == "assigned"]
        by_address = {k.address: k for k in provider_keys}
        completes = [
            chain.tx(by_address[t["provider"]], "complete", task=t["id"], units_used=10, output=[])
            for t in assigned
        ]
        phases.append(_phase(chain, "complete", _chunks(completes)))
        attests = [
            chain.tx(
                o,
                "attest",
                task=t["id"],
                completed=True,
                units=10,
                uptime_bps=9_900,
                latency_ms=100,
            )
            for t in assigned
            for o in oracle_keys[:2]
        ]
        phases.append(_phase(chain, "attest", _chunks(attests)))
        phases.append(_phase(chain, "settle", [[]] * 2))
        settled = chain.query("/market/stats")["tasks_settled"]
        chain.app.store.close()
    return MarketReport(tasks, providers, waiting, settled, tuple(phases))


def _all_tasks(chain: _Chain) -> list[dict[str, Any]]:
    listed, after = [], 0
    while True:
        page = chain.query("/market/tasks", f"after={after}")["tasks"]
        if not page:
            return listed
        listed.extend(page)
        after = page[-1]["id"]


def _chunks(txs: list[bytes]) -> list[list[bytes]]:
    return [txs[i : i + MAX_TXS_PER_BLOCK] for i in range(0, len(txs), MAX_TXS_PER_BLOCK)]


def _phase(chain: _Chain, name: str, blocks: list[list[bytes]]) -> PhaseTiming:
    seconds = [chain.block(txs)[0] for txs in blocks]
    count = sum(len(txs) for txs in blocks)
    return PhaseTiming(
        name,
        len(blocks),
        count,
        statistics.median(seconds) * 1000,
        sum(seconds) * 1000 / count if count else 0.0,
    )


def format_report(report: MarketReport) -> str:
    header = f"{'phase':<22} {'blocks':>6} {'txs':>6} {'median ms/block':>16} {'ms/tx':>7}"
    lines = [
        f"{report.tasks} tasks, {report.providers} providers (40 units each, 10 a task): "
        f"{report.waiting} left waiting, {report.settled} settled",
        header,
    ]
    for p in report.phases:
        per_tx = f"{p.ms_per_tx:7.3f}" if p.txs else "      -"
        lines.append(f"{p.name:<22} {p.blocks:>6} {p.txs:>6} {p.median_block_ms:>16.2f} {per_tx}")
    return "\n".join(lines)
