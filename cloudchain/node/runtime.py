"""A running node: the consensus driver on asyncio, with peers, a mempool and a gossip loop.

This is the only place besides the command line that owns the event loop. It
reads the node's home (config.toml, genesis.json, keys), opens the LevelDB
store and the WAL file, recovers consensus from them, connects to its peers
and then only reacts: peer messages and timers become consensus events,
consensus effects become messages and timers.

Wire messages are canonical msgpack maps {"ch": channel, "m": payload}:
"consensus" carries proposals, votes and decisions; "tx" carries raw
transactions, a list of them (a batch: what became ready here since the last
loop tick, at most TX_BATCH_MAX_TXS and TX_BATCH_MAX_BYTES, one message per peer
instead of one per transaction), or, as nodes before batching sent, one raw
transaction alone (still accepted); "evidence" carries a piece of evidence of a
double vote (ledger.DuplicateVoteEvidence's map; node/evidence_pool.py), kept and
passed on only if the application finds it valid; "sync" carries {"height": h}, a
lagging node's request for the decision of height h (block sync: the answer is a
Decision, verified against the validator set before the block is applied); "blob"
carries the blob exchange's
messages (blobs/exchange/messages.py), queued behind everything else (the peer
manager's bulk queue), so a transfer of gigabytes never holds up a vote.
Anything a peer sends that does not decode is a PeerError: the peer is
disconnected, the node goes on.

The policies are elsewhere, pure: whom to ask for a block, whom to answer and
what counts as catching up in sync.py, what each peer already has of the
consensus messages in gossip.py. The RPC server (rpc/) sees this node as a
NodeView (rpc/view.py), which `Node` satisfies (tests/test_node_view.py checks
every member).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cloudchain import codec
from cloudchain.blobs.cid import CID
from cloudchain.blobs.exchange import BlobExchange
from cloudchain.blobs.store import BlobStore, LeasePolicy
from cloudchain.chaincode.application import Application
from cloudchain.chaincode.codes import Code
from cloudchain.chaincode.modules.storage import anchored_cids
from cloudchain.consensus.events import (
    Decide,
    Event,
    EvidenceFound,
    MessageReceived,
    TimeoutElapsed,
    TimeoutKind,
)
from cloudchain.consensus.messages import (
    NIL,
    Decision,
    Message,
    Proposal,
    Vote,
    VoteType,
    message_from_obj,
)
from cloudchain.consensus.validator_set import CommitError, verify_commit
from cloudchain.crypto import read_key_file
from cloudchain.genesis import Genesis
from cloudchain.ledger import MAX_BLOCK_BYTES, Commit, DuplicateVoteEvidence, MalformedError
from cloudchain.logfields import fields
from cloudchain.network.peers import PeerAddress, PeerManager
from cloudchain.network.secret_connection import PeerError
from cloudchain.node import sync
from cloudchain.node.config import NodeConfig
from cloudchain.node.consensus_wal import FileWAL
from cloudchain.node.driver import ConsensusDriver
from cloudchain.node.evidence_pool import EvidencePool, EvidenceRefused
from cloudchain.node.gossip import LARGE_MESSAGE_BYTES, GossipMemory
from cloudchain.node.mempool import Admission, Mempool
from cloudchain.node.metrics import NodeMetrics
from cloudchain.node.rpc.server import RPCServer
from cloudchain.node.sign_state import FILE_NAME as SIGN_STATE_FILE
from cloudchain.node.sign_state import SignState
from cloudchain.node.storage_failure import describe, failure_kind
from cloudchain.node.txinbox import TxInbox
from cloudchain.storage.chain import ChainStore
from cloudchain.storage.kv import LevelDBKV
from cloudchain.storage.wal import WALError

log = logging.getLogger(__name__)

CHANNELS = (
    "consensus",
    "tx",
    "sync",
    "blob",
    "evidence",
)  # the "ch" of a wire message; a metrics label
GOSSIP_INTERVAL_S = 0.2  # also the least time between two same requests of block sync
# Pending evidence is offered again to every peer this often (a peer that connected
# after it was first sent, or whose queue was full, gets it then): a few KB at most.
EVIDENCE_GOSSIP_S = 2.0
MAX_WIRE_BYTES = MAX_BLOCK_BYTES + 64 * 1024
# A gossip batch of transactions: flushed on the next loop tick, or as soon as it holds
# this many transactions or raw bytes (a receiver admits a batch in one go, so its size
# bounds how long a batch holds up the consensus messages of other peers: 64 transfers
# are about 20 ms of admission).
TX_BATCH_MAX_TXS = 64
TX_BATCH_MAX_BYTES = 256 * 1024
# The block a byzantine_equivocate node's second prevote names when its first is nil.
EQUIVOCATION_HASH = hashlib.sha256(b"cloudchain test aid: equivocation").digest()


class Node(ConsensusDriver):
    def __init__(self, home: Path, config: NodeConfig | None = None) -> None:
        self.home = home
        self.config = config or NodeConfig.load(home / "config" / "config.toml")
        genesis = Genesis.load(home / "config" / "genesis.json")
        node_key = read_key_file(home / "config" / "node_key.json")
        validator_key = read_key_file(home / "config" / "priv_validator_key.json")
        is_validator = any(v.public_key == validator_key.public_key for v in genesis.validators)
        self.store = ChainStore(LevelDBKV(home / "data" / "chain"))
        app = Application(self.store, genesis)
        wal = FileWAL(home / "data" / "cs.wal")
        key = validator_key if is_validator else None
        guard = SignState(home / "data" / SIGN_STATE_FILE) if is_validator else None
        super().__init__(app, key, self.config.consensus.timeouts(), wal, sign_guard=guard)
        self._clock_offset_ns = self.config.debug.clock_offset_ms * 1_000_000
        self._last_equivocation = (0, -1)  # (height, round) of the last conflicting prevote
        self.failure: BaseException | None = None  # a storage failure that stopped the node
        self.failed = asyncio.Event()  # set with `failure`: the process must stop
        self.mempool = Mempool(
            app, limits=self.config.mempool.limits(), height=self.app.info().height
        )
        host, _, port = self.config.p2p.listen_address.rpartition(":")
        p2p = self.config.p2p
        self.peers = PeerManager(
            node_key,
            (host, int(port)),
            [PeerAddress.parse(p) for p in p2p.persistent_peers],
            self._on_peer_message,
            (p2p.dial_backoff_min_ms, p2p.dial_backoff_max_ms),
            on_disconnect=self._forget_peer,
        )
        self.commit_listeners: list[Callable[[Decide], None]] = []
        self.metrics = NodeMetrics()
        for channel in CHANNELS:  # every series exists from the start, at 0
            self.metrics.send_bytes.labels(channel)
            self.metrics.receive_bytes.labels(channel)
        self.blobs: BlobStore | None = None  # <home>/data/blobs, open from start to stop
        self.exchange: BlobExchange | None = None  # over self.blobs, from start to stop
        self.rpc = RPCServer(self, self.config.rpc)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle_commit_wait: TimeoutElapsed | None = None  # see schedule_timeout
        self._gossip: asyncio.Task[None] | None = None
        self._sync = sync.PeerSync(ask_again_after_ns=int(GOSSIP_INTERVAL_S * 1e9))  # sync.py
        self._gossip_memory = GossipMemory(GOSSIP_INTERVAL_S)
        self._encoded: dict[bytes, bytes] = {}  # signature -> wire bytes, this height's
        self._tx_batch: list[bytes] = []  # ready transactions to gossip, flushed next tick
        self._tx_batch_bytes = 0
        self._tx_inbox = TxInbox()  # peers' batches, admitted one per loop turn
        self._admission_scheduled = False
        self._stopped = False
        self._last_block_time_ns = self.app.info().last_block_time_ns
        self.evidence = EvidencePool({v.address: v.power for v in genesis.validators})
        self._evidence_offered_s = 0.0  # when pending evidence was last offered to all

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        blobs = self.config.blobs
        policy = LeasePolicy(blobs.max_unanchored_bytes, blobs.unanchored_grace_s * 1_000_000_000)
        self.blobs = await asyncio.to_thread(
            BlobStore, self.home / "data" / "blobs", policy=policy, anchored=self.anchored_cids
        )
        self.exchange = BlobExchange(
            self.blobs,
            self._send_blob_message,
            lambda: self.peers.connected,
            self.peers.node_id,
            wait_for_room=self.peers.wait_for_room,
        )
        await self.peers.start()
        host, _, port = self.config.rpc.listen_address.rpartition(":")
        await self.rpc.start(host, int(port))
        if self.config.debug.active:
            log.warning(
                "TEST AIDS ON: this node is faulty on purpose",
                extra=fields(**dataclasses.asdict(self.config.debug)),
            )
        replayed = self.recover()
        log.info(
            "node recovered",
            extra=fields(
                moniker=self.config.moniker,
                height=self.app.info().height,
                replayed_wal_records=replayed,
            ),
        )
        self._gossip = asyncio.create_task(self._gossip_loop())

    async def stop(self) -> None:
        """Stop serving and close the store; stopping twice is harmless."""
        if self._stopped:
            return
        self._stopped = True
        if self._gossip is not None:
            self._gossip.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._gossip
        await self.rpc.stop()  # waits for the blob transfers in flight
        if self.exchange is not None:
            await self.exchange.close()
        await self.peers.stop()
        if self.blobs is not None:
            await asyncio.to_thread(self.blobs.close)
        self.store.close()

    # --- the driver's environment ------------------------------------------------------------

    def handle(self, event: Event) -> None:
        """The driver's `handle`, until `stop`: a timer or a peer's message that comes
        after it (the store is closed then) is dropped, as a stopped node hears nothing."""
        if self._stopped or self.failure is not None:
            return
        try:
            super().handle(event)
        except (OSError, WALError) as exc:  # plyvel's IOError is an OSError
            self.fail(exc)

    def fail(self, exc: BaseException) -> None:
        """A write to the WAL or the store failed: stop handling events (what is on disk
        is whole: the WAL refuses appends after a failed one, LevelDB its writes after a
        failed log write) and let the process stop, to be started again once the disk
        is fixed; recovery then cuts the WAL back to its last whole record."""
        self.failure = exc
        log.error(
            f"{failure_kind(exc)}: stopping the node; start it again once the disk has room",
            extra=fields(error=describe(exc), height=self.app.info().height),
        )
        self.failed.set()

    def now_ns(self) -> int:
        return time.time_ns() + self._clock_offset_ns  # [debug] clock_offset_ms, a test aid

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()

    def broadcast(self, message: Message) -> None:
        self._offer(message, time.monotonic())
        if self.config.debug.byzantine_equivocate:
            self._equivocate(message)

    def _equivocate(self, message: Message) -> None:
        """[debug] byzantine_equivocate, a test aid: beside each prevote of its own, a
        second prevote of the same height and round for another block (nil for a block,
        a made-up hash for nil), sent once to every peer: a double vote for peers to
        catch, as CometBFT's e2e "double-prevote" misbehaviour."""
        if (
            not isinstance(message, Vote)
            or message.type is not VoteType.PREVOTE
            or self.key is None
            or message.validator_address != bytes.fromhex(self.key.address)
            or (message.height, message.round) <= self._last_equivocation
        ):
            return
        self._last_equivocation = (message.height, message.round)
        other = EQUIVOCATION_HASH if message.is_nil else NIL
        twin = Vote.create(
            self.key,
            self.chain_id,
            VoteType.PREVOTE,
            message.height,
            message.round,
            other,
            message.timestamp_ns,
        )
        self._broadcast_on("consensus", twin.to_obj())

    def schedule_timeout(self, delay_ms: int, event: TimeoutElapsed) -> None:
        """A timer for the core. The wait after a commit is [consensus]
        timeout_commit_ms when the mempool is idle (a block about every second), and
        timeout_commit_busy_ms when transactions are ready: now, or as soon as one
        arrives during the idle wait (`_hurry_commit`). Only the timing changes: a
        commit timeout for a height the core has left is ignored by it."""
        assert self._loop is not None
        if event.kind is TimeoutKind.COMMIT:
            busy_ms = self.config.consensus.timeout_commit_busy_ms
            if self.mempool.ready_count and delay_ms > busy_ms:
                delay_ms = busy_ms
                self._idle_commit_wait = None
            else:
                self._idle_commit_wait = event
        self._loop.call_later(delay_ms / 1000, self.handle, event)

    def _hurry_commit(self) -> None:
        """A transaction became ready while the node waits out an idle commit timeout:
        end that wait after timeout_commit_busy_ms instead."""
        event, self._idle_commit_wait = self._idle_commit_wait, None
        if event is None or event.height != self.core.height:
            return
        assert self._loop is not None
        busy_s = self.config.consensus.timeout_commit_busy_ms / 1000
        self._loop.call_later(busy_s, self.handle, event)

    def defer(self, event: Event) -> None:
        assert self._loop is not None
        self._loop.call_soon(self.handle, event)

    def evidence_candidates(self, height: int) -> list[DuplicateVoteEvidence]:
        return self.evidence.pending()

    def on_evidence(self, evidence: EvidenceFound) -> None:
        """The core verified two conflicting votes of one validator: the pool dates them
        once their height is committed (evidence_pool.py)."""
        vote = evidence.first
        log.warning(
            "duplicate vote",
            extra=fields(
                validator=vote.validator_address.hex(),
                height=vote.height,
                round=vote.round,
                type=vote.type.label,
            ),
        )
        self.metrics.equivocations.inc()
        self.evidence.found(evidence.first, evidence.second)

    def submit_evidence(self, raw: bytes) -> DuplicateVoteEvidence:
        """A client's evidence (broadcast_evidence): kept and gossiped if valid, else
        EvidenceRefused saying why (a MalformedError if it does not decode)."""
        evidence = DuplicateVoteEvidence.from_bytes(raw)
        error = self.app.evidence_error(evidence)
        if error:
            raise EvidenceRefused(error)
        if self.evidence.add(evidence, error):
            self._broadcast_on("evidence", evidence.to_obj())
        return evidence

    def _on_peer_evidence(self, payload: Any) -> None:
        """A peer's evidence: kept and passed on if valid and new. Invalid evidence is
        dropped, not held against the peer: it may be stale (expired, committed since)
        as well as forged, and a forgery costs it nothing it could gain."""
        evidence = DuplicateVoteEvidence.from_obj(payload)
        if self.evidence.add(evidence, self.app.evidence_error(evidence)):
            self._broadcast_on("evidence", evidence.to_obj())

    def _block_time_ns(self, height: int) -> int | None:
        block = self.store.block(height)
        return None if block is None else block.header.time_ns

    def candidates(self, height: int) -> list[bytes]:
        genesis = self.app.genesis
        return self.mempool.reap(max_txs=genesis.max_block_txs, max_bytes=genesis.max_block_bytes)

    def on_commit(self, decision: Decide) -> None:
        self.mempool.update(decision.block.txs, height=decision.height, now_ns=self.monotonic_ns())
        for evidence in self.evidence.update(
            decision.block, self._block_time_ns, self.app.evidence_error
        ):
            self._broadcast_on("evidence", evidence.to_obj())
        self._gossip_promoted()
        self._record_commit(decision)
        ahead = self._sync.on_committed(decision.height)
        if ahead is not None:  # still behind: ask for the next height right away
            self._ask_for_decision(ahead, decision.height + 1)
        log.info(
            "committed",
            extra=fields(
                height=decision.height,
                txs=len(decision.block.txs),
                hash=decision.block.hash.hex()[:16],
                app_hash=self.store.app_hash.hex()[:16],
            ),
        )
        for listener in self.commit_listeners:
            listener(decision)
        results = self.store.block_results(decision.height)
        assert results is not None
        self.rpc.publish_block(decision.block, results)

    def _record_commit(self, decision: Decide) -> None:
        metrics = self.metrics
        metrics.height.set(decision.height)
        metrics.rounds.set(decision.commit.round + 1)
        time_ns = decision.block.header.time_ns
        if decision.height > 1:  # the first block's time is the genesis time, not an interval
            metrics.block_interval.set((time_ns - self._last_block_time_ns) / 1e9)
        self._last_block_time_ns = time_ns
        metrics.txs_committed.inc(len(decision.block.txs))
        self.refresh_metrics()

    def refresh_metrics(self) -> None:
        metrics = self.metrics
        metrics.observe_mempool(self.mempool.stats())
        metrics.peers.set(len(self.peers.connected))
        metrics.refused_peers.set(self.peers.refused_peers)
        metrics.count_refused_messages(self.peers.refused_messages)

    @property
    def catching_up(self) -> bool:
        """Whether a connected peer has proven, with a message a validator signed (or a
        decision's commit certificate), a height beyond the next one (sync.py)."""
        return self._sync.is_catching_up(self.core.height)

    def decided_commit(self, height: int) -> Commit | None:
        """The commit that decided `height`, while the node keeps it whole (driver.py)."""
        decided = self.decided.get(height)
        return None if decided is None else decided.commit

    # --- transactions ----------------------------------------------------------------------

    def submit_tx(self, raw: bytes) -> Admission:
        """Admit a client's transaction into the mempool and gossip it once it is ready
        (a gapped one waits here, unsent, until the nonces before it arrive)."""
        admission = self.mempool.add(raw, now_ns=self.monotonic_ns())
        if admission.ok and not admission.gapped:
            self._gossip_tx(raw)
        elif not admission.ok:
            self.metrics.refused_txs.inc()
        self._gossip_promoted()
        if self.mempool.ready_count:
            self._hurry_commit()
        return admission

    def _gossip_promoted(self) -> None:
        """Gossip the transactions that moved from gapped to ready: no peer may have them
        (gapped ones are never sent); one that has them answers nothing."""
        for raw in self.mempool.take_promoted():
            self._gossip_tx(raw)

    def _gossip_tx(self, raw: bytes) -> None:
        """Add a ready transaction to the batch for every peer; the batch goes on the next
        loop tick (the RPC request or peer message that made it is answered first), or
        now if it reached its bounds."""
        if not self._tx_batch and self._loop is not None:
            self._loop.call_soon(self.flush_tx_gossip)
        self._tx_batch.append(raw)
        self._tx_batch_bytes += len(raw)
        if len(self._tx_batch) >= TX_BATCH_MAX_TXS or self._tx_batch_bytes >= TX_BATCH_MAX_BYTES:
            self.flush_tx_gossip()

    def flush_tx_gossip(self) -> None:
        """Send the transactions batched so far to every peer, as one message (a no-op
        when there are none: the tick scheduled for a batch flushed early)."""
        if not self._tx_batch:
            return
        batch, self._tx_batch, self._tx_batch_bytes = self._tx_batch, [], 0
        data = _envelope("tx", batch)
        queued = self.peers.broadcast(data, gossip=True)
        self.metrics.send_bytes.labels("tx").inc(len(data) * queued)

    def admit_gossiped_txs(self, max_batches: int | None = None) -> None:
        """Admit the peers' batches waiting in the inbox, oldest first: `max_batches` of
        them (the loop's turn takes one), or all. Its sender gossiped each transaction
        to everyone: a ready one is not sent on."""
        taken = 0
        while max_batches is None or taken < max_batches:
            batch = self._tx_inbox.take()
            if batch is None:
                break
            taken += 1
            for raw in batch:
                admission = self.mempool.add(raw, now_ns=self.monotonic_ns())
                if not admission.ok and admission.code != Code.TX_IN_MEMPOOL:
                    self.metrics.refused_txs.inc()  # a second peer's copy is no refusal
        if taken:
            self._gossip_promoted()
            if self.mempool.ready_count:
                self._hurry_commit()

    def _schedule_gossip_admission(self) -> None:
        if self._admission_scheduled or self._loop is None:
            return
        self._admission_scheduled = True
        self._loop.call_soon(self._admission_turn)

    def _admission_turn(self) -> None:
        """One batch per turn of the loop: what was read meanwhile (a vote, a proposal)
        is handled before the next one."""
        self._admission_scheduled = False
        if self._stopped:
            return
        self.admit_gossiped_txs(max_batches=1)
        if len(self._tx_inbox):
            self._schedule_gossip_admission()

    # --- peers -------------------------------------------------------------------------------

    def _on_peer_message(self, peer_id: str, data: bytes) -> None:
        if self._stopped:
            return  # a message read as the node stopped: its store may be closed
        try:
            envelope = codec.decode(data, max_bytes=MAX_WIRE_BYTES)
            channel, payload = envelope["ch"], envelope["m"]
            if channel not in CHANNELS:
                raise MalformedError(f"unknown channel {channel!r}")
            self.metrics.receive_bytes.labels(channel).inc(len(data))
            if channel == "tx":  # admitted on a later turn of the loop (txinbox.py)
                if self._tx_inbox.put(_gossiped_txs(payload)):
                    self._schedule_gossip_admission()
                else:
                    self.metrics.dropped_gossip_txs.inc(len(payload))
                return
            if channel == "sync":
                self._help_lagging_peer(peer_id, _height(payload), asked=True)
                return
            if channel == "blob":
                if self.exchange is not None:  # ExchangeProtocolError is a MalformedError
                    self.exchange.on_message(peer_id, payload)
                return
            if channel == "evidence":
                self._on_peer_evidence(payload)
                return
            message = message_from_obj(payload)
        except (codec.CodecError, MalformedError, KeyError, TypeError) as exc:
            raise PeerError(f"undecodable message: {exc}") from None
        if isinstance(message, Proposal | Vote):  # the peer has it: never send it back
            self._gossip_memory.note_received(peer_id, message.signature, message.height)
        height, core_height = message.height, self.core.height
        # A decision of height h shows that its sender decided h: it is at h + 1 at least,
        # and answering (we asked, or it took us to lag), not lagging itself. Taken for a
        # message of h, it made two nodes send each other the same old decisions, each
        # with its block, several times a second and for ever.
        decision = isinstance(message, Decision)
        if self._sync.note_height(peer_id, height + 1 if decision else height):
            self._gossip_memory.peer_advanced(peer_id)  # it may need now what it dropped
        proves_more = self._sync.needs_proof(peer_id, height, core_height)
        if proves_more and self._is_signed_by_validators(message):  # once, unless forged
            self._sync.note_proven(peer_id, height)
        if decision:  # one of our height is what we would ask for; an older one is stale
            self.handle(MessageReceived(message))
            return
        if sync.is_lagging(height, core_height):
            self._help_lagging_peer(peer_id, height, asked=False)
        elif sync.is_behind(height, core_height, self.store.height):
            self._ask_for_decision(peer_id, core_height)
        self.handle(MessageReceived(message))

    def _is_signed_by_validators(self, message: Message) -> bool:
        if message.chain_id != self.chain_id:
            return False
        if isinstance(message, Decision):
            try:
                verify_commit(self.chain_id, self.validator_set, message.commit, message.height)
            except CommitError:
                return False
            return True
        signer = (
            message.validator_address if isinstance(message, Vote) else (message.proposer_address)
        )
        validator = self.validator_set.get(signer)
        return validator is not None and message.verify(validator.public_key)

    def _forget_peer(self, peer_id: str) -> None:
        """A peer disconnected: what it showed no longer counts."""
        self._sync.forget_peer(peer_id)
        self._gossip_memory.forget_peer(peer_id)
        if self.exchange is not None:
            self.exchange.on_peer_disconnected(peer_id)

    # --- blobs -------------------------------------------------------------------------------

    def _send_blob_message(self, peer_id: str, obj: dict[str, Any]) -> None:
        data = _envelope("blob", obj)
        if self.peers.send(peer_id, data, bulk=True):
            self.metrics.send_bytes.labels("blob").inc(len(data))

    def anchored_cids(self) -> list[CID]:
        """The CIDs anchored on chain at the latest height (storage.anchor), which the
        blob store's garbage collector keeps besides its pins, and whose leases it
        releases (called from the blob store's threads)."""
        return [CID.parse(text) for text in anchored_cids(self.app.state())]

    def _ask_for_decision(self, peer_id: str, height: int) -> None:
        """Block sync: a peer is ahead; ask it for the decision of `height` (it comes
        back as a Decision, whose commit certificate the core verifies before using it)."""
        if self._sync.may_ask(peer_id, height, self.monotonic_ns()):
            self._send_to(peer_id, "sync", {"height": height})

    def _help_lagging_peer(self, peer_id: str, height: int, *, asked: bool) -> None:
        """Send a peer behind us the decision of its height, as sync.py's rules allow:
        they are checked before the block is loaded, and an answer counts only once it
        is queued."""
        size = self.decision_bytes(height)
        if size is None:
            return
        resend_after_ns = int(self._gossip_memory.resend_after_s(size) * 1e9)
        spacing = sync.answer_spacing(size, asked=asked, resend_after_ns=resend_after_ns)
        if spacing is None or not self.may_answer(
            peer_id, height, spacing.every_ns, spacing.gap_ns
        ):
            return
        decision = self.decision(height)
        if decision is not None and self._send_to(peer_id, "consensus", decision.to_obj()):
            self.note_answered(peer_id, height)

    def _broadcast_on(self, channel: str, payload: Any) -> None:
        data = _envelope(channel, payload)
        queued = self.peers.broadcast(data)
        self.metrics.send_bytes.labels(channel).inc(len(data) * queued)

    def _send_to(self, peer_id: str, channel: str, payload: Any) -> bool:
        """Queue a message for one peer; False if it was not (gone, or its queue full)."""
        data = _envelope(channel, payload)
        if not self.peers.send(peer_id, data):
            return False
        self.metrics.send_bytes.labels(channel).inc(len(data))
        return True

    async def _gossip_loop(self) -> None:
        while True:
            await asyncio.sleep(GOSSIP_INTERVAL_S)  # a period, not a synchronisation
            self._gossip_memory.prune(self.core.height)  # what peers had of past heights
            messages = self.core.gossip_messages()
            keep = {m.signature for m in messages if isinstance(m, Proposal | Vote)}
            self._encoded = {k: v for k, v in self._encoded.items() if k in keep}
            now = time.monotonic()
            for message in messages:
                self._offer(message, now)
            if len(self.evidence) and now - self._evidence_offered_s >= EVIDENCE_GOSSIP_S:
                self._evidence_offered_s = now
                for evidence in self.evidence.pending():
                    self._broadcast_on("evidence", evidence.to_obj())

    def _offer(self, message: Message, now_s: float) -> None:
        """Send a consensus message to the connected peers that lack it (gossip.py)."""
        if not isinstance(message, Proposal | Vote):
            self._broadcast_on("consensus", message.to_obj())
            return
        key = message.signature
        data = self._encoded.get(key)
        if data is None:
            data = self._encoded[key] = _envelope("consensus", message.to_obj())
        peers = self.peers.connected
        if len(data) > LARGE_MESSAGE_BYTES:
            # A peer two heights behind would drop it (it keeps only the next height's).
            peers = [p for p in peers if self._sync.may_hold(p, message.height)]
        for peer in self._gossip_memory.peers_lacking(key, len(data), peers, now_s):
            if self.peers.send(peer, data):
                self._gossip_memory.note_sent(peer, key, message.height, now_s)
                self.metrics.send_bytes.labels("consensus").inc(len(data))


def _gossiped_txs(payload: Any) -> Sequence[bytes]:
    """The raw transactions of a "tx" message: a batch (an array, decoded as a tuple), or
    one alone (bytes, as nodes before batching send it)."""
    if isinstance(payload, bytes):
        return (payload,)
    if not isinstance(payload, tuple) or not all(isinstance(raw, bytes) for raw in payload):
        raise MalformedError("tx payload must be bytes or a list of bytes")
    if len(payload) > TX_BATCH_MAX_TXS:
        raise MalformedError(
            f"tx batch of {len(payload)} transactions (at most {TX_BATCH_MAX_TXS})"
        )
    return payload


def _height(payload: Any) -> int:
    height = payload["height"]
    if not isinstance(height, int) or isinstance(height, bool) or height < 1:
        raise MalformedError("sync request: height must be a positive integer")
    return height


def _envelope(channel: str, payload: Any) -> bytes:
    assert channel in CHANNELS, channel
    return codec.encode({"ch": channel, "m": payload})
