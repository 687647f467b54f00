"""`cloudchain simulate market`: days of a market on the real chaincode, in this process.

The chain is the real Application (sim/market/chain.py); around it, a seeded world
acts as the parties of a live market would, through signed transactions only:

- requesters submit tasks at exponential intervals (`tasks_per_day` each on average),
  a mix of training (GPU, large), inference (GPU, small) and preprocessing (CPU,
  medium) with a max price of 1.5-3x the class's genesis reference price, a deadline of four
  times the work's duration plus half an hour, and SLA terms and a penalty;
- providers register their offers and stakes, top their stakes up at every epoch after
  slashing (as an operator keeps its bond funded), re-price at every epoch by their pricing
  policy (agents/provider/pricing.py: the same code the daemon runs), and serve what
  the chain assigns them: `start` in the next block, `complete` once the work's
  duration has passed (ten units a block), except for the share of tasks their
  reliability says they drop, which then expire in their hands;
- oracles attest each completed task in the next block, and every provider's service
  each epoch: uptime and latency drawn around the provider's own; a faulty oracle (the
  first `faulty_oracles` of them) says the opposite of what happened;
- a provider's output is wrong for the share `wrong_bps` of its tasks: its requester
  disputes the verified outcome in the next block, and the oracles vote on it in the
  block after (an honest one to overturn it, a faulty one to uphold it).

Everything else is the chain's: assignment, escrow, SLA violations and penalties,
disputes and their resolution, slashing, epochs and minted rewards, reference prices.
The world's randomness is one random.Random seeded by `seed`, the keys are derived
from it, and the clock is the blocks': the same configuration gives byte-identical
state, and the final app hash says so.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cloudchain.agents.provider.pricing import PricingPolicy
from cloudchain.chaincode.market.params import MarketParams
from cloudchain.chaincode.market.policy import FAIR, POLICIES
from cloudchain.crypto import PrivateKey
from cloudchain.genesis import Genesis
from cloudchain.ledger import Transaction, Validator
from cloudchain.sim.market.chain import SimChain
from cloudchain.sim.market.scenario import BPS, CPU, GPU, ProviderSpec

DAY_S = 86_400
GENESIS_TIME_NS = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z
UNITS_PER_BLOCK = 10  # of work a provider does on one task in one block
BALANCE = 10**14
REFERENCE_PRICES = {GPU: 300, CPU: 60}
DEFAULT_FAIR_SLACK_BPS = MarketParams().fair_price_slack_bps


@dataclass(frozen=True)
class TaskKind:
    name: str  # market.submit's kind
    share: int  # of arrivals, in percent
    resource_class: str
    units: tuple[int, int]  # drawn uniformly from this range
    min_uptime_bps: int
    max_latency_ms: int


MIX: tuple[TaskKind, ...] = (
    TaskKind("training", 30, GPU, (120, 1_200), 9_500, 400),
    TaskKind("inference", 50, GPU, (2, 30), 9_000, 250),
    TaskKind("preprocessing", 20, CPU, (20, 300), 9_000, 500),
)


def pick_kind(roll: int) -> TaskKind:
    """The kind a roll in [0, 100) falls on."""
    for kind in MIX:
        if roll < kind.share:
            return kind
        roll -= kind.share
    return MIX[-1]


@dataclass(frozen=True)
class SimConfig:
    providers: tuple[ProviderSpec, ...]
    days: float = 30.0
    block_s: int = 60
    requesters: int = 100
    tasks_per_day: float = 2.0  # per requester
    oracles: int = 3
    faulty_oracles: int = 0
    seed: int = 1
    drain_blocks: int = 20_000  # after the days, at most this many blocks to finish tasks
    policy: int = 0  # the chain's assignment_policy: 0 cheapest, 1 fair (market/policy.py)
    fair_slack_bps: int = DEFAULT_FAIR_SLACK_BPS
    capacity_reward_bps: int = 0  # of the providers' epoch reward, for capacity (epoch.py)
    epoch_reward: int = 1_000_000  # minted per simulated hour (an epoch): $100 at $0.0001

    @property
    def policy_name(self) -> str:
        return POLICIES[self.policy]

    @property
    def label(self) -> str:
        """The policy, the fair one's slack unless it is the chain's default, and the
        capacity reward if any (+capacity: all of the providers' epoch reward)."""
        label = self.policy_name
        if self.policy == FAIR and self.fair_slack_bps != DEFAULT_FAIR_SLACK_BPS:
            label = f"fair-{self.fair_slack_bps}bps"
        if self.capacity_reward_bps == BPS:
            return f"{label}+capacity"
        if self.capacity_reward_bps:
            return f"{label}+capacity-{self.capacity_reward_bps}bps"
        return label

    @property
    def blocks(self) -> int:
        return math.ceil(self.days * DAY_S / self.block_s)

    @property
    def blocks_per_day(self) -> int:
        return DAY_S // self.block_s


@dataclass
class ProviderDay:
    """A provider's cumulative sums at the end of a day, as the chain records them."""

    day: int
    provider: str
    earned: int
    rewarded: int
    rewarded_capacity: int  # of rewarded, minted for its capacity (market/epoch.py)
    units: int
    tasks: int
    violated: int
    slashed: int
    assigned_units: int
    busy_unit_blocks: int  # units in flight summed over the day's blocks (the world's count)


@dataclass
class TaskRecord:
    task: int
    requester: str
    kind: str
    submitted_at: int  # height
    units: int = 0
    provider: str = ""
    ended_at: int = 0
    outcome: str = ""  # settled, refunded:<reason>, resolved
    upheld: bool = False  # resolved: the outcome as verified stood (it was paid)

    @property
    def served(self) -> bool:
        """Paid for: settled, or a dispute of it upheld."""
        return self.outcome == "settle" or (self.outcome == "resolved" and self.upheld)


@dataclass
class SimResult:
    config: SimConfig
    names: dict[str, str]  # address -> provider name
    days: list[dict[str, Any]] = field(default_factory=list)  # market-wide, per day
    provider_days: list[ProviderDay] = field(default_factory=list)
    tasks: dict[int, TaskRecord] = field(default_factory=dict)
    minted: int = 0
    burnt: int = 0
    genesis_supply: int = 0
    supply_by_day: list[tuple[int, int, int, int]] = field(default_factory=list)
    app_hash: str = ""
    height: int = 0
    refused: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    drained: int = 0  # blocks after the last day, until every task was final
    final: list[ProviderDay] = field(default_factory=list)  # every provider's sums at the end
    final_supply: int = 0
    minted_final: int = 0
    disputes: int = 0  # opened by requesters of wrong outputs
    overturned: int = 0  # of them, resolved for the requester


def _key(seed: int, name: str) -> PrivateKey:
    return PrivateKey(hashlib.sha256(f"cloudchain-sim:{seed}:{name}".encode()).digest())


class World:
    """The simulated parties around one chain."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        # The demand (arrivals, and each task's kind, size and budget) has a stream of its
        # own, and so does what happens to each task and at each epoch: so the same seed
        # gives every policy the same tasks, and a choice one policy makes differently
        # does not shift the draws of everything after it.
        self.rng = random.Random(f"world:{config.seed}")
        seed = config.seed
        self.validator = _key(seed, "validator")
        self.providers = [(_key(seed, f"provider:{p.name}"), p) for p in config.providers]
        self.requesters = [_key(seed, f"requester:{i}") for i in range(config.requesters)]
        self.requester_keys = {key.address: key for key in self.requesters}
        self.oracles = [_key(seed, f"oracle:{i}") for i in range(config.oracles)]
        self.by_address = {key.address: spec for key, spec in self.providers}
        self.keys = {key.address: key for key, _ in self.providers}
        self.genesis = self._genesis()
        self.chain = SimChain(self.genesis, self.validator, config.block_s)
        self.result = SimResult(config, {k.address: p.name for k, p in self.providers})
        self.result.genesis_supply = sum(amount for _, amount in self.genesis.balances)
        self.arrivals: list[tuple[float, int]] = []  # (block, requester index)
        self.actions: list[tuple[int, int, str, int, int]] = []  # (block, seq, what, task, units)
        self.sequence = 0
        self.to_attest: list[tuple[int, str, int]] = []  # (task, provider, units)
        self.in_flight: dict[str, int] = defaultdict(int)  # address -> units
        self.task_units: dict[int, tuple[str, int]] = {}  # task -> (class, units)
        self.prices: dict[tuple[str, str], int] = {}  # (address, class) -> offered price
        self.busy: dict[str, int] = defaultdict(int)  # unit-blocks today
        self.reference: dict[str, int] = {}  # class -> the chain's reference price
        self.in_flight_class: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.wrong: set[int] = set()  # tasks whose output is wrong, until disputed

    # --- setting up ---------------------------------------------------------------------------

    def _genesis(self) -> Genesis:
        config = self.config
        epoch_blocks = max(1, 3_600 // config.block_s)
        everyone = [*self.requesters, *self.oracles, *(key for key, _ in self.providers)]
        return Genesis(
            chain_id="cloudchain-sim",
            genesis_time_ns=GENESIS_TIME_NS,
            validators=(Validator(self.validator.public_key, 10, "sim"),),
            authority=self.oracles[0].address,
            balances=tuple(sorted((k.address, BALANCE) for k in everyone)),
            params={
                "token": {"denom": "ucc"},
                "market": {
                    "oracles": [k.address for k in self.oracles],
                    "epoch_blocks": epoch_blocks,
                    "epoch_reward": config.epoch_reward,
                    "attestation_blocks": 10,
                    "dispute_blocks": 5,
                    "dispute_vote_blocks": 10,
                    "min_stake": 1_000,
                    "max_assignments_per_block": 256,
                    "max_assignments_per_provider": 16,
                    "max_open_tasks_scanned": 1_024,
                    "max_transitions_per_block": 2_048,
                    "reference_prices": dict(REFERENCE_PRICES),
                    "assignment_policy": config.policy,
                    "fair_price_slack_bps": config.fair_slack_bps,
                    "capacity_reward_bps": config.capacity_reward_bps,
                },
            },
        )

    def _register_all(self) -> None:
        txs = []
        for key, spec in self.providers:
            offers = {}
            for name, (units, price) in sorted(spec.offers.items()):
                offers[name] = _offer(name, units, price)
                self.prices[(key.address, name)] = price
            txs.append(
                self.chain.tx(
                    key,
                    "market",
                    "register",
                    {
                        "name": spec.name,
                        "tier": spec.tier,
                        "offers": offers,
                        "stake": spec.stake_or_default(),
                    },
                )
            )
        self._apply(txs, [None] * len(txs))

    def _first_arrivals(self) -> None:
        for index in range(self.config.requesters):
            heapq.heappush(self.arrivals, (self._gap(), index))

    def _gap(self) -> float:
        """Blocks to a requester's next task: exponential, `tasks_per_day` a day."""
        rate = self.config.tasks_per_day / self.config.blocks_per_day
        return self.rng.expovariate(rate) if rate > 0 else math.inf

    # --- running ------------------------------------------------------------------------------

    def run(self, progress: Callable[[int], None] = lambda blocks: None) -> SimResult:
        """`days` of arrivals, then blocks without new tasks until every task is final
        (at most `drain_blocks`), so that each one's outcome is counted."""
        self._register_all()
        self._first_arrivals()
        config = self.config
        start = self.chain.height
        block = 0
        while block < config.blocks or (
            self._unfinished() and block < config.blocks + config.drain_blocks
        ):
            block += 1
            if block > config.blocks:
                self.arrivals = []
            txs, kinds = self._txs_for(start + block)
            self._apply(txs, kinds)
            for address, units in self.in_flight.items():
                self.busy[address] += units
            if block <= config.blocks:
                if block % config.blocks_per_day == 0 or block == config.blocks:
                    self._end_day(math.ceil(block / config.blocks_per_day))
                progress(1)
        self.result.drained = block - config.blocks
        self.result.final = self._provider_rows(0)
        self.result.final_supply = int(self.chain.query("/token/supply")["supply"])
        self.result.minted_final, self.result.burnt = self.result.minted, self.chain.burnt
        self.result.app_hash = self.chain.app_hash.hex()
        self.result.height = self.chain.height
        return self.result

    def _unfinished(self) -> bool:
        return any(not record.outcome for record in self.result.tasks.values())

    def _txs_for(self, height: int) -> tuple[list[Transaction], list[Any]]:
        """The transactions the parties send for the block at `height`, and for each
        what it is (to read its result): ("submit", kind) or None."""
        txs: list[Transaction] = []
        kinds: list[Any] = []
        relative = height - 1  # blocks since registration
        while self.arrivals and self.arrivals[0][0] <= relative:
            at, index = heapq.heappop(self.arrivals)
            txs.append(self._submit(self.requesters[index], kinds))
            heapq.heappush(self.arrivals, (at + self._gap(), index))
        while self.actions and self.actions[0][0] <= height:
            _, _, what, task, units = heapq.heappop(self.actions)
            sent = self._action(what, task, units)
            txs.extend(sent)
            kinds.extend([None] * len(sent))
        for task, provider, units in self.to_attest:
            txs.extend(self._attest(task, provider, units))
            kinds.extend([None] * len(self.oracles))
        self.to_attest = []
        if (height - 1) % self.genesis_epoch_blocks == 0:
            for tx in self._epoch_txs():
                txs.append(tx)
                kinds.append(None)
        return txs, kinds

    @property
    def genesis_epoch_blocks(self) -> int:
        return int(self.genesis.params["market"]["epoch_blocks"])

    def _action(self, what: str, task: int, units: int) -> list[Transaction]:
        """A scheduled step of a task's party or parties."""
        record = self.result.tasks[task]
        if what == "dispute":
            key = self.requester_keys[record.requester]
            args = {"task": task, "reason": "wrong output"}
            return [self.chain.tx(key, "market", "dispute", args)]
        if what == "vote":  # an honest oracle overturns the outcome of a wrong output
            return [
                self.chain.tx(oracle, "market", "vote", {"task": task, "uphold": faulty})
                for oracle, faulty in self._oracles_faulty()
            ]
        key = self.keys[record.provider]
        if what == "start":
            return [self.chain.tx(key, "market", "start", {"task": task})]
        args = {"task": task, "units_used": units, "output": []}
        return [self.chain.tx(key, "market", "complete", args)]

    def _oracles_faulty(self) -> list[tuple[PrivateKey, bool]]:
        return [(o, i < self.config.faulty_oracles) for i, o in enumerate(self.oracles)]

    def _submit(self, requester: PrivateKey, kinds: list[Any]) -> Transaction:
        rng = self.rng
        kind = pick_kind(rng.randrange(100))
        units = rng.randint(*kind.units)
        resource_class = kind.resource_class
        # a requester's budget: 1.5-3x the class's price at genesis, whatever the market
        # asks now (pegged to the moving reference price, budgets fell with it while the
        # clouds' capacity stood idle, until most tasks found no offer and expired)
        max_price = max(1, REFERENCE_PRICES[resource_class] * rng.randint(150, 300) // 100)
        duration_s = math.ceil(units / UNITS_PER_BLOCK) * self.config.block_s
        kinds.append(("submit", kind.name, resource_class, units))
        return self.chain.tx(
            requester,
            "market",
            "submit",
            {
                "kind": kind.name,
                "inputs": [],
                "resource_class": resource_class,
                "units": units,
                "max_price": max_price,
                "deadline_s": 4 * duration_s + 1_800,
                "min_uptime_bps": kind.min_uptime_bps,
                "max_latency_ms": kind.max_latency_ms,
                "penalty": max_price * units // 10,
                "provider": "",
            },
        )

    def _attest(self, task: int, provider: str, units: int) -> list[Transaction]:
        spec = self.by_address[provider]
        rng = self._stream("attest", task)
        txs = []
        for index, oracle in enumerate(self.oracles):
            uptime, latency = self._measure(spec, rng)
            completed = True
            if index < self.config.faulty_oracles:  # says the opposite of what it saw
                completed, uptime, latency = False, BPS - uptime, latency * 10
            args = {
                "task": task,
                "completed": completed,
                "units": units,
                "uptime_bps": uptime,
                "latency_ms": latency,
            }
            txs.append(self.chain.tx(oracle, "market", "attest", args))
        return txs

    def _stream(self, what: str, number: int) -> random.Random:
        """The draws of one task's service, or of one epoch's measurements."""
        return random.Random(f"world:{self.config.seed}:{what}:{number}")

    @staticmethod
    def _measure(spec: ProviderSpec, rng: random.Random) -> tuple[int, int]:
        """Uptime and latency as a probe window would see them around the provider's."""
        uptime = min(BPS, max(0, spec.uptime_bps + rng.randint(-60, 60)))
        latency = max(1, int(spec.latency_ms * rng.uniform(0.7, 1.5)))
        return uptime, latency

    def _epoch_txs(self) -> list[Transaction]:
        """Every oracle's service record of every provider, and each provider's new
        price by its policy."""
        prices = self.chain.query("/market/prices")["classes"]
        self.reference = {row["resource_class"]: row.get("price") for row in prices}
        txs = []
        rng = self._stream("epoch", self.chain.height)
        for oracle in self.oracles:
            for key, spec in self.providers:
                uptime, latency = self._measure(spec, rng)
                args = {"provider": key.address, "uptime_bps": uptime, "latency_ms": latency}
                txs.append(self.chain.tx(oracle, "market", "attest_provider", args))
        stakes = self._stakes()
        for key, spec in self.providers:  # an operator keeps its stake funded
            short = spec.stake_or_default() - stakes.get(key.address, 0)
            if short > 0:
                txs.append(self.chain.tx(key, "market", "add_stake", {"amount": short}))
        for key, spec in self.providers:
            if spec.pricing == "fixed":
                continue
            offers, changed = {}, False
            for name, (units, base) in sorted(spec.offers.items()):
                # never below its own base price: what its compute costs it
                policy = PricingPolicy(spec.pricing, base, spec.markup_bps, floor=base)
                in_flight = self.in_flight_class[(key.address, name)]
                price = policy.price(self.reference.get(name), in_flight, units)
                changed |= price != self.prices[(key.address, name)]
                self.prices[(key.address, name)] = price
                offers[name] = _offer(name, units, price)
            if changed:
                txs.append(self.chain.tx(key, "market", "update", {"offers": offers}))
        return txs

    def _stakes(self) -> dict[str, int]:
        """Every provider's stake now, page by page."""
        stakes: dict[str, int] = {}
        after = ""
        while True:
            page = self.chain.query("/market/providers", f"after={after}" if after else "")
            rows = page["providers"]
            stakes.update((row["address"], row["stake"]) for row in rows)
            if not rows or len(stakes) >= len(self.providers):
                return stakes
            after = rows[-1]["address"]

    def _apply(self, txs: Sequence[Transaction], kinds: Sequence[Any]) -> None:
        result = self.chain.block(txs)
        height = self.chain.height
        for kind, tx_result in zip(kinds, result.tx_results, strict=True):
            if tx_result.code:
                # a start, completion or attestation after the task moved on (its deadline
                # passed, the quorum already decided), or a submit the chain refused
                self.result.refused[tx_result.log.split(":")[0][:60]] += 1
                continue
            for event in tx_result.events:
                attrs = dict(event.attributes)
                if event.type == "market_submit":
                    task = int(attrs["task"])
                    _, name, resource_class, units = kind
                    self.result.tasks[task] = TaskRecord(
                        task, attrs["requester"], name, height, units
                    )
                    self.task_units[task] = (resource_class, units)
                elif event.type == "market_complete":
                    task = int(attrs["task"])
                    self._release(task)
                    self.to_attest.append((task, attrs["provider"], int(attrs["units_used"])))
                elif event.type == "market_verified" and int(attrs["task"]) in self.wrong:
                    task = int(attrs["task"])
                    self.wrong.discard(task)
                    self._schedule(height + 1, "dispute", task, 0)
                elif event.type == "market_dispute":
                    self.result.disputes += 1
                    self._schedule(height + 1, "vote", int(attrs["task"]), 0)
                elif event.type == "market_resolved":
                    self._resolved(int(attrs["task"]), attrs["upheld"] == "true", height)
        for event in result.block_events:
            attrs = dict(event.attributes)
            if event.type == "market_assign":
                self._assigned(int(attrs["task"]), attrs["provider"], height)
            elif event.type == "market_settle":
                self._ended(int(attrs["task"]), "settle", height)
            elif event.type == "market_resolved":  # its vote closed: the outcome stands
                self._resolved(int(attrs["task"]), attrs["upheld"] == "true", height)
            elif event.type == "market_refund":
                task = int(attrs["task"])
                self._release(task)
                self._ended(task, f"refunded:{attrs.get('reason', '')}", height)
            elif event.type == "market_epoch":
                self.result.minted += int(attrs["minted"])

    def _assigned(self, task: int, provider: str, height: int) -> None:
        record = self.result.tasks[task]
        record.provider = provider
        resource_class, units = self.task_units[task]
        self.in_flight[provider] += units
        self.in_flight_class[(provider, resource_class)] += units
        spec = self.by_address[provider]
        rng = self._stream("service", task)
        if rng.randrange(BPS) >= spec.reliability_bps:
            return  # dropped: it expires in the provider's hands
        duration = math.ceil(units / UNITS_PER_BLOCK)
        self._schedule(height + 1, "start", task, 0)
        self._schedule(height + 1 + duration, "complete", task, units)
        if spec.wrong_bps and rng.randrange(BPS) < spec.wrong_bps:
            self.wrong.add(task)

    def _schedule(self, height: int, what: str, task: int, units: int) -> None:
        self.sequence += 1
        heapq.heappush(self.actions, (height, self.sequence, what, task, units))

    def _release(self, task: int) -> None:
        record = self.result.tasks.get(task)
        if record is None or not record.provider or task not in self.task_units:
            return
        resource_class, units = self.task_units.pop(task)
        self.in_flight[record.provider] -= units
        self.in_flight_class[(record.provider, resource_class)] -= units

    def _resolved(self, task: int, upheld: bool, height: int) -> None:
        self.result.overturned += not upheld
        record = self.result.tasks.get(task)
        if record is not None:
            record.upheld = upheld
        self._ended(task, "resolved", height)

    def _ended(self, task: int, outcome: str, height: int) -> None:
        record = self.result.tasks.get(task)
        if record is not None and not record.outcome:
            record.outcome, record.ended_at = outcome, height

    def _provider_rows(self, day: int) -> list[ProviderDay]:
        rows = []
        for key, _ in self.providers:
            stats = self.chain.query("/market/account", key.address).get("provider", {})
            rows.append(
                ProviderDay(
                    day=day,
                    provider=key.address,
                    earned=stats.get("earned", 0),
                    rewarded=stats.get("rewarded", 0),
                    rewarded_capacity=stats.get("rewarded_capacity", 0),
                    units=stats.get("units", 0),
                    tasks=stats.get("tasks", 0),
                    violated=stats.get("violated", 0),
                    slashed=stats.get("slashed", 0),
                    assigned_units=stats.get("assigned_units", 0),
                    busy_unit_blocks=self.busy[key.address],
                )
            )
        return rows

    def _end_day(self, day: int) -> None:
        """The chain's sums at the end of `day` (1 is the first)."""
        chain = self.chain
        self.result.provider_days.extend(self._provider_rows(day))
        self.busy = defaultdict(int)
        stats = chain.query("/market/stats")
        supply = int(chain.query("/token/supply")["supply"])
        self.result.days.append({"day": day, "height": chain.height, **_flat(stats)})
        self.result.burnt = self.chain.burnt
        self.result.supply_by_day.append((day, supply, self.result.minted, self.result.burnt))


def _offer(resource_class: str, units: int, price: int) -> dict[str, Any]:
    gpu = resource_class == GPU
    return {
        "gpu": "A100" if gpu else "8 vCPU",
        "gpus": 1,
        "memory_gb": 80 if gpu else 32,
        "units": units,
        "price": price,
    }


def _flat(stats: Any) -> dict[str, Any]:
    return {k: v for k, v in stats.items() if isinstance(v, int | float | str)}


def simulate(config: SimConfig, progress: Callable[[int], None] = lambda n: None) -> SimResult:
    return World(config).run(progress)
