"""Fees: the minimum a transaction pays (base + per byte + per-method surcharge), the
admission checks on fee and funds (check_tx, and recheck_tx without a signature), the
blocks a proposer may not make (process_proposal), and the charge itself: before the
handler, also when it fails, burnt.

The chain of tests/helpers/chain.py charges a flat TEST_FEE; the tests here that price
bytes use SCHEDULE, whose every term is visible in a transaction's minimum fee.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloudchain import codec
from cloudchain.chaincode.application import Application, InvalidBlockError
from cloudchain.chaincode.codes import AUTH_CODESPACE, Code
from cloudchain.chaincode.fees import PARAMS_KEY
from cloudchain.chaincode.modules.token import get_balance, get_supply
from cloudchain.fees import (
    DEFAULT_BASE_FEE,
    DEFAULT_FEE_PER_BYTE,
    DEFAULT_SURCHARGES,
    FeeSchedule,
    FeeScheduleError,
    priced_transaction,
)
from cloudchain.genesis import GenesisError
from cloudchain.ledger import MAX_TX_BYTES, Event, Transaction
from cloudchain.node.solo import SoloChain, build_block, sign_commit
from cloudchain.storage.chain import ChainStore
from cloudchain.storage.kv import MemoryKV
from tests.helpers.chain import (
    ACCOUNTS,
    CHAIN_ID,
    INITIAL_BALANCE,
    TEST_FEE,
    VALIDATOR,
    CountingVerifier,
    StepClock,
    key,
    make_chain,
    make_genesis,
    signed,
    transfer,
)

ALICE, BOB, CAROL = ACCOUNTS[:3]
MALLORY = key("mallory")  # holds nothing
BASE, PER_BYTE, BURN_SURCHARGE = 100, 2, 500
SCHEDULE = {"base": BASE, "per_byte": PER_BYTE, "surcharges": {"token.burn": BURN_SURCHARGE}}
RICH = 10**15


def priced_chain():
    return make_chain(genesis=make_genesis([(k.address, RICH) for k in ACCOUNTS], fees=SCHEDULE))


def next_block(app, txs):
    last = app.store.last_block
    last_commit = None if last is None else sign_commit(CHAIN_ID, last, VALIDATOR)
    return build_block(app, txs, VALIDATOR, last_commit)


def priced(sender, nonce, module, method, args, schedule=None):
    return priced_transaction(
        sender, CHAIN_ID, nonce, module, method, args, schedule or FeeSchedule.from_obj(SCHEDULE)
    )


# --- the minimum ---------------------------------------------------------------------------


def test_the_minimum_is_base_plus_bytes_plus_the_methods_surcharge():
    app = priced_chain().app
    short = priced(BOB, 0, "token", "transfer", {"to": CAROL.address, "amount": 1})
    long = priced(BOB, 0, "token", "transfer", {"to": CAROL.address, "amount": 10**14})
    burn = priced(BOB, 0, "token", "burn", {"amount": 1})
    for tx in (short, long):
        assert tx.fee == app.min_fee(tx) == BASE + PER_BYTE * len(tx.to_bytes())
    # Each byte more costs PER_BYTE more (the amount's encoding is 8 bytes longer).
    assert len(long.to_bytes()) - len(short.to_bytes()) == 8
    assert long.fee - short.fee == 8 * PER_BYTE
    assert burn.fee == app.min_fee(burn) == BASE + PER_BYTE * len(burn.to_bytes()) + BURN_SURCHARGE
    for tx in (short, long, burn):
        assert app.check_tx(tx.to_bytes()).ok


def test_a_fee_below_the_minimum_is_refused_naming_the_minimum():
    app = priced_chain().app
    args = {"amount": 1}
    exact = priced(BOB, 0, "token", "burn", args)
    # The same burn paying what it would without its surcharge, and one unit short.
    for fee in (exact.fee - BURN_SURCHARGE, exact.fee - 1, 0):
        tx = Transaction.create(BOB, CHAIN_ID, 0, "token", "burn", args, fee=fee)
        minimum = app.min_fee(tx)
        result = app.check_tx(tx.to_bytes())
        assert result.code == Code.FEE_TOO_LOW and result.codespace == AUTH_CODESPACE
        assert f"fee {fee} is below the minimum {minimum} for {len(tx.to_bytes())} bytes" in (
            result.log
        )
        assert "token.burn" in result.log
        assert (result.tx, result.fee) == (tx, fee)
    assert app.check_tx(exact.to_bytes()).ok


@given(
    base=st.integers(0, 70_000),
    per_byte=st.integers(0, 300),
    amount=st.integers(1, 2**63 - 1),
)
def test_priced_transaction_pays_exactly_the_minimum_of_its_own_bytes(base, per_byte, amount):
    """The fee is part of the bytes it prices: around 2^7, 2^8, 2^16 its encoding widens,
    and the fee found must still be the minimum of the transaction that carries it."""
    schedule = FeeSchedule(base=base, per_byte=per_byte, surcharges={})
    tx = priced(BOB, 0, "token", "transfer", {"to": CAROL.address, "amount": amount}, schedule)
    assert tx.fee == schedule.min_fee_of(tx)
    assert tx.verify_signature()


def test_the_schedule_is_queried_and_a_bad_one_is_a_genesis_error():
    app = priced_chain().app
    answer = app.query("/fees/params")
    assert answer.code == Code.OK and codec.decode(answer.value) == SCHEDULE
    assert app.store.get(PARAMS_KEY) is not None  # in state: answered at every height
    answer = app.query("/fees/min", b"bytes=200&method=token.burn")
    assert codec.thaw(codec.decode(answer.value)) == {
        "bytes": 200,
        "method": "token.burn",
        "min_fee": BASE + PER_BYTE * 200 + BURN_SURCHARGE,
    }
    for data in (
        b"bytes=x&method=token.burn",
        f"bytes={MAX_TX_BYTES + 1}&method=token.burn".encode(),
        b"bytes=1&method=burn",
        b"bytes=1&size=2",
    ):
        refused = app.query("/fees/min", data)
        assert refused.code == Code.INVALID_QUERY and refused.log, data
    # A genesis without a schedule takes the defaults.
    assert make_genesis(fees={}).fees == FeeSchedule(
        DEFAULT_BASE_FEE, DEFAULT_FEE_PER_BYTE, DEFAULT_SURCHARGES
    )
    for fees, field in [
        ({"base": -1}, "fees.base"),
        ({"per_byte": 1.5}, "fees.per_byte"),
        ({"surcharges": {"burn": 1}}, "fees.surcharges"),
        ({"surcharges": {"token.burn": True}}, "fees.surcharges.token.burn"),
        ({"tip": 1}, "unknown field(s) tip"),
        ({"per_byte": 2**62}, "exceeds"),
    ]:
        with pytest.raises((GenesisError, FeeScheduleError), match=re.escape(field)):
            make_genesis(fees=fees).fees  # noqa: B018 - checked when the genesis is loaded
    with pytest.raises(GenesisError, match="token.steal is not a transaction method"):
        Application(ChainStore(MemoryKV()), make_genesis(fees={"surcharges": {"token.steal": 1}}))


# --- funds at admission --------------------------------------------------------------------


def test_the_balance_must_cover_the_waiting_transactions_and_this_one():
    app = make_chain().app
    first = transfer(BOB, 0, CAROL.address, 500)
    second = transfer(BOB, 1, CAROL.address, 500)
    checked = app.check_tx(first.to_bytes())
    assert checked.ok and (checked.fee, checked.cost) == (TEST_FEE, 500 + TEST_FEE)
    refused = app.check_tx(second.to_bytes(), pending_cost=checked.cost)
    assert refused.code == Code.INSUFFICIENT_FUNDS and refused.codespace == AUTH_CODESPACE
    assert refused.log == (
        f"insufficient funds: balance {INITIAL_BALANCE}, the sender's waiting transactions "
        f"need {checked.cost} and this one {500 + TEST_FEE} (fee {TEST_FEE})"
    )
    # Exactly covered passes; one unit more waiting does not.
    room = INITIAL_BALANCE - (500 + TEST_FEE)
    assert app.check_tx(second.to_bytes(), pending_cost=room).ok
    assert not app.check_tx(second.to_bytes(), pending_cost=room + 1).ok
    # A method that declares nothing it spends costs its fee alone.
    mint = signed(BOB, 0, "token", "mint", {"to": BOB.address, "amount": 10**6})
    assert app.check_tx(mint.to_bytes()).cost == TEST_FEE
    broke = app.check_tx(
        signed(MALLORY, 0, "token", "mint", {"to": BOB.address, "amount": 1}).to_bytes()
    )
    assert broke.code == Code.INSUFFICIENT_FUNDS and "balance 0" in broke.log


def test_recheck_tx_checks_fee_nonce_and_funds_without_verifying_a_signature():
    verifier = CountingVerifier()
    app = Application(ChainStore(MemoryKV()), make_genesis(), verifier=verifier)
    chain = SoloChain(app, VALIDATOR, StepClock())
    waiting = transfer(BOB, 1, CAROL.address, 100)
    assert app.check_tx(waiting.to_bytes()).ok and verifier.calls == 1

    rechecked = app.recheck_tx(waiting)
    assert rechecked.ok and (rechecked.fee, rechecked.cost) == (TEST_FEE, 100 + TEST_FEE)
    # Even a signature that does not verify passes: recheck_tx does not look at it (the
    # mempool only rechecks what check_tx verified).
    forged = waiting.with_signature(bytes(64))
    assert app.recheck_tx(forged).ok
    assert app.recheck_tx(waiting, pending_cost=INITIAL_BALANCE).code == Code.INSUFFICIENT_FUNDS
    assert verifier.calls == 1  # not once more

    # After a block that spends BOB's balance and uses nonce 0, the state decides.
    spend = transfer(BOB, 0, CAROL.address, INITIAL_BALANCE - 2 * TEST_FEE - 50)
    assert chain.produce_block([spend.to_bytes()]).result.tx_results[0].ok
    calls = verifier.calls  # the block's own checks verified `spend`
    refused = app.recheck_tx(waiting)
    assert refused.code == Code.INSUFFICIENT_FUNDS and "balance 53" in refused.log
    assert app.recheck_tx(transfer(BOB, 0, CAROL.address, 1)).code == Code.NONCE_TOO_LOW
    assert app.recheck_tx(transfer(BOB, 1, CAROL.address, 50)).ok
    assert app.recheck_tx(transfer(BOB, 1, CAROL.address, 1, fee=0)).code == Code.FEE_TOO_LOW
    assert verifier.calls == calls


# --- the charge ------------------------------------------------------------------------------


def fee_event(tx: Transaction) -> Event:
    return Event("fee", (("amount", str(tx.fee)), ("payer", tx.sender_address)))


def test_a_failing_transaction_pays_its_fee_uses_its_nonce_and_writes_nothing_else():
    chain = priced_chain()
    app = chain.app
    overdraft = priced(BOB, 0, "token", "transfer", {"to": CAROL.address, "amount": RICH})
    supply = get_supply(app.state())
    result = chain.produce_block([overdraft.to_bytes()]).result.tx_results[0]
    assert result.code == Code.INSUFFICIENT_FUNDS and result.codespace == "token"
    assert result.events == (fee_event(overdraft),)  # the fee alone, no transfer
    state = app.state()
    assert get_balance(state, BOB.address) == RICH - overdraft.fee
    assert get_balance(state, CAROL.address) == RICH  # the transfer's write is dropped
    assert get_supply(state) == supply - overdraft.fee  # burnt
    assert app.nonce(BOB.address) == 1
    assert app.check_tx(overdraft.to_bytes()).code == Code.NONCE_TOO_LOW  # never again


def test_a_successful_transaction_pays_its_fee_first_and_the_supply_shrinks_by_it():
    chain = priced_chain()
    app = chain.app
    tx = priced(BOB, 0, "token", "transfer", {"to": CAROL.address, "amount": 7})
    result = chain.produce_block([tx.to_bytes()]).result.tx_results[0]
    assert result.ok and result.events[0] == fee_event(tx)
    assert [e.type for e in result.events] == ["fee", "message", "transfer"]
    assert all(isinstance(v, str) for e in result.events for _, v in e.attributes)
    assert get_balance(app.state(), BOB.address) == RICH - 7 - tx.fee
    assert get_supply(app.state()) == RICH * len(ACCOUNTS) - tx.fee


# --- blocks a proposer may not make ------------------------------------------------------------


def test_a_block_with_a_fee_below_the_minimum_is_rejected_and_not_executed():
    app = priced_chain().app
    good = priced(BOB, 0, "token", "transfer", {"to": CAROL.address, "amount": 1})
    cheap = Transaction.create(
        ALICE, CHAIN_ID, 0, "token", "burn", {"amount": 1}, fee=good.fee
    )  # a transfer's price, without the burn's surcharge
    assert app.prepare_proposal([good.to_bytes(), cheap.to_bytes()]) == (good,)
    block = next_block(app, [good, cheap])
    verdict = app.process_proposal(block)
    assert not verdict.accept
    assert verdict.reason == f"tx 1: fee {cheap.fee} is below the minimum {app.min_fee(cheap)}"
    state = list(app.state().iterate())
    with pytest.raises(InvalidBlockError):
        app.finalize_block(block)
    assert list(app.state().iterate()) == state and app.store.height == 0


@pytest.mark.parametrize(
    "txs, reason",
    [
        # MALLORY holds nothing: not even its fee.
        ([signed(MALLORY, 0, "token", "burn", {"amount": 1})], "tx 0: fee 3 may not be payable"),
        # BOB's first transfer may take all it holds: its second's fee may find nothing.
        (
            [
                transfer(BOB, 0, CAROL.address, INITIAL_BALANCE - TEST_FEE),
                transfer(BOB, 1, CAROL.address, 1),
            ],
            f"tx 1: fee 3 may not be payable: balance {INITIAL_BALANCE}, the sender's "
            f"earlier transactions in the block may take {INITIAL_BALANCE}",
        ),
    ],
    ids=["nothing to pay with", "spent by an earlier transaction"],
)
def test_a_block_whose_fee_may_not_be_payable_is_rejected(txs, reason):
    app = make_chain().app
    assert app.prepare_proposal([tx.to_bytes() for tx in txs]) == tuple(txs[:-1])
    block = next_block(app, txs)
    verdict = app.process_proposal(block)
    assert not verdict.accept and verdict.reason.startswith(reason), verdict.reason
    with pytest.raises(InvalidBlockError):
        app.finalize_block(block)
    assert app.store.height == 0


def test_a_block_may_spend_a_balance_to_the_last_unit():
    """The block's rule counts what each transaction may take; costs that add up to the
    balance exactly are all payable."""
    chain = make_chain()
    app = chain.app
    left = INITIAL_BALANCE - 400 - 2 * TEST_FEE
    txs = [transfer(BOB, 0, CAROL.address, 400), transfer(BOB, 1, CAROL.address, left)]
    out = chain.produce_block([tx.to_bytes() for tx in txs])
    assert [r.code for r in out.result.tx_results] == [Code.OK, Code.OK]
    assert get_balance(app.state(), BOB.address) == 0
