"""The nemesis: a seeded schedule of faults, and its execution against a cluster.

`plan(seed, validators, kinds, duration_s)` is pure: the same seed gives the same faults,
targets, windows and amounts. Faults come one after another, each for a few seconds with
a gap of healthy network after it, the kinds taken in shuffled rounds so that every kind
asked for is injected once before any is injected twice. A fault that hits nodes hits at
most f = (n - 1) // 3 of them, so at most f are faulty at once; links are faulted for
the whole network (a partition, latency, resets).

The kinds (`--faults`, a comma list; `partition` names the four partitions, `all` all):

    kill                SIGKILL 1..f nodes, restart them at the end of the window
    pause               SIGSTOP 1..f nodes, SIGCONT at the end
    partition-halves    two sides that cannot reach each other
    partition-bridge    two sides and one node that reaches both (Jepsen's bridge)
    partition-proposer  the next height's proposer cut off from everyone
    partition-flap      halves that open and close every second or so
    latency             every link delays each chunk by 50..400 ms
    loss                every link cuts its connections at random (TCP's losses)
    disk-full           a node restarted under a file size limit of 64..512 KiB: it
                        fails while writing (or starting) and must stop cleanly, with
                        its own exit code; restarted without the limit at the end
    wal-corrupt         a node SIGKILLed, its WAL's tail cut or bit-flipped, restarted
    clock-skew          a node restarted with its clock 2..30 s off, either way
    equivocate          a node restarted as a Byzantine validator that signs two prevotes
                        at every height and round; its evidence must be committed

`run_nemesis` executes a plan (`execute` for one fault) and returns what it did as
report Faults, with the windows in which a validator equivocated for the checker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

from cloudchain.chaos.checker import ByzantineWindow
from cloudchain.chaos.cluster import Cluster
from cloudchain.chaos.relay import LinkState
from cloudchain.chaos.report import Fault
from cloudchain.client import Client, RPCClientError
from cloudchain.consensus.validator_set import ProposerPriority
from cloudchain.node.config import DebugConfig
from cloudchain.node.storage_failure import STORAGE_FAILURE_EXIT

PARTITIONS = ("partition-halves", "partition-bridge", "partition-proposer", "partition-flap")
NODE_FAULTS = ("kill", "pause", "disk-full", "wal-corrupt", "clock-skew", "equivocate")
FAULT_KINDS = ("kill", "pause", *PARTITIONS, "latency", "loss", *NODE_FAULTS[2:])
WARMUP_S = 3.0  # a healthy start: the workload's first transfers commit
FAULT_S = (3.0, 7.0)  # how long a fault lasts
GAP_S = (1.5, 3.0)  # healthy network between two faults
HEIGHT_TIMEOUT_S = 2.0
# A full disk is a file size limit (RLIMIT_FSIZE) of this many KiB: LevelDB's log, new
# at each start, reaches it within seconds of transfers (or the table LevelDB writes
# from the old log at start is past it already: the node fails as it starts).
DISK_LIMIT_KIB = (64, 512)


class FaultSpecError(ValueError):
    """--faults names something that is not a fault."""


def parse_faults(text: str) -> tuple[str, ...]:
    """`all`, or a comma list of kinds and `partition`; in FAULT_KINDS order."""
    wanted: set[str] = set()
    for name in (part.strip() for part in text.split(",")):
        if name == "all":
            wanted.update(FAULT_KINDS)
        elif name == "partition":
            wanted.update(PARTITIONS)
        elif name in FAULT_KINDS:
            wanted.add(name)
        else:
            known = ", ".join(("all", "partition", *FAULT_KINDS))
            raise FaultSpecError(f"unknown fault {name!r}; choose from {known}")
    return tuple(k for k in FAULT_KINDS if k in wanted)


@dataclass(frozen=True)
class PlannedFault:
    """One fault of the schedule: seconds from the run's start; `targets` the nodes it
    hits (none for link faults, and for partition-proposer until it runs), `groups` a
    partition's sides, `amount` the latency (ms), resets (per mille), clock offset (ms)
    or the file size headroom (bytes)."""

    kind: str
    start_s: float
    duration_s: float
    targets: tuple[int, ...] = ()
    groups: tuple[tuple[int, ...], ...] = ()
    amount: int = 0

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


def plan(seed: int, validators: int, kinds: Sequence[str], duration_s: float) -> list[PlannedFault]:
    """The faults of a run of `duration_s` seconds; the last one ends with time to spare
    for a gap before the run heals and checks."""
    if not kinds:
        return []
    rng = random.Random(seed)
    f = max(1, (validators - 1) // 3)
    faults: list[PlannedFault] = []
    t = WARMUP_S
    order: list[str] = []
    while True:
        if not order:
            order = list(kinds)
            rng.shuffle(order)
        length = round(rng.uniform(*FAULT_S), 1)
        if t + length + GAP_S[0] > duration_s:
            return faults
        faults.append(_one(order.pop(), round(t, 1), length, validators, f, rng))
        t += length + round(rng.uniform(*GAP_S), 1)


def _one(
    kind: str, start_s: float, length: float, n: int, f: int, rng: random.Random
) -> PlannedFault:
    nodes = list(range(n))
    if kind in ("kill", "pause"):
        targets = tuple(sorted(rng.sample(nodes, rng.randint(1, f))))
        return PlannedFault(kind, start_s, length, targets)
    if kind in ("partition-halves", "partition-flap"):
        rng.shuffle(nodes)
        half = n // 2
        return PlannedFault(kind, start_s, length, groups=_sides(nodes[:half], nodes[half:]))
    if kind == "partition-bridge":
        rng.shuffle(nodes)
        bridge, rest = nodes[0], nodes[1:]
        half = len(rest) // 2
        groups = _sides(rest[:half], rest[half:])
        return PlannedFault(kind, start_s, length, (bridge,), groups)
    if kind == "latency":
        return PlannedFault(kind, start_s, length, amount=rng.randint(50, 400))
    if kind == "loss":
        return PlannedFault(kind, start_s, length, amount=rng.randint(5, 50))
    if kind in ("disk-full", "wal-corrupt", "equivocate"):
        amount = (
            rng.randint(DISK_LIMIT_KIB[0], DISK_LIMIT_KIB[1]) * 1024 if kind == "disk-full" else 0
        )
        return PlannedFault(kind, start_s, length, (rng.randrange(n),), amount=amount)
    if kind == "clock-skew":
        skew = rng.randint(2_000, 30_000) * rng.choice((-1, 1))
        return PlannedFault(kind, start_s, length, (rng.randrange(n),), amount=skew)
    return PlannedFault(kind, start_s, length)  # partition-proposer: targets known when it runs


def _sides(a: Sequence[int], b: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    return (tuple(sorted(a)), tuple(sorted(b)))


# --- execution ---------------------------------------------------------------------------


@dataclass
class NemesisRun:
    """What the nemesis did: the report's faults and the checker's byzantine windows."""

    faults: list[Fault]
    windows: list[ByzantineWindow]


async def run_nemesis(
    cluster: Cluster,
    schedule: Sequence[PlannedFault],
    seed: int,
    start_ns: int,
    duration_s: float | None = None,
) -> NemesisRun:
    """Execute `schedule` (times from `start_ns`, monotonic), one fault after another.
    A fault's window counts from when its nodes run (a restart takes seconds on a loaded
    machine), so a fault may end late: the faults after it move by as much, and none
    starts that would end after `duration_s`."""
    rng = random.Random(seed ^ 0x5EED)
    done = NemesisRun([], [])
    late_s = 0.0
    for planned in schedule:
        fault = dataclasses.replace(planned, start_s=planned.start_s + late_s)
        if duration_s is not None and fault.end_s > duration_s:
            break
        await _until(start_ns, fault.start_s)
        late_s += await execute(cluster, fault, rng, start_ns, done)
    return done


async def execute(
    cluster: Cluster, fault: PlannedFault, rng: random.Random, start_ns: int, done: NemesisRun
) -> float:
    """Inject `fault`, hold it for its duration, heal it; record it in `done`. Returns
    how many seconds after its planned end it healed."""
    began = time.monotonic_ns()
    planned_end_s = fault.end_s
    targets, detail = fault.targets, ""

    async def restarted(t: int) -> None:
        """Node t runs again: the window starts now."""
        nonlocal fault
        await cluster.wait_ready(t)
        fault = dataclasses.replace(fault, start_s=max(fault.start_s, _now_s(start_ns)))

    links = cluster.links
    kind = fault.kind
    if kind == "kill":
        for t in targets:
            await cluster.kill(t)
        await _until(start_ns, fault.end_s)
        for t in targets:
            cluster.start(t)
    elif kind == "pause":
        for t in targets:
            cluster.pause(t)
        await _until(start_ns, fault.end_s)
        for t in targets:
            cluster.resume(t)
    elif kind in ("partition-halves", "partition-bridge"):
        links.partition(fault.groups)
        detail = _groups(fault.groups) + (f", bridge {targets[0]}" if targets else "")
        await _until(start_ns, fault.end_s)
        links.heal()
    elif kind == "partition-proposer":
        height = max((h for h in await heights(cluster.rpc_urls) if h is not None), default=0)
        proposer = next_proposer(cluster, height + 1)
        targets = (proposer,)
        others = tuple(i for i in range(len(cluster.nodes)) if i != proposer)
        links.partition([(proposer,), others])
        detail = f"proposer of height {height + 1}"
        await _until(start_ns, fault.end_s)
        links.heal()
    elif kind == "partition-flap":
        flips = 0
        while _now_s(start_ns) < fault.end_s:
            links.partition(fault.groups)
            await _until(start_ns, min(fault.end_s, _now_s(start_ns) + rng.uniform(0.5, 1.5)))
            links.heal()
            flips += 1
            await _until(start_ns, min(fault.end_s, _now_s(start_ns) + rng.uniform(0.5, 1.5)))
        detail = f"{_groups(fault.groups)}, {flips} times"
    elif kind in ("latency", "loss"):
        pairs = [
            (i, j) for i in range(len(cluster.nodes)) for j in range(i + 1, len(cluster.nodes))
        ]
        if kind == "latency":
            links.set(pairs, LinkState(latency_ms=fault.amount))
            detail = f"{fault.amount} ms each way"
        else:
            resets_before = links.resets
            links.set(pairs, LinkState(reset_per_mille=fault.amount))
        await _until(start_ns, fault.end_s)
        links.heal()
        if kind == "loss":
            detail = f"{fault.amount} per mille of chunks: {links.resets - resets_before} resets"
    elif kind == "disk-full":
        (t,) = targets
        limit = fault.amount
        await cluster.restart(t, file_size_limit=limit)
        await restarted(t)
        await _until(start_ns, fault.end_s)
        process = cluster.nodes[t].process
        stopped = process is not None and process.poll() == STORAGE_FAILURE_EXIT
        detail = f"file size limit {limit} bytes: " + (
            "stopped on the full disk" if stopped else "still running at the end"
        )
        await cluster.heal(t)
    elif kind == "wal-corrupt":
        (t,) = targets
        await cluster.kill(t)
        detail = cluster.damage_wal(t, rng)
        cluster.start(t)
        await restarted(t)
        await _until(start_ns, fault.end_s)
    elif kind == "clock-skew":
        (t,) = targets
        await cluster.restart(t, DebugConfig(clock_offset_ms=fault.amount))
        await restarted(t)
        detail = f"clock {fault.amount / 1000:+.1f} s"
        await _until(start_ns, fault.end_s)
        await cluster.heal(t)
    elif kind == "equivocate":
        (t,) = targets
        await cluster.restart(t, DebugConfig(byzantine_equivocate=True))
        await restarted(t)
        first = min((h for h in await heights(cluster.rpc_urls) if h is not None), default=0)
        await _until(start_ns, fault.end_s)
        await cluster.heal(t)
        last = max((h for h in await heights(cluster.rpc_urls) if h is not None), default=0)
        address = cluster.validator_addresses[t]
        done.windows.append(ByzantineWindow(address, first, last + 1))
        detail = f"heights {first}..{last + 1}"
    else:
        raise FaultSpecError(f"unknown fault {kind!r}")
    done.faults.append(Fault(kind, tuple(targets), began, time.monotonic_ns(), detail))
    return max(0.0, _now_s(start_ns) - planned_end_s)


def next_proposer(cluster: Cluster, height: int) -> int:
    """The node that proposes round 0 of `height`, as every core computes it."""
    priorities = ProposerPriority(cluster.genesis.validators)
    for _ in range(height - 1):
        priorities.step()
    return cluster.validator_addresses.index(priorities.proposer().address.hex())


async def heights(rpc_urls: Sequence[str]) -> list[int | None]:
    """Each node's latest height, None where it does not answer at once."""

    async def one(url: str) -> int | None:
        try:
            status = await asyncio.wait_for(Client(url).status(), HEIGHT_TIMEOUT_S)
        except (RPCClientError, TimeoutError, OSError):
            return None
        return status.latest_block_height

    return list(await asyncio.gather(*(one(u) for u in rpc_urls)))


def _groups(groups: Sequence[Sequence[int]]) -> str:
    return " | ".join(",".join(map(str, g)) for g in groups)


def _now_s(start_ns: int) -> float:
    return (time.monotonic_ns() - start_ns) / 1e9


async def _until(start_ns: int, at_s: float) -> None:
    """Wait until `at_s` seconds after the run's start: the schedule's time, not a
    synchronisation."""
    delay = at_s - _now_s(start_ns)
    if delay > 0:
        await asyncio.sleep(delay)
