"""The replicated application, shaped after ABCI 2.0.

    check_tx          may this transaction enter the mempool?
    prepare_proposal  which of these candidate transactions go into my block?
    process_proposal  is this proposed block valid?
    finalize_block    execute a decided block; return its results and app hash
    commit            make the finalized block durable (one atomic write)
    query             read state at a height through a module's query path

A transaction passes three gates, in this order:

1. Stateless checks: size, decoding, chain id, signature, a known
   `module.method`, well-formed arguments. A transaction failing one is
   invalid: it never enters the mempool, and a block carrying it is rejected.
2. The nonce: it must equal the sender's count of included transactions.
   A block whose transactions break the nonce sequence is rejected too.
3. The handler. It may fail (insufficient funds, unauthorized): then none of
   its writes apply, its result carries a non-zero code and a log, and its
   nonce is still consumed, so that the same signed bytes can never run again.

The application owns no clock and no I/O of its own: state and blocks come
from the `ChainStore` it is given, time from the block header.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from cloudchain import codec
from cloudchain.chaincode.auth import (
    AUTH,
    AUTHORITY_KEY,
    GENESIS_HASH_KEY,
    get_nonce,
    nonce_key,
)
from cloudchain.chaincode.codes import AUTH_CODESPACE, Code
from cloudchain.chaincode.context import BlockContext, Context, EventLog, Overlay, StateReader
from cloudchain.chaincode.market import MARKET
from cloudchain.chaincode.module import ArgError, Module, QueryError, TxError, TxMethod
from cloudchain.chaincode.modules.storage import STORAGE
from cloudchain.chaincode.modules.token import TOKEN, get_balance
from cloudchain.genesis import Genesis, GenesisError
from cloudchain.ledger import (
    MAX_LOG_CHARS,
    MAX_TX_BYTES,
    MAX_TX_RESULT_BYTES,
    TX_FRAMING_BYTES,
    Block,
    Event,
    MalformedError,
    TooLargeError,
    Transaction,
    TxResult,
    block_overhead_bytes,
    txs_hash,
)
from cloudchain.logfields import fields
from cloudchain.storage.chain import (
    MAX_BLOCK_EVENTS,
    BlockResults,
    ChainStore,
    StateDiff,
    StoreError,
)

log = logging.getLogger(__name__)

DEFAULT_MODULES: tuple[Module, ...] = (AUTH, TOKEN, MARKET, STORAGE)

# How far ahead of the committed nonce check_tx accepts a transaction, so that a
# client may submit several in a row before the first is included.
MAX_NONCE_LEAD = 64


class InvalidBlockError(RuntimeError):
    """finalize_block was handed a block that process_proposal rejects: a consensus bug."""


@dataclass(frozen=True)
class CheckResult:
    """The verdict on one transaction before any handler runs."""

    code: Code
    log: str
    tx: Transaction | None = None
    fee: int = 0  # shim: 0 until transactions carry fees (CONTRACT.md)
    cost: int = 0  # shim: what the transaction can take from the sender's balance

    @property
    def ok(self) -> bool:
        return self.code == Code.OK

    @property
    def codespace(self) -> str:
        return "" if self.ok else AUTH_CODESPACE


@dataclass(frozen=True)
class ProposalVerdict:
    accept: bool
    reason: str = ""


@dataclass(frozen=True)
class FinalizeResult:
    tx_results: tuple[TxResult, ...]
    app_hash: bytes
    block_events: tuple[Event, ...] = ()


@dataclass(frozen=True)
class CommitResult:
    height: int
    app_hash: bytes


@dataclass(frozen=True)
class AppInfo:
    height: int  # 0 before the first block
    app_hash: bytes
    last_block_hash: bytes  # empty before the first block
    last_results_hash: bytes  # of the last block's results (of none before the first)
    last_block_time_ns: int  # the genesis time before the first block


@dataclass(frozen=True)
class QueryResult:
    code: Code
    log: str
    value: bytes  # canonical msgpack of the answer; empty on error
    height: int


class _CommittedState:
    """The latest committed state as a StateReader."""

    def __init__(self, store: ChainStore, height: int | None = None) -> None:
        self._store = store
        self._height = height

    def get(self, key: bytes) -> bytes | None:
        return self._store.get(key, self._height)

    def iterate(self, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        return self._store.iterate(prefix, self._height)


@dataclass
class _Pending:
    """A finalized block awaiting commit."""

    block: Block
    diff: StateDiff
    results: tuple[TxResult, ...]
    block_events: tuple[Event, ...]


class Application:
    def __init__(
        self,
        store: ChainStore,
        genesis: Genesis,
        modules: Sequence[Module] = DEFAULT_MODULES,
    ) -> None:
        self._store = store
        self._genesis = genesis
        self._modules = {m.name: m for m in modules}
        assert len(self._modules) == len(modules), "two modules share a name"
        self._pending: _Pending | None = None
        # The last block process_proposal accepted, so that finalize_block of the
        # same block does not verify every signature a second time.
        self._accepted: bytes | None = None
        self._validator_powers = {v.address: v.power for v in genesis.validators}
        if store.height < 0:
            self._init_chain()
        elif store.get(GENESIS_HASH_KEY) != codec.encode(genesis.hash):
            raise GenesisError("the store was initialised from a different genesis file")

    @property
    def genesis(self) -> Genesis:
        return self._genesis

    @property
    def store(self) -> ChainStore:
        return self._store

    # --- genesis -----------------------------------------------------------------------

    def _init_chain(self) -> None:
        """Write the genesis state as height 0 (ABCI InitChain)."""
        kv = Overlay(_CommittedState(self._store))
        kv.set(GENESIS_HASH_KEY, codec.encode(self._genesis.hash))
        kv.set(AUTHORITY_KEY, codec.encode(self._genesis.authority))
        unknown = sorted(set(self._genesis.params) - set(self._modules))
        if unknown:
            raise GenesisError(f"genesis.app_state.params: unknown module(s) {unknown}")
        for name in sorted(self._modules):
            handler = self._modules[name].genesis_handler
            if handler is not None:
                try:
                    handler(kv, self._genesis)
                except (ValueError, TypeError) as exc:
                    raise GenesisError(str(exc)) from None
        self._store.commit(self._store.diff(kv.writes))

    # --- info and queries ----------------------------------------------------------------

    def info(self) -> AppInfo:
        last = self._store.last_block
        return AppInfo(
            height=self._store.height,
            app_hash=self._store.app_hash,
            last_block_hash=b"" if last is None else last.hash,
            last_results_hash=self._store.last_results_hash,
            last_block_time_ns=(
                self._genesis.genesis_time_ns if last is None else last.header.time_ns
            ),
        )

    def query(self, path: str, data: bytes = b"", height: int = 0) -> QueryResult:
        """Answer `/<module>/<name>` at `height` (0: the latest committed height)."""
        latest = self._store.height
        if height == 0:
            height = latest
        if not 0 <= height <= latest:
            return QueryResult(
                Code.HEIGHT_NOT_AVAILABLE,
                f"height {height} is not available (latest is {latest})",
                b"",
                latest,
            )
        parts = path.split("/")
        if len(parts) != 3 or parts[0] != "":
            return QueryResult(
                Code.UNKNOWN_QUERY,
                f"query path {path[:100]!r} is not /<module>/<name>",
                b"",
                height,
            )
        module = self._modules.get(parts[1])
        handler = None if module is None else module.queries.get(parts[2])
        if handler is None:
            message = f"unknown query path {path[:100]!r}"
            return QueryResult(Code.UNKNOWN_QUERY, message, b"", height)
        try:
            answer = handler(_CommittedState(self._store, height), data)
        except QueryError as exc:
            return QueryResult(exc.code, exc.log, b"", height)
        return QueryResult(Code.OK, "", codec.encode(answer), height)

    def nonce(self, address: str) -> int:
        """The nonce the sender's next transaction must carry (committed state)."""
        return get_nonce(_CommittedState(self._store), address)

    def balance(self, address: str) -> int:
        """The sender's balance in token units (committed state)."""
        return get_balance(_CommittedState(self._store), address)

    # --- mempool admission -----------------------------------------------------------

    def check_tx(self, raw: bytes, *, pending_cost: int = 0) -> CheckResult:
        """Stateless checks, and a nonce not yet used and at most MAX_NONCE_LEAD ahead.
        (shim: `pending_cost` is ignored until transactions carry fees.)"""
        result = self._check_stateless(raw)
        if not result.ok:
            return result
        tx = result.tx
        assert tx is not None
        return self._check_nonce(tx, result)

    def recheck_tx(self, tx: Transaction, *, pending_cost: int = 0) -> CheckResult:
        """check_tx's stateful checks on a transaction check_tx already decoded and
        verified: no decoding, no signature verification. (shim: the nonce only.)"""
        return self._check_nonce(tx, CheckResult(Code.OK, "", tx))

    def _check_nonce(self, tx: Transaction, result: CheckResult) -> CheckResult:
        expected = self.nonce(tx.sender_address)
        if tx.nonce < expected:
            return _refuse(Code.NONCE_TOO_LOW, f"nonce {tx.nonce} already used; next is {expected}")
        if tx.nonce > expected + MAX_NONCE_LEAD:
            return _refuse(
                Code.NONCE_TOO_HIGH,
                f"nonce {tx.nonce} is more than {MAX_NONCE_LEAD} ahead of the next ({expected})",
            )
        return result

    def _check_stateless(self, raw: bytes | Transaction) -> CheckResult:
        if isinstance(raw, Transaction):
            tx = raw
            if len(tx.to_bytes()) > MAX_TX_BYTES:
                return _refuse(Code.TX_TOO_LARGE, f"transaction exceeds {MAX_TX_BYTES} bytes")
        else:
            try:
                tx = Transaction.from_bytes(raw)
            except TooLargeError as exc:
                return _refuse(Code.TX_TOO_LARGE, str(exc))
            except MalformedError as exc:
                return _refuse(Code.MALFORMED_TX, str(exc))
        if tx.chain_id != self._genesis.chain_id:
            return _refuse(
                Code.WRONG_CHAIN_ID,
                f"chain id {tx.chain_id!r} is not this chain's ({self._genesis.chain_id!r})",
            )
        if not tx.verify_signature():
            return _refuse(Code.BAD_SIGNATURE, "signature does not verify against the sender key")
        module = self._modules.get(tx.module)
        if module is None:
            return _refuse(Code.UNKNOWN_MODULE, f"unknown module {tx.module!r}")
        method = module.methods.get(tx.method)
        if method is None:
            return _refuse(Code.UNKNOWN_METHOD, f"module {tx.module!r} has no method {tx.method!r}")
        try:
            method.check_args(tx.args)
        except ArgError as exc:
            return _refuse(Code.INVALID_ARGS, f"{tx.module}.{tx.method}: {exc}")
        return CheckResult(Code.OK, "", tx)

    # --- proposals -------------------------------------------------------------------------

    def prepare_proposal(self, candidates: Sequence[bytes]) -> tuple[Transaction, ...]:
        """Pick, in the given order, the candidates that make a valid block.

        Invalid transactions and those whose nonce does not follow the sender's
        previous one are skipped; the block stops growing at the genesis limits.
        """
        chosen: list[Transaction] = []
        next_nonce: dict[str, int] = {}
        size = 0
        for raw in candidates:
            if len(chosen) >= self._genesis.max_block_txs:
                break
            result = self._check_stateless(raw)
            if not result.ok:
                continue
            tx = result.tx
            assert tx is not None
            sender = tx.sender_address
            expected = next_nonce.get(sender)
            if expected is None:
                expected = self.nonce(sender)
            if tx.nonce != expected:
                continue
            tx_size = len(tx.to_bytes()) + TX_FRAMING_BYTES
            if size + tx_size > self._max_txs_bytes():
                continue
            chosen.append(tx)
            size += tx_size
            next_nonce[sender] = expected + 1
        return tuple(chosen)

    def _max_txs_bytes(self) -> int:
        """What the genesis block limit leaves for transactions once the header and
        a last commit signed by every validator are accounted for."""
        overhead = block_overhead_bytes(len(self._genesis.validators))
        return self._genesis.max_block_bytes - overhead

    def process_proposal(self, block: Block) -> ProposalVerdict:
        """Accept `block` only if it extends the committed chain and its transactions pass
        the stateless checks in nonce order. Signatures of the last commit are the
        consensus layer's to verify, against its validator set."""
        # Compared as bytes: dataclass equality would take {"amount": True} for 1.
        if block.to_bytes() == self._accepted and block.height == self._store.height + 1:
            return ProposalVerdict(True)
        reason = self._header_error(block)
        if reason:
            return ProposalVerdict(False, reason)
        if len(block.to_bytes()) > self._genesis.max_block_bytes:
            return ProposalVerdict(False, "block exceeds the genesis max_bytes")
        if len(block.txs) > self._genesis.max_block_txs:
            return ProposalVerdict(False, "block exceeds the genesis max_txs")
        next_nonce: dict[str, int] = {}
        for index, tx in enumerate(block.txs):
            result = self._check_stateless(tx)
            if not result.ok:
                return ProposalVerdict(False, f"tx {index}: {result.log}")
            sender = tx.sender_address
            expected = next_nonce.get(sender)
            if expected is None:
                expected = self.nonce(sender)
            if tx.nonce != expected:
                return ProposalVerdict(False, f"tx {index}: nonce {tx.nonce}, expected {expected}")
            next_nonce[sender] = expected + 1
        self._accepted = block.to_bytes()
        return ProposalVerdict(True)

    def _header_error(self, block: Block) -> str:
        """Why the header does not extend the committed chain, or '' if it does."""
        header = block.header
        info = self.info()
        expected_height = info.height + 1
        checks = (
            (header.chain_id == self._genesis.chain_id, f"chain id {header.chain_id!r}"),
            (
                header.height == expected_height,
                f"height {header.height}, expected {expected_height}",
            ),
            (header.last_block_hash == info.last_block_hash, "last_block_hash mismatch"),
            (header.app_hash == info.app_hash, "app_hash is not the committed state's"),
            (header.last_results_hash == info.last_results_hash, "last_results_hash mismatch"),
            (header.data_hash == txs_hash(block.txs), "data_hash does not match the transactions"),
            (header.validators_hash == self._genesis.validators_hash, "validators_hash mismatch"),
            (
                any(v.address == header.proposer_address for v in self._genesis.validators),
                "proposer is not a validator",
            ),
            (
                (block.last_commit is None) == (header.height == 1),
                "last_commit must be absent exactly at height 1",
            ),
        )
        for ok, message in checks:
            if not ok:
                return f"invalid header: {message}"
        commit = block.last_commit
        if commit is None:
            if header.last_commit_hash != b"":
                return "invalid header: last_commit_hash must be empty at height 1"
            if header.time_ns != self._genesis.genesis_time_ns:
                return "invalid header: the first block's time must be the genesis time"
            return ""
        if commit.height != header.height - 1 or commit.block_hash != header.last_block_hash:
            return "invalid header: last_commit is not for the previous block"
        if header.last_commit_hash != commit.hash():
            return "invalid header: last_commit_hash mismatch"
        signers = [s.validator_address for s in commit.signatures]
        powers = self._validator_powers
        if not signers or len(set(signers)) != len(signers) or not set(signers) <= set(powers):
            return "invalid header: last_commit names no, unknown or repeated validators"
        if header.time_ns != commit.median_time_ns(powers):
            return "invalid header: time is not the weighted median of the last commit"
        if header.time_ns <= info.last_block_time_ns:
            return "invalid header: time does not advance past the previous block"
        return ""

    # --- execution -----------------------------------------------------------------------

    def finalize_block(self, block: Block) -> FinalizeResult:
        """Execute a decided block. Nothing is durable until `commit`."""
        if self._pending is not None:
            raise InvalidBlockError("finalize_block called twice without commit")
        verdict = self.process_proposal(block)
        if not verdict.accept:
            raise InvalidBlockError(f"block {block.height} is invalid: {verdict.reason}")
        block_kv = Overlay(_CommittedState(self._store))
        results = tuple(
            self._deliver(block_kv, block, index, tx) for index, tx in enumerate(block.txs)
        )
        block_events = self._end_block(block_kv, block)
        diff = self._store.diff(block_kv.writes)
        self._pending = _Pending(block, diff, results, block_events)
        return FinalizeResult(results, diff.app_hash, block_events)

    def _end_block(self, block_kv: Overlay, block: Block) -> tuple[Event, ...]:
        """Every module's end-of-block work, in module order, each atomic: a module whose
        work fails (a bug) has none of its writes applied, the failure is an event, and
        the chain goes on, as every node fails the same way."""
        events: list[Event] = []
        for module in self._modules.values():
            if module.end_block_handler is None:
                continue
            module_kv = Overlay(block_kv)
            log_ = EventLog(limit=MAX_BLOCK_EVENTS - len(events) - 1)
            try:
                module.end_block_handler(
                    BlockContext(block.height, block.header.time_ns, module_kv, log_)
                )
            except (RecursionError, MemoryError):
                raise  # machine-dependent: halting is the safe answer (see _deliver)
            except Exception as exc:
                log.exception(
                    "end-of-block work failed",
                    extra=fields(module=module.name, height=block.height),
                )
                failure = (("module", module.name), ("error", type(exc).__name__))
                events.append(Event("end_block_error", failure))
                continue
            module_kv.merge_into(block_kv)
            events.extend(log_.events)
        return tuple(events)

    def _deliver(self, block_kv: Overlay, block: Block, index: int, tx: Transaction) -> TxResult:
        """Run one transaction whose stateless checks and nonce are already verified."""
        sender = tx.sender_address
        nonce = get_nonce(block_kv, sender)
        assert tx.nonce == nonce, "process_proposal verified the nonce sequence"
        module = self._modules[tx.module]
        method: TxMethod = module.methods[tx.method]
        tx_kv = Overlay(block_kv)
        events = EventLog()
        ctx = Context(sender, block.height, block.header.time_ns, tx_kv, events)
        code, codespace, message = Code.OK, "", ""
        try:
            method.handler(ctx, **method.check_args(tx.args))
        except TxError as exc:
            code, codespace, message = exc.code, module.name, exc.log
        except (RecursionError, MemoryError):
            # These depend on this machine's stack and memory, not on the block:
            # recording them would let nodes disagree. Halting is the safe answer.
            raise
        except Exception as exc:  # a handler bug must not halt the chain; it is recorded
            log.exception(
                "transaction handler failed",
                extra=fields(
                    handler=f"{tx.module}.{tx.method}",
                    height=block.height,
                    index=index,
                    tx=tx.hash.hex(),
                ),
            )
            code, codespace = Code.INTERNAL, module.name
            # Only the exception's type: its text could differ between nodes.
            message = f"internal error in {tx.module}.{tx.method}: {type(exc).__name__}"
        result = TxResult(code, codespace, message[:MAX_LOG_CHARS], (), block.height, index)
        if code == Code.OK:
            message_event = Event(
                "message", (("module", tx.module), ("method", tx.method), ("sender", sender))
            )
            result = dataclasses.replace(result, events=(message_event, *events.events))
            if len(result.to_bytes()) > MAX_TX_RESULT_BYTES:
                result = TxResult(
                    Code.LIMIT_EXCEEDED,
                    module.name,
                    f"events of {tx.module}.{tx.method} exceed {MAX_TX_RESULT_BYTES} bytes",
                    (),
                    block.height,
                    index,
                )
        if result.ok:
            tx_kv.merge_into(block_kv)
        block_kv.set_value(nonce_key(sender), nonce + 1)  # consumed even on failure
        return result

    def commit(self) -> CommitResult:
        """Write the finalized block, its results and its state changes atomically."""
        pending = self._pending
        if pending is None:
            raise StoreError("commit without a finalized block")
        self._store.commit(
            pending.diff, pending.block, BlockResults(pending.results, pending.block_events)
        )
        self._pending = None
        return CommitResult(pending.block.height, pending.diff.app_hash)

    def state(self) -> StateReader:
        """A reader of the latest committed state."""
        return _CommittedState(self._store)


def _refuse(code: Code, message: str) -> CheckResult:
    return CheckResult(code, message[:MAX_LOG_CHARS])
