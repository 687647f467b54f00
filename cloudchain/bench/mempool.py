"""`cloudchain bench mempool`: what admission and the re-check after a commit cost.

In-process, on the real Application over LevelDB, no consensus, and side by side in
one run: the mempool of c273d3c (bench/mempool_baseline.py: arrival order, a full
check_tx of every waiting transaction after each commit) and today's
(node/mempool/). The same signed transfers go to both; signing is the client's cost
and happens before any clock starts. Each round, for each mempool:

- fill: a mempool of `pool` ready transactions (`PER_SENDER` per sender) is filled,
  each check_tx + add timed;
- full: `arrivals` transfers of new senders arrive at the full mempool, each timed
  (check_tx + add); today's evicts the cheapest for one that pays more per byte, the
  old one refuses every one;
- re-check: a mempool of 2 x `block` transactions commits a block of `block` of them
  (reaped, prepared, processed, finalized and committed, not timed); `update` with the
  block is timed: the old one re-runs check_tx on everything left, today's runs
  recheck_tx on the rest of the block's senders.

Reported: medians over the rounds. Each transfer pays the chain's minimum fee (the
default schedule) plus a premium drawn by the bench, so that fees per byte differ.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cloudchain.bench.mempool_baseline import BaselineMempool
from cloudchain.chaincode.application import (
    Application,
    CheckResult,
    PendingCost,
    verify_tx_signature,
)
from cloudchain.crypto import PrivateKey
from cloudchain.fees import priced_transaction
from cloudchain.genesis import Genesis
from cloudchain.ledger import Transaction, Validator
from cloudchain.node.mempool import Admission, Mempool, MempoolLimits
from cloudchain.node.solo import build_block, sign_commit
from cloudchain.storage.chain import ChainStore
from cloudchain.storage.kv import LevelDBKV

PER_SENDER = 50  # transactions a sender has waiting (the per-sender bound is 64)
MAX_PREMIUM = 1_000  # the waiting transactions pay the minimum fee + 1..MAX_PREMIUM
BALANCE = 10**12
SEED = 14
PROFILE_LINES = 12  # of cProfile's table, by own time
KINDS = ("before", "after")


class _CountingApp(Application):
    """The real Application, counting the check_tx and recheck_tx calls it answers and
    the signatures it verifies."""

    check_calls = 0
    recheck_calls = 0
    verifications = 0

    def __init__(self, store: ChainStore, genesis: Genesis) -> None:
        super().__init__(store, genesis, verifier=self._verify)

    def _verify(self, tx: Transaction) -> bool:
        self.verifications += 1
        return verify_tx_signature(tx)

    def check_tx(
        self, raw: bytes, *, pending_cost: PendingCost = 0, verify: bool = True
    ) -> CheckResult:
        self.check_calls += 1
        return super().check_tx(raw, pending_cost=pending_cost, verify=verify)

    def recheck_tx(self, tx: Transaction, *, pending_cost: int = 0) -> CheckResult:
        self.recheck_calls += 1
        return super().recheck_tx(tx, pending_cost=pending_cost)


class _Pool(Protocol):
    def add(self, raw: bytes) -> Admission: ...

    def reap(self, max_txs: int | None = None) -> list[bytes]: ...

    def update(self, committed: Sequence[Transaction]) -> list[Admission]: ...


@dataclass(frozen=True)
class MempoolMeasure:
    """One mempool's medians over the rounds."""

    fill_txs_per_s: float
    full_txs_per_s: float
    full_admitted: int  # of the arrivals at the full mempool
    full_median_us: float  # per arrival
    full_signatures: int  # signatures verified for the arrivals at the full mempool
    recheck_ms: float  # update() after the block
    recheck_calls: int  # check_tx (before) or recheck_tx (after) calls in that update
    signatures_verified: int  # in that update


@dataclass(frozen=True)
class MempoolReport:
    pool: int
    arrivals: int
    block: int
    rounds: int
    measures: dict[str, MempoolMeasure]  # by KINDS
    profile: str  # the top of today's profile, or ""


@dataclass(frozen=True)
class _Workload:
    genesis: Genesis
    validator: PrivateKey
    fill: list[Transaction]  # `pool` of them
    arrivals: list[Transaction]
    recheck: list[Transaction]  # 2 x `block` of them


def run_mempool_bench(
    pool: int = 5_000,
    arrivals: int = 2_000,
    block: int = 5_000,
    rounds: int = 3,
    profile: bool = False,
) -> MempoolReport:
    work = _workload(pool, arrivals, block)
    samples: dict[str, list[MempoolMeasure]] = {kind: [] for kind in KINDS}
    profiled = ""
    with tempfile.TemporaryDirectory(prefix="cloudchain-bench-mempool-") as home:
        for round_ in range(rounds):
            for kind in KINDS:
                where = Path(home) / f"{kind}-{round_}"
                samples[kind].append(_measure(kind, work, pool, block, where))
        if profile:
            profiled = _profile(work, pool, block, Path(home) / "profile")
    medians = {kind: _median(values) for kind, values in samples.items()}
    return MempoolReport(pool, arrivals, block, rounds, medians, profiled)


def _workload(pool: int, arrivals: int, block: int) -> _Workload:
    rng = random.Random(SEED)
    fill_keys = [PrivateKey.generate() for _ in range(-(-pool // PER_SENDER))]
    arrival_keys = [PrivateKey.generate() for _ in range(arrivals)]
    recheck_keys = [PrivateKey.generate() for _ in range(-(-2 * block // PER_SENDER))]
    validator = PrivateKey.generate()
    everyone = fill_keys + arrival_keys + recheck_keys
    genesis = Genesis(
        chain_id="cloudchain-bench",
        genesis_time_ns=time.time_ns(),
        validators=(Validator(validator.public_key, 10),),
        authority=everyone[0].address,
        balances=tuple(sorted((k.address, BALANCE) for k in everyone)),
        params={},
    )
    schedule = genesis.fees

    def transfers(keys: list[PrivateKey], count: int, max_premium: int) -> list[Transaction]:
        made = []
        for i in range(count):
            sender, nonce = keys[i % len(keys)], i // len(keys)
            args = {"to": everyone[(i + 1) % len(everyone)].address, "amount": 1}
            least = priced_transaction(
                sender, genesis.chain_id, nonce, "token", "transfer", args, schedule
            ).fee
            # A premium below 2**16 - least keeps the fee's encoding, so its size, the same.
            fee = least + rng.randint(1, max_premium)
            made.append(
                Transaction.create(
                    sender, genesis.chain_id, nonce, "token", "transfer", args, fee=fee
                )
            )
        return made

    return _Workload(
        genesis,
        validator,
        transfers(fill_keys, pool, MAX_PREMIUM),
        transfers(arrival_keys, arrivals, 2 * MAX_PREMIUM),  # about half pay more than most
        transfers(recheck_keys, 2 * block, MAX_PREMIUM),
    )


def _app(work: _Workload, where: Path) -> _CountingApp:
    return _CountingApp(ChainStore(LevelDBKV(where)), work.genesis)


def _mempool(kind: str, app: _CountingApp, max_txs: int) -> _Pool:
    if kind == "before":
        return BaselineMempool(app, max_txs=max_txs)
    return Mempool(app, limits=MempoolLimits(max_txs=max_txs))


def _measure(
    kind: str,
    work: _Workload,
    pool: int,
    block: int,
    where: Path,
    profiler: cProfile.Profile | None = None,
) -> MempoolMeasure:
    """One round of one mempool; `profiler`, if given, runs while arrivals meet the full
    mempool and while it re-checks."""
    profiling = profiler or _NoProfiler()
    app = _app(work, where / "admission")
    mempool = _mempool(kind, app, pool)
    fill_s, filled = _timed_adds(mempool, work.fill)
    assert all(a.ok for a in filled), "the fill is admitted whole"
    verified = app.verifications
    profiling.enable()
    full_s, admissions = _timed_adds(mempool, work.arrivals)
    profiling.disable()
    full_signatures = app.verifications - verified
    per_arrival_us = [t * 1e6 for t in full_s]
    app.store.close()

    app = _app(work, where / "recheck")
    mempool = _mempool(kind, app, 2 * block)
    _timed_adds(mempool, work.recheck)
    committed = _commit_block(app, work, mempool.reap(max_txs=block))
    checks, rechecks = app.check_calls, app.recheck_calls
    profiling.enable()
    started = time.perf_counter()
    mempool.update(committed)
    recheck_s = time.perf_counter() - started
    profiling.disable()
    calls = (app.check_calls - checks) + (app.recheck_calls - rechecks)
    app.store.close()
    return MempoolMeasure(
        fill_txs_per_s=len(work.fill) / sum(fill_s),
        full_txs_per_s=len(work.arrivals) / sum(full_s),
        full_admitted=sum(a.ok for a in admissions),
        full_median_us=statistics.median(per_arrival_us),
        full_signatures=full_signatures,
        recheck_ms=recheck_s * 1e3,
        recheck_calls=calls,
        signatures_verified=app.check_calls - checks,  # recheck_tx verifies none
    )


def _timed_adds(mempool: _Pool, txs: list[Transaction]) -> tuple[list[float], list[Admission]]:
    raws = [tx.to_bytes() for tx in txs]
    seconds, admissions = [], []
    for raw in raws:
        started = time.perf_counter()
        admissions.append(mempool.add(raw))
        seconds.append(time.perf_counter() - started)
    return seconds, admissions


def _commit_block(app: Application, work: _Workload, candidates: list[bytes]) -> list[Transaction]:
    chosen = app.prepare_proposal(candidates)
    last = app.store.last_block
    last_commit = None if last is None else sign_commit(work.genesis.chain_id, last, work.validator)
    block = build_block(app, chosen, work.validator, last_commit)
    assert app.process_proposal(block).accept
    app.finalize_block(block)
    app.commit()
    return list(block.txs)


class _NoProfiler:
    def enable(self) -> None: ...

    def disable(self) -> None: ...


def _profile(work: _Workload, pool: int, block: int, where: Path) -> str:
    """The top of cProfile's table (by own time) of today's mempool, in one more round,
    over the arrivals at the full mempool and the re-check."""
    profiler = cProfile.Profile()
    _measure("after", work, pool, block, where, profiler)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(PROFILE_LINES)
    lines = out.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
    return "\n".join(lines[start : start + PROFILE_LINES + 1])


def _median(values: list[MempoolMeasure]) -> MempoolMeasure:
    def mid(get: Callable[[MempoolMeasure], float]) -> float:
        return statistics.median(get(v) for v in values)

    return MempoolMeasure(
        fill_txs_per_s=mid(lambda m: m.fill_txs_per_s),
        full_txs_per_s=mid(lambda m: m.full_txs_per_s),
        full_admitted=int(mid(lambda m: m.full_admitted)),
        full_median_us=mid(lambda m: m.full_median_us),
        full_signatures=int(mid(lambda m: m.full_signatures)),
        recheck_ms=mid(lambda m: m.recheck_ms),
        recheck_calls=int(mid(lambda m: m.recheck_calls)),
        signatures_verified=int(mid(lambda m: m.signatures_verified)),
    )


def format_report(report: MempoolReport) -> str:
    before, after = report.measures["before"], report.measures["after"]
    rows = (
        ("fill: check_tx + add, tx/s", "{:,.0f}", lambda m: m.fill_txs_per_s),
        ("full pool: check_tx + add, tx/s", "{:,.0f}", lambda m: m.full_txs_per_s),
        ("  median per arrival, µs", "{:,.0f}", lambda m: m.full_median_us),
        (f"  admitted of {report.arrivals}", "{:,}", lambda m: m.full_admitted),
        ("  signatures verified", "{:,}", lambda m: m.full_signatures),
        (f"re-check after a block of {report.block}, ms", "{:,.1f}", lambda m: m.recheck_ms),
        ("  transactions re-checked", "{:,}", lambda m: m.recheck_calls),
        ("  signatures verified", "{:,}", lambda m: m.signatures_verified),
    )
    lines = [
        f"mempool of {report.pool} ready transactions ({PER_SENDER} a sender), "
        f"{report.arrivals} arrivals when full, a block of {report.block} out of "
        f"{2 * report.block}; medians of {report.rounds} rounds (LevelDB)",
        f"{'':<44} {'before (c273d3c)':>17} {'after':>12}",
    ]
    for label, form, get in rows:
        lines.append(f"{label:<44} {form.format(get(before)):>17} {form.format(get(after)):>12}")
    if report.profile:
        lines += [
            "",
            "profile of 'after': arrivals at the full mempool and the re-check (cProfile)",
            report.profile,
        ]
    return "\n".join(lines)
