"""A deterministic simulator of a validator network, for the consensus core.

One seed fixes everything: message delays, drops, duplicates, partitions before
the global stabilisation time (GST), crashes of honest validators at arbitrary
points (between any two effects, or before an event reaches the WAL) and their
restarts from the WAL, and Byzantine validators that equivocate (different
proposals and votes to different peers) or stay silent. Time is virtual: a heap
of timed actions, nothing sleeps.

Each validator runs the real consensus core (tests may give the honest ones a
weakened variant through `consensus_factory`, to prove the checks catch it) and
a real Application on an in-memory store; the simulated node shell does what the real node will:
write each event to the WAL before handling it, persist every signed message
before it leaves, ask the application for blocks and verdicts, commit decided
blocks, gossip its own messages of the current height, and answer a lagging
peer with the decision of the peer's height.

After every run the checks are: agreement, validity (every decided block passed
process_proposal), a verifiable commit certificate for every decision, no
double signing by an honest validator across restarts, and liveness (after GST
every honest validator decides the next k heights within a virtual-time bound).
A violation raises SimViolation carrying the seed and the last events, so that
`run_seed(seed, config)` replays it exactly.
"""

from __future__ import annotations

import heapq
import random
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cloudchain.chaincode.application import Application
from cloudchain.consensus.events import (
    Decide,
    Event,
    EvidenceFound,
    MessageReceived,
    Start,
    TimeoutElapsed,
)
from cloudchain.consensus.messages import Decision, Message, Proposal, Vote, VoteType
from cloudchain.consensus.state_machine import Consensus, ConsensusFactory, TimeoutConfig
from cloudchain.consensus.validator_set import CommitError, ValidatorSet, verify_commit
from cloudchain.crypto import PrivateKey
from cloudchain.fees import priced_transaction
from cloudchain.genesis import Genesis
from cloudchain.ledger import Validator
from cloudchain.node.consensus_wal import FileWAL, MemoryWAL
from cloudchain.node.driver import ConsensusDriver
from cloudchain.storage.chain import ChainStore
from cloudchain.storage.kv import MemoryKV

MS = 1_000_000  # nanoseconds per millisecond
GENESIS_TIME_NS = 1_767_225_600_000_000_000
CHAIN_ID = "cloudchain-sim"
TRACE_LINES = 40


@dataclass(frozen=True)
class SimConfig:
    validators: int = 4
    byzantine: int = 0  # at most f = (n - 1) // 3
    byzantine_mode: str = "mixed"  # "equivocate", "silent" or "mixed" (chosen per seed)
    heights_after_gst: int = 3  # liveness: k heights decided after GST
    gst_ms: int = 3_000
    delta_ms: int = 50  # the bound on delays after GST
    pre_gst_delay_ms: int = 1_500
    drop_rate: float = 0.25  # before GST
    duplicate_rate: float = 0.05
    partitions: bool = True
    crashes: bool = True
    gossip_interval_ms: int = 400
    # A validator ahead sends a lagging peer the decision of the peer's height. Off,
    # a validator that missed a decision before moving on cannot catch up (gossip is
    # per height): only for experiments on a weakened core.
    help_lagging_peers: bool = True
    # None: WALs in memory. A directory: each node's WAL is a real file there.
    wal_dir: str | None = None
    liveness_bound_ms: int = 60_000
    timeouts: TimeoutConfig = field(
        default_factory=lambda: TimeoutConfig(
            propose_ms=300,
            propose_delta_ms=100,
            prevote_ms=200,
            prevote_delta_ms=100,
            precommit_ms=200,
            precommit_delta_ms=100,
            commit_ms=50,
        )
    )

    @property
    def max_faulty(self) -> int:
        return (self.validators - 1) // 3


class SimViolation(AssertionError):
    """The first violation of a run (with its trace), and the kinds of all it found."""

    def __init__(
        self, seed: int, kind: str, detail: str, trace: list[str], kinds: tuple[str, ...] = ()
    ) -> None:
        self.seed, self.kind, self.detail, self.trace = seed, kind, detail, trace
        self.kinds = kinds or (kind,)
        lines = "\n".join(trace)
        also = (
            f" (also: {', '.join(sorted(set(self.kinds) - {kind}))})"
            if len(set(self.kinds)) > 1
            else ""
        )
        super().__init__(
            f"seed {seed}: {kind}: {detail}{also}\n"
            f"replay: run_seed({seed}, config)\nlast events:\n{lines}"
        )


@dataclass
class SimResult:
    seed: int
    heights: dict[int, int]  # honest validator index -> decided height
    virtual_ms: int
    messages_delivered: int
    crashes: int
    equivocations_seen: int


# --- the simulated node shell --------------------------------------------------------------


class SimNode(ConsensusDriver):
    """A validator: the real driver, with the simulator's clock, network and faults."""

    def __init__(self, sim: Simulation, index: int, key: PrivateKey, byzantine: str) -> None:
        self.sim = sim
        self.index = index
        self.byzantine = byzantine  # "", "equivocate" or "silent"
        self.store = ChainStore(MemoryKV())  # the node's disk: survives crashes
        wal_dir = sim.config.wal_dir
        wal: MemoryWAL | FileWAL = (
            MemoryWAL() if wal_dir is None else FileWAL(Path(wal_dir) / f"s{sim.seed}-n{index}.wal")
        )  # the node's WAL: survives crashes
        self.alive = True
        self.incarnation = 0
        self.crash_after_effects: int | None = None
        self.equivocation_splits: dict[tuple[Any, ...], bool] = {}
        self.equivocation_variants: dict[tuple[Any, ...], Message] = {}
        super().__init__(
            Application(self.store, sim.genesis),
            key,
            sim.config.timeouts,
            wal,
            # The adversary is the same whatever core the honest validators run.
            consensus_factory=Consensus if byzantine else sim.consensus_factory,
        )

    # Crash and restart.

    def crash(self) -> None:
        self.alive = False
        self.sim.crash_count += 1
        self.sim.log(f"node {self.index} crashes at height {self.core.height}")

    def restart(self) -> None:
        self.crash_after_effects = None
        if self.alive:  # the planned crash has not struck yet: crash now, between events
            self.crash()
        self.alive = True
        self.incarnation += 1
        replayed = self.recover()
        self.sim.log(
            f"node {self.index} restarted at height {self.core.height}, "
            f"replayed {replayed} WAL records"
        )

    # The driver's environment.

    def handle(self, event: Event) -> None:
        if self.alive:
            super().handle(event)

    def now_ns(self) -> int:
        return self.sim.now_ns

    def broadcast(self, message: Message) -> None:
        self.sim.record_signed(self, message)
        self._broadcast(message)

    def schedule_timeout(self, delay_ms: int, event: TimeoutElapsed) -> None:
        incarnation = self.incarnation

        def fire() -> None:
            if self.alive and self.incarnation == incarnation:
                self.handle(event)

        self.sim.schedule(delay_ms * MS, fire)

    def defer(self, event: Event) -> None:
        self.sim.soon(lambda: self.handle(event))

    def candidates(self, height: int) -> list[bytes]:
        return self._candidates(height)

    def before_effect(self) -> bool:
        """Crash in the middle of an event's effects, when one is planned (before GST)."""
        if self.crash_after_effects is None or self.sim.now_ns >= self.sim.gst_ns:
            return True
        if self.crash_after_effects == 0:
            self.crash_after_effects = None
            self.crash()
            return False
        self.crash_after_effects -= 1
        return True

    def before_commit(self, decision: Decide) -> None:
        sim = self.sim
        sim.record_decision(self, decision)  # agreement first: the property that matters most
        try:
            verify_commit(CHAIN_ID, sim.validator_set, decision.commit, decision.height)
        except CommitError as exc:
            sim.violation("commit certificate", f"node {self.index}: {exc}")
        if not self.byzantine and not self.is_valid(decision.block):
            sim.violation(
                "validity",
                f"node {self.index} decided a block that "
                f"process_proposal rejects at height {decision.height}",
                fatal=True,
            )

    def on_evidence(self, evidence: EvidenceFound) -> None:
        self.sim.equivocations_seen += 1

    # The application side.

    def _candidates(self, height: int, salt: int = 0) -> list[bytes]:
        sender = self.sim.accounts[(height + salt) % len(self.sim.accounts)]
        recipient = self.sim.accounts[(height + salt + 1) % len(self.sim.accounts)]
        nonce = self.app.nonce(sender.address)
        tx = priced_transaction(
            sender,
            CHAIN_ID,
            nonce,
            "token",
            "transfer",
            {"to": recipient.address, "amount": 1 + salt},
            self.app.fees,
        )
        return [tx.to_bytes()]

    # Networking.

    def _broadcast(self, message: Message) -> None:
        sim = self.sim
        for peer in sim.nodes:
            if peer is self:
                continue
            if self.byzantine == "equivocate":
                sent = self._equivocation(message, peer)
                sim.send(self, peer, sent)
                for forged in self._forgeries(message, sent):
                    sim.send(self, peer, forged)
            else:
                sim.send(self, peer, message)

    @property
    def core_address(self) -> bytes:
        return bytes.fromhex(self.key.address)

    def _relay(self, message: Message) -> None:
        """Send on a message as it is (ours or another's): no equivocation in relays."""
        for peer in self.sim.nodes:
            if peer is not self:
                self.sim.send(self, peer, message)

    def _equivocation(self, message: Message, peer: SimNode) -> Message:
        """A split brain: for each message, one group of peers gets it and the other a
        conflicting signed variant, the same variant every time it is sent again."""
        slot = (message.height, message.round, type(message).__name__, getattr(message, "type", 0))
        # A re-proposal (pol_round >= 0) is replaced for everyone by a fresh block: the
        # attack that locks exist to stop.
        # And once it offered such a block, all its votes of that round back it.
        amnesia = (isinstance(message, Proposal) and message.pol_round >= 0) or (
            isinstance(message, Vote)
            and (message.height, message.round, "Proposal", 0) in self.equivocation_variants
        )
        in_first_group = self.equivocation_splits.setdefault(
            (*slot, peer.index), self.sim.rng.random() < 0.5
        )
        if in_first_group and not amnesia:
            return message
        variant = self.equivocation_variants.get(slot)
        if variant is None:
            variant = self._conflicting(message)
            self.equivocation_variants[slot] = variant
        return variant

    def _forgeries(self, original: Message, sent: Message) -> list[Vote]:
        """With a variant precommit for our own variant block, precommits for it "from"
        every other validator, with signatures we cannot make: an honest core drops them
        (counted as bad signatures); one that skips verification would decide on them."""
        if not (
            isinstance(sent, Vote)
            and sent is not original
            and not sent.is_nil
            and sent.type is VoteType.PRECOMMIT
        ):
            return []
        ours = self.equivocation_variants.get((sent.height, sent.round, "Proposal", 0))
        if not isinstance(ours, Proposal) or ours.block_hash != sent.block_hash:
            return []
        return [
            Vote(
                CHAIN_ID,
                VoteType.PRECOMMIT,
                sent.height,
                sent.round,
                sent.block_hash,
                sent.timestamp_ns,
                v.address,
                bytes(64),
            )
            for v in self.sim.validators
            if v.address != self.core_address
        ]

    def _conflicting(self, message: Message) -> Message:
        """The variant for the other group: a vote backs our own variant proposal of the
        round if there is one (a coordinated attack), else another block, else nil; a
        proposal offers a fresh block as if no polka had ever happened."""
        if isinstance(message, Vote):
            ours = self.equivocation_variants.get((message.height, message.round, "Proposal", 0))
            known = [
                h for h in self.sim.known_blocks.get(message.height, []) if h != message.block_hash
            ]
            if isinstance(ours, Proposal) and ours.block_hash != message.block_hash:
                other = ours.block_hash
            elif not message.is_nil:
                other = b""
            else:
                other = known[0] if known else bytes(32)
            return Vote.create(
                self.key,
                CHAIN_ID,
                message.type,
                message.height,
                message.round,
                other,
                message.timestamp_ns,
            )
        assert isinstance(message, Proposal)
        try:
            block = self.build_block(
                message.height, self._candidates(message.height, 1 + message.round)
            )
        except AssertionError:
            return message
        return Proposal.create(
            self.key, CHAIN_ID, message.height, message.round, -1, block, message.timestamp_ns
        )

    def gossip(self) -> None:
        """Re-send what we signed at this height: gossip makes every message arrive after GST."""
        if not self.alive or self.byzantine == "silent":
            return
        for message in self.core.gossip_messages():
            if self.byzantine and _signer(message) == self.core_address:
                self._broadcast(message)  # its own messages: split brain again
            else:
                self._relay(message)

    def receive(self, sender: SimNode, message: Message) -> None:
        if not self.alive:
            return
        if message.height < self.core.height and self.sim.config.help_lagging_peers:
            self._help_lagging_peer(sender, message.height)
        self.handle(MessageReceived(message))

    def _help_lagging_peer(self, peer: SimNode, height: int) -> None:
        """Send a peer behind us the signed proposal and precommits that decided its height."""
        decision = self.decision_for_peer(
            peer.index, height, self.sim.config.gossip_interval_ms * MS
        )
        if decision is not None:
            self.sim.send(self, peer, decision)


def _signer(message: Message) -> bytes:
    if isinstance(message, Vote):
        return message.validator_address
    if isinstance(message, Proposal):
        return message.proposer_address
    return b""


# --- the simulation -------------------------------------------------------------------------


class NetworkScript(Protocol):
    """A scripted adversary on the network: True loses `message` on its way from `sender`
    to `receiver`. Consulted only before GST, where the fault model lets any message be
    lost (the random drops and partitions are one such adversary; a script is the worst
    case chosen on purpose). After GST every message arrives within delta."""

    def __call__(
        self, sim: Simulation, sender: SimNode, receiver: SimNode, message: Message
    ) -> bool: ...


class Simulation:
    def __init__(
        self,
        seed: int,
        config: SimConfig,
        consensus_factory: ConsensusFactory = Consensus,
        network_script: NetworkScript | None = None,
    ) -> None:
        """`consensus_factory` builds the honest validators' cores: the real one, or in
        tests a weakened variant that the checks must catch. Byzantine validators always
        run the real core and equivocate in what they send. `network_script` loses the
        messages it picks before GST, on top of the config's random faults."""
        assert 0 <= config.byzantine <= config.max_faulty, "at most f Byzantine validators"
        self.seed = seed
        self.config = config
        self.consensus_factory = consensus_factory
        self.network_script = network_script
        self.rng = random.Random(seed)
        self.now_ns = GENESIS_TIME_NS
        self._queue: list[tuple[int, int, Callable[[], None]]] = []
        self._seq = 0
        self.trace: deque[str] = deque(maxlen=TRACE_LINES)
        keys = [PrivateKey(bytes([i + 1]) * 32) for i in range(config.validators)]
        self.validators = [Validator(k.public_key, 10, f"v{i}") for i, k in enumerate(keys)]
        self.validator_set = ValidatorSet(tuple(self.validators))
        self.accounts = [PrivateKey(bytes([100 + i]) * 32) for i in range(4)]
        self.genesis = Genesis(
            chain_id=CHAIN_ID,
            genesis_time_ns=GENESIS_TIME_NS,
            validators=tuple(self.validators),
            authority=self.accounts[0].address,
            balances=tuple(sorted((a.address, 10**9) for a in self.accounts)),
            params={},
        )
        modes = self._byzantine_modes()
        self.nodes = [SimNode(self, i, k, modes.get(i, "")) for i, k in enumerate(keys)]
        self.decisions: dict[int, dict[int, bytes]] = defaultdict(dict)  # height -> node -> hash
        self.signed_by: dict[int, dict[tuple[int, int, str], bytes]] = defaultdict(dict)
        self.known_blocks: dict[int, list[bytes]] = defaultdict(list)
        self.crash_count = 0
        self.violations: list[tuple[str, str, list[str]]] = []
        self.equivocations_seen = 0
        self.delivered = 0
        self._partition = self._choose_partition()

    def _byzantine_modes(self) -> dict[int, str]:
        chosen = self.rng.sample(range(self.config.validators), self.config.byzantine)
        mode = self.config.byzantine_mode
        return {
            i: (self.rng.choice(["equivocate", "silent"]) if mode == "mixed" else mode)
            for i in chosen
        }

    def _choose_partition(self) -> set[int] | None:
        if not self.config.partitions or self.rng.random() < 0.5:
            return None
        size = self.rng.randint(1, self.config.validators - 1)
        return set(self.rng.sample(range(self.config.validators), size))

    @property
    def honest(self) -> list[SimNode]:
        return [n for n in self.nodes if not n.byzantine]

    # Scheduling.

    def schedule(self, delay_ns: int, action: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (self.now_ns + delay_ns, self._seq, action))

    def soon(self, action: Callable[[], None]) -> None:
        self.schedule(0, action)

    def log(self, line: str) -> None:
        self.trace.append(f"t={(self.now_ns - GENESIS_TIME_NS) // MS}ms {line}")

    def violation(self, kind: str, detail: str, fatal: bool = False) -> None:
        """Record a violation. Safety violations let the run go on (the nodes stay
        consistent with themselves) so that one run shows every kind it leads to;
        the run then fails with the first. `fatal` ones stop it at once."""
        self.violations.append((kind, detail, list(self.trace)))
        if fatal:
            self._fail()

    def _fail(self) -> None:
        kind, detail, trace = self.violations[0]
        kinds = tuple(k for k, _, _ in self.violations)
        raise SimViolation(self.seed, kind, detail, trace, kinds)

    @property
    def gst_ns(self) -> int:
        return GENESIS_TIME_NS + self.config.gst_ms * MS

    # The network.

    def send(self, sender: SimNode, receiver: SimNode, message: Message) -> None:
        rng, config = self.rng, self.config
        before_gst = self.now_ns < self.gst_ns
        if before_gst:
            if self.network_script is not None and self.network_script(
                self, sender, receiver, message
            ):
                return
            if self._partition is not None and (
                (sender.index in self._partition) != (receiver.index in self._partition)
            ):
                return
            if rng.random() < config.drop_rate:
                return
        copies = 2 if rng.random() < config.duplicate_rate else 1
        for _ in range(copies):
            max_ms = config.pre_gst_delay_ms if before_gst else config.delta_ms
            delay_ns = rng.randint(1 * MS // 10, max_ms * MS)
            self.schedule(delay_ns, lambda: self._deliver(sender, receiver, message))

    def _deliver(self, sender: SimNode, receiver: SimNode, message: Message) -> None:
        self.delivered += 1
        receiver.receive(sender, message)

    # Observers.

    def record_signed(self, node: SimNode, message: Message) -> None:
        assert not isinstance(message, Decision), "a decision is not signed as one"
        if isinstance(message, Proposal):
            self.known_blocks[message.height].append(message.block_hash)
            slot = (message.height, message.round, "proposal")
        else:
            slot = (message.height, message.round, message.type.label)
        if node.byzantine:
            return
        earlier = self.signed_by[node.index].get(slot)
        if earlier is not None and earlier != message.digest:
            self.violation(
                "double signing", f"honest node {node.index} signed two messages for {slot}"
            )
        self.signed_by[node.index][slot] = message.digest

    def record_decision(self, node: SimNode, decision: Decide) -> None:
        block = decision.block.hash.hex()[:8]
        self.log(
            f"node {node.index} decides height {decision.height} block {block} "
            f"in round {decision.commit.round}"
        )
        if node.byzantine:
            return
        at_height = self.decisions[decision.height]
        at_height[node.index] = decision.block.hash
        if len(set(at_height.values())) > 1:
            who = ", ".join(f"node {i} decided {h.hex()[:8]}" for i, h in sorted(at_height.items()))
            self.violation("agreement", f"height {decision.height}: {who}")

    # Running.

    def _plan_faults(self) -> None:
        """Crash honest validators at random moments before GST; restart them before GST."""
        if not self.config.crashes:
            return
        for node in self.honest:
            if self.rng.random() < 0.5:
                crash_ms = self.rng.randint(1, self.config.gst_ms - 2)
                restart_ms = self.rng.randint(crash_ms + 1, self.config.gst_ms - 1)
                self.schedule(crash_ms * MS, self._crash_at_some_effect(node))
                self.schedule(restart_ms * MS, node.restart)

    def _crash_at_some_effect(self, node: SimNode) -> Callable[[], None]:
        def crash() -> None:
            if not node.alive:
                return
            if self.rng.random() < 0.3:
                node.crash()  # between events
            else:  # in the middle of the next event's effects
                node.crash_after_effects = self.rng.randint(0, 4)

        return crash

    def _gossip_loop(self, node: SimNode) -> Callable[[], None]:
        def tick() -> None:
            node.gossip()
            self.schedule(self.config.gossip_interval_ms * MS, tick)

        return tick

    def run(self) -> SimResult:
        config = self.config
        self._plan_faults()
        for node in self.nodes:
            if node.byzantine == "silent":
                node.alive = False
                continue
            self.soon(lambda node=node: node.handle(Start()))
            offset = self.rng.randint(0, config.gossip_interval_ms) * MS
            self.schedule(offset, self._gossip_loop(node))
        target: dict[int, int] | None = None
        deadline = self.gst_ns + config.liveness_bound_ms * MS
        while self._queue:
            when, _, action = heapq.heappop(self._queue)
            self.now_ns = when
            if target is None and when >= self.gst_ns:
                target = {
                    n.index: n.app.info().height + config.heights_after_gst for n in self.honest
                }
            if target is not None and all(
                n.app.info().height >= target[n.index] for n in self.honest
            ):
                break
            if when > deadline:
                heights = {n.index: n.app.info().height for n in self.honest}
                self.violation(
                    "liveness",
                    f"after GST + {config.liveness_bound_ms} ms heights "
                    f"are {heights}, targets {target}",
                    fatal=True,
                )
            action()
        if self.violations:
            self._fail()
        return SimResult(
            seed=self.seed,
            heights={n.index: n.app.info().height for n in self.honest},
            virtual_ms=(self.now_ns - GENESIS_TIME_NS) // MS,
            messages_delivered=self.delivered,
            crashes=self.crash_count,
            equivocations_seen=self.equivocations_seen,
        )


def run_seed(
    seed: int,
    config: SimConfig,
    consensus_factory: ConsensusFactory = Consensus,
    network_script: NetworkScript | None = None,
) -> SimResult:
    """Run one seed; raises SimViolation with the seed and a trace on any violation."""
    return Simulation(seed, config, consensus_factory, network_script).run()
