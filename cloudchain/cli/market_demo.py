"""The marketplace side of `cloudchain demo`: providers, requesters and oracles as
off-chain agents (ARCHITECTURE.md, "Off-chain agents") that reach the network only
through its RPC.

What lives here, and what does not:
- `TaskBook` is pure: it follows each committed block's market events (submit,
  assign, start, complete, verified, settle, refund, reward) and knows from them
  every task's state, who must act on it next, and the submit-to-settle latencies.
  It reads no state and does no I/O.
- `MarketAgents` is the shell: it signs and broadcasts what the book says is due
  (registrations once; then each block new tasks, starts, completions and
  attestations, plus token transfers between requesters as background load), and
  queries /market/stats and /market/prices for the periodic lines.
- Data goes through the blob store, never through consensus: each requester
  uploads its dataset once (two replicas) and anchors it on chain; its tasks name
  it by CID. A provider fetches a task's input by CID from its own node (which
  gets it from the peers that hold it), stores its result as a blob, and reports
  completion with the result's CID.
- The chain decides everything else: assignment, outcomes, payouts, rewards.

The agents' behaviour is a seeded plan: each assigned task is marked, when the
demo sees the assignment, as one its provider will fail to serve well (more often
for the community tier); the oracles, all honest, measure and report it (uptime
below the task's minimum or latency above its maximum), so the quorum finds the
violation and the provider is penalised.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import random
import statistics
from collections import Counter, defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudchain.chaincode.codes import Code
from cloudchain.client import Client, RPCClientError
from cloudchain.client.results import BlockResults
from cloudchain.crypto import PrivateKey, read_key_file

BPS = 10_000
DEMO_ACCOUNTS = 8  # accounts 0-3 are the providers, 4-7 the requesters
# Tasks submitted per block by the requesters in turn. Demand alternates every
# DEMAND_PERIOD_BLOCKS between calm and rush hour, so that utilisation crosses the
# target and the reference prices move both ways (and, at rush hour, tasks wait).
TASKS_PER_BLOCK_CALM = 2
TASKS_PER_BLOCK_RUSH = 12
DEMAND_PERIOD_BLOCKS = 10
WORK_BLOCKS = 1  # a task runs this many blocks between start and complete
RESEND_BLOCKS = 4  # a transaction whose effect has not shown by then is sent again
DEADLINE_S = 60  # of each task, in block time
MIN_UPTIME_BPS = 9_500
MAX_LATENCY_MS = 300
PENALTY_FRACTION_BPS = 2_000  # λ_i: a fifth of the deposit per violation
VIOLATION_BPS = {"enterprise": 500, "community": 1_500}  # of a tier's tasks served badly
LATENCY_SAMPLES_MAX = 4_096  # the latencies kept for the medians (the most recent)
FINAL = frozenset({"settled", "refunded", "resolved"})
NONCE_CODES = frozenset({Code.NONCE_TOO_LOW, Code.NONCE_TOO_HIGH, Code.NONCE_PENDING})


@dataclass(frozen=True)
class Offer:
    gpu: str
    gpus: int
    memory_gb: int
    units: int  # compute units in flight at once
    price: int  # token units per compute unit

    def to_obj(self) -> dict[str, Any]:
        return {
            "gpu": self.gpu,
            "gpus": self.gpus,
            "memory_gb": self.memory_gb,
            "units": self.units,
            "price": self.price,
        }


@dataclass(frozen=True)
class ProviderPlan:
    name: str
    tier: str
    offers: dict[str, Offer]
    stake: int


A100, RTX = "a100-80gb", "rtx4090-24gb"
PROVIDERS = (
    ProviderPlan("atlas-cloud", "enterprise", {A100: Offer("A100", 8, 640, 640, 12)}, 50_000),
    ProviderPlan(
        "borealis-dc",
        "enterprise",
        {A100: Offer("A100", 8, 640, 480, 10), RTX: Offer("RTX 4090", 8, 192, 320, 6)},
        40_000,
    ),
    ProviderPlan("garage-gpu", "community", {RTX: Offer("RTX 4090", 2, 48, 160, 4)}, 5_000),
    ProviderPlan(
        "campus-lab",
        "community",
        {A100: Offer("A100", 1, 80, 80, 9), RTX: Offer("RTX 4090", 4, 96, 240, 5)},
        8_000,
    ),
)
NAMED_PROVIDER = 0  # requester 0 has a contract with atlas-cloud for its training tasks


@dataclass(frozen=True)
class TaskPlan:
    """What requesters ask for in a class: units drawn from a range, at most max_price."""

    resource_class: str
    kind: str
    units_min: int
    units_max: int
    max_price: int
    weight: int  # how often, relative to the other plans


TASK_PLANS = (
    TaskPlan(A100, "training", 40, 160, 15, 3),
    TaskPlan(A100, "inference", 10, 40, 15, 2),
    TaskPlan(RTX, "inference", 20, 80, 8, 3),
    TaskPlan(RTX, "preprocessing", 10, 60, 8, 2),
)
DATASET_BYTES = 1024 * 1024  # each requester's dataset: four 256 KiB chunks
DATASET_REPLICAS = 2
RESULT_BYTES = 64 * 1024  # a task's result
BLOB_COUNTS = ("datasets anchored", "inputs fetched", "results stored", "inputs missing")


@dataclass
class TaskView:
    """A task as its events told it."""

    id: int
    requester: str
    submitted_at: int
    submitted_ns: int
    state: str = "open"
    provider: str = ""
    units: int = 0
    changed_at: int = 0  # the height of the last change of state
    violates: str = ""  # the plan: its provider breaks this SLA term ("uptime", "latency")
    sent: dict[str, int] = field(default_factory=dict)  # action -> the height it was sent

    def send_now(self, action: str, height: int) -> bool:
        """Whether to send `action` ("start", "complete", "attest:ORACLE") after block
        `height`, noting it as sent: not sent yet, or sent RESEND_BLOCKS ago while the
        task still waits for it (the transaction was lost on the way)."""
        sent_at = self.sent.get(action)
        if sent_at is not None and height < sent_at + RESEND_BLOCKS:
            return False
        self.sent[action] = height
        return True


class TaskBook:
    """Every task's state, from the committed blocks' events, in block order."""

    def __init__(self, rng: random.Random, tiers: dict[str, str]) -> None:
        self.rng = rng
        self.tiers = tiers  # provider address -> tier
        self.active: dict[int, TaskView] = {}
        self.counts: Counter[str] = Counter()  # submitted, settled, refunded, penalised...
        self.latency_blocks: deque[int] = deque(maxlen=LATENCY_SAMPLES_MAX)
        self.latency_s: deque[float] = deque(maxlen=LATENCY_SAMPLES_MAX)
        self.rewards: Counter[str] = Counter()  # address -> tokens minted to it
        self.height = 0

    def on_block(self, height: int, time_ns: int, results: BlockResults) -> None:
        assert height == self.height + 1, f"blocks in order: {self.height} then {height}"
        self.height = height
        events = [e for r in results.txs_results if r.ok for e in r.events]
        for event in [*events, *results.finalize_block_events]:
            if event.type.startswith("market_"):
                self._on_event(
                    event.type.removeprefix("market_"), dict(event.attributes), height, time_ns
                )

    def _on_event(self, kind: str, attrs: dict[str, str], height: int, time_ns: int) -> None:
        if kind == "reward":
            self.rewards[attrs["recipient"]] += int(attrs["amount"])
            return
        if "task" not in attrs:
            return
        task_id = int(attrs["task"])
        if kind == "submit":
            self.active[task_id] = TaskView(
                task_id,
                attrs["requester"],
                height,
                time_ns,
                units=int(attrs["units"]),
                changed_at=height,
            )
            self.counts["submitted"] += 1
            return
        task = self.active.get(task_id)
        if task is None:
            return  # not one of ours, or final already
        new_state = {
            "assign": "assigned",
            "start": "running",
            "complete": "completed",
            "verified": "verified",
            "settle": "settled",
            "refund": "refunded",
            "dispute": "disputed",
            "resolved": "resolved",
        }.get(kind)
        if new_state is None:
            return
        task.state, task.changed_at = new_state, height
        if kind == "assign":
            task.provider = attrs["provider"]
            odds = VIOLATION_BPS[self.tiers.get(task.provider, "community")]
            if self.rng.randrange(BPS) < odds:
                task.violates = self.rng.choice(("uptime", "latency"))
        elif kind == "verified":
            self.counts["verified"] += 1
            self.counts["penalised"] += int(attrs["violations"]) > 0
            self.counts["served_badly"] += bool(task.violates)
        elif new_state in FINAL:
            self.counts[new_state] += 1
            if new_state == "settled":
                self.latency_blocks.append(height - task.submitted_at)
                self.latency_s.append((time_ns - task.submitted_ns) / 1e9)
            del self.active[task_id]

    def in_state(self, *states: str) -> list[TaskView]:
        return [t for _, t in sorted(self.active.items()) if t.state in states]

    def tally(self) -> dict[str, int]:
        """Tasks now open, assigned (or running), being verified (completed, verified or
        disputed), and the totals so far."""
        now = Counter(t.state for t in self.active.values())
        return {
            "open": now["open"],
            "assigned": now["assigned"] + now["running"],
            "verifying": now["completed"] + now["verified"] + now["disputed"],
            "settled": self.counts["settled"],
            "refunded": self.counts["refunded"],
        }


class Signer:
    """An account that signs transactions and sends them to its node, keeping its nonce;
    each pays the minimum fee the node's schedule asks (`Client.sign_tx`)."""

    def __init__(self, key: PrivateKey, client: Client, chain_id: str) -> None:
        self.key, self.client, self.chain_id = key, client, chain_id
        self.nonce = 0
        self.sent = self.refused = 0
        self.fees = 0  # of the transactions the mempool took (each pays it, included)

    @property
    def address(self) -> str:
        return self.key.address

    async def sync(self) -> None:
        self.nonce = await self.client.nonce(self.address)

    async def send(self, module: str, method: str, args: dict[str, Any]) -> bool:
        try:
            tx = await self.client.sign_tx(
                self.key, module, method, args, nonce=self.nonce, chain_id=self.chain_id
            )
            result = await self.client.broadcast_tx_sync(tx.to_bytes())
        except RPCClientError:
            self.refused += 1
            return False
        if result.ok:
            self.nonce += 1
            self.sent += 1
            self.fees += tx.fee
            return True
        self.refused += 1
        if result.code in NONCE_CODES:
            await self.sync()
        return False


Action = tuple[Signer, str, str, dict[str, Any]]  # (signer, module, method, args)


class MarketAgents:
    """Providers, requesters and oracles of a testnet written by init_testnet."""

    def __init__(
        self, accounts: Path, clients: list[Client], chain_id: str, rng: random.Random
    ) -> None:
        keys = [read_key_file(accounts / f"account{k}.json") for k in range(DEMO_ACCOUNTS)]
        oracle_keys = [read_key_file(p) for p in sorted(accounts.glob("oracle*.json"))]
        signers = [
            Signer(key, clients[k % len(clients)], chain_id)
            for k, key in enumerate([*keys, *oracle_keys])
        ]
        self.providers = signers[: len(PROVIDERS)]
        self.requesters = signers[len(PROVIDERS) : DEMO_ACCOUNTS]
        self.oracles = signers[DEMO_ACCOUNTS:]
        self.plans = dict(zip((s.address for s in self.providers), PROVIDERS, strict=True))
        self.client = clients[0]
        self.rng = rng
        self.book = TaskBook(
            random.Random(rng.random()), {a: p.tier for a, p in self.plans.items()}
        )
        self.epoch_blocks = 10
        self._turn = 0
        self._acted_at = 0  # the height after which the market last acted
        self.datasets: dict[str, str] = {}  # requester -> the CID of its dataset
        self.work_dir = accounts.parent / "agents"  # inputs fetched by the providers
        self.blob_counts: Counter[str] = Counter()

    @property
    def signers(self) -> list[Signer]:
        return [*self.providers, *self.requesters, *self.oracles]

    async def start(self) -> None:
        """Read the nonces and the epoch length; register the providers; upload and
        anchor the requesters' datasets."""
        for signer in self.signers:
            await signer.sync()
        self.epoch_blocks = (await self.client.query("/market/params"))["epoch_blocks"]
        await _run(
            [
                (
                    signer,
                    "market",
                    "register",
                    {
                        "name": plan.name,
                        "tier": plan.tier,
                        "stake": plan.stake,
                        "offers": {name: offer.to_obj() for name, offer in plan.offers.items()},
                    },
                )
                for signer, plan in zip(self.providers, PROVIDERS, strict=True)
            ]
        )
        self.work_dir.mkdir(parents=True, exist_ok=True)
        anchors: list[Action] = []
        for requester in self.requesters:
            dataset = random.Random(f"{requester.address}/{self.rng.random()}").randbytes(
                DATASET_BYTES
            )
            put = await requester.client.blob_put(io.BytesIO(dataset), DATASET_REPLICAS)
            self.datasets[requester.address] = put.cid
            self.blob_counts["datasets anchored"] += 1
            anchors.append(
                (
                    requester,
                    "storage",
                    "anchor",
                    {"cid": put.cid, "size": put.size, "replicas": list(put.replicas)},
                )
            )
        await _run(anchors)

    async def act(self, transfers: int) -> None:
        """`transfers` token transfers, and once after each new block the book has seen
        what is due: new tasks, starts, completions, attestations."""
        actions: list[Action] = []
        if self.book.height > self._acted_at:
            self._acted_at = self.book.height
            actions += [*self._submissions(), *self._provider_work(), *self._attestations()]
            actions = [await self._deliver(a) if a[2] == "complete" else a for a in actions]
        for _ in range(transfers):
            sender, recipient = self.rng.sample(self.requesters, 2)
            actions.append(
                (
                    sender,
                    "token",
                    "transfer",
                    {"to": recipient.address, "amount": self.rng.randint(1, 1000)},
                )
            )
        await _run(actions)

    def _submissions(self) -> Iterable[Action]:
        rush = (self.book.height // DEMAND_PERIOD_BLOCKS) % 2 == 1
        for _ in range(TASKS_PER_BLOCK_RUSH if rush else TASKS_PER_BLOCK_CALM):
            turn = self._turn % len(self.requesters)
            requester = self.requesters[turn]
            self._turn += 1
            plan = self.rng.choices(TASK_PLANS, [p.weight for p in TASK_PLANS])[0]
            units = self.rng.randint(plan.units_min, plan.units_max)
            deposit = units * plan.max_price
            named = ""
            if turn == 0 and plan.kind == "training":
                named = self.providers[NAMED_PROVIDER].address
            yield (
                requester,
                "market",
                "submit",
                {
                    "kind": plan.kind,
                    "inputs": [self.datasets[requester.address]],
                    "resource_class": plan.resource_class,
                    "units": units,
                    "max_price": plan.max_price,
                    "deadline_s": DEADLINE_S,
                    "min_uptime_bps": MIN_UPTIME_BPS,
                    "max_latency_ms": MAX_LATENCY_MS,
                    "penalty": deposit * PENALTY_FRACTION_BPS // BPS,
                    "provider": named,
                },
            )

    def _provider_work(self) -> Iterable[Action]:
        by_address = {s.address: s for s in self.providers}
        for task in self.book.in_state("assigned", "running"):
            signer = by_address.get(task.provider)
            if signer is None:
                continue
            height = self.book.height
            if task.state == "assigned" and task.send_now("start", height):
                yield signer, "market", "start", {"task": task.id}
            elif (
                task.state == "running"
                and height >= task.changed_at + WORK_BLOCKS
                and task.send_now("complete", height)
            ):
                yield (
                    signer,
                    "market",
                    "complete",
                    {
                        "task": task.id,
                        "units_used": task.units,
                        "input": self.datasets[task.requester],
                    },
                )

    async def _deliver(self, action: Action) -> Action:
        """The provider's work for a completion: fetch the task's input by CID from its
        node, store a result derived from it as a blob; the completion names it."""
        signer, module, method, args = action
        task, input_cid = args["task"], args.pop("input")
        path = self.work_dir / f"task-{task}.input"
        try:
            await signer.client.blob_get(input_cid, path)
            digest = hashlib.sha256(path.read_bytes()).digest()
            self.blob_counts["inputs fetched"] += 1
            result = (digest + task.to_bytes(8, "big")) * (RESULT_BYTES // 40)
            put = await signer.client.blob_put(io.BytesIO(result), 1)
            self.blob_counts["results stored"] += 1
            output = [put.cid]
        except RPCClientError:  # the input could not be had: report the task with none
            self.blob_counts["inputs missing"] += 1
            output = []
        finally:
            path.unlink(missing_ok=True)
        return signer, module, method, {**args, "output": output}

    def _attestations(self) -> Iterable[Action]:
        for task in self.book.in_state("completed"):
            for oracle in self.oracles:
                if task.send_now(f"attest:{oracle.address}", self.book.height):
                    yield (
                        oracle,
                        "market",
                        "attest",
                        {
                            "task": task.id,
                            "completed": True,
                            "units": task.units,
                            **self._measure(task),
                        },
                    )

    def _measure(self, task: TaskView) -> dict[str, int]:
        """An honest oracle's measurement: within the SLA terms, or (the plan says the
        provider served it badly) outside the one the plan chose."""
        uptime = self.rng.randint(MIN_UPTIME_BPS + 200, BPS)
        latency = self.rng.randint(40, MAX_LATENCY_MS - 100)
        if task.violates == "uptime":
            uptime = self.rng.randint(8_000, MIN_UPTIME_BPS - 300)
        elif task.violates == "latency":
            latency = self.rng.randint(MAX_LATENCY_MS + 100, 3 * MAX_LATENCY_MS)
        return {"uptime_bps": uptime, "latency_ms": latency}

    async def stats_lines(self) -> list[str]:
        """The market's statistics, as the chain computes them, in a few lines."""
        stats = await self.client.query("/market/stats")
        prices = {
            c["resource_class"]: c for c in (await self.client.query("/market/prices"))["classes"]
        }
        use = "  ".join(
            f"{name} {bps / 100:.0f}% (price {prices.get(name, {}).get('price', '-')})"
            for name, bps in stats["utilisation_bps"].items()
        )
        earned = "  ".join(f"{p['name']} {p['tokens']:,}" for p in stats["providers"])
        return [
            f"  market @{self.book.height}: utilisation {use}",
            f"  market SLA compliance {_percent(stats['sla_compliance_bps'])} of "
            f"{stats['tasks_settled']} settled; Jain fairness providers "
            f"{stats['fairness_providers_bps'] / BPS:.2f}, requesters "
            f"{stats['fairness_requesters_bps'] / BPS:.2f}",
            f"  market tokens earned (payments + rewards): {earned}",
        ]

    def summary_lines(self) -> list[str]:
        """What the agents saw: tasks by outcome, latencies, transactions sent."""
        book, counts = self.book, self.book.counts
        latency = "none settled yet"
        if book.latency_blocks:
            latency = (
                f"median {statistics.median(book.latency_blocks):g} blocks, "
                f"{statistics.median(book.latency_s):.1f} s (min "
                f"{min(book.latency_blocks)}, max {max(book.latency_blocks)} "
                "blocks)"
            )
        sent = sum(s.sent for s in self.signers)
        refused = sum(s.refused for s in self.signers)
        fees = sum(s.fees for s in self.signers)
        return [
            f"market: {counts['submitted']} tasks submitted, {counts['settled']} settled, "
            f"{counts['refunded']} refunded, {len(book.active)} in progress",
            f"  the oracles' quorum found an SLA violation in {counts['penalised']} of the "
            f"{counts['verified']} tasks verified (the plan served {counts['served_badly']} "
            "of them badly)",
            f"  submit to settle: {latency}",
            f"  {sent} transactions sent ({refused} refused by the mempool), "
            f"{fees:,} paid in fees (burnt)",
            "  blobs: "
            + ", ".join(
                f"{self.blob_counts[what]} {what}"
                for what in BLOB_COUNTS
                if what in self.blob_counts or what != "inputs missing"
            ),
        ]

    async def chain_summary_lines(self) -> list[str]:
        """What the chain says: compliance, fairness, each provider's and oracle's books."""
        stats = await self.client.query("/market/stats")
        lines = [
            f"  SLA compliance {_percent(stats['sla_compliance_bps'])}; Jain fairness providers "
            f"{stats['fairness_providers_bps'] / BPS:.2f}, requesters "
            f"{stats['fairness_requesters_bps'] / BPS:.2f}",
        ]
        accounts = {p["address"]: p for p in stats["providers"]}
        for signer in self.providers:
            record = await self.client.query("/market/provider", signer.address.encode())
            mine = await self.client.query("/market/account", signer.address.encode())
            provider = mine["provider"]
            lines.append(
                f"  {record['name']:<12} {record['tier']:<10} tasks {provider.get('tasks', 0):>3}"
                f"  paid {accounts[signer.address]['earned']:>6,}  rewards "
                f"{provider.get('rewarded', 0):>6,}  penalties {provider.get('penalties', 0):>5,}"
                f"  reputation {record['reputation'] / 100:.0f}%"
            )
        for k, oracle in enumerate(self.oracles):
            mine = (await self.client.query("/market/account", oracle.address.encode()))["oracle"]
            lines.append(
                f"  oracle{k}       attestations {mine.get('attestations', 0):>3} "
                f"(honest {mine.get('honest', 0)})  rewards {mine.get('rewarded', 0):,}"
            )
        return lines


async def _run(actions: Iterable[Action]) -> None:
    """Each signer's actions in order (nonces); different signers at once."""
    queues: dict[Signer, list[Action]] = defaultdict(list)
    for action in actions:
        queues[action[0]].append(action)

    async def drain(queue: list[Action]) -> None:
        for signer, module, method, args in queue:
            await signer.send(module, method, args)

    await asyncio.gather(*(drain(q) for q in queues.values()))


def _percent(bps: int) -> str:
    return f"{bps / 100:.1f}%"
