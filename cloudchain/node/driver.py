"""The node's side of the consensus contract: it feeds the core and executes its effects.

One `ConsensusDriver` per validator holds the consensus core, the application
and the write-ahead log, and does what every effect asks, in order:

    PersistSigned    append the signed message to the WAL, fsynced, before anything else,
                     then to the sign state if there is one (node/sign_state.py)
    Broadcast        hand the message to the environment's network
    ScheduleTimeout  ask the environment for a timer
    RequestProposal  reap candidates, let the application prepare a block, answer
    ValidateBlock    verify the block's last commit and ask process_proposal, answer
    Decide           finalize and commit the block, trim the WAL, keep the commit in it

Every event is written to the WAL before the core sees it, so `recover` can
rebuild the core after a crash at any point between two effects.

The environment (the asyncio node, or the simulator) subclasses the driver and
supplies time, the network, timers and transaction candidates. No I/O here
beyond the WAL object and the application's store it is given.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, Protocol

from cloudchain import codec
from cloudchain.chaincode.application import Application
from cloudchain.consensus import wal_records
from cloudchain.consensus.events import (
    BlockValidity,
    Broadcast,
    Decide,
    Effect,
    Event,
    EvidenceFound,
    MessageReceived,
    PersistSigned,
    ProposalValue,
    RequestProposal,
    ScheduleTimeout,
    Start,
    TimeoutElapsed,
    ValidateBlock,
)
from cloudchain.consensus.messages import Decision, Message, Proposal, Vote
from cloudchain.consensus.state_machine import (
    NOTHING_SIGNED,
    Consensus,
    ConsensusFactory,
    SignSlot,
    TimeoutConfig,
)
from cloudchain.consensus.validator_set import CommitError, ValidatorSet, verify_commit
from cloudchain.crypto import PrivateKey
from cloudchain.ledger import Block, DuplicateVoteEvidence, evidence_bytes
from cloudchain.node.solo import bft_time_ns, build_block
from cloudchain.node.sync import AnswerLog

WALRecord = tuple[str, Any, int]  # (kind, event or message, now_ns)

# Decisions kept whole in memory: the last heights. Older ones are rebuilt from the
# block store and their decision record, so that memory does not grow with the
# chain (blocks of 16 MiB made 2 GB in an hour).
DECISIONS_IN_MEMORY = 2  # the last one is needed to propose the next block
# A decision record: a proposal's fields and a commit of up to MAX_VALIDATORS
# signatures (about 150 bytes each).
MAX_RECORD_BYTES = 1024 * 1024


class ConsensusWAL(Protocol):
    def append(self, kind: str, payload: Any, now_ns: int) -> None: ...

    def records(self) -> list[WALRecord]: ...

    def rewrite(self, records: list[WALRecord]) -> None: ...

    def reopen(self) -> None: ...


class SignGuard(Protocol):
    """The validator's last signature, kept apart from the WAL (node/sign_state.py)."""

    def record(self, message: Proposal | Vote) -> None: ...

    def floor(self, height: int) -> tuple[list[Vote], SignSlot]: ...


class ConsensusDriver:
    def __init__(
        self,
        app: Application,
        key: PrivateKey | None,
        timeouts: TimeoutConfig,
        wal: ConsensusWAL,
        *,
        consensus_factory: ConsensusFactory = Consensus,
        sign_guard: SignGuard | None = None,
    ) -> None:
        self.app = app
        self.sign_guard = sign_guard
        self._consensus_factory = consensus_factory
        self.key = key
        self.timeouts = timeouts
        self.wal = wal
        self.validators = list(app.genesis.validators)
        self.validator_set = ValidatorSet(tuple(self.validators))
        self.decided: dict[int, Decide] = {}
        self._answers = AnswerLog()  # the decisions sent to lagging peers (sync.py)
        self._rebuilt: Decision | None = None  # the last old decision rebuilt from the store
        self.core = self._new_core()

    @property
    def chain_id(self) -> str:
        return self.app.genesis.chain_id

    # --- what the environment supplies ---------------------------------------------------

    def now_ns(self) -> int:
        """The consensus clock: what the WAL records with each event, and what the core
        stamps proposals and votes with."""
        raise NotImplementedError

    def monotonic_ns(self) -> int:
        """A clock for durations, which never steps back: how far apart decisions are
        sent to a lagging peer. Its readings are only compared with each other, never
        stored or sent. By default the consensus clock (the simulator's is virtual,
        and never steps back either)."""
        return self.now_ns()

    def broadcast(self, message: Message) -> None:
        raise NotImplementedError

    def schedule_timeout(self, delay_ms: int, event: TimeoutElapsed) -> None:
        raise NotImplementedError

    def defer(self, event: Event) -> None:
        """Handle `event` after the effects being executed now."""
        raise NotImplementedError

    def candidates(self, height: int) -> Sequence[bytes]:
        """Transactions the application may put into a block of `height`."""
        return ()

    def evidence_candidates(self, height: int) -> Sequence[DuplicateVoteEvidence]:
        """Evidence of misbehaviour a block of `height` may carry (the node's pool)."""
        return ()

    def before_effect(self) -> bool:
        """False stops executing the current effects (the simulator's crashes)."""
        return True

    def before_commit(self, decision: Decide) -> None:
        """A look at a decision before it is committed (the simulator's checks)."""

    def on_evidence(self, evidence: EvidenceFound) -> None:
        """A validator equivocated."""

    def on_commit(self, decision: Decide) -> None:
        """A decided block is now committed (the node updates its mempool, logs, notifies)."""

    # --- events in --------------------------------------------------------------------------

    def handle(self, event: Event) -> None:
        if isinstance(event, MessageReceived) and self.core.knows(event.message):
            return  # a copy of what the core holds: not worth a WAL record
        now = self.now_ns()
        self.wal.append("event", event, now)
        self._execute(self.core.handle(event, now), replay=False)

    def recover(self) -> int:
        """After a restart: rebuild the core from the application and the WAL, then start.
        Returns the number of WAL records replayed."""
        self.wal.reopen()
        self.core = self._new_core()
        records = self.wal.records()
        for kind, payload, _ in records:
            if kind == "decided":
                self.decided[payload.height] = Decide(
                    payload.height, payload.proposal.block, payload.commit, payload.proposal
                )
        for kind, payload, now_ns in records:
            if kind == "event":
                self._execute(self.core.handle(payload, now_ns), replay=True)
        self._restore_last_decision()
        self.handle(Start())
        return len(records)

    def _restore_last_decision(self) -> None:
        """The last commit, from the store's decision record, if the WAL lost its own
        (a damaged WAL whose tail recovery cut off): proposing the next block needs it."""
        height = self.app.info().height
        if height < 1 or height in self.decided:
            return
        decision = self.decision(height)
        if decision is not None:
            proposal = decision.proposal
            self.decided[height] = Decide(height, proposal.block, decision.commit, proposal)

    def decision(self, height: int) -> Decision | None:
        """What decided `height`, as one message for a peer that lags behind: kept
        whole for the last heights, rebuilt from the store for older ones (the last
        one rebuilt is kept, as a catching-up peer may ask for it again)."""
        decided = self.decided.get(height)
        if decided is not None:
            return Decision(decided.proposal, decided.commit)
        if self._rebuilt is not None and self._rebuilt.height == height:
            return self._rebuilt
        store = self.app.store
        record, block = self._decision_record(height), store.block(height)
        if record is None or block is None:
            return None
        proposal = {**record["decision"]["proposal"], "block": block.to_bytes()}
        self._rebuilt = Decision.from_obj({**record["decision"], "proposal": proposal})
        return self._rebuilt

    def decision_bytes(self, height: int) -> int | None:
        """The size of the block that decided `height`, without loading it; None if this
        node has no decision of that height."""
        decided = self.decided.get(height)
        if decided is not None:
            return len(decided.block.to_bytes())
        record = self._decision_record(height)
        return None if record is None else int(record["block_bytes"])

    def _decision_record(self, height: int) -> Any:
        raw = self.app.store.decision_record(height)
        return None if raw is None else codec.decode(raw, max_bytes=MAX_RECORD_BYTES)

    def may_answer(self, peer: Hashable, height: int, every_ns: int, gap_ns: int = 0) -> bool:
        """Whether to send `peer` the decision of `height` now (sync.py's AnswerLog)."""
        return self._answers.may_answer(peer, height, self.monotonic_ns(), every_ns, gap_ns)

    def note_answered(self, peer: Hashable, height: int) -> None:
        self._answers.note_answered(peer, height, self.monotonic_ns())

    def decision_for_peer(self, peer: Hashable, height: int, every_ns: int) -> Decision | None:
        """The decision of `height` for a lagging `peer`, if `may_answer`, counted as
        sent (the simulator's network takes every message)."""
        if not self.may_answer(peer, height, every_ns):
            return None
        decision = self.decision(height)
        if decision is not None:
            self.note_answered(peer, height)
        return decision

    def _new_core(self) -> Consensus:
        info = self.app.info()
        height = info.height + 1
        signed = [m for kind, m, _ in self.wal.records() if kind == "signed" and m.height == height]
        floor = NOTHING_SIGNED
        if self.sign_guard is not None:
            kept, floor = self.sign_guard.floor(height)
            signed += [m for m in kept if m not in signed]
        return self._consensus_factory(
            self.chain_id,
            self.validators,
            self.key,
            self.timeouts,
            height,
            info.last_block_time_ns,
            signed,
            sign_floor=floor,
        )

    # --- effects out ------------------------------------------------------------------------

    def _execute(self, effects: list[Effect], replay: bool) -> None:
        for effect in effects:
            if not replay and not self.before_effect():
                return
            self._effect(effect)

    def _effect(self, effect: Effect) -> None:
        if isinstance(effect, PersistSigned):
            self.wal.append("signed", effect.message, self.now_ns())
            if self.sign_guard is not None:
                self.sign_guard.record(effect.message)
        elif isinstance(effect, Broadcast):
            self.broadcast(effect.message)
        elif isinstance(effect, ScheduleTimeout):
            event = TimeoutElapsed(effect.height, effect.round, effect.kind)
            self.schedule_timeout(effect.duration_ms, event)
        elif isinstance(effect, RequestProposal):
            block = self.build_block(effect.height)
            self.defer(ProposalValue(effect.height, effect.round, block))
        elif isinstance(effect, ValidateBlock):
            self.defer(BlockValidity(effect.block.hash, self.is_valid(effect.block)))
        elif isinstance(effect, Decide):
            self._decide(effect)
        elif isinstance(effect, EvidenceFound):
            self.on_evidence(effect)

    def _remember(self, decision: Decide) -> None:
        """Keep the decision whole for a while and as a record for good (see `decision`)."""
        self.decided[decision.height] = decision
        obj = Decision(decision.proposal, decision.commit).to_obj()
        obj["proposal"]["block"] = b""  # the block store has it
        record = {"decision": obj, "block_bytes": len(decision.block.to_bytes())}
        self.app.store.put_decision(decision.height, codec.encode(record))
        for height in [h for h in self.decided if h <= decision.height - DECISIONS_IN_MEMORY]:
            del self.decided[height]

    def build_block(self, height: int, candidates: Sequence[bytes] | None = None) -> Block:
        assert self.key is not None, "only a validator proposes"
        assert self.app.info().height == height - 1, "the app is one height behind consensus"
        last = self.decided.get(height - 1)
        if last is None and height > 1:
            raise AssertionError("the commit of the previous height is needed to propose")
        last_commit = None if last is None else last.commit
        time_ns = bft_time_ns(self.app, last_commit)
        evidence = self.app.select_evidence(self.evidence_candidates(height), height, time_ns)
        txs = self.app.prepare_proposal(
            self.candidates(height) if candidates is None else candidates,
            reserved_bytes=evidence_bytes(evidence),
        )
        return build_block(self.app, txs, self.key, last_commit, time_ns, evidence)

    def is_valid(self, block: Block) -> bool:
        """valid(v): the last commit proves the previous block, and the app accepts it."""
        if self.app.info().height != block.height - 1:
            return False
        if block.last_commit is not None:
            try:
                verify_commit(
                    self.chain_id, self.validator_set, block.last_commit, block.height - 1
                )
            except CommitError:
                return False
        return self.app.process_proposal(block).accept

    def _decide(self, decision: Decide) -> None:
        height = self.app.info().height
        if height >= decision.height:
            # Decided again during a WAL replay; already committed. A crash between the
            # commit and its records left them unwritten: the last one is needed to
            # propose the next block and to answer a lagging peer.
            if height == decision.height and height not in self.decided:
                self._remember(decision)
            return
        self.before_commit(decision)
        self.app.finalize_block(decision.block)
        self.app.commit()
        self._remember(decision)
        keep = wal_records.keep_after_commit
        self.wal.rewrite([r for r in self.wal.records() if keep(r[0], r[1], decision.height)])
        # The commit of the last height is needed to propose the next block, and no
        # block holds it yet: the WAL keeps it.
        self.wal.append("decided", Decision(decision.proposal, decision.commit), self.now_ns())
        self.on_commit(decision)
