"""The ledger types' cached bytes: what decoding keeps and what signing derives.

A decoded transaction keeps its input bytes as its encoding, a decoded block keeps
its own, and a transaction's sign bytes are sliced from its encoding. Each of these
must be exactly what encoding the fields again gives, and a cache must never let a
wrong signature pass: every instance derives its bytes from its own fields.
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudchain import codec
from cloudchain.crypto import SIGNATURE_BYTES
from cloudchain.ledger import (
    TX_SIGN_DOMAIN,
    Block,
    BlockHeader,
    Event,
    MalformedError,
    Transaction,
    TxResult,
    txs_hash,
)
from tests.helpers.chain import ACCOUNTS, CHAIN_ID, transfer

ALICE, BOB = ACCOUNTS[0], ACCOUNTS[1]

args_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=codec.INT_MIN, max_value=codec.INT_MAX)
    | st.text(max_size=12)
    | st.binary(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children)
    ),
    max_leaves=12,
)
transactions = st.builds(
    lambda nonce, fee, module, method, args: Transaction.create(
        ALICE, CHAIN_ID, nonce, module, method, args, fee=fee
    ),
    st.integers(0, 2**63 - 1),
    st.integers(0, 2**63 - 1),
    st.from_regex(r"\A[a-z][a-z0-9_]{0,31}\Z"),
    st.from_regex(r"\A[a-z][a-z0-9_]{0,31}\Z"),
    st.dictionaries(st.text(max_size=8), args_values, max_size=6),
)


def _encoded_afresh(tx: Transaction) -> bytes:
    return codec.encode({**tx._body(), "signature": tx.signature})


def _sign_bytes_afresh(tx: Transaction) -> bytes:
    return TX_SIGN_DOMAIN + codec.encode(tx._body())


@settings(max_examples=150, deadline=None)
@given(transactions)
def test_cached_bytes_are_the_fields_encoded_again(tx):
    decoded = Transaction.from_bytes(tx.to_bytes())
    for one in (tx, decoded, Transaction.from_obj(codec.decode(tx.to_bytes()))):
        assert one.to_bytes() == _encoded_afresh(one) == tx.to_bytes()
        assert one.sign_bytes() == _sign_bytes_afresh(one)
        assert one.hash == codec.sha256(_encoded_afresh(one))
        assert one.verify_signature()
    assert decoded == tx


@settings(max_examples=60, deadline=None)
@given(transactions, st.binary(min_size=SIGNATURE_BYTES, max_size=SIGNATURE_BYTES))
def test_with_signature_carries_no_stale_bytes(tx, signature):
    for one in (tx, Transaction.from_bytes(tx.to_bytes())):
        one.sign_bytes(), one.to_bytes()  # both cached before the signature changes
        resigned = one.with_signature(signature)
        assert resigned.signature == signature
        assert resigned.to_bytes() == _encoded_afresh(resigned)
        assert resigned.sign_bytes() == _sign_bytes_afresh(resigned) == one.sign_bytes()
        assert resigned.hash == codec.sha256(_encoded_afresh(resigned))
        assert resigned.verify_signature() == (signature == tx.signature)


def test_a_wrong_signature_is_refused_however_the_transaction_was_made():
    tx = transfer(ALICE, 3, BOB.address, 5)
    tx.sign_bytes()
    wrong = bytes([tx.signature[0] ^ 1]) + tx.signature[1:]
    flipped = tx.to_bytes()[:-SIGNATURE_BYTES] + wrong
    for bad in (
        tx.with_signature(wrong),
        Transaction.from_bytes(flipped),
        Transaction.from_bytes(tx.to_bytes()).with_signature(wrong),
        Transaction.from_bytes(tx.with_signature(wrong).to_bytes()),
    ):
        assert bad.to_bytes() == flipped and bad.hash != tx.hash
        assert not bad.verify_signature()
    assert Transaction.from_bytes(flipped).with_signature(tx.signature).verify_signature()


def test_sign_bytes_follow_each_field_of_a_decoded_transaction():
    tx = Transaction.from_bytes(transfer(ALICE, 3, BOB.address, 5).to_bytes())
    tx.sign_bytes()
    for changed in (
        replace(tx, nonce=4),
        replace(tx, fee=tx.fee + 1),
        replace(tx, args={"amount": 6, "to": BOB.address}),
        replace(tx, sender=BOB.public_key),
    ):
        assert changed.sign_bytes() == _sign_bytes_afresh(changed) != tx.sign_bytes()
        assert not changed.verify_signature()
        tampered = Transaction.from_bytes(changed.to_bytes())  # the same signature, re-sent
        assert tampered.sign_bytes() == changed.sign_bytes()
        assert not tampered.verify_signature()


def test_decoding_builds_what_the_constructor_builds():
    # Transaction._from_decoded sets the fields itself: it must stay the dataclass's init.
    fields = dataclasses.fields(Transaction)
    assert tuple(f.name for f in fields) == Transaction.FIELDS
    assert all(f.init and f.default is dataclasses.MISSING for f in fields)
    assert all(f.default_factory is dataclasses.MISSING for f in fields)
    args = {"z": [1, {"b": b"x", "a": None}], "a": {"y": (), "x": "é"}}
    tx = Transaction.create(ALICE, CHAIN_ID, 1, "token", "transfer", args, fee=9)
    decoded = Transaction.from_bytes(tx.to_bytes())
    built = Transaction(*(getattr(decoded, name) for name in Transaction.FIELDS))
    assert decoded == built == tx
    assert repr(decoded.args) == repr(built.args) == repr(tx.args)  # same types, same order
    assert decoded.__dict__.keys() >= set(Transaction.FIELDS)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("nonce", -1, "transaction.nonce: -1 is outside"),
        ("fee", True, "transaction.fee: expected an integer, got bool"),
        ("module", "Token", "transaction.module"),
        ("signature", bytes(63), "transaction.signature: expected 64 bytes"),
    ],
)
def test_decoded_fields_are_checked_as_the_constructor_checks_them(field, value, message):
    body = {**transfer(ALICE, 3, BOB.address, 5)._body(), "signature": bytes(64), field: value}
    with pytest.raises(MalformedError, match=message):
        Transaction.from_bytes(codec.encode(body))


def _block(txs: tuple[Transaction, ...]) -> Block:
    z = bytes(32)
    address = bytes.fromhex(ALICE.address)
    header = BlockHeader(CHAIN_ID, 2, 5, z, z, txs_hash(txs), z, z, z, address)
    return Block(header, txs, None)


def test_a_decoded_block_keeps_its_bytes_and_its_transactions_theirs():
    txs = tuple(transfer(ALICE, n, BOB.address, n + 1) for n in range(20))
    block = _block(txs)
    decoded = Block.from_bytes(block.to_bytes())
    assert decoded == block
    assert decoded.to_bytes() == Block._encoded.func(decoded) == block.to_bytes()
    for built, tx in zip(txs, decoded.txs, strict=True):
        assert tx.to_bytes() == _encoded_afresh(tx) == built.to_bytes()
        assert tx.sign_bytes() == _sign_bytes_afresh(tx) and tx.verify_signature()
    assert decoded.header.data_hash == txs_hash(decoded.txs)


def test_a_block_with_a_forged_transaction_decodes_but_the_forgery_does_not_verify():
    txs = [transfer(ALICE, n, BOB.address, 1) for n in range(3)]
    good = txs[1]
    txs[1] = good.with_signature(bytes(SIGNATURE_BYTES))
    decoded = Block.from_bytes(_block(tuple(txs)).to_bytes())
    assert [tx.verify_signature() for tx in decoded.txs] == [True, False, True]
    assert decoded.txs[1].sign_bytes() == good.sign_bytes()


def test_a_result_keeps_its_encoding_built_and_decoded():
    events = (Event("transfer", (("amount", "5"), ("recipient", BOB.address))), Event("fee"))
    result = TxResult(3, "token", "insufficient funds", events, 9, 2)
    data = result.to_bytes()
    assert data == codec.encode(result.to_obj()) and result.to_bytes() is data
    decoded = TxResult.from_bytes(data)
    assert decoded == result
    assert decoded.to_bytes() == TxResult._encoded.func(decoded) == data
    other = replace(result, code=0)  # another instance: its own encoding
    assert other.to_bytes() == codec.encode(other.to_obj()) != data
