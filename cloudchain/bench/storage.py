"""`cloudchain bench storage`: what consensus costs a write, against the blob store.

The paper's Fig. 2 compares the read and write latency of peer-to-peer storage
(IPFS) with consensus-based storage (Tendermint, Fabric) for AI models of 50,
100 and 200 MB, and its model (eq. 1) says `T_r = S/B_r` and `T_w = S/B_w + T_c`.
This measures both on our own system, side by side in one run, on a local
network of node processes that it starts itself (free ports, a temporary home)
and stops, even on failure. For every size, `runs` times, each run with fresh
random bytes (so nothing is deduplicated):

    baseline          hash the file (SHA-256) and copy it to disk `replicas` times,
                      each copy fsynced: the floor any durable replicated write pays
    p2p write         POST /blobs?replicas=r to node0, until r nodes hold the blob
    p2p read          GET /blobs/{cid} from a node that does not hold it (it fetches
                      the DAG from the holders), to a file
    consensus write   the same bytes as storage.put_part transactions of at most
                      MAX_PART_BYTES, signed beforehand, each paying the network's
                      minimum fee (mostly its bytes'), sent by several accounts
                      (the mempool admits MAX_NONCE_LEAD per account) to every
                      validator in turn, until every validator has committed all
    consensus read    the parts read back over RPC (abci_query /storage/part) from
                      one validator and reassembled into a file

Blocks are as large as the genesis allows (MAX_BLOCK_BYTES), so the bytes go
through in as few blocks as the limits allow. Every run's result is checked
(the bytes read back are the bytes written) outside the timed part.

The clock is the bench's: from the first byte sent to the last reply. The nodes'
peak resident memory (VmHWM) is read from /proc before and after each size, so
the blob store's streaming shows as a bounded growth.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cloudchain.chaincode.codes import Code
from cloudchain.chaincode.modules.storage import MAX_PART_BYTES
from cloudchain.client import Client, RPCClientError, decode_query_value
from cloudchain.crypto import read_key_file
from cloudchain.fees import FeeSchedule, priced_transaction
from cloudchain.genesis import Genesis
from cloudchain.ledger import MAX_BLOCK_BYTES, Transaction
from cloudchain.node.config import LogConfig, NodeConfig
from cloudchain.node.processes import start_node_processes, stop_node_processes
from cloudchain.node.testnet import init_testnet

MB = 1_000_000  # sizes are decimal megabytes, as the paper's "50 MB"
SYSTEMS = ("baseline", "p2p", "consensus")
OPERATIONS = ("baseline", "p2p write", "p2p read", "consensus write", "consensus read")
# Accounts sending parts at once: each may have MAX_NONCE_LEAD (64) parts of 63 KiB
# waiting, 4 MiB; eight of them fill a 16 MiB block with room for the next one.
SENDERS = 8
READS_IN_FLIGHT = 8  # concurrent part queries of the consensus read
PIECE_BYTES = 1024 * 1024
READY_DEADLINE_S = 60.0
COMMIT_DEADLINE_S = 1800.0  # the longest a consensus write may take before the run fails
POLL_S = 0.05  # how often committed parts are counted on each validator

Say = Callable[[str], None]


class BenchError(RuntimeError):
    """The benchmark could not run or a result did not check out; the message says why."""


@dataclass(frozen=True)
class Sample:
    operation: str  # one of OPERATIONS
    size_bytes: int
    run: int
    seconds: float


@dataclass(frozen=True)
class MemoryGrowth:
    size_bytes: int
    node: str
    rss_before_bytes: int
    peak_after_bytes: int  # VmHWM after the size's runs: the peak since the node started

    @property
    def growth_bytes(self) -> int:
        return max(self.peak_after_bytes - self.rss_before_bytes, 0)


@dataclass(frozen=True)
class StorageBenchConfig:
    sizes_bytes: tuple[int, ...]
    validators: int = 4
    replicas: int = 2
    runs: int = 3
    systems: tuple[str, ...] = SYSTEMS
    seed: int = 1

    def check(self) -> None:
        if not self.sizes_bytes or any(s < 1 for s in self.sizes_bytes):
            raise BenchError("--sizes must be positive sizes in MB")
        if not 1 <= self.validators <= 16:
            raise BenchError("--validators must be from 1 to 16")
        if not 1 <= self.replicas <= self.validators - 1:
            raise BenchError(
                "--replicas must be from 1 to validators - 1 (the p2p read "
                "needs a node that does not hold the blob)"
            )
        if self.runs < 1:
            raise BenchError("--runs must be at least 1")
        unknown = set(self.systems) - set(SYSTEMS)
        if unknown or not self.systems:
            raise BenchError(f"--systems must name some of {', '.join(SYSTEMS)}")


@dataclass(frozen=True)
class StorageBenchResult:
    config: StorageBenchConfig
    samples: tuple[Sample, ...]
    memory: tuple[MemoryGrowth, ...]
    block_max_bytes: int
    part_bytes: int

    def medians(self) -> dict[tuple[str, int], float]:
        """(operation, size) -> the median seconds of its runs."""
        groups: dict[tuple[str, int], list[float]] = {}
        for sample in self.samples:
            groups.setdefault((sample.operation, sample.size_bytes), []).append(sample.seconds)
        return {key: statistics.median(values) for key, values in groups.items()}


def run_storage_bench(config: StorageBenchConfig, say: Say = print) -> StorageBenchResult:
    """Start a local network, measure every size and operation, stop the network."""
    config.check()
    with tempfile.TemporaryDirectory(prefix="cloudchain-bench-storage-") as scratch:
        home = Path(scratch) / "testnet"
        node_homes = _init_network(home, config.validators)
        urls = [
            f"http://{NodeConfig.load(h / 'config' / 'config.toml').rpc.listen_address}"
            for h in node_homes
        ]
        say(f"{config.validators} validators under {home}, rpc {', '.join(urls)}")
        processes = start_node_processes(node_homes, log_to_files=True, own_session=True)
        try:
            bench = _Bench(config, home, urls, [p.pid for p in processes], Path(scratch), say)
            samples, memory = asyncio.run(bench.run())
        finally:
            stop_node_processes(processes)
    return StorageBenchResult(
        config, tuple(samples), tuple(memory), MAX_BLOCK_BYTES, MAX_PART_BYTES
    )


def _init_network(home: Path, validators: int) -> list[Path]:
    """A testnet with blocks as large as the chain allows, and quiet logs. Its nodes
    answer the operator's methods ([rpc] unsafe): each run unpins and collects its blobs."""
    node_homes = init_testnet(home, validators, accounts=SENDERS, rpc_unsafe=True)
    genesis = Genesis.load(node_homes[0] / "config" / "genesis.json")
    genesis = dataclasses.replace(genesis, max_block_bytes=MAX_BLOCK_BYTES)
    for node_home in node_homes:
        genesis.save(node_home / "config" / "genesis.json")
        path = node_home / "config" / "config.toml"
        config = NodeConfig.load(path)
        dataclasses.replace(config, log=LogConfig(level="warning")).save(path)
    return node_homes


class _Bench:
    def __init__(
        self,
        config: StorageBenchConfig,
        home: Path,
        urls: list[str],
        pids: list[int],
        scratch: Path,
        say: Say,
    ) -> None:
        self.config = config
        self.clients = [Client(url) for url in urls]
        self.pids = pids
        self.scratch = scratch
        self.say = say
        self.senders = [
            read_key_file(home / "accounts" / f"account{k}.json") for k in range(SENDERS)
        ]
        self.samples: list[Sample] = []
        self.memory: list[MemoryGrowth] = []
        self.chain_id = ""
        self.node_ids: list[str] = []
        self.fees = FeeSchedule()  # the network's, once it is up

    async def run(self) -> tuple[list[Sample], list[MemoryGrowth]]:
        await self._wait_ready()
        for size in self.config.sizes_bytes:
            for pid in self.pids:
                _reset_peak_rss(pid)  # so that each size's peak is its own
            rss_before = [_rss_bytes(pid) for pid in self.pids]
            for run in range(self.config.runs):
                await self._one_run(size, run)
            for i, pid in enumerate(self.pids):
                self.memory.append(
                    MemoryGrowth(size, f"node{i}", rss_before[i], _peak_rss_bytes(pid))
                )
        return self.samples, self.memory

    async def _wait_ready(self) -> None:
        """Every node answers, has height >= 1 and is connected to every other."""
        deadline = time.monotonic() + READY_DEADLINE_S
        peers = len(self.clients) - 1
        while True:
            try:
                statuses = [await c.status() for c in self.clients]
                infos = [await c.net_info() for c in self.clients]
                if all(s.latest_block_height >= 1 for s in statuses) and all(
                    i.n_peers >= peers for i in infos
                ):
                    self.chain_id = statuses[0].network
                    self.node_ids = [s.node_id for s in statuses]
                    self.fees = await self.clients[0].fee_schedule()
                    return
            except RPCClientError:
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"the network was not up within {READY_DEADLINE_S:g} s")
            await asyncio.sleep(0.2)  # polling starting processes, bounded by the deadline

    async def _one_run(self, size: int, run: int) -> None:
        rng = random.Random(f"{self.config.seed}/{size}/{run}")
        source = self.scratch / f"blob-{size}-{run}.bin"
        digest = await asyncio.to_thread(_write_random_file, source, size, rng)
        label = f"{size / MB:g} MB run {run + 1}/{self.config.runs}"
        if "baseline" in self.config.systems:
            seconds = await asyncio.to_thread(_baseline, source, self.config.replicas, self.scratch)
            self._record("baseline", size, run, seconds, label)
        if "p2p" in self.config.systems:
            await self._p2p(source, size, run, digest, label)
        if "consensus" in self.config.systems:
            await self._consensus(source, size, run, digest, label)
        source.unlink()

    def _record(self, operation: str, size: int, run: int, seconds: float, label: str) -> None:
        self.samples.append(Sample(operation, size, run, seconds))
        self.say(f"{label}: {operation} {seconds:.3f} s ({size / MB / seconds:.1f} MB/s)")

    # -- peer to peer ----------------------------------------------------------------

    async def _p2p(self, source: Path, size: int, run: int, digest: bytes, label: str) -> None:
        start = time.perf_counter()
        put = await self.clients[0].blob_put(source, replicas=self.config.replicas)
        self._record("p2p write", size, run, time.perf_counter() - start, label)
        if len(put.replicas) != self.config.replicas or put.size != size:
            raise BenchError(f"the put answered {put.size} bytes on {list(put.replicas)}")
        reader = next(i for i, node_id in enumerate(self.node_ids) if node_id not in put.replicas)
        dest = self.scratch / f"p2p-read-{size}-{run}.bin"
        start = time.perf_counter()
        await self.clients[reader].blob_get(put.cid, dest)
        self._record("p2p read", size, run, time.perf_counter() - start, label)
        if await asyncio.to_thread(_sha256_file, dest) != digest:
            raise BenchError(f"the p2p read of {put.cid} gave other bytes")
        dest.unlink()
        for client in self.clients:  # unpinned and collected: the disk stays bounded
            with contextlib.suppress(RPCClientError):
                await client.blob_unpin(put.cid)
                await client.blob_gc()

    # -- consensus -------------------------------------------------------------------

    async def _consensus(
        self, source: Path, size: int, run: int, digest: bytes, label: str
    ) -> None:
        name = f"bench-{size}-{run}-{self.config.seed}"
        nonces = [await self.clients[0].nonce(k.address) for k in self.senders]
        batches = await asyncio.to_thread(self._sign_parts, source, name, nonces)
        expected = [len(batch) for batch in batches]
        for k, batch in enumerate(batches):
            fees = sum(Transaction.from_bytes(raw).fee for raw in batch)
            balance = (
                await self.clients[0].query("/token/balance", self.senders[k].address.encode())
            )["balance"]
            if balance < fees:
                raise BenchError(
                    f"account{k} holds {balance}, the fees of its {len(batch)} parts are {fees}: "
                    "fewer or smaller --sizes or --runs"
                )
        start = time.perf_counter()
        await asyncio.gather(
            *(
                self._send_all(self.clients[k % len(self.clients)], batch)
                for k, batch in enumerate(batches)
            )
        )
        await asyncio.gather(*(self._wait_committed(c, name, expected) for c in self.clients))
        self._record("consensus write", size, run, time.perf_counter() - start, label)

        dest = self.scratch / f"consensus-read-{size}-{run}.bin"
        reader = self.clients[1 % len(self.clients)]
        start = time.perf_counter()
        await self._read_parts(reader, name, expected, dest)
        self._record("consensus read", size, run, time.perf_counter() - start, label)
        if await asyncio.to_thread(_sha256_file, dest) != digest:
            raise BenchError(f"the consensus read of {name} gave other bytes")
        dest.unlink()

    def _sign_parts(self, source: Path, name: str, nonces: list[int]) -> list[list[bytes]]:
        """The file's parts as signed transactions, part i sent by account i % SENDERS
        as its part i // SENDERS (each account's parts are in nonce order)."""
        batches: list[list[bytes]] = [[] for _ in self.senders]
        with open(source, "rb") as stream:
            index = 0
            while part := stream.read(MAX_PART_BYTES):
                k = index % SENDERS
                tx = priced_transaction(
                    self.senders[k],
                    self.chain_id,
                    nonces[k] + len(batches[k]),
                    "storage",
                    "put_part",
                    {"object": name, "index": len(batches[k]), "data": part},
                    self.fees,
                )
                batches[k].append(tx.to_bytes())
                index += 1
        return batches

    async def _send_all(self, client: Client, txs: list[bytes]) -> None:
        """Send one account's transactions in order; when the mempool will not take one
        yet (too far ahead of the committed nonce, or full), wait for blocks to commit."""
        for tx in txs:
            while True:
                result = await client.broadcast_tx_sync(tx)
                if result.ok:
                    break
                if result.code not in (Code.NONCE_TOO_HIGH, Code.MEMPOOL_FULL):
                    raise BenchError(f"a part was refused: code {result.code} {result.log}")
                await asyncio.sleep(POLL_S)  # back-pressure: wait for a commit to make room

    async def _wait_committed(self, client: Client, name: str, expected: list[int]) -> None:
        """Until this validator has committed every account's parts."""
        deadline = time.monotonic() + COMMIT_DEADLINE_S
        waiting = {k for k, count in enumerate(expected) if count}
        while waiting:
            for k in sorted(waiting):
                if await self._parts_committed(client, k, name) >= expected[k]:
                    waiting.discard(k)
            if waiting:
                if time.monotonic() > deadline:
                    raise BenchError(f"parts of {name} not committed in {COMMIT_DEADLINE_S:g} s")
                await asyncio.sleep(POLL_S)  # polling committed state, bounded by the deadline

    async def _parts_committed(self, client: Client, k: int, name: str) -> int:
        data = f"owner={self.senders[k].address}&object={name}".encode()
        response = await client.abci_query("/storage/object", data)
        if response.code == Code.NOT_FOUND:
            return 0
        if not response.ok:
            raise BenchError(f"/storage/object refused: {response.log}")
        return int(decode_query_value(response)["parts"])

    async def _read_parts(self, client: Client, name: str, expected: list[int], dest: Path) -> None:
        """Every part, in file order, READS_IN_FLIGHT queries at a time, into `dest`."""
        order = [(i % SENDERS, i // SENDERS) for i in range(sum(expected))]

        async def fetch(k: int, index: int) -> bytes:
            data = f"owner={self.senders[k].address}&object={name}&index={index}".encode()
            answer = await client.query("/storage/part", data)
            return bytes(answer["data"])

        with open(dest, "wb") as out:
            for first in range(0, len(order), READS_IN_FLIGHT):
                window = order[first : first + READS_IN_FLIGHT]
                for part in await asyncio.gather(*(fetch(k, i) for k, i in window)):
                    out.write(part)


# -- the baseline and files (worker threads) -------------------------------------------


def _write_random_file(path: Path, size: int, rng: random.Random) -> bytes:
    """`size` random bytes from `rng` to `path`; their SHA-256."""
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        left = size
        while left:
            piece = rng.randbytes(min(PIECE_BYTES, left))
            digest.update(piece)
            out.write(piece)
            left -= len(piece)
    return digest.digest()


def _sha256_file(path: Path) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while piece := stream.read(PIECE_BYTES):
            digest.update(piece)
    return digest.digest()


def _baseline(source: Path, replicas: int, scratch: Path) -> float:
    """Seconds to hash `source` and copy it `replicas` times, each copy fsynced."""
    copies = [scratch / f"baseline-copy-{i}.bin" for i in range(replicas)]
    start = time.perf_counter()
    _sha256_file(source)
    for copy in copies:
        with open(source, "rb") as stream, open(copy, "wb") as out:
            shutil.copyfileobj(stream, out, PIECE_BYTES)
            out.flush()
            os.fsync(out.fileno())
    seconds = time.perf_counter() - start
    for copy in copies:
        copy.unlink()
    return seconds


def _status_field(pid: int, name: str) -> int:
    """A memory field of /proc/PID/status in bytes (0 where /proc does not say)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(name + ":"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    return 0


def _reset_peak_rss(pid: int) -> None:
    """Reset the process's VmHWM to its current RSS (Linux: clear_refs 5); where that is
    not allowed, the peak stays the one since the process started."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass


def _rss_bytes(pid: int) -> int:
    return _status_field(pid, "VmRSS")


def _peak_rss_bytes(pid: int) -> int:
    return _status_field(pid, "VmHWM")


def parse_sizes(text: str) -> tuple[int, ...]:
    """'50,100,200' (MB; decimals allowed: '0.5') -> sizes in bytes."""
    sizes = []
    for item in text.split(","):
        try:
            megabytes = float(item)
        except ValueError:
            raise BenchError(f"--sizes: {item!r} is not a number of MB") from None
        if not 0 < megabytes <= 100_000:
            raise BenchError(f"--sizes: {item} MB is not in (0, 100000]")
        sizes.append(round(megabytes * MB))
    if len(set(sizes)) != len(sizes):
        raise BenchError(
            f"--sizes: {text} names a size twice (its runs would write the same "
            "bytes under the same names)"
        )
    return tuple(sizes)


def iter_operations(systems: Sequence[str]) -> Iterator[str]:
    """The operations that `systems` measure, in table order."""
    for operation in OPERATIONS:
        if operation.split(" ")[0] in systems:
            yield operation
