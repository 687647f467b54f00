"""Property tests of the token module driven through the whole application.

Random blocks mix valid transactions (transfers, mints and burns that may succeed or
fail in their handler, each paying the minimum fee or more) with invalid ones (bad
signatures, wrong nonces, wrong chain id, unknown methods, bad arguments, a fee below
the minimum, garbage bytes) and with valid ones whose fee may not be payable (the
sender's balance does not cover its earlier transactions' costs in the block and this
fee: a sender that holds nothing, or that spends it all first). A reference model
predicts which candidates enter each block and the result code of each; after every
block the committed state is checked against the model and against the token
invariants:

- the balances in state sum to the supply, and none is negative (or stored as zero);
- supply = genesis supply + successful mints - successful burns - fees (fees are
  burnt; all read off the results' events), block by block and over the whole run:
  balances + burned + fees = genesis supply + minted, exactly;
- every included transaction consumed its sender's nonce and paid its fee, failed
  ones included.

A second property replays the produced blocks on a LevelDB-backed application and
requires identical results and app hashes at every height.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field

from hypothesis import event, given
from hypothesis import strategies as st

from cloudchain import codec
from cloudchain.chaincode.application import Application
from cloudchain.chaincode.codes import Code
from cloudchain.chaincode.module import MAX_AMOUNT
from cloudchain.chaincode.modules.token import get_supply
from cloudchain.ledger import Block, Event, Transaction
from cloudchain.storage.chain import ChainStore
from cloudchain.storage.kv import LevelDBKV
from tests.helpers.chain import (
    ACCOUNTS,
    AUTHORITY,
    CHAIN_ID,
    INITIAL_BALANCE,
    TEST_FEE,
    key,
    make_chain,
    make_genesis,
)

EVE = key("eve")  # signs transactions but holds nothing at genesis
SENDERS = (*ACCOUNTS, EVE)
# Transactions with a wrong nonce pay this address and valid ones never do, so an
# invalid transaction can never share its bytes with a valid one of the same block.
WRONG_NONCE_SINK = key("wrong-nonce-sink").address
GENESIS_SUPPLY = INITIAL_BALANCE * len(ACCOUNTS)
BALANCE_PREFIX = b"token/balance/"

MAX_BLOCKS = 6
MAX_CANDIDATES = 8

VALID_KINDS = ("transfer", "mint", "burn")
INVALID_KINDS = (
    "flipped_signature",
    "foreign_signature",
    "wrong_chain_id",
    "nonce_gap",
    "nonce_used",
    "replay",
    "fee_too_low",
    "unknown_method",
    "unknown_module",
    "invalid_args",
    "garbage",
)
# Valid transactions twice as likely as any one invalid kind.
KINDS = VALID_KINDS * 6 + INVALID_KINDS

EVENT_OF = {"transfer": "transfer", "mint": "mint", "burn": "burn"}


@dataclass
class Model:
    """What the chain should hold; `nonces` and `balances` run ahead over the block being
    assembled, `committed` is the balances as of the last block and `taken` what each
    sender's transactions so far in the block may take (fee + amount)."""

    balances: dict[str, int] = field(
        default_factory=lambda: {k.address: INITIAL_BALANCE for k in ACCOUNTS}
    )
    supply: int = GENESIS_SUPPLY
    nonces: dict[str, int] = field(default_factory=dict)
    included: list[bytes] = field(default_factory=list)
    committed: dict[str, int] = field(default_factory=dict)
    taken: dict[str, int] = field(default_factory=dict)

    def nonce(self, sender) -> int:
        return self.nonces.get(sender.address, 0)

    def start_block(self) -> None:
        self.committed, self.taken = dict(self.balances), {}

    def payable(self, tx: Transaction) -> bool:
        """Whether a proposer may include `tx`: the sender's committed balance covers what
        its earlier transactions in the block may take and this fee."""
        sender = tx.sender_address
        return self.committed.get(sender, 0) >= self.taken.get(sender, 0) + tx.fee

    def apply(self, tx: Transaction) -> Code:
        """Run `tx` on the model (nonce and fee included) and return the code the chain
        must give."""
        sender = tx.sender_address
        self.nonces[sender] = self.nonces.get(sender, 0) + 1
        args = tx.args
        spends = 0 if tx.method == "mint" else args["amount"]
        self.taken[sender] = self.taken.get(sender, 0) + tx.fee + spends
        self.supply -= tx.fee  # charged (burnt) before the handler, whatever it does
        self._add(sender, -tx.fee)
        balance = self.balances.get(sender, 0)
        if tx.method == "transfer":
            if args["amount"] > balance:
                return Code.INSUFFICIENT_FUNDS
            self._add(sender, -args["amount"])
            self._add(args["to"], args["amount"])
        elif tx.method == "mint":
            if sender != AUTHORITY.address:
                return Code.UNAUTHORIZED
            if self.supply + args["amount"] > MAX_AMOUNT:
                return Code.LIMIT_EXCEEDED
            self.supply += args["amount"]
            self._add(args["to"], args["amount"])
        else:
            assert tx.method == "burn"
            if args["amount"] > balance:
                return Code.INSUFFICIENT_FUNDS
            self.supply -= args["amount"]
            self._add(sender, -args["amount"])
        return Code.OK

    def _add(self, address: str, delta: int) -> None:
        new = self.balances.get(address, 0) + delta
        if new:
            self.balances[address] = new
        else:
            self.balances.pop(address, None)


@dataclass
class Batch:
    candidates: list[bytes] = field(default_factory=list)
    expected: list[tuple[Transaction, Code]] = field(default_factory=list)
    refused: list[bytes] = field(default_factory=list)


addresses = st.binary(min_size=20, max_size=20).map(bytes.hex)


def _recipient(data) -> str:
    return data.draw(st.one_of(st.sampled_from([k.address for k in SENDERS]), addresses))


def _amount(data, balance: int) -> int:
    """An amount within, exactly at, just above or anywhere around `balance`."""
    options = [st.integers(1, MAX_AMOUNT)]
    if balance > 0:
        options += [st.integers(1, balance), st.just(balance)]
    if balance < MAX_AMOUNT:
        options.append(st.integers(balance + 1, min(balance + 100, MAX_AMOUNT)))
    return data.draw(st.one_of(options))


def _mint_amount(data, supply: int) -> int:
    options = [st.integers(1, 10_000), st.integers(1, MAX_AMOUNT)]
    if supply < MAX_AMOUNT:
        options.append(st.just(MAX_AMOUNT - supply))
    if 0 < supply <= MAX_AMOUNT:  # at supply 0 one more is no amount at all (INVALID_ARGS)
        options.append(st.just(MAX_AMOUNT - supply + 1))
    return data.draw(st.one_of(options))


def _fee(data) -> int:
    """The minimum fee (make_genesis's schedule: TEST_FEE a transaction), or more."""
    return data.draw(st.one_of(st.just(TEST_FEE), st.integers(TEST_FEE + 1, TEST_FEE + 300)))


def _token_tx(
    data,
    model: Model,
    kind: str,
    nonce_offset: int = 0,
    to: str | None = None,
    fee: int | None = None,
):
    """A well-formed, correctly signed token transaction, `nonce_offset` past the next nonce,
    paying `fee` (by default, the minimum or more)."""
    if kind == "mint":
        sender = data.draw(st.sampled_from((AUTHORITY, *SENDERS)))  # the authority often
    else:
        sender = data.draw(st.sampled_from(SENDERS))
    nonce = model.nonce(sender) + nonce_offset
    if kind == "transfer":
        amount = _amount(data, model.balances.get(sender.address, 0))
        args = {"to": to or _recipient(data), "amount": amount}
    elif kind == "mint":
        args = {"to": to or _recipient(data), "amount": _mint_amount(data, model.supply)}
    else:
        args = {"amount": _amount(data, model.balances.get(sender.address, 0))}
    fee = _fee(data) if fee is None else fee
    return Transaction.create(sender, CHAIN_ID, nonce, "token", kind, args, fee=fee)


def _invalid(data, model: Model, kind: str) -> bytes | None:
    """Bytes that prepare_proposal must drop, or None if `kind` is impossible right now."""
    if kind == "flipped_signature":
        tx = _token_tx(data, model, data.draw(st.sampled_from(VALID_KINDS)))
        bit = data.draw(st.integers(0, 8 * len(tx.signature) - 1))
        sig = bytearray(tx.signature)
        sig[bit // 8] ^= 1 << (bit % 8)
        return tx.with_signature(bytes(sig)).to_bytes()
    if kind == "foreign_signature":
        tx = _token_tx(data, model, data.draw(st.sampled_from(VALID_KINDS)))
        signer = data.draw(st.sampled_from([k for k in SENDERS if k.public_key != tx.sender]))
        return tx.with_signature(signer.sign(tx.sign_bytes())).to_bytes()
    if kind == "wrong_chain_id":
        sender = data.draw(st.sampled_from(SENDERS))
        chain_id = data.draw(st.sampled_from(["other-chain", CHAIN_ID + "x", CHAIN_ID.upper()]))
        return Transaction.create(
            sender, chain_id, model.nonce(sender), "token", "burn", {"amount": 1}, fee=TEST_FEE
        ).to_bytes()
    if kind == "nonce_gap":
        gap = data.draw(st.integers(1, 3))
        return _token_tx(data, model, "transfer", gap, to=WRONG_NONCE_SINK).to_bytes()
    if kind == "nonce_used":
        candidates = [k for k in SENDERS if model.nonce(k) > 0]
        if not candidates:
            return None
        sender = data.draw(st.sampled_from(candidates))
        nonce = data.draw(st.integers(0, model.nonce(sender) - 1))
        return Transaction.create(
            sender,
            CHAIN_ID,
            nonce,
            "token",
            "transfer",
            {"to": WRONG_NONCE_SINK, "amount": 1},
            fee=TEST_FEE,
        ).to_bytes()
    if kind == "replay":
        if not model.included:
            return None
        return data.draw(st.sampled_from(model.included))
    if kind == "fee_too_low":
        low = data.draw(st.integers(0, TEST_FEE - 1))
        return _token_tx(data, model, "transfer", to=WRONG_NONCE_SINK, fee=low).to_bytes()
    sender = data.draw(st.sampled_from(SENDERS))
    nonce = model.nonce(sender)
    if kind == "unknown_method":
        method = data.draw(st.sampled_from(["steal", "approve", "transfer_from"]))
        return Transaction.create(
            sender, CHAIN_ID, nonce, "token", method, {}, fee=TEST_FEE
        ).to_bytes()
    if kind == "unknown_module":
        module = data.draw(st.sampled_from(["bank", "tokens", "auth"]))
        args = {"to": WRONG_NONCE_SINK, "amount": 1}
        return Transaction.create(
            sender, CHAIN_ID, nonce, module, "transfer", args, fee=TEST_FEE
        ).to_bytes()
    if kind == "invalid_args":
        args = data.draw(
            st.sampled_from(
                [
                    {"to": WRONG_NONCE_SINK},
                    {"to": WRONG_NONCE_SINK, "amount": 0},
                    {"to": WRONG_NONCE_SINK, "amount": -1},
                    {"to": WRONG_NONCE_SINK, "amount": True},
                    {"to": WRONG_NONCE_SINK, "amount": MAX_AMOUNT + 1},
                    {"to": WRONG_NONCE_SINK.upper(), "amount": 1},
                    {"to": WRONG_NONCE_SINK, "amount": 1, "memo": "x"},
                ]
            )
        )
        return Transaction.create(
            sender, CHAIN_ID, nonce, "token", "transfer", args, fee=TEST_FEE
        ).to_bytes()
    assert kind == "garbage", kind
    return data.draw(st.binary(max_size=80))


def draw_batch(data, model: Model) -> Batch:
    """Candidates for one block; valid ones are applied to the model as they are drawn."""
    batch = Batch()
    model.start_block()
    for _ in range(data.draw(st.integers(0, MAX_CANDIDATES))):
        kind = data.draw(st.sampled_from(KINDS))
        if kind in VALID_KINDS:
            tx = _token_tx(data, model, kind)
            batch.candidates.append(tx.to_bytes())
            if model.payable(tx):
                event(f"candidate: {kind}")
                batch.expected.append((tx, model.apply(tx)))
            else:  # left out: its nonce stays the sender's next
                event(f"candidate: {kind}, its fee may not be payable")
                batch.refused.append(tx.to_bytes())
        else:
            event(f"candidate: {kind}")
            raw = _invalid(data, model, kind)
            if raw is not None:
                batch.candidates.append(raw)
                batch.refused.append(raw)
    return batch


def _state_balances(app) -> dict[str, int]:
    balances = {}
    for k, v in app.state().iterate(BALANCE_PREFIX):
        value = codec.decode(v)
        assert isinstance(value, int) and not isinstance(value, bool), (k, value)
        assert value >= 0, f"negative balance {value} at {k!r}"
        assert value > 0, f"a zero balance is stored at {k!r}; empty accounts leave no trace"
        balances[k[len(BALANCE_PREFIX) :].decode()] = value
    return balances


def check_block(app, block: Block, results, batch: Batch, model: Model, before: dict) -> None:
    """Everything that must hold after `block` (built from `batch`) is committed."""
    included = [tx.to_bytes() for tx in block.txs]
    assert included == [tx.to_bytes() for tx, _ in batch.expected]
    for raw in batch.refused:
        assert raw not in included
    assert len(results) == len(block.txs)

    for index, (tx, result) in enumerate(zip(block.txs, results, strict=True)):
        expected_code = batch.expected[index][1]
        event(f"result: {tx.method} {expected_code.name}")
        assert result.code == expected_code, (tx.method, tx.args, result)
        assert (result.height, result.index) == (block.height, index)
        # Paid first, whatever the handler does: the fee event, with string attributes.
        fee = Event("fee", (("amount", str(tx.fee)), ("payer", tx.sender_address)))
        assert result.events[0] == fee
        if result.ok:
            assert result.codespace == ""
            assert result.events[1] == Event(
                "message",
                (("module", "token"), ("method", tx.method), ("sender", tx.sender_address)),
            )
            assert [e.type for e in result.events[2:]] == [EVENT_OF[tx.method]]
        else:
            assert result.codespace == "token"
            assert result.log
            assert result.events == (fee,)
    flows = _flows(results)

    supply = get_supply(app.state())
    assert supply == before["supply"] + flows["mint"] - flows["burn"] - flows["fee"]
    assert supply == model.supply
    balances = _state_balances(app)
    assert sum(balances.values()) == supply
    assert balances == model.balances

    for sender in SENDERS:
        sent = sum(1 for tx in block.txs if tx.sender == sender.public_key)
        assert app.nonce(sender.address) == before["nonces"][sender.address] + sent
        assert app.nonce(sender.address) == model.nonce(sender)


def _flows(results) -> dict[str, int]:
    """Token units minted, burned and paid in fees by `results`, read off their events."""
    flows = {"mint": 0, "burn": 0, "fee": 0}
    for result in results:
        for e in result.events:
            if e.type in flows:
                flows[e.type] += int(dict(e.attributes)["amount"])
    return flows


def run_blocks(data, chain, model: Model, on_block=None) -> list:
    """Produce random blocks on `chain`, checking every one; returns the Produced list.
    Over the whole run: balances + burned + fees = genesis supply + minted, exactly."""
    app = chain.app
    produced = []
    total = {"mint": 0, "burn": 0, "fee": 0}
    for _ in range(data.draw(st.integers(1, MAX_BLOCKS))):
        before = {
            "supply": get_supply(app.state()),
            "nonces": {k.address: app.nonce(k.address) for k in SENDERS},
        }
        batch = draw_batch(data, model)
        out = chain.produce_block(batch.candidates)
        check_block(app, out.block, out.result.tx_results, batch, model, before)
        model.included.extend(tx.to_bytes() for tx in out.block.txs)
        produced.append(out)
        for name, amount in _flows(out.result.tx_results).items():
            total[name] += amount
        balances = sum(_state_balances(app).values())
        assert balances + total["burn"] + total["fee"] == GENESIS_SUPPLY + total["mint"]
        event(f"fees burnt: {'some' if total['fee'] else 'none'}")
    return produced


@given(data=st.data())
def test_token_invariants_hold_after_every_block(data):
    chain = make_chain()
    assert get_supply(chain.app.state()) == GENESIS_SUPPLY
    assert sum(_state_balances(chain.app).values()) == GENESIS_SUPPLY
    run_blocks(data, chain, Model())


@given(data=st.data())
def test_memory_and_leveldb_applications_agree_on_every_block(data):
    chain = make_chain()
    produced = run_blocks(data, chain, Model())
    first = chain.app.store
    with tempfile.TemporaryDirectory(prefix="cloudchain-prop-") as path:
        second = ChainStore(LevelDBKV(path))
        try:
            app = Application(second, make_genesis())
            assert second.app_hash_at(0) == first.app_hash_at(0)
            for out in produced:
                block = out.block
                verdict = app.process_proposal(block)
                assert verdict.accept, verdict.reason
                result = app.finalize_block(block)
                assert result.tx_results == out.result.tx_results
                assert result.app_hash == out.result.app_hash
                committed = app.commit()
                assert committed.height == block.height
                assert committed.app_hash == out.result.app_hash
                assert second.app_hash_at(block.height) == first.app_hash_at(block.height)
                assert second.block(block.height).to_bytes() == block.to_bytes()
                assert second.block_results(block.height) == first.block_results(block.height)
            assert second.height == first.height == len(produced)
            assert list(app.state().iterate()) == list(chain.app.state().iterate())
            for store in (first, second):
                assert store.app_hash == store.recompute_app_hash()
                for height in range(store.height + 1):
                    assert store.app_hash_at(height) == store.recompute_app_hash(height)
        finally:
            second.close()
