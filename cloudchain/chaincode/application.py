"""The replicated application, shaped after ABCI 2.0.

    check_tx          may this transaction enter the mempool?
    prepare_proposal  which of these candidate transactions go into my block?
    process_proposal  is this proposed block valid?
    finalize_block    execute a decided block; return its results and app hash
    commit            make the finalized block durable (one atomic write)
    query             read state at a height through a module's query path

A transaction passes these gates, in this order:

1. Stateless checks: size, decoding, chain id, a known `module.method`,
   well-formed arguments, the signature. A transaction failing one is invalid: it
   never enters the mempool, and a block carrying it is rejected. A signature is
   verified once per node (signatures.py remembers those that verified), and
   check_tx verifies it last, after 2-4: what the state refuses costs no verification.
2. The fee: at least the genesis schedule's minimum for its bytes and method
   (cloudchain/fees.py), else FEE_TOO_LOW; a block carrying one is rejected.
3. The nonce: it must equal the sender's count of included transactions.
   A block whose transactions break the nonce sequence is rejected too.
4. Funds. A transaction's cost is its fee plus what its method may take from the
   sender's balance (a transfer's amount, a deposit, a stake: each method declares
   it, `TxMethod.spends`). check_tx admits it only if the sender's balance covers
   the costs of its transactions already waiting (`pending_cost`, the mempool's sum)
   and this one's. A block is rejected if a fee in it might not be payable when it is
   charged: each sender's committed balance must cover the costs of its earlier
   transactions in the block and this one's fee. Nothing but a sender's own
   transactions takes from its balance, and none takes more than its cost, so
   every fee of an accepted block is paid in full.
5. The handler, after the fee is charged (burnt: the supply shrinks by it). It may
   fail (insufficient funds, unauthorized): then none of its writes apply, its
   result carries a non-zero code and a log, and its fee and nonce are still
   consumed, so that the same signed bytes can never run again and failed spam
   still pays. Every result of a fee above zero, failed or not, carries a `fee`
   event (amount, payer).

The application owns no clock and no I/O of its own: state and blocks come
from the `ChainStore` it is given, time from the block header.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from cloudchain import codec
from cloudchain.chaincode import evidence as evidence_rules
from cloudchain.chaincode.auth import (
    AUTH,
    AUTHORITY_KEY,
    GENESIS_HASH_KEY,
    get_nonce,
    nonce_key,
)
from cloudchain.chaincode.codes import AUTH_CODESPACE, Code
from cloudchain.chaincode.context import BlockContext, Context, EventLog, Overlay, StateReader
from cloudchain.chaincode.fees import FEES, charge
from cloudchain.chaincode.market import MARKET
from cloudchain.chaincode.module import ArgError, Module, QueryError, TxError, TxMethod
from cloudchain.chaincode.modules.access import ACCESS
from cloudchain.chaincode.modules.storage import STORAGE
from cloudchain.chaincode.modules.token import TOKEN, get_balance
from cloudchain.chaincode.signatures import TxVerifier, VerifiedSignatures
from cloudchain.fees import FeeSchedule
from cloudchain.genesis import Genesis, GenesisError
from cloudchain.ledger import (
    MAX_BLOCK_EVIDENCE,
    MAX_LOG_CHARS,
    MAX_TX_BYTES,
    MAX_TX_RESULT_BYTES,
    TX_FRAMING_BYTES,
    Block,
    DuplicateVoteEvidence,
    Event,
    MalformedError,
    TooLargeError,
    Transaction,
    TxResult,
    block_overhead_bytes,
    evidence_hash,
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

DEFAULT_MODULES: tuple[Module, ...] = (AUTH, TOKEN, FEES, MARKET, STORAGE, ACCESS)

# How far ahead of the committed nonce check_tx accepts a transaction, so that a
# client may submit several in a row before the first is included.
MAX_NONCE_LEAD = 64
# The log of a BAD_SIGNATURE refusal (check_tx's, and the mempool's after verify_signature).
BAD_SIGNATURE_LOG = "signature does not verify against the sender key"
# The costs of the sender's waiting transactions, or how to find them from the decoded
# transaction (check_tx).
PendingCost = int | Callable[[Transaction], int]


def verify_tx_signature(tx: Transaction) -> bool:
    return tx.verify_signature()


class InvalidBlockError(RuntimeError):
    """finalize_block was handed a block that process_proposal rejects: a consensus bug."""


@dataclass(frozen=True)
class CheckResult:
    """The verdict on one transaction before any handler runs.

    `tx` is set once the bytes decode, on refusals too; then `fee` is its fee and
    `cost` what it can take from its sender's balance if included: the fee, plus what
    its method declares it may take (0 when its method or arguments are not known)."""

    code: Code
    log: str
    tx: Transaction | None = None
    fee: int = 0
    cost: int = 0

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
        *,
        verifier: TxVerifier = verify_tx_signature,
    ) -> None:
        """`verifier` checks a transaction's signature (the transaction's own Ed25519
        check; a test may inject one that counts its calls): once per transaction on
        this node, whichever of check_tx, prepare_proposal and process_proposal sees it
        first (signatures.py); never in recheck_tx."""
        self._store = store
        self._signatures = VerifiedSignatures(verifier)
        self._genesis = genesis
        if FEES not in modules:
            modules = (*modules, FEES)  # the application's own, as the fees are
        self._modules = {m.name: m for m in modules}
        assert len(self._modules) == len(modules), "two modules share a name"
        assert TOKEN.name in self._modules, "fees are paid in the token module's units"
        self._fees = genesis.fees
        self._check_surcharges(self._fees)
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
    def fees(self) -> FeeSchedule:
        return self._fees

    def _check_surcharges(self, schedule: FeeSchedule) -> None:
        for name in schedule.surcharges:
            module, _, method = name.partition(".")
            if method not in getattr(self._modules.get(module), "methods", {}):
                raise GenesisError(
                    f"genesis.app_state.params.fees.surcharges: {name} is not a transaction "
                    "method of this chain"
                )

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
        """The account's balance in token units (committed state)."""
        return get_balance(_CommittedState(self._store), address)

    def min_fee(self, tx: Transaction) -> int:
        """The least fee `tx` must carry: the genesis schedule's for its bytes and method."""
        return self._fees.min_fee_of(tx)

    # --- mempool admission -----------------------------------------------------------

    def check_tx(
        self, raw: bytes, *, pending_cost: PendingCost = 0, verify: bool = True
    ) -> CheckResult:
        """Stateless checks, then the stateful ones (`_check_state`): a fee of at least
        the minimum, a nonce not yet used and at most MAX_NONCE_LEAD ahead, and a
        balance that covers `pending_cost` (the costs of the sender's transactions
        already waiting in the mempool) and this transaction's cost; then, with
        `verify`, the signature.

        `pending_cost` may be a function of the decoded transaction: the mempool knows
        the sender's waiting costs, but learns who the sender is (and which waiting
        transaction a new one would replace) only from the decoding done here.

        `verify=False` is for a caller that applies cheaper rules of its own first (the
        mempool: its room, replacements, per-sender bounds) and then calls
        `verify_signature` before it admits the transaction: a refusal by those rules
        then costs no verification."""
        result = self._check_stateless(raw, verify=False)
        if not result.ok:
            return result
        tx = result.tx
        assert tx is not None
        if callable(pending_cost):
            pending_cost = pending_cost(tx)
        checked = self._check_state(result, pending_cost)
        # The signature last: a transaction the state refuses (a sender that cannot pay,
        # a nonce used) is refused for the price of a few reads, not of a verification.
        if verify and checked.ok and not self._signatures.verify(tx):
            return _bad_signature(tx)
        return checked

    def verify_signature(self, tx: Transaction) -> bool:
        """Whether `tx`'s signature verifies against its sender key, verified at most
        once per transaction on this node (the cache check_tx and the proposal checks
        share): the last step of an admission that called check_tx with verify=False."""
        return self._signatures.verify(tx)

    def recheck_tx(self, tx: Transaction, *, pending_cost: int = 0) -> CheckResult:
        """check_tx's stateful checks again, against the latest committed state, for a
        transaction check_tx admitted before: no decoding and no signature verification
        (its bytes, signature included, are the ones check_tx verified)."""
        method = self._method(tx)
        if method is None:  # check_tx admitted it, so only another chain's app could say so
            return _refuse(
                Code.UNKNOWN_METHOD, f"no method {tx.module}.{tx.method}", tx, tx.fee, tx.fee
            )
        return self._check_state(_admitted(tx, method), pending_cost)

    def _check_state(self, checked: CheckResult, pending_cost: int) -> CheckResult:
        tx = checked.tx
        assert tx is not None and checked.ok
        fee, cost = checked.fee, checked.cost
        minimum = self.min_fee(tx)
        # Verify that the fee pays for the transaction's bytes and method.
        if fee < minimum:
            return _refuse(
                Code.FEE_TOO_LOW,
                f"fee {fee} is below the minimum {minimum} for {len(tx.to_bytes())} bytes "
                f"of {tx.module}.{tx.method}",
                tx,
                fee,
                cost,
            )
        sender = tx.sender_address
        expected = self.nonce(sender)
        if tx.nonce < expected:
            return _refuse(
                Code.NONCE_TOO_LOW,
                f"nonce {tx.nonce} already used; next is {expected}",
                tx,
                fee,
                cost,
            )
        if tx.nonce > expected + MAX_NONCE_LEAD:
            return _refuse(
                Code.NONCE_TOO_HIGH,
                f"nonce {tx.nonce} is more than {MAX_NONCE_LEAD} ahead of the next ({expected})",
                tx,
                fee,
                cost,
            )
        balance = self.balance(sender)
        # Verify that the sender holds what its waiting transactions and this one may take.
        if balance < pending_cost + cost:
            return _refuse(
                Code.INSUFFICIENT_FUNDS,
                f"insufficient funds: balance {balance}, the sender's waiting transactions "
                f"need {pending_cost} and this one {cost} (fee {fee})",
                tx,
                fee,
                cost,
            )
        return checked

    def _method(self, tx: Transaction) -> TxMethod | None:
        module = self._modules.get(tx.module)
        return None if module is None else module.methods.get(tx.method)

    def _check_stateless(self, raw: bytes | Transaction, *, verify: bool = True) -> CheckResult:
        """Decoding, chain id, module, method and arguments, then (with `verify`) the
        signature, verified at most once per transaction on this node."""
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
        # From here the refusals name the transaction, its fee, and as its cost the fee
        # alone until its method and arguments are known.
        if tx.chain_id != self._genesis.chain_id:
            return _refuse(
                Code.WRONG_CHAIN_ID,
                f"chain id {tx.chain_id!r} is not this chain's ({self._genesis.chain_id!r})",
                tx,
                tx.fee,
                tx.fee,
            )
        module = self._modules.get(tx.module)
        if module is None:
            return _refuse(Code.UNKNOWN_MODULE, f"unknown module {tx.module!r}", tx, tx.fee, tx.fee)
        method = module.methods.get(tx.method)
        if method is None:
            return _refuse(
                Code.UNKNOWN_METHOD,
                f"module {tx.module!r} has no method {tx.method!r}",
                tx,
                tx.fee,
                tx.fee,
            )
        try:
            method.check_args(tx.args)
        except ArgError as exc:
            return _refuse(Code.INVALID_ARGS, f"{tx.module}.{tx.method}: {exc}", tx, tx.fee, tx.fee)
        if verify and not self._signatures.verify(tx):
            return _bad_signature(tx)
        return _admitted(tx, method)

    # --- proposals -------------------------------------------------------------------------

    def evidence_error(
        self, evidence: DuplicateVoteEvidence, height: int | None = None, time_ns: int = 0
    ) -> str:
        """Why `evidence` may not be committed in a block of `height` and `time_ns`
        (default: the next block, at the last block's time), or '' if it may
        (chaincode/evidence.py has the rules)."""
        info = self.info()
        if height is None:
            height, time_ns = info.height + 1, info.last_block_time_ns
        return evidence_rules.evidence_error(
            evidence, height, time_ns, self._genesis, self.state(), self._store
        )

    def select_evidence(
        self, candidates: Sequence[DuplicateVoteEvidence], height: int, time_ns: int
    ) -> tuple[DuplicateVoteEvidence, ...]:
        """The candidates a block of `height` and `time_ns` may carry, in the given order,
        each once, at most MAX_BLOCK_EVIDENCE."""
        chosen: dict[bytes, DuplicateVoteEvidence] = {}
        for evidence in candidates:
            if len(chosen) >= MAX_BLOCK_EVIDENCE:
                break
            if evidence.hash not in chosen and not self.evidence_error(evidence, height, time_ns):
                chosen[evidence.hash] = evidence
        return tuple(chosen.values())

    def prepare_proposal(
        self, candidates: Sequence[bytes], *, reserved_bytes: int = 0
    ) -> tuple[Transaction, ...]:
        """Pick, in the given order, the candidates that make a valid block.

        Invalid transactions, those paying less than the minimum fee, those whose nonce
        does not follow the sender's previous one and those whose fee might not be
        payable (see `_BlockFunds`) are skipped; the block stops growing at the genesis
        limits, less `reserved_bytes` (what the block's evidence takes).
        """
        chosen: list[Transaction] = []
        next_nonce: dict[str, int] = {}
        funds = _BlockFunds(self.balance)
        size = 0
        for raw in candidates:
            if len(chosen) >= self._genesis.max_block_txs:
                break
            result = self._check_stateless(raw)
            if not result.ok:
                continue
            tx = result.tx
            assert tx is not None
            if tx.fee < self.min_fee(tx):
                continue
            sender = tx.sender_address
            expected = next_nonce.get(sender)
            if expected is None:
                expected = self.nonce(sender)
            if tx.nonce != expected:
                continue
            tx_size = len(tx.to_bytes()) + TX_FRAMING_BYTES
            if size + tx_size > self._max_txs_bytes() - reserved_bytes:
                continue
            if funds.shortfall(tx) is not None:
                continue
            funds.include(tx, result.cost)
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
        the stateless checks, pay at least the minimum fee, follow each other in nonce
        order, and can pay their fees (`_BlockFunds`). Signatures of the last commit are
        the consensus layer's to verify, against its validator set."""
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
        reason = self._evidence_error(block)
        if reason:
            return ProposalVerdict(False, reason)
        next_nonce: dict[str, int] = {}
        funds = _BlockFunds(self.balance)
        for index, tx in enumerate(block.txs):
            result = self._check_stateless(tx)
            if not result.ok:
                return ProposalVerdict(False, f"tx {index}: {result.log}")
            minimum = self.min_fee(tx)
            if tx.fee < minimum:
                return ProposalVerdict(
                    False, f"tx {index}: fee {tx.fee} is below the minimum {minimum}"
                )
            sender = tx.sender_address
            expected = next_nonce.get(sender)
            if expected is None:
                expected = self.nonce(sender)
            if tx.nonce != expected:
                return ProposalVerdict(False, f"tx {index}: nonce {tx.nonce}, expected {expected}")
            shortfall = funds.shortfall(tx)
            if shortfall is not None:
                return ProposalVerdict(False, f"tx {index}: {shortfall}")
            funds.include(tx, result.cost)
            next_nonce[sender] = expected + 1
        self._accepted = block.to_bytes()
        return ProposalVerdict(True)

    def _evidence_error(self, block: Block) -> str:
        """Why the block's evidence may not be committed, or '' (chaincode/evidence.py)."""
        if block.header.evidence_hash != evidence_hash(block.evidence):
            return "invalid header: evidence_hash does not match the evidence"
        if len({e.hash for e in block.evidence}) != len(block.evidence):
            return "evidence: the same evidence twice"
        for index, evidence in enumerate(block.evidence):
            reason = self.evidence_error(evidence, block.height, block.header.time_ns)
            if reason:
                return f"evidence {index}: {reason}"
        return ""

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
        evidence_events = tuple(
            evidence_rules.record(block_kv, evidence, block.height) for evidence in block.evidence
        )
        block_events = (*evidence_events, *self._end_block(block_kv, block))
        diff = self._store.diff(block_kv.writes)
        self._pending = _Pending(block, diff, results, block_events)
        return FinalizeResult(results, diff.app_hash, block_events)

    def _end_block(self, block_kv: Overlay, block: Block) -> tuple[Event, ...]:
        """Every module's end-of-block work, in module order, each atomic: a module whose
        work fails (a bug) has none of its writes applied, the failure is an event, and
        the chain goes on, as every node fails the same way."""
        events: list[Event] = []
        reserved = len(block.evidence)  # the evidence's events come first
        for module in self._modules.values():
            if module.end_block_handler is None:
                continue
            module_kv = Overlay(block_kv)
            log_ = EventLog(limit=MAX_BLOCK_EVENTS - reserved - len(events) - 1)
            context = BlockContext(
                block.height, block.header.time_ns, module_kv, log_, block.evidence
            )
            try:
                module.end_block_handler(context)
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
        """Run one transaction whose stateless checks, fee, nonce and funds are already
        verified: consume its nonce, charge its fee, then run its handler."""
        sender = tx.sender_address
        nonce = get_nonce(block_kv, sender)
        assert tx.nonce == nonce, "process_proposal verified the nonce sequence"
        block_kv.set_value(nonce_key(sender), nonce + 1)  # consumed even on failure
        fee_events: tuple[Event, ...] = ()
        if tx.fee:
            balance = get_balance(block_kv, sender)
            if balance < tx.fee:
                # process_proposal makes this impossible unless a method takes more than
                # it declares (a bug): the transaction does not run, and the chain goes on.
                log.error(
                    "a fee could not be paid",
                    extra=fields(height=block.height, index=index, tx=tx.hash.hex()),
                )
                message = f"fee {tx.fee} cannot be paid: balance {balance}"
                return TxResult(
                    Code.INSUFFICIENT_FUNDS, AUTH_CODESPACE, message, (), block.height, index
                )
            fee_events = (charge(block_kv, sender, tx.fee),)  # kept whatever the handler does
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
        result = TxResult(code, codespace, message[:MAX_LOG_CHARS], fee_events, block.height, index)
        if code == Code.OK:
            message_event = Event(
                "message", (("module", tx.module), ("method", tx.method), ("sender", sender))
            )
            result = dataclasses.replace(
                result, events=(*fee_events, message_event, *events.events)
            )
            if len(result.to_bytes()) > MAX_TX_RESULT_BYTES:
                result = TxResult(
                    Code.LIMIT_EXCEEDED,
                    module.name,
                    f"events of {tx.module}.{tx.method} exceed {MAX_TX_RESULT_BYTES} bytes",
                    fee_events,
                    block.height,
                    index,
                )
        if result.ok:
            tx_kv.merge_into(block_kv)
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
        self._signatures.forget(pending.block.txs)
        return CommitResult(pending.block.height, pending.diff.app_hash)

    def state(self) -> StateReader:
        """A reader of the latest committed state."""
        return _CommittedState(self._store)


def _refuse(
    code: Code, message: str, tx: Transaction | None = None, fee: int = 0, cost: int = 0
) -> CheckResult:
    return CheckResult(code, message[:MAX_LOG_CHARS], tx, fee, cost)


def _bad_signature(tx: Transaction) -> CheckResult:
    return _refuse(Code.BAD_SIGNATURE, BAD_SIGNATURE_LOG, tx, tx.fee, tx.fee)


def _admitted(tx: Transaction, method: TxMethod) -> CheckResult:
    """The passing verdict on a transaction whose arguments `method` has checked."""
    return CheckResult(Code.OK, "", tx, tx.fee, tx.fee + method.spends(tx.args))


class _BlockFunds:
    """Whether each fee of a block can be paid when it is charged, without running the
    block: a sender's transactions take from its balance at most their costs, and
    nothing else takes from it, so a fee is payable if the sender's committed balance
    covers the costs of its earlier transactions in the block and this fee."""

    def __init__(self, balance: Callable[[str], int]) -> None:
        self._balance = balance
        self._committed: dict[str, int] = {}
        self._taken: dict[str, int] = {}  # by sender: the costs included so far

    def shortfall(self, tx: Transaction) -> str | None:
        """Why the fee of `tx`, next in the block, might not be payable; None if it is."""
        sender = tx.sender_address
        if sender not in self._committed:
            self._committed[sender] = self._balance(sender)
        balance, taken = self._committed[sender], self._taken.get(sender, 0)
        if balance >= taken + tx.fee:
            return None
        return (
            f"fee {tx.fee} may not be payable: balance {balance}, the sender's earlier "
            f"transactions in the block may take {taken}"
        )

    def include(self, tx: Transaction, cost: int) -> None:
        sender = tx.sender_address
        self._taken[sender] = self._taken.get(sender, 0) + cost
