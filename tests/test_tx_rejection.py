"""Every way a transaction is refused: a distinct code, a log that says why, and no effect.

Stateless refusals (malformed bytes, size, chain id, signature, routing, arguments),
fee, nonce and funds refusals come from `Application.check_tx` on raw bytes; a block
carrying such a transaction (but for funds: see tests/test_fees.py) is rejected by
`process_proposal` and `finalize_block` refuses to execute it without touching the
store. Handler failures are different: the transaction is included with a non-zero
code in the module's codespace, its writes and events are discarded, and its nonce
is consumed and its fee paid (burnt), with a `fee` event.
"""

from __future__ import annotations

import msgpack
import pytest

from cloudchain import codec
from cloudchain.chaincode.application import MAX_NONCE_LEAD, Application, InvalidBlockError
from cloudchain.chaincode.codes import AUTH_CODESPACE, Code
from cloudchain.chaincode.module import MAX_AMOUNT, Module, TxError
from cloudchain.chaincode.modules.token import (
    SUPPLY_KEY,
    TOKEN,
    balance_key,
    get_balance,
    get_supply,
)
from cloudchain.ledger import MAX_TX_BYTES, Block, Event, Transaction
from cloudchain.node.solo import SoloChain, build_block, sign_commit
from cloudchain.storage.chain import ChainStore
from cloudchain.storage.kv import MemoryKV
from tests.helpers.chain import (
    ACCOUNTS,
    AUTHORITY,
    CHAIN_ID,
    INITIAL_BALANCE,
    TEST_FEE,
    VALIDATOR,
    StepClock,
    key,
    make_chain,
    make_genesis,
    signed,
    transfer,
)

ALICE, BOB, CAROL = ACCOUNTS[:3]
assert ALICE == AUTHORITY
MALLORY = key("mallory")


@pytest.fixture
def chain():
    return make_chain()


@pytest.fixture
def app(chain):
    return chain.app


# --- helpers ------------------------------------------------------------------------------


def valid_tx(nonce: int = 0, sender=BOB, amount: int = 5) -> Transaction:
    return transfer(sender, nonce, CAROL.address, amount)


def fields(tx: Transaction) -> dict:
    """The transaction as a plain dict of its eight fields."""
    return {**codec.thaw(tx._body()), "signature": tx.signature}


def pack_in_order(obj) -> bytes:
    """msgpack of `obj` keeping the dict's insertion order (not canonical)."""
    return msgpack.packb(obj, use_bin_type=True)


def flip_bit(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def next_block(app, txs):
    """A block extending `app`'s committed chain, signed as the solo validator would."""
    last = app.store.last_block
    last_commit = None if last is None else sign_commit(CHAIN_ID, last, VALIDATOR)
    return build_block(app, txs, VALIDATOR, last_commit)


def snapshot(app):
    """Everything a rejected block must leave untouched."""
    store = app.store
    return {
        "info": app.info(),
        "app_hash": store.app_hash,
        "state": list(app.state().iterate()),
        "next_block": store.block(store.height + 1),
        "next_hash": store.app_hash_at(store.height + 1),
    }


def assert_refused(result, code: Code, *mentions: str) -> None:
    assert result.code == code, (result.code, result.log)
    assert not result.ok
    if result.tx is None:  # not even a transaction
        assert code in (Code.MALFORMED_TX, Code.TX_TOO_LARGE)
        assert result.fee == result.cost == 0
    else:  # refused after decoding: what it pays and may cost are known
        assert result.fee == result.tx.fee and result.cost >= result.fee
    assert result.codespace == AUTH_CODESPACE
    for text in mentions:
        assert text in result.log, (text, result.log)


def fee_event(tx: Transaction) -> Event:
    return Event("fee", (("amount", str(tx.fee)), ("payer", tx.sender_address)))


def less_fees(state: list, txs: list[Transaction]) -> list:
    """`state` (pairs) as it is once the senders of `txs` have paid their fees: taken
    from their balances and from the supply (burnt)."""
    values = dict(state)
    for tx in txs:
        for state_key in (balance_key(tx.sender_address), SUPPLY_KEY):
            left = codec.decode(values[state_key]) - tx.fee
            assert left >= 0
            values[state_key] = codec.encode(left)
            if left == 0 and state_key != SUPPLY_KEY:
                del values[state_key]  # an empty account leaves no trace
    return sorted(values.items())


# --- malformed bytes ----------------------------------------------------------------------

TX = valid_tx()
RAW = TX.to_bytes()


def _with(**changes) -> bytes:
    return codec.encode({**fields(TX), **changes})


def _without(name: str) -> bytes:
    body = fields(TX)
    del body[name]
    return codec.encode(body)


def _unsorted() -> bytes:
    body = fields(TX)
    raw = pack_in_order(dict(sorted(body.items(), reverse=True)))
    assert raw != RAW and msgpack.unpackb(raw) == msgpack.unpackb(RAW)
    return raw


def _wide_nonce() -> bytes:
    # The nonce 0 as a uint16 (0xcd 0x00 0x00) instead of the one-byte fixint.
    raw = RAW.replace(b"\xa5nonce\x00", b"\xa5nonce\xcd\x00\x00")
    assert raw != RAW and msgpack.unpackb(raw) == msgpack.unpackb(RAW)
    return raw


def _float_arg() -> bytes:
    body = fields(TX)
    body["args"] = {"amount": 5.0, "to": CAROL.address}
    return pack_in_order(dict(sorted(body.items())))


def _deep_args() -> bytes:
    nested = "leaf"
    for _ in range(codec.MAX_DEPTH + 2):
        nested = [nested]
    body = fields(TX)
    body["args"] = {"amount": 5, "to": CAROL.address, "z": nested}
    return pack_in_order(dict(sorted(body.items())))


def _bytes_key() -> bytes:
    body = fields(TX)
    body["args"] = {b"amount": 5, "to": CAROL.address}
    return pack_in_order(dict(sorted(body.items())))


MALFORMED = {
    "garbage": (b"\xc1\xc1\xc1", "malformed msgpack"),
    "empty": (b"", "malformed msgpack"),
    "text": (b"transfer 5 to carol", "transaction"),
    "truncated_by_one": (RAW[:-1], "malformed msgpack"),
    "truncated_half": (RAW[: len(RAW) // 2], "malformed msgpack"),
    "trailing_byte": (RAW + b"\x00", "malformed msgpack"),
    "array": (codec.encode(list(fields(TX).values())), "expected a map"),
    "string": (codec.encode("transaction"), "expected a map"),
    "nil": (codec.encode(None), "expected a map"),
    "missing_signature": (_without("signature"), "missing field(s) signature"),
    "missing_nonce": (_without("nonce"), "missing field(s) nonce"),
    "missing_fee": (_without("fee"), "missing field(s) fee"),
    "fee_str": (_with(fee="3"), "transaction.fee: expected an integer, got str"),
    "fee_negative": (_with(fee=-1), "transaction.fee: -1 is outside"),
    "fee_too_large": (_with(fee=2**63), f"transaction.fee: {2**63} is outside"),
    "extra_field": (_with(memo="hi"), "unknown field(s) memo"),
    "nonce_str": (_with(nonce="0"), "transaction.nonce: expected an integer, got str"),
    "nonce_bool": (_with(nonce=False), "transaction.nonce: expected an integer, got bool"),
    "nonce_negative": (_with(nonce=-1), "transaction.nonce: -1 is outside"),
    "sender_str": (_with(sender=BOB.public_key.hex()), "transaction.sender: expected bytes"),
    "sender_short": (_with(sender=BOB.public_key[:31]), "transaction.sender: expected 32 bytes"),
    "signature_str": (_with(signature="00" * 64), "transaction.signature: expected bytes"),
    "signature_short": (_with(signature=bytes(63)), "transaction.signature: expected 64 bytes"),
    "chain_id_int": (_with(chain_id=7), "transaction.chain_id: expected a string"),
    "chain_id_pattern": (_with(chain_id="bad chain!"), "transaction.chain_id"),
    "module_bytes": (_with(module=b"token"), "transaction.module: expected a string"),
    "method_pattern": (_with(method="Transfer"), "transaction.method"),
    "args_list": (_with(args=[CAROL.address, 5]), "transaction.args: expected a map"),
    "float_in_args": (_float_arg(), "float"),
    "too_deep_args": (_deep_args(), "nested deeper"),
    "bytes_map_key": (_bytes_key(), "map keys must be str"),
    "unsorted_keys": (_unsorted(), "canonical"),
    "non_minimal_int": (_wide_nonce(), "canonical"),
}


@pytest.mark.parametrize("raw, mention", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_bytes_are_refused(app, raw, mention):
    assert raw != RAW
    result = app.check_tx(raw)
    assert_refused(result, Code.MALFORMED_TX, "transaction", mention)
    assert result.tx is None


def test_the_unmodified_transaction_is_accepted(app):
    # The baseline every malformed variant above departs from.
    result = app.check_tx(RAW)
    assert result.ok and result.code == Code.OK and result.log == ""
    assert result.tx == TX


# --- size ---------------------------------------------------------------------------------


def _with_memo(chars: int) -> bytes:
    args = {"to": CAROL.address, "amount": 5, "memo": "x" * chars}
    return signed(BOB, 0, "token", "transfer", args).to_bytes()


def _memo_for_size(size: int) -> int:
    base = 1_000  # large enough for a 2-byte string length, as the final memo has
    return base + size - len(_with_memo(base))


def test_a_transaction_over_the_size_limit_is_refused(app):
    raw = _with_memo(_memo_for_size(MAX_TX_BYTES + 1))
    assert len(raw) == MAX_TX_BYTES + 1
    assert_refused(app.check_tx(raw), Code.TX_TOO_LARGE, str(MAX_TX_BYTES), str(len(raw)))


def test_a_much_larger_transaction_is_refused_for_its_size(app):
    raw = _with_memo(4 * MAX_TX_BYTES)
    assert_refused(app.check_tx(raw), Code.TX_TOO_LARGE, str(MAX_TX_BYTES))


def test_a_transaction_of_exactly_the_size_limit_passes_the_size_check(app):
    raw = _with_memo(_memo_for_size(MAX_TX_BYTES))
    assert len(raw) == MAX_TX_BYTES
    # Refused only for the memo argument the transfer does not take.
    assert_refused(app.check_tx(raw), Code.INVALID_ARGS, "unknown argument(s): memo")


def test_process_proposal_rejects_an_oversized_transaction_object(app):
    args = {"to": CAROL.address, "amount": 5, "memo": "x" * MAX_TX_BYTES}
    big = signed(BOB, 0, "token", "transfer", args)
    assert len(big.to_bytes()) > MAX_TX_BYTES
    verdict = app.process_proposal(next_block(app, [big]))
    assert not verdict.accept
    assert verdict.reason.startswith("tx 0: ") and str(MAX_TX_BYTES) in verdict.reason


# --- signatures and chain id --------------------------------------------------------------


def test_every_single_bit_flip_of_the_signature_is_refused(app):
    for bit in range(8 * len(TX.signature)):
        raw = TX.with_signature(flip_bit(TX.signature, bit)).to_bytes()
        assert_refused(app.check_tx(raw), Code.BAD_SIGNATURE, "signature")


def test_a_signature_by_another_key_is_refused(app):
    forged = TX.with_signature(MALLORY.sign(TX.sign_bytes()))
    assert_refused(app.check_tx(forged.to_bytes()), Code.BAD_SIGNATURE, "signature")


def test_a_malleated_signature_is_refused(app):
    # (R, S + L) verifies under a lax Ed25519 check and would give the same transfer a
    # second hash; the scalar must be reduced.
    order = 2**252 + 27742317777372353535851937790883648493
    r, s = TX.signature[:32], int.from_bytes(TX.signature[32:], "little")
    malleated = TX.with_signature(r + (s + order).to_bytes(32, "little"))
    assert malleated.to_bytes() != RAW
    assert_refused(app.check_tx(malleated.to_bytes()), Code.BAD_SIGNATURE, "signature")


def test_a_signature_of_other_bytes_is_refused(app):
    other = valid_tx(amount=6)
    moved = TX.with_signature(other.signature)
    assert_refused(app.check_tx(moved.to_bytes()), Code.BAD_SIGNATURE, "signature")


def test_a_transaction_for_another_chain_is_refused(app):
    tx = transfer(BOB, 0, CAROL.address, 5, chain_id="other-chain")
    assert tx.verify_signature()
    assert_refused(
        app.check_tx(tx.to_bytes()), Code.WRONG_CHAIN_ID, "'other-chain'", repr(CHAIN_ID)
    )


# --- nonces -------------------------------------------------------------------------------


def test_a_committed_transaction_cannot_be_replayed(chain, app):
    raw = TX.to_bytes()
    assert app.check_tx(raw).ok
    out = chain.produce_block([raw])
    assert out.block.txs == (TX,)
    assert out.result.tx_results[0].ok
    assert app.nonce(BOB.address) == 1

    assert_refused(app.check_tx(raw), Code.NONCE_TOO_LOW, "nonce 0", "next is 1")
    other = valid_tx(nonce=0, amount=7)  # new bytes, used nonce
    assert_refused(app.check_tx(other.to_bytes()), Code.NONCE_TOO_LOW, "nonce 0", "next is 1")

    # Nor can it enter a block again.
    assert app.prepare_proposal([raw, other.to_bytes()]) == ()
    verdict = app.process_proposal(next_block(app, [TX]))
    assert not verdict.accept
    assert "tx 0" in verdict.reason and "nonce 0, expected 1" in verdict.reason
    assert app.store.tx_location(TX.hash) == (1, 0)


def test_a_nonce_too_far_ahead_is_refused(chain, app):
    lead = valid_tx(nonce=MAX_NONCE_LEAD)
    assert app.check_tx(lead.to_bytes()).ok
    too_far = valid_tx(nonce=MAX_NONCE_LEAD + 1)
    assert_refused(
        app.check_tx(too_far.to_bytes()),
        Code.NONCE_TOO_HIGH,
        f"nonce {MAX_NONCE_LEAD + 1}",
        str(MAX_NONCE_LEAD),
        "next (0)",
    )
    # The window moves with the committed nonce.
    chain.produce_block([TX.to_bytes()])
    assert app.check_tx(too_far.to_bytes()).ok
    assert_refused(
        app.check_tx(valid_tx(nonce=MAX_NONCE_LEAD + 2).to_bytes()),
        Code.NONCE_TOO_HIGH,
        f"nonce {MAX_NONCE_LEAD + 2}",
        "next (1)",
    )


@pytest.mark.parametrize(
    "nonces, index, expected",
    [([1], 0, 0), ([0, 2], 1, 1), ([0, 0], 1, 1), ([1, 0], 0, 0)],
    ids=["gap_at_start", "gap_after_one", "duplicate", "reversed"],
)
def test_a_block_breaking_the_nonce_sequence_is_rejected(app, nonces, index, expected):
    txs = [valid_tx(nonce=n, amount=5 + i) for i, n in enumerate(nonces)]
    assert all(app.check_tx(tx.to_bytes()).code != Code.MALFORMED_TX for tx in txs)
    block = next_block(app, txs)
    before = snapshot(app)
    verdict = app.process_proposal(block)
    assert not verdict.accept
    assert f"tx {index}: nonce {nonces[index]}, expected {expected}" in verdict.reason
    with pytest.raises(InvalidBlockError, match="nonce"):
        app.finalize_block(block)
    assert snapshot(app) == before


def test_prepare_proposal_drops_a_nonce_gap_but_keeps_the_sequence(app):
    gap, first, second = valid_tx(nonce=1), valid_tx(nonce=0, amount=6), valid_tx(nonce=1)
    # The gap comes first and is dropped; nonce 1 is then taken in order.
    chosen = app.prepare_proposal([gap.to_bytes(), first.to_bytes(), second.to_bytes()])
    assert chosen == (first, second)
    assert app.process_proposal(next_block(app, list(chosen))).accept


# --- routing and arguments ----------------------------------------------------------------


def test_an_unknown_module_is_refused(app):
    tx = signed(BOB, 0, "bank", "transfer", {"to": CAROL.address})
    assert_refused(app.check_tx(tx.to_bytes()), Code.UNKNOWN_MODULE, "'bank'")


def test_an_unknown_method_is_refused(app):
    tx = signed(BOB, 0, "token", "steal", {"amount": 5})
    assert_refused(app.check_tx(tx.to_bytes()), Code.UNKNOWN_METHOD, "'token'", "'steal'")


ADDR = CAROL.address
INVALID_ARGS = {
    "missing_amount": ("transfer", {"to": ADDR}, "missing argument(s): amount"),
    "missing_to": ("mint", {"amount": 5}, "missing argument(s): to"),
    "burn_no_args": ("burn", {}, "missing argument(s): amount"),
    "extra_arg": ("transfer", {"to": ADDR, "amount": 5, "memo": "hi"}, "unknown argument(s): memo"),
    "burn_extra_to": ("burn", {"to": ADDR, "amount": 5}, "unknown argument(s): to"),
    "negative": ("transfer", {"to": ADDR, "amount": -5}, "argument amount: -5 is not in [1,"),
    "zero": ("burn", {"amount": 0}, "argument amount: 0 is not in [1,"),
    "above_max": ("mint", {"to": ADDR, "amount": MAX_AMOUNT + 1}, f"{MAX_AMOUNT + 1} is not in"),
    "bool_true": ("transfer", {"to": ADDR, "amount": True}, "argument amount: expected an integer"),
    "bool_false": ("burn", {"amount": False}, "got bool"),
    "amount_str": ("transfer", {"to": ADDR, "amount": "5"}, "got str"),
    "amount_bytes": ("transfer", {"to": ADDR, "amount": b"\x05"}, "got bytes"),
    "address_upper": ("transfer", {"to": ADDR.upper(), "amount": 5}, "argument to:"),
    "address_short": ("transfer", {"to": ADDR[:-1], "amount": 5}, "argument to:"),
    "address_long": ("mint", {"to": ADDR + "0", "amount": 5}, "argument to:"),
    "address_not_hex": ("transfer", {"to": "zz" * 20, "amount": 5}, "not an address"),
    "address_bytes": ("transfer", {"to": bytes.fromhex(ADDR), "amount": 5}, "not an address"),
    "address_int": ("mint", {"to": 0, "amount": 5}, "argument to: 0 is not an address"),
}


@pytest.mark.parametrize("method, args, mention", INVALID_ARGS.values(), ids=INVALID_ARGS.keys())
def test_invalid_arguments_are_refused(app, method, args, mention):
    tx = signed(BOB, 0, "token", method, args)
    assert_refused(app.check_tx(tx.to_bytes()), Code.INVALID_ARGS, f"token.{method}: ", mention)


# --- the codes are distinct ---------------------------------------------------------------


def test_each_refusal_has_its_own_code(chain, app):
    chain.produce_block([TX.to_bytes()])
    cases = {
        "malformed": b"\xc1",
        "too_large": _with_memo(MAX_TX_BYTES),
        "wrong_chain_id": transfer(BOB, 1, ADDR, 5, chain_id="other-chain").to_bytes(),
        "bad_signature": valid_tx(1).with_signature(flip_bit(valid_tx(1).signature, 0)).to_bytes(),
        "nonce_too_low": TX.to_bytes(),
        "nonce_too_high": valid_tx(nonce=2 + MAX_NONCE_LEAD).to_bytes(),
        "unknown_module": signed(BOB, 1, "bank", "x", {}).to_bytes(),
        "unknown_method": signed(BOB, 1, "token", "x", {}).to_bytes(),
        "invalid_args": signed(BOB, 1, "token", "burn", {}).to_bytes(),
        "fee_too_low": transfer(BOB, 1, ADDR, 5, fee=TEST_FEE - 1).to_bytes(),
        "insufficient_funds": transfer(BOB, 1, ADDR, INITIAL_BALANCE).to_bytes(),
    }
    codes = {name: app.check_tx(raw).code for name, raw in cases.items()}
    assert codes == {
        "malformed": Code.MALFORMED_TX,
        "too_large": Code.TX_TOO_LARGE,
        "wrong_chain_id": Code.WRONG_CHAIN_ID,
        "bad_signature": Code.BAD_SIGNATURE,
        "nonce_too_low": Code.NONCE_TOO_LOW,
        "nonce_too_high": Code.NONCE_TOO_HIGH,
        "unknown_module": Code.UNKNOWN_MODULE,
        "unknown_method": Code.UNKNOWN_METHOD,
        "invalid_args": Code.INVALID_ARGS,
        "fee_too_low": Code.FEE_TOO_LOW,
        "insufficient_funds": Code.INSUFFICIENT_FUNDS,
    }
    values = [int(c) for c in codes.values()] + [Code.UNAUTHORIZED]
    assert len(set(values)) == len(values)
    assert Code.OK not in values
    # A valid transaction at the next nonce passes, so none of the above is a blanket refusal.
    assert app.check_tx(valid_tx(1).to_bytes()).ok


# --- handler failures ---------------------------------------------------------------------


def _non_nonce_state(app):
    return [(k, v) for k, v in app.state().iterate() if not k.startswith(b"auth/nonce/")]


def test_handler_failures_are_recorded_without_effect_and_consume_the_nonce(chain, app):
    # A sender's transaction that may take more than it holds comes last among its
    # transactions in the block: it may take all the sender has (see test_fees.py).
    failing = [
        (
            signed(BOB, 0, "token", "mint", {"to": BOB.address, "amount": 9}),
            Code.UNAUTHORIZED,
            ("authority", "mint"),
        ),
        (
            transfer(BOB, 1, CAROL.address, INITIAL_BALANCE + 1),
            Code.INSUFFICIENT_FUNDS,
            ("insufficient funds", f"balance {INITIAL_BALANCE - 2 * TEST_FEE}", "need 1001"),
        ),
        (
            signed(CAROL, 0, "token", "burn", {"amount": 5_000}),
            Code.INSUFFICIENT_FUNDS,
            ("insufficient funds", "burn 5000"),
        ),
        (
            signed(ALICE, 0, "token", "mint", {"to": ALICE.address, "amount": MAX_AMOUNT}),
            Code.LIMIT_EXCEEDED,
            ("maximum supply",),
        ),
    ]
    # check_tx knows what a transfer or a burn may take, and refuses an overdraft; the
    # other failures are the handler's to find. A proposer may include them all: each
    # can pay its fee.
    admitted = [app.check_tx(tx.to_bytes()) for tx, _, _ in failing]
    codes = [Code.OK, Code.INSUFFICIENT_FUNDS, Code.INSUFFICIENT_FUNDS, Code.OK]
    assert [r.code for r in admitted] == codes
    assert "waiting transactions need 0 and this one 1004 (fee 3)" in admitted[1].log
    state_before = _non_nonce_state(app)
    supply_before = get_supply(app.state())

    out = chain.produce_block([tx.to_bytes() for tx, _, _ in failing])

    assert out.block.txs == tuple(tx for tx, _, _ in failing)
    for index, ((tx, code, mentions), result) in enumerate(
        zip(failing, out.result.tx_results, strict=True)
    ):
        assert result.code == code, result
        assert not result.ok
        assert result.codespace == "token"
        for text in mentions:
            assert text in result.log, (text, result.log)
        assert result.events == (fee_event(tx),)  # the fee alone: paid all the same
        assert (result.height, result.index) == (1, index)
        assert app.store.tx_result(tx.hash) == result
    paid = [tx for tx, _, _ in failing]
    assert _non_nonce_state(app) == less_fees(state_before, paid)
    assert get_supply(app.state()) == supply_before - len(failing) * TEST_FEE
    assert app.nonce(BOB.address) == 2
    assert app.nonce(CAROL.address) == 1
    assert app.nonce(ALICE.address) == 1
    assert app.store.app_hash == app.store.recompute_app_hash()

    # The failed transactions cannot run again, and the sender goes on at the next nonce.
    for tx, _, _ in failing:
        assert app.check_tx(tx.to_bytes()).code == Code.NONCE_TOO_LOW
    ok = transfer(BOB, 2, CAROL.address, 10)
    result = chain.produce_block([ok.to_bytes()]).result.tx_results[0]
    assert result.ok and result.codespace == "" and result.events
    assert get_balance(app.state(), BOB.address) == INITIAL_BALANCE - 10 - 3 * TEST_FEE
    assert get_balance(app.state(), CAROL.address) == INITIAL_BALANCE + 10 - TEST_FEE


def test_a_sender_that_cannot_pay_the_fee_is_refused_and_never_included(chain, app):
    burn = signed(MALLORY, 0, "token", "burn", {"amount": 1})  # MALLORY holds nothing
    refused = app.check_tx(burn.to_bytes())
    assert refused.code == Code.INSUFFICIENT_FUNDS and refused.codespace == AUTH_CODESPACE
    assert "balance 0" in refused.log and refused.cost == TEST_FEE + 1
    assert app.prepare_proposal([burn.to_bytes()]) == ()
    verdict = app.process_proposal(next_block(app, [burn]))
    assert not verdict.accept and "tx 0: fee 3 may not be payable: balance 0" in verdict.reason
    assert app.nonce(MALLORY.address) == 0


def test_a_failure_between_successes_leaves_only_the_successes(chain, app):
    left = INITIAL_BALANCE - 600 - 3 * TEST_FEE  # what the third transfer can still send
    txs = [
        transfer(BOB, 0, CAROL.address, 600),
        signed(BOB, 1, "token", "mint", {"to": BOB.address, "amount": 5}),  # fails
        transfer(BOB, 2, CAROL.address, left),
    ]
    out = chain.produce_block([tx.to_bytes() for tx in txs])
    assert [r.code for r in out.result.tx_results] == [Code.OK, Code.UNAUTHORIZED, Code.OK]
    assert out.result.tx_results[1].events == (fee_event(txs[1]),)
    assert [e.type for e in out.result.tx_results[0].events] == ["fee", "message", "transfer"]
    assert get_balance(app.state(), BOB.address) == 0
    assert get_balance(app.state(), CAROL.address) == INITIAL_BALANCE + 600 + left
    assert app.nonce(BOB.address) == 3


PROBE = Module("probe")


@PROBE.tx("write")
def _probe_write(ctx):
    ctx.kv.set(b"probe/written", b"\x01")
    ctx.emit("probe_wrote", by=ctx.sender)


@PROBE.tx("write_then_fail")
def _probe_write_then_fail(ctx):
    ctx.kv.set(b"probe/written", b"\x02")
    ctx.kv.set(b"token/supply", codec.encode(0))
    ctx.emit("probe_wrote", by=ctx.sender)
    raise TxError(Code.INVALID_STATE, "probe refused after writing")


@PROBE.tx("write_then_crash")
def _probe_write_then_crash(ctx):
    ctx.kv.set(b"probe/written", b"\x03")
    ctx.emit("probe_wrote", by=ctx.sender)
    raise RuntimeError("node-specific detail")


def test_a_failing_handler_leaves_no_writes_and_no_events():
    app = Application(ChainStore(MemoryKV()), make_genesis(), modules=(TOKEN, PROBE))
    chain = SoloChain(app, VALIDATOR, StepClock())
    txs = [
        signed(BOB, 0, "probe", "write_then_fail", {}),
        signed(BOB, 1, "probe", "write_then_crash", {}),
    ]
    before = _non_nonce_state(app)
    results = chain.produce_block([tx.to_bytes() for tx in txs]).result.tx_results

    assert [r.code for r in results] == [Code.INVALID_STATE, Code.INTERNAL]
    assert [r.codespace for r in results] == ["probe", "probe"]
    assert results[0].log == "probe refused after writing"
    assert results[1].log == "internal error in probe.write_then_crash: RuntimeError"
    assert [r.events for r in results] == [(fee_event(tx),) for tx in txs]  # paid, no more
    assert _non_nonce_state(app) == less_fees(before, txs)
    assert app.nonce(BOB.address) == 2

    # The same module does write when its handler succeeds.
    ok = signed(BOB, 2, "probe", "write", {})
    result = chain.produce_block([ok.to_bytes()]).result.tx_results[0]
    assert result.ok
    assert [e.type for e in result.events] == ["fee", "message", "probe_wrote"]
    assert app.state().get(b"probe/written") == b"\x01"


# --- blocks carrying invalid transactions -------------------------------------------------


def _flipped(nonce):
    tx = valid_tx(nonce)
    return tx.with_signature(flip_bit(tx.signature, 100))


BAD_IN_BLOCK = {
    "flipped_signature": (_flipped, "signature"),
    "foreign_signature": (
        lambda n: valid_tx(n).with_signature(MALLORY.sign(valid_tx(n).sign_bytes())),
        "signature",
    ),
    "zero_signature": (lambda n: valid_tx(n).with_signature(bytes(64)), "signature"),
    "wrong_chain_id": (
        lambda n: transfer(BOB, n, CAROL.address, 5, chain_id="other-chain"),
        "other-chain",
    ),
    "unknown_method": (
        lambda n: signed(BOB, n, "token", "steal", {}),
        "steal",
    ),
    "invalid_args": (
        lambda n: signed(BOB, n, "token", "burn", {"amount": -1}),
        "amount",
    ),
}


@pytest.mark.parametrize("prior_blocks", [0, 1])
@pytest.mark.parametrize("make_bad, mention", BAD_IN_BLOCK.values(), ids=BAD_IN_BLOCK.keys())
def test_a_block_with_an_invalid_transaction_is_rejected_and_not_executed(
    chain, app, make_bad, mention, prior_blocks
):
    for n in range(prior_blocks):
        chain.produce_block([transfer(ALICE, n, BOB.address, 1).to_bytes()])
    good = transfer(ALICE, prior_blocks, CAROL.address, 7)
    bad = make_bad(prior_blocks)
    # A valid proposal accepted first must not vouch for the invalid one.
    assert app.process_proposal(next_block(app, [good])).accept
    block = next_block(app, [good, bad])
    before = snapshot(app)

    verdict = app.process_proposal(block)
    assert not verdict.accept
    assert verdict.reason.startswith("tx 1: ")
    assert mention in verdict.reason
    with pytest.raises(InvalidBlockError, match=f"block {prior_blocks + 1} is invalid"):
        app.finalize_block(block)

    assert snapshot(app) == before
    assert app.store.height == prior_blocks
    assert app.nonce(ALICE.address) == prior_blocks
    # The refusal left nothing pending: the valid part alone is accepted and executed.
    fixed = next_block(app, [good])
    assert app.process_proposal(fixed).accept
    assert app.finalize_block(fixed).tx_results[0].ok
    assert app.commit().height == prior_blocks + 1
    assert get_balance(app.state(), CAROL.address) == INITIAL_BALANCE + 7


def test_an_accepted_verdict_does_not_cover_other_transactions_under_the_same_header(app):
    block = next_block(app, [valid_tx(0)])
    assert app.process_proposal(block).accept
    tampered = Block(block.header, (_flipped(0),), block.last_commit)
    assert tampered != block
    before = snapshot(app)

    verdict = app.process_proposal(tampered)
    assert not verdict.accept
    assert "data_hash" in verdict.reason
    with pytest.raises(InvalidBlockError, match="data_hash"):
        app.finalize_block(tampered)
    assert snapshot(app) == before
    assert app.finalize_block(block).tx_results[0].ok
