"""`cloudchain bench consensus`: committed transactions per second on a local network.

It starts `validators` real `cloudchain node start` processes (free loopback ports, a
temporary home, the default consensus config: timeouts as an operator gets them),
with a genesis that funds accounts it makes itself, and stops every process at the
end, also on an error or Ctrl-C. Two sweeps, each step after `warmup_s` and measured
for `duration_s`:

  (a) fixed offered rates, open loop: token transfers, all signed before the step (one
      fresh account per transfer, so that no refusal can leave a nonce gap that stalls
      the transfers behind it), due at i / rate and sent every TICK_S in JSON-RPC
      batches (at most BATCH_MAX) of `broadcast_tx_sync` over reused HTTP sessions,
      transaction i to node i % validators. A transaction's submit time is when its
      batch went out; its commit time when node0's NewBlock event holding it arrived
      over the WebSocket (the same clock).
  (b) the paper's Fig. 3: `requesters` concurrent closed loops, each submit, wait for
      the commit, next; every second one a market task (market.submit), the others
      transfers. The market's other side answers from the committed blocks: PROVIDERS
      registered before the sweeps start the tasks assigned to them and complete them,
      the genesis oracles attest, and the chain assigns and settles by itself.

Per step: committed tx/s (the transactions of the blocks that arrived within the
measured window, over its length), submit-to-commit p50/p95/p99 of the transactions
sent within it, the block interval (from the headers' BFT times), refusals by code
and, apart, transport errors and admitted transactions never seen committed
(timeouts). The load generator reports its own achieved send rate, how late it sent,
and its CPU time over wall time; a step where it could not keep up says so.

The signature ceiling is measured in this process before the network starts: Ed25519
verifications of a transfer's signature on one core for CEILING_S, times the cores,
over the validators (each node verifies each transaction once), with the nodes'
verifier (libsodium) and, for comparison with earlier runs, with OpenSSL's.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import math
import os
import platform
import subprocess
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cloudchain.bench.consensus_stats import (
    Ceiling,
    Intervals,
    Latency,
    batches,
    block_intervals,
    check_run,
    check_soak,
    due_count,
    latency_summary,
    percentile,
    rate_per_s,
)
from cloudchain.bench.profiling import (
    NodeProfile,
    check_py_spy,
    start_recording,
    stop_recordings,
    write_profile,
)
from cloudchain.bench.soak import (
    RSS_SAMPLE_S,
    SoakNonces,
    SoakResult,
    read_cpu_s,
    read_rss_mib,
    soak_keys,
    soak_slot,
)
from cloudchain.bench.soak import series as rss_series
from cloudchain.chaincode.codes import Code
from cloudchain.client import Client, RPCClientError
from cloudchain.crypto import PrivateKey, read_key_file, verify
from cloudchain.fees import FeeSchedule, priced_transaction
from cloudchain.genesis import Genesis
from cloudchain.ledger import Transaction
from cloudchain.node.config import LogConfig, NodeConfig
from cloudchain.node.processes import start_node_processes, stop_node_processes
from cloudchain.node.testnet import DEFAULT_CHAIN_ID, init_testnet
from cloudchain.timefmt import parse_rfc3339_ns

TICK_S = 0.02  # the open loop's send interval: what is due is sent every tick
BATCH_MAX = 10  # requests per JSON-RPC batch: the RPC's default max_request_batch_size
IN_FLIGHT_PER_NODE = 200  # HTTP requests outstanding to one node (its limit: 900 connections)
HTTP_TIMEOUT_S = 30.0
READY_DEADLINE_S = 120.0
SETTLE_DEADLINE_S = 60.0  # between steps, for the mempools to empty
COMMIT_WAIT_S = 30.0  # a closed-loop requester's wait for its transaction's commit
CEILING_S = 2.0
SATURATED_CPU = 0.85  # the generator's CPU time over wall time above which it says so
SATURATED_SEND = 0.95  # achieved / offered below which the generator says it lagged
OPEN_LOOP_BALANCE = 10_000  # each open-loop account: one transfer's fee and amount
REQUESTER_BALANCE = 10**12
PROVIDERS = 16
PROVIDER_STAKE = 10_000
AGENT_TXS_PER_BLOCK = 32  # a provider's or oracle's transactions sent per block, at most
AGENT_BACKLOG_MAX = 2_000  # actions waiting per agent; beyond, the oldest are dropped
TASK_CLASS = "a100-80gb"
TASK_PRICE = 2  # a task pays at most this per unit (the providers ask 1)
TASK_UNITS = 1
TASK_SHARE = 2  # every TASK_SHARE-th requester transaction is a market.submit
NONCE_CODES = frozenset({Code.NONCE_TOO_LOW, Code.NONCE_TOO_HIGH, Code.NONCE_PENDING})

Say = Callable[[str], None]


class BenchError(RuntimeError):
    """The benchmark could not run; the message says why."""


@dataclass(frozen=True)
class ConsensusBenchConfig:
    validators: int = 4
    rates: tuple[int, ...] = (250, 500, 1000)
    requesters: tuple[int, ...] = (10, 50, 100, 200, 300)
    duration_s: float = 20.0
    warmup_s: float = 3.0
    drain_s: float = 30.0  # after an open-loop step's last send, the most it waits for commits
    profile: bool = False
    soak_s: float = 0.0  # a soak after the sweeps, measured for this long (0: none)
    soak_rate: int = 0  # its offered tx/s (0: the rate sweep's committed peak)

    @property
    def soak_key_rate(self) -> int:
        """The most tx/s the soak may offer: what its keys are made for."""
        return self.soak_rate or max(self.rates, default=0)

    def check(self) -> None:
        check_run(self.validators, self.duration_s, self.warmup_s, self.rates, self.requesters)
        check_soak(self.soak_s, self.soak_rate, self.rates)

    def open_loop_count(self, rate: int) -> int:
        return math.ceil(rate * (self.warmup_s + self.duration_s))


@dataclass(frozen=True)
class Generator:
    """What the load generator itself achieved in a step."""

    send_tx_s: float  # transactions sent per second within the window
    lag_p99_s: float | None  # how late (after it was due) the 99th percentile went out
    cpu_fraction: float  # this process's CPU time over wall time (1.0: one core)
    saturated: bool
    note: str


@dataclass(frozen=True)
class Step:
    sweep: str  # "rate" or "requesters"
    load: int  # offered tx/s, or concurrent requesters
    duration_s: float
    sent: int  # transactions sent within the window
    admitted: int  # of those, taken by a mempool
    committed: int  # of those, seen committed
    committed_tx_s: float  # every transaction of the window's blocks, per second
    latency: Latency
    intervals: Intervals
    refusals: dict[str, int]  # "code (codespace)" -> count, within the window
    errors: int  # transport or JSON-RPC errors
    timeouts: int  # admitted, never seen committed
    generator: Generator
    market: dict[str, int] = field(default_factory=dict)  # market events within the window
    requester_tx_s: float = 0.0  # the requesters' own transactions committed per second
    # The node processes' CPU seconds per second over the window, all nodes together
    # (out of the machine's cores): below the cores, the network waited rather than
    # worked. None where /proc is not.
    nodes_cpu_cores: float | None = None


@dataclass(frozen=True)
class ConsensusBenchResult:
    config: ConsensusBenchConfig
    steps: tuple[Step, ...]
    ceiling: Ceiling
    machine: dict[str, Any]
    profiles: tuple[NodeProfile, ...] = ()
    profiled_step: str = ""
    soak: SoakResult | None = None

    def sweep(self, name: str) -> list[Step]:
        return [s for s in self.steps if s.sweep == name]

    @property
    def peak_tx_s(self) -> float:
        return max((s.committed_tx_s for s in self.steps), default=0.0)


def run_consensus_bench(
    config: ConsensusBenchConfig, out_dir: Path | None = None, say: Say = print
) -> ConsensusBenchResult:
    """Measure the ceiling, start a network, run both sweeps, stop the network."""
    config.check()
    say("signature ceiling: timing Ed25519 verifications on one core ...")
    ceiling = measure_ceiling(config.validators)
    say(
        f"  {ceiling.verifications_per_s_one_core:,.0f} verifications/s on one core x "
        f"{ceiling.cores} cores / {config.validators} validators = {ceiling.tx_per_s:,.0f} tx/s"
    )
    accounts = _Accounts.make(config)
    with tempfile.TemporaryDirectory(prefix="cloudchain-bench-consensus-") as scratch:
        home = Path(scratch) / "testnet"
        node_homes = _init_network(home, config.validators, accounts)
        urls = [
            f"http://{NodeConfig.load(h / 'config' / 'config.toml').rpc.listen_address}"
            for h in node_homes
        ]
        say(f"{config.validators} validators under {home}, rpc {', '.join(urls)}")
        processes = start_node_processes(node_homes, log_to_files=True, own_session=True)
        try:
            profiler = None
            if config.profile:
                assert out_dir is not None, "a profile is written to the out directory"
                profiler = _Profiler(check_py_spy(processes[0].pid), processes, out_dir)
            bench = _Bench(config, urls, home, accounts, processes, profiler, say)
            steps = _run_loop(bench.run())
        finally:
            stop_node_processes(processes)
    return ConsensusBenchResult(
        config,
        tuple(steps),
        ceiling,
        machine_info(),
        tuple(profiler.profiles) if profiler else (),
        profiler.step if profiler else "",
        bench.soaked,
    )


def _run_loop(coroutine: Any) -> Any:
    """Run on uvloop where it is installed (a dependency), so that the generator's own
    event loop is as cheap as it can be."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


def machine_info() -> dict[str, Any]:
    return {
        "cores": _cores(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
    }


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def measure_ceiling(validators: int, seconds: float = CEILING_S) -> Ceiling:
    """Ed25519 verifications of one signed transfer, on this core, for `seconds` with
    the nodes' verifier and as long again with OpenSSL's (the ceiling before it)."""
    key = PrivateKey.generate()
    tx = priced_transaction(
        key,
        DEFAULT_CHAIN_ID,
        0,
        "token",
        "transfer",
        {"to": key.address, "amount": 1},
        FeeSchedule(),
    )
    message, signature = tx.sign_bytes(), tx.signature
    openssl_key = Ed25519PublicKey.from_public_bytes(tx.sender)

    def openssl_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
        openssl_key.verify(signature, message)  # raises if it does not verify
        return True

    rates = [
        _verifications_per_s(check, tx.sender, message, signature, seconds)
        for check in (verify, openssl_verify)
    ]
    return Ceiling(rates[0], _cores(), validators, openssl_verifications_per_s_one_core=rates[1])


def _verifications_per_s(
    check: Callable[[bytes, bytes, bytes], bool],
    public_key: bytes,
    message: bytes,
    signature: bytes,
    seconds: float,
) -> float:
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(100):
            assert check(public_key, message, signature)
        count += 100
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


# --- accounts and the network -----------------------------------------------------------


@dataclass
class _Accounts:
    open_loop: list[list[PrivateKey]]  # per rate step, one key per transaction
    requesters: list[PrivateKey]
    providers: list[PrivateKey]
    soak: list[PrivateKey]  # each sends every KEY_PERIOD_S, nonce after nonce

    @classmethod
    def make(cls, config: ConsensusBenchConfig) -> _Accounts:
        soak = soak_keys(config.soak_key_rate, config.validators) if config.soak_s else 0
        return cls(
            [
                [PrivateKey.generate() for _ in range(config.open_loop_count(r))]
                for r in config.rates
            ],
            [PrivateKey.generate() for _ in range(max(config.requesters, default=0))],
            [PrivateKey.generate() for _ in range(PROVIDERS if config.requesters else 0)],
            [PrivateKey.generate() for _ in range(soak)],
        )

    def balances(self) -> list[tuple[str, int]]:
        funded = [(k.address, OPEN_LOOP_BALANCE) for step in self.open_loop for k in step]
        funded += [(k.address, REQUESTER_BALANCE) for k in [*self.requesters, *self.providers]]
        funded += [(k.address, REQUESTER_BALANCE) for k in self.soak]
        return funded


def _init_network(home: Path, validators: int, accounts: _Accounts) -> list[Path]:
    """A testnet of the default node config (quiet logs), its genesis funding our keys."""
    node_homes = init_testnet(home, validators, accounts=1, oracles=3)
    genesis = Genesis.load(node_homes[0] / "config" / "genesis.json")
    balances = tuple(sorted([*genesis.balances, *accounts.balances()]))
    genesis = dataclasses.replace(genesis, balances=balances)
    for node_home in node_homes:
        genesis.save(node_home / "config" / "genesis.json")
        path = node_home / "config" / "config.toml"
        node_config = NodeConfig.load(path)
        dataclasses.replace(node_config, log=LogConfig(level="warning")).save(path)
    return node_homes


# --- watching commits -----------------------------------------------------------------


@dataclass(frozen=True)
class BlockSeen:
    height: int
    received_s: float  # time.perf_counter() when its NewBlock event arrived
    time_ns: int  # its header's BFT time
    txs: int
    commit_round: int = 0  # the round its last commit decided the previous height in


BlockListener = Callable[[Mapping[str, Any]], None]


class ChainWatch:
    """node0's NewBlock events: each block's arrival, and when each transaction (by hash)
    was seen committed; futures for those a closed loop waits on."""

    def __init__(self) -> None:
        self.blocks: list[BlockSeen] = []
        self.committed_at: dict[bytes, float] = {}
        self._waiters: dict[bytes, asyncio.Future[float]] = {}
        self._new_block = asyncio.Event()
        self.listeners: list[BlockListener] = []
        self.failure: BaseException | None = None

    async def follow(self, client: Client) -> None:
        try:
            async with client.subscribe("tm.event='NewBlock'") as events:
                self._ready.set()
                async for event in events:
                    self._on_block(event.value)
        except (RPCClientError, aiohttp.ClientError) as exc:
            self.failure = exc
            self._ready.set()
            self._new_block.set()

    async def started(self, client: Client) -> asyncio.Task[None]:
        self._ready = asyncio.Event()
        task = asyncio.create_task(self.follow(client))
        await asyncio.wait_for(self._ready.wait(), READY_DEADLINE_S)
        if self.failure is not None:
            raise BenchError(f"cannot follow node0's blocks: {self.failure}")
        return task

    def _on_block(self, value: Mapping[str, Any]) -> None:
        now = time.perf_counter()
        header = value["block"]["header"]
        txs = value["block"]["data"]["txs"] or []
        for encoded in txs:
            tx_hash = hashlib.sha256(base64.b64decode(encoded)).digest()
            self.committed_at[tx_hash] = now
            waiter = self._waiters.pop(tx_hash, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(now)
        last_commit = value["block"].get("last_commit") or {}
        self.blocks.append(
            BlockSeen(
                int(header["height"]),
                now,
                parse_rfc3339_ns(header["time"]),
                len(txs),
                int(last_commit.get("round", 0)),
            )
        )
        for listener in self.listeners:
            listener(value)
        self._new_block.set()
        self._new_block = asyncio.Event()

    def committed(self, tx_hash: bytes) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        if tx_hash in self.committed_at:
            future.set_result(self.committed_at[tx_hash])
        else:
            self._waiters[tx_hash] = future
        return future

    def forget(self, tx_hash: bytes) -> None:
        self._waiters.pop(tx_hash, None)

    async def next_block(self, timeout_s: float) -> bool:
        """Wait for the next block; False if none came within the timeout."""
        if self.failure is not None:
            raise BenchError(f"node0's event stream failed: {self.failure}")
        try:
            await asyncio.wait_for(self._new_block.wait(), timeout_s)
        except TimeoutError:
            return False
        if self.failure is not None:
            raise BenchError(f"node0's event stream failed: {self.failure}")
        return True

    def blocks_between(self, start_s: float, end_s: float) -> list[BlockSeen]:
        return [b for b in self.blocks if start_s <= b.received_s < end_s]


# --- sending --------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    code: int  # 0: admitted
    codespace: str = ""
    error: str = ""  # a transport or JSON-RPC error (then code is -1)

    @property
    def ok(self) -> bool:
        return self.code == 0 and not self.error

    @property
    def refusal(self) -> str:
        return f"{self.code} ({self.codespace})" if self.codespace else str(self.code)


class Broadcaster:
    """`broadcast_tx_sync` in JSON-RPC batches over one HTTP session, a bounded number
    of requests in flight to each node."""

    def __init__(self, urls: Sequence[str], session: aiohttp.ClientSession) -> None:
        self.urls = list(urls)
        self.session = session
        self.gates = [asyncio.Semaphore(IN_FLIGHT_PER_NODE) for _ in urls]
        self._ids = 0

    async def send(
        self, node: int, txs: Sequence[bytes], on_send: Callable[[float], None] | None = None
    ) -> list[Answer]:
        async with self.gates[node]:
            body = []
            for tx in txs:
                self._ids += 1
                body.append(
                    {
                        "jsonrpc": "2.0",
                        "id": self._ids,
                        "method": "broadcast_tx_sync",
                        "params": {"tx": base64.b64encode(tx).decode()},
                    }
                )
            if on_send is not None:
                on_send(time.perf_counter())
            try:
                async with self.session.post(self.urls[node], json=body) as response:
                    replies = await response.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                return [Answer(-1, error=str(exc) or type(exc).__name__)] * len(txs)
        if not isinstance(replies, list) or len(replies) != len(txs):
            return [Answer(-1, error=f"malformed batch reply: {str(replies)[:80]}")] * len(txs)
        by_id = {reply.get("id"): reply for reply in replies if isinstance(reply, dict)}
        answers = []
        for request in body:
            reply = by_id.get(request["id"], {})
            result = reply.get("result")
            if isinstance(result, dict):
                answers.append(Answer(int(result.get("code", 0)), str(result.get("codespace", ""))))
            else:
                answers.append(Answer(-1, error=str(reply.get("error", "no reply"))[:120]))
        return answers


# --- signers with known nonces (closed loops and the market's agents) -------------------


class Signer:
    """An account whose nonce the bench keeps; each transaction pays the minimum fee,
    computed once per shape (method and the nonce's encoded width) and reused."""

    def __init__(self, key: PrivateKey, node: int, chain_id: str, fees: FeeSchedule) -> None:
        self.key, self.node, self.chain_id, self.fees = key, node, chain_id, fees
        self.nonce = 0
        self._fee_of: dict[tuple[str, str, int], int] = {}

    @property
    def address(self) -> str:
        return self.key.address

    def sign(self, module: str, method: str, args: dict[str, Any]) -> Transaction:
        shape = (module, method, _nonce_width(self.nonce))
        fee = self._fee_of.get(shape)
        if fee is None:
            tx = priced_transaction(
                self.key, self.chain_id, self.nonce, module, method, args, self.fees
            )
            self._fee_of[shape] = tx.fee
            return tx
        return Transaction.create(
            self.key, self.chain_id, self.nonce, module, method, args, fee=fee
        )

    async def sync(self, client: Client) -> None:
        self.nonce = await client.nonce(self.address)


def _nonce_width(nonce: int) -> int:
    """Bytes of a non-negative integer in msgpack: what changes a transaction's size."""
    return 1 if nonce < 128 else 2 if nonce < 256 else 3 if nonce < 65536 else 5


def _task_args() -> dict[str, Any]:
    return {
        "kind": "inference",
        "inputs": [],
        "resource_class": TASK_CLASS,
        "units": TASK_UNITS,
        "max_price": TASK_PRICE,
        "deadline_s": 3600,
        "min_uptime_bps": 9_000,
        "max_latency_ms": 1_000,
        "penalty": 0,
        "provider": "",
    }


class MarketAgents:
    """The market's side the bench plays: the providers start and complete the tasks
    the chain assigns them, the oracles attest; each acts on committed blocks."""

    def __init__(self, providers: list[Signer], oracles: list[Signer]) -> None:
        self.providers = {s.address: s for s in providers}
        self.oracles = oracles
        self.backlog: dict[str, deque[tuple[str, dict[str, Any]]]] = {
            s.address: deque(maxlen=AGENT_BACKLOG_MAX) for s in [*providers, *oracles]
        }
        self.events: list[tuple[float, str]] = []  # (arrival, market event kind)
        self.active = False  # react only while the closed-loop sweep runs

    def on_block(self, value: Mapping[str, Any]) -> None:
        now = time.perf_counter()
        result = value.get("result_finalize_block") or {}
        events = [e for r in result.get("tx_results") or [] for e in r.get("events") or []]
        events += result.get("events") or []
        for event in events:
            kind = str(event.get("type", ""))
            if not kind.startswith("market_"):
                continue
            kind = kind.removeprefix("market_")
            self.events.append((now, kind))
            if not self.active:
                continue
            attrs = {a["key"]: a["value"] for a in event.get("attributes") or []}
            if kind == "assign" and attrs.get("provider") in self.providers:
                self._queue(attrs["provider"], "start", {"task": int(attrs["task"])})
            elif kind == "start" and attrs.get("provider") in self.providers:
                args = {"task": int(attrs["task"]), "units_used": TASK_UNITS, "output": []}
                self._queue(attrs["provider"], "complete", args)
            elif kind == "complete":
                for oracle in self.oracles:
                    args = {
                        "task": int(attrs["task"]),
                        "completed": True,
                        "units": TASK_UNITS,
                        "uptime_bps": 9_990,
                        "latency_ms": 100,
                    }
                    self._queue(oracle.address, "attest", args)

    def _queue(self, address: str, method: str, args: dict[str, Any]) -> None:
        self.backlog[address].append((method, args))

    def counts_between(self, start_s: float, end_s: float) -> dict[str, int]:
        return dict(Counter(kind for t, kind in self.events if start_s <= t < end_s))

    async def run(self, watch: ChainWatch, broadcaster: Broadcaster, clients: list[Client]) -> None:
        """After each block, every agent sends what is due, in nonce order."""
        signers = [*self.providers.values(), *self.oracles]
        while True:
            await watch.next_block(timeout_s=60)
            await asyncio.gather(*(self._send(s, broadcaster, clients) for s in signers))

    async def _send(self, signer: Signer, broadcaster: Broadcaster, clients: list[Client]) -> None:
        backlog = self.backlog[signer.address]
        if not backlog:
            return
        count = min(len(backlog), AGENT_TXS_PER_BLOCK)
        actions = [backlog.popleft() for _ in range(count)]
        txs = []
        for method, args in actions:
            txs.append(signer.sign("market", method, args).to_bytes())
            signer.nonce += 1
        answers: list[Answer] = []
        for start in range(0, len(txs), BATCH_MAX):
            answers += await broadcaster.send(signer.node, txs[start : start + BATCH_MAX])
        if not all(a.ok for a in answers):
            with contextlib.suppress(RPCClientError):
                await signer.sync(clients[signer.node])


# --- the bench ------------------------------------------------------------------------


class _Profiler:
    """py-spy on every node during one step (the highest offered rate)."""

    def __init__(self, exe: str, processes: list[subprocess.Popen[str]], out_dir: Path) -> None:
        self.exe, self.processes, self.out_dir = exe, processes, out_dir
        self.profiles: list[NodeProfile] = []
        self.step = ""
        self._recordings: list[subprocess.Popen[str]] = []

    def start(self, step: str, duration_s: float) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.step = step
        self._recordings = [
            start_recording(self.exe, p.pid, duration_s, self._raw(i))
            for i, p in enumerate(self.processes)
        ]

    def _raw(self, i: int) -> Path:
        return self.out_dir / f"profile-node{i}.txt"

    def finish(self, duration_s: float) -> None:
        stop_recordings(self._recordings, timeout_s=duration_s + 30)
        self.profiles = [
            write_profile(f"node{i}", self._raw(i), self.out_dir)
            for i in range(len(self.processes))
        ]


class _Bench:
    def __init__(
        self,
        config: ConsensusBenchConfig,
        urls: list[str],
        home: Path,
        accounts: _Accounts,
        processes: list[subprocess.Popen[str]],
        profiler: _Profiler | None,
        say: Say,
    ) -> None:
        self.config = config
        self.urls = urls
        self.home = home
        self.accounts = accounts
        self.processes = processes
        self.profiler = profiler
        self.say = say
        self.clients = [Client(url) for url in urls]
        self.watch = ChainWatch()
        self.steps: list[Step] = []
        self.soaked: SoakResult | None = None
        genesis = Genesis.load(home / "node0" / "config" / "genesis.json")
        self.chain_id = genesis.chain_id
        self.fees = genesis.fees

    async def run(self) -> list[Step]:
        await self._wait_ready()
        timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=IN_FLIGHT_PER_NODE)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            self.broadcaster = Broadcaster(self.urls, session)
            follower = await self.watch.started(self.clients[0])
            try:
                await self._rate_sweep()
                await self._requester_sweep()
                await self._soak()
            finally:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follower
        return self.steps

    async def _wait_ready(self) -> None:
        """Every node answers, has committed a block and is connected to every other."""
        deadline = time.monotonic() + READY_DEADLINE_S
        peers = len(self.clients) - 1
        while True:
            self._check_alive()
            try:
                statuses = [await c.status() for c in self.clients]
                infos = [await c.net_info() for c in self.clients]
                if all(s.latest_block_height >= 1 for s in statuses) and all(
                    i.n_peers >= peers for i in infos
                ):
                    return
            except RPCClientError:
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"the network was not up within {READY_DEADLINE_S:g} s")
            await asyncio.sleep(0.2)  # polling starting processes, bounded by the deadline

    def _check_alive(self) -> None:
        for i, process in enumerate(self.processes):
            if process.poll() is not None:
                log = self.home / f"node{i}" / "node.log"
                tail = log.read_text()[-600:] if log.exists() else ""
                raise BenchError(f"node{i} exited with {process.returncode}:\n{tail}")

    async def _settle(self) -> None:
        """Until every mempool is empty (bounded): steps do not carry load into each other."""
        deadline = time.monotonic() + SETTLE_DEADLINE_S
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(RPCClientError):
                counts = [(await c.num_unconfirmed_txs()).total for c in self.clients]
                if not any(counts):
                    return
            await self.watch.next_block(timeout_s=5)
        self.say(f"  (mempools not empty after {SETTLE_DEADLINE_S:g} s; going on)")

    # -- (a) fixed offered rates -------------------------------------------------------

    async def _rate_sweep(self) -> None:
        if not self.config.rates:
            return
        peak = max(self.config.rates)
        for index, rate in enumerate(self.config.rates):
            keys = self.accounts.open_loop[index]
            self.say(f"rate {rate} tx/s: signing {len(keys)} transfers ...")
            txs = await asyncio.to_thread(self._sign_transfers, keys)
            await self._settle()
            profile = self.profiler is not None and rate == peak
            step = await self._open_loop(rate, txs, profile)
            self.steps.append(step)
            self.say(_step_line(step))

    def _sign_transfers(self, keys: list[PrivateKey]) -> list[Transaction]:
        """One transfer per key (nonce 0) to the next key, each paying the minimum fee
        (every one is the same size, so the fee is found once)."""
        first = priced_transaction(
            keys[0],
            self.chain_id,
            0,
            "token",
            "transfer",
            {"to": keys[0].address, "amount": 1},
            self.fees,
        )
        return [
            Transaction.create(
                key,
                self.chain_id,
                0,
                "token",
                "transfer",
                {"to": keys[(k + 1) % len(keys)].address, "amount": 1},
                fee=first.fee,
            )
            for k, key in enumerate(keys)
        ]

    async def _open_loop(self, rate: int, signed: list[Transaction], profile: bool) -> Step:
        config = self.config
        raws = [tx.to_bytes() for tx in signed]
        hashes = [tx.hash for tx in signed]
        count = len(raws)
        nodes = len(self.urls)
        warm = min(count, math.ceil(rate * config.warmup_s))
        submitted = [0.0] * count
        answers: list[Answer | None] = [None] * count
        pending: set[asyncio.Task[None]] = set()

        async def send(node: int, indices: list[int]) -> None:
            def mark(now: float) -> None:
                for i in indices:
                    submitted[i] = now

            replies = await self.broadcaster.send(node, [raws[i] for i in indices], mark)
            for i, answer in zip(indices, replies, strict=True):
                answers[i] = answer

        start = time.perf_counter() + TICK_S
        window_start, window_end = (
            start + config.warmup_s,
            start + config.warmup_s + config.duration_s,
        )
        cpu_start = time.process_time()
        cpu_window_start: float | None = None
        if profile and self.profiler is not None:
            self.profiler.start(f"rate {rate} tx/s", config.warmup_s + config.duration_s)
        sent = 0
        while sent < count:
            now = time.perf_counter()
            if cpu_window_start is None and now >= window_start:
                cpu_window_start, wall_window_start = time.process_time(), now
                nodes_cpu_start = self._nodes_cpu_s()
            due = due_count(rate, now - start, count)
            if due > sent:
                for node, indices in batches(range(sent, due), nodes, BATCH_MAX):
                    task = asyncio.create_task(send(node, indices))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                sent = due
            if sent < count:
                # Pacing, not synchronisation: sleep until the next tick.
                await asyncio.sleep(max(TICK_S - (time.perf_counter() - now), 0.001))
        if cpu_window_start is None:
            cpu_window_start, wall_window_start = cpu_start, start
            nodes_cpu_start = self._nodes_cpu_s()
        await asyncio.gather(*list(pending))
        wall_s = max(time.perf_counter() - wall_window_start, 1e-9)
        cpu_fraction = (time.process_time() - cpu_window_start) / wall_s
        nodes_cpu_end = self._nodes_cpu_s()
        nodes_cpu_cores = (
            None
            if nodes_cpu_start is None or nodes_cpu_end is None
            else (nodes_cpu_end - nodes_cpu_start) / wall_s
        )
        last_send = time.perf_counter()
        window = range(warm, count)
        admitted = [i for i in window if (a := answers[i]) is not None and a.ok]
        # Wait for the admitted ones to be seen committed, at most drain_s.
        deadline = last_send + config.drain_s
        while time.perf_counter() < deadline and any(
            hashes[i] not in self.watch.committed_at for i in admitted
        ):
            self._check_alive()
            await self.watch.next_block(timeout_s=max(deadline - time.perf_counter(), 0.01))
        if profile and self.profiler is not None:
            await asyncio.to_thread(self.profiler.finish, config.warmup_s + config.duration_s)
        latencies = [
            self.watch.committed_at[hashes[i]] - submitted[i]
            for i in admitted
            if hashes[i] in self.watch.committed_at
        ]
        lags = [submitted[i] - (start + i / rate) for i in window if submitted[i]]
        sends = sorted(submitted[i] for i in window if submitted[i])
        send_span = (sends[-1] - sends[0]) if len(sends) > 1 else 0.0
        send_tx_s = (len(sends) - 1) / send_span if send_span > 0 else 0.0
        return self._step(
            "rate",
            rate,
            window_start,
            window_end,
            [answers[i] for i in window],
            len(admitted),
            latencies,
            _generator(send_tx_s, rate, lags, cpu_fraction),
            nodes_cpu_cores=nodes_cpu_cores,
        )

    def _nodes_cpu_s(self) -> float | None:
        """The CPU seconds all node processes have used so far (None if one is gone)."""
        times = [read_cpu_s(p.pid) for p in self.processes]
        return None if None in times else sum(t for t in times if t is not None)

    def _step(
        self,
        sweep: str,
        load: int,
        window_start: float,
        window_end: float,
        answers: Sequence[Answer | None],
        admitted: int,
        latencies: list[float],
        generator: Generator,
        market: dict[str, int] | None = None,
        requester_committed: int = 0,
        nodes_cpu_cores: float | None = None,
    ) -> Step:
        duration = window_end - window_start
        blocks = self.watch.blocks_between(window_start, window_end)
        refusals = Counter(a.refusal for a in answers if a is not None and not a.ok and not a.error)
        errors = sum(1 for a in answers if a is not None and a.error)
        return Step(
            sweep=sweep,
            load=load,
            duration_s=duration,
            sent=sum(1 for a in answers if a is not None),
            admitted=admitted,
            committed=len(latencies),
            committed_tx_s=rate_per_s(sum(b.txs for b in blocks), duration),
            latency=latency_summary(latencies),
            intervals=block_intervals(
                [b.time_ns for b in blocks], [b.commit_round for b in blocks]
            ),
            refusals=dict(sorted(refusals.items())),
            errors=errors,
            timeouts=admitted - len(latencies),
            generator=generator,
            market=market or {},
            requester_tx_s=rate_per_s(requester_committed, duration),
            nodes_cpu_cores=nodes_cpu_cores,
        )

    # -- the soak: memory over a long run at one rate ---------------------------------------

    async def _soak(self) -> None:
        config = self.config
        if not config.soak_s:
            return
        peak = max((s.committed_tx_s for s in self.steps if s.sweep == "rate"), default=0)
        rate = config.soak_rate or int(peak)
        rate = max(1, min(rate, config.soak_key_rate))
        keys = self.accounts.soak
        total = math.ceil(rate * (config.warmup_s + config.soak_s))
        self.say(
            f"soak at {rate} tx/s for {config.warmup_s:g} + {config.soak_s:g} s "
            f"({total} transfers from {len(keys)} accounts); RSS every {RSS_SAMPLE_S:g} s"
        )
        await self._settle()
        fee = self._sign_transfers(keys[:1])[0].fee
        rounds: dict[int, list[Transaction]] = {}

        def sign_one(k: int, nonce: int) -> Transaction:
            to = keys[(k + 1) % len(keys)].address
            args = {"to": to, "amount": 1}
            return Transaction.create(
                keys[k], self.chain_id, nonce, "token", "transfer", args, fee=fee
            )

        def sign_round(nonce: int) -> list[Transaction]:
            return [sign_one(k, nonce) for k in range(len(keys))]

        nonces = SoakNonces(len(keys))  # a refused transfer is sent again (soak.py)

        def transfer_for(k: int, slot_nonce: int) -> Transaction:
            nonce = nonces.nonce_for(k, slot_nonce)
            signed = rounds.get(nonce)
            return signed[k] if signed is not None else sign_one(k, nonce)

        def note_refusals(
            sent_keys: list[int], txs: list[Transaction], replies: list[Answer]
        ) -> None:
            for k, tx, answer in zip(sent_keys, txs, replies, strict=True):
                if not answer.ok and answer.code not in (Code.TX_IN_MEMPOOL, Code.NONCE_TOO_LOW):
                    nonces.refused(k, tx.nonce)

        rounds[0] = await asyncio.to_thread(sign_round, 0)
        submitted: dict[bytes, float] = {}
        answers: list[Answer] = []
        pending: set[asyncio.Task[None]] = set()
        samples: list[tuple[float, list[float | None]]] = []
        start = time.perf_counter() + TICK_S
        window_start = start + config.warmup_s
        window_end = window_start + config.soak_s

        def sample() -> None:
            row = [read_rss_mib(p.pid) for p in self.processes]
            samples.append((time.perf_counter() - start, row))

        async def sample_rss() -> None:
            while True:  # until cancelled: sampling at intervals, not synchronisation
                sample()
                await asyncio.sleep(RSS_SAMPLE_S)

        async def send(
            node: int, sent_keys: list[int], txs: list[Transaction], in_window: bool
        ) -> None:
            def mark(now: float) -> None:
                for tx in txs:
                    submitted[tx.hash] = now

            replies = await self.broadcaster.send(node, [tx.to_bytes() for tx in txs], mark)
            note_refusals(sent_keys, txs, replies)
            if in_window:
                answers.extend(replies)

        sampler = asyncio.create_task(sample_rss())
        signing: asyncio.Future[list[Transaction]] | None = None
        sent = 0
        try:
            while sent < total:
                now = time.perf_counter()
                due = due_count(rate, now - start, total)
                if due > sent:
                    for node, indices in batches(range(sent, due), len(self.urls), BATCH_MAX):
                        txs, sent_keys = [], []
                        for i in indices:
                            key, nonce = soak_slot(i, len(keys))
                            if nonce not in rounds:
                                assert signing is not None, "the next round is signed ahead"
                                rounds[nonce] = await signing
                                signing = None
                                rounds.pop(nonce - 2, None)
                            txs.append(transfer_for(key, nonce))
                            sent_keys.append(key)
                        in_window = window_start <= now < window_end
                        task = asyncio.create_task(send(node, sent_keys, txs, in_window))
                        pending.add(task)
                        task.add_done_callback(pending.discard)
                    sent = due
                    upcoming = soak_slot(sent, len(keys))[1] + 1
                    if signing is None and upcoming not in rounds and sent < total:
                        signing = asyncio.ensure_future(asyncio.to_thread(sign_round, upcoming))
                self._check_alive()
                # Pacing, not synchronisation: sleep until the next tick.
                await asyncio.sleep(max(TICK_S - (time.perf_counter() - now), 0.001))
            await asyncio.gather(*list(pending))
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
            sample()  # and once at the end
            if signing is not None:
                signing.cancel()
        blocks = self.watch.blocks_between(window_start, window_end)
        latencies = [
            self.watch.committed_at[h] - t
            for h, t in submitted.items()
            if window_start <= t < window_end and h in self.watch.committed_at
        ]
        refusals = Counter(a.refusal for a in answers if not a.ok and not a.error)
        self.soaked = SoakResult(
            rate=rate,
            duration_s=config.soak_s,
            warmup_s=config.warmup_s,
            sent=len(answers),
            committed_tx_s=rate_per_s(sum(b.txs for b in blocks), config.soak_s),
            latency=latency_summary(latencies),
            refusals=dict(sorted(refusals.items())),
            errors=sum(1 for a in answers if a.error),
            rss=tuple(rss_series(samples, len(self.processes))),
        )
        growth = self.soaked.worst_growth_mib
        self.say(
            f"  soak: committed {self.soaked.committed_tx_s:.0f} tx/s, worst RSS growth "
            f"{'-' if growth is None else f'{growth:.0f} MiB'}"
        )

    # -- (b) concurrent requesters (the paper's Fig. 3) ----------------------------------

    async def _requester_sweep(self) -> None:
        if not self.config.requesters:
            return
        nodes = len(self.urls)
        requesters = [
            Signer(k, r % nodes, self.chain_id, self.fees)
            for r, k in enumerate(self.accounts.requesters)
        ]
        providers = [
            Signer(k, p % nodes, self.chain_id, self.fees)
            for p, k in enumerate(self.accounts.providers)
        ]
        oracle_keys = [
            read_key_file(p) for p in sorted((self.home / "accounts").glob("oracle*.json"))
        ]
        oracles = [
            Signer(k, o % nodes, self.chain_id, self.fees) for o, k in enumerate(oracle_keys)
        ]
        for signer in [*requesters, *providers, *oracles]:
            await signer.sync(self.clients[signer.node])
        agents = MarketAgents(providers, oracles)
        self.watch.listeners.append(agents.on_block)
        await self._register(providers)
        agents.active = True
        agent_task = asyncio.create_task(agents.run(self.watch, self.broadcaster, self.clients))
        try:
            for count in self.config.requesters:
                await self._settle()
                step = await self._closed_loop(requesters[:count], agents)
                self.steps.append(step)
                self.say(_step_line(step))
        finally:
            agent_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await agent_task

    async def _register(self, providers: list[Signer]) -> None:
        """Every provider registered (committed) before the requesters start."""
        self.say(f"registering {len(providers)} providers ...")
        offer = {"gpu": "A100", "gpus": 8, "memory_gb": 640, "units": 100_000, "price": 1}
        waits = []
        for p, signer in enumerate(providers):
            args = {
                "name": f"bench-provider-{p}",
                "tier": "enterprise",
                "stake": PROVIDER_STAKE,
                "offers": {TASK_CLASS: offer},
            }
            tx = signer.sign("market", "register", args)
            (answer,) = await self.broadcaster.send(signer.node, [tx.to_bytes()])
            if not answer.ok:
                raise BenchError(f"a provider's registration was refused: {answer}")
            signer.nonce += 1
            waits.append(self.watch.committed(tx.hash))
        try:
            await asyncio.wait_for(asyncio.gather(*waits), READY_DEADLINE_S)
        except TimeoutError:
            raise BenchError("the providers' registrations did not commit") from None

    async def _closed_loop(self, requesters: list[Signer], agents: MarketAgents) -> Step:
        config = self.config
        start = time.perf_counter()
        window_start, window_end = (
            start + config.warmup_s,
            start + config.warmup_s + config.duration_s,
        )
        records: list[tuple[float, float | None, Answer]] = []  # (sent, committed, answer)
        cpu_start = time.process_time()

        async def loop(r: int, signer: Signer) -> None:
            turn = r  # requesters start at different points of the mix
            partner = requesters[(r + 1) % len(requesters)].address
            while time.perf_counter() < window_end:
                if turn % TASK_SHARE == 0:
                    tx = signer.sign("market", "submit", _task_args())
                else:
                    tx = signer.sign("token", "transfer", {"to": partner, "amount": 1})
                turn += 1
                sent_at = time.perf_counter()
                (answer,) = await self.broadcaster.send(signer.node, [tx.to_bytes()])
                if not answer.ok:
                    records.append((sent_at, None, answer))
                    if answer.code in NONCE_CODES:
                        with contextlib.suppress(RPCClientError):
                            await signer.sync(self.clients[signer.node])
                    await self.watch.next_block(timeout_s=COMMIT_WAIT_S)  # back off a block
                    continue
                signer.nonce += 1
                waiter = self.watch.committed(tx.hash)
                try:
                    committed_at = await asyncio.wait_for(waiter, COMMIT_WAIT_S)
                except TimeoutError:
                    self.watch.forget(tx.hash)
                    records.append((sent_at, None, answer))
                    with contextlib.suppress(RPCClientError):
                        await signer.sync(self.clients[signer.node])
                    continue
                records.append((sent_at, committed_at, answer))

        await asyncio.gather(*(loop(r, s) for r, s in enumerate(requesters)))
        cpu_fraction = (time.process_time() - cpu_start) / max(time.perf_counter() - start, 1e-9)
        in_window = [rec for rec in records if window_start <= rec[0] < window_end]
        latencies = [c - s for s, c, a in in_window if c is not None]
        admitted = sum(1 for _, _, a in in_window if a.ok)
        requester_committed = sum(
            1 for _, c, _ in records if c is not None and window_start <= c < window_end
        )
        send_tx_s = rate_per_s(len(in_window), window_end - window_start)
        generator = Generator(
            send_tx_s,
            None,
            cpu_fraction,
            cpu_fraction >= SATURATED_CPU,
            "client saturated: its CPU time is near a whole core"
            if cpu_fraction >= SATURATED_CPU
            else "",
        )
        return self._step(
            "requesters",
            len(requesters),
            window_start,
            window_end,
            [a for _, _, a in in_window],
            admitted,
            latencies,
            generator,
            agents.counts_between(window_start, window_end),
            requester_committed,
        )


def _generator(send_tx_s: float, rate: int, lags: list[float], cpu_fraction: float) -> Generator:
    notes = []
    if cpu_fraction >= SATURATED_CPU:
        notes.append(f"client saturated: CPU {cpu_fraction:.0%} of a core")
    if send_tx_s < SATURATED_SEND * rate:
        notes.append(f"sent {send_tx_s:.0f} of {rate} tx/s offered")
    return Generator(send_tx_s, percentile(lags, 99), cpu_fraction, bool(notes), "; ".join(notes))


def _step_line(step: Step) -> str:
    what = f"rate {step.load} tx/s" if step.sweep == "rate" else f"{step.load} requesters"
    p50, p99 = step.latency.p50_s, step.latency.p99_s
    interval = step.intervals.mean_s
    refused = sum(step.refusals.values())
    line = (
        f"  {what}: committed {step.committed_tx_s:.0f} tx/s, p50 "
        f"{_s(p50)}, p99 {_s(p99)}, block interval {_s(interval)}, sent "
        f"{step.generator.send_tx_s:.0f} tx/s, refused {refused}, errors {step.errors}, "
        f"timeouts {step.timeouts}"
    )
    if step.nodes_cpu_cores is not None:
        line += f", nodes on {step.nodes_cpu_cores:.2f} cores"
    if step.intervals.late_heights:
        line += (
            f", {step.intervals.late_heights} heights past round 0 "
            f"(up to {step.intervals.max_rounds} rounds)"
        )
    if step.generator.note:
        line += f" [{step.generator.note}]"
    return line


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"
