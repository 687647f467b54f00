from dataclasses import replace

import msgpack
import pytest

from cloudchain import codec
from cloudchain.ledger import (
    MAX_TX_BYTES,
    Block,
    BlockHeader,
    Commit,
    CommitSig,
    Event,
    MalformedError,
    TooLargeError,
    Transaction,
    TxResult,
    txs_hash,
)
from tests.helpers.chain import ACCOUNTS, CHAIN_ID, make_chain, transfer

ALICE, BOB = ACCOUNTS[0], ACCOUNTS[1]


def tx_fields():
    tx = transfer(ALICE, 0, BOB.address, 5)
    return dict(msgpack.unpackb(tx.to_bytes()))


def pack(fields):
    return codec.encode(fields)


def test_transaction_round_trip_and_signature():
    tx = transfer(ALICE, 3, BOB.address, 5)
    again = Transaction.from_bytes(tx.to_bytes())
    assert again == tx
    assert again.hash == tx.hash
    assert again.verify_signature()
    assert again.sender_address == ALICE.address
    assert again.args["amount"] == 5


def test_signature_covers_every_field():
    tx = transfer(ALICE, 3, BOB.address, 5)
    for changed in (
        replace(tx, nonce=4),
        replace(tx, chain_id="other"),
        replace(tx, fee=tx.fee + 1),  # a relay cannot lower (or raise) what the sender pays
        replace(tx, fee=0),
        replace(tx, method="burn"),
        replace(tx, args={"amount": 6, "to": BOB.address}),
        replace(tx, sender=BOB.public_key),
    ):
        assert changed.signature == tx.signature
        assert not changed.verify_signature()


def test_transaction_is_immutable():
    tx = transfer(ALICE, 0, BOB.address, 5)
    with pytest.raises(AttributeError):
        tx.nonce = 1
    with pytest.raises(TypeError):
        tx.args["amount"] = 10**6


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda f: f.pop("nonce"), "missing field"),
        (lambda f: f.update(extra=1), "unknown field"),
        (lambda f: f.update(nonce="7"), "transaction.nonce: expected an integer"),
        (lambda f: f.update(nonce=-1), "transaction.nonce"),
        (lambda f: f.pop("fee"), "missing field"),
        (lambda f: f.update(fee="7"), "transaction.fee: expected an integer"),
        (lambda f: f.update(fee=True), "transaction.fee: expected an integer"),
        (lambda f: f.update(fee=-1), "transaction.fee"),
        (lambda f: f.update(fee=2**63), "transaction.fee"),
        (lambda f: f.update(sender=b"short"), "transaction.sender: expected 32 bytes"),
        (lambda f: f.update(signature="sig"), "transaction.signature: expected bytes"),
        (lambda f: f.update(module="Token!"), "transaction.module"),
        (lambda f: f.update(chain_id="x" * 51), "transaction.chain_id"),
        (lambda f: f.update(args=[1, 2]), "transaction.args: expected a map"),
    ],
)
def test_malformed_transactions_name_the_field(change, message):
    fields = tx_fields()
    change(fields)
    with pytest.raises(MalformedError, match=message):
        Transaction.from_bytes(pack(fields))


def test_transaction_bytes_that_are_not_a_map():
    with pytest.raises(MalformedError, match="expected a map"):
        Transaction.from_bytes(codec.encode([1, 2, 3]))
    with pytest.raises(MalformedError, match="malformed msgpack"):
        Transaction.from_bytes(b"\xc1garbage")
    with pytest.raises(MalformedError, match="expected bytes"):
        Transaction.from_bytes("text")  # type: ignore[arg-type]


def test_oversized_transaction_is_refused_before_decoding():
    with pytest.raises(TooLargeError, match=str(MAX_TX_BYTES)):
        Transaction.from_bytes(b"\x00" * (MAX_TX_BYTES + 1))


def test_float_argument_cannot_be_built_or_decoded():
    with pytest.raises(ValueError, match="float"):
        Transaction.create(ALICE, CHAIN_ID, 0, "token", "transfer", {"amount": 1.5}, fee=3)
    fields = tx_fields()
    fields["args"] = {"amount": 1.5, "to": BOB.address}
    raw = msgpack.packb(dict(sorted(fields.items())), use_bin_type=True)
    with pytest.raises(MalformedError, match="float"):
        Transaction.from_bytes(raw)


def test_block_round_trip_through_a_real_chain():
    chain = make_chain()
    chain.produce_block([transfer(ALICE, 0, BOB.address, 1).to_bytes()])
    produced = chain.produce_block([transfer(ALICE, 1, BOB.address, 2).to_bytes()])
    block = produced.block
    assert block.last_commit is not None
    again = Block.from_bytes(block.to_bytes())
    assert again == block
    assert again.hash == block.hash
    assert again.header.data_hash == txs_hash(block.txs)


def block_fields():
    chain = make_chain()
    chain.produce_block([])
    block = chain.produce_block([transfer(ALICE, 0, BOB.address, 1).to_bytes()]).block
    return msgpack.unpackb(block.to_bytes())


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda b: b.pop("last_commit"), "block: missing field"),
        (lambda b: b["header"].update(height=0), "header.height"),
        (lambda b: b["header"].update(app_hash=b"\x00" * 31), "header.app_hash"),
        (lambda b: b["header"].pop("time_ns"), "header: missing field"),
        (lambda b: b["header"].update(proposer_address=b""), "header.proposer_address"),
        (lambda b: b.update(txs=[b"\xc1"]), r"block.txs\[0\]"),
        (lambda b: b.update(txs="nope"), "block.txs: expected an array"),
        (lambda b: b["last_commit"].update(round=-1), "commit.round"),
        (
            lambda b: b["last_commit"]["signatures"][0].update(signature=b"x"),
            "commit_sig.signature",
        ),
    ],
)
def test_malformed_blocks_name_the_field(change, message):
    fields = block_fields()
    change(fields)
    with pytest.raises(MalformedError, match=message):
        Block.from_bytes(codec.encode(fields))


def test_oversized_block_is_refused():
    with pytest.raises(TooLargeError):
        Block.from_bytes(b"\x00" * 101, max_bytes=100)


def test_header_and_commit_validate_on_construction():
    with pytest.raises(MalformedError, match="header.height"):
        BlockHeader(
            CHAIN_ID,
            0,
            0,
            b"",
            b"",
            b"\x00" * 32,
            b"\x00" * 32,
            b"\x00" * 32,
            b"\x00" * 32,
            b"\x00" * 20,
        )
    with pytest.raises(MalformedError, match="commit.block_hash"):
        Commit(1, 0, b"short", ())
    with pytest.raises(MalformedError, match="commit_sig.timestamp_ns"):
        CommitSig(b"\x00" * 20, -1, b"\x00" * 64)


def test_tx_result_round_trip():
    result = TxResult(0, "", "", (Event("transfer", (("amount", "5"),)),), 3, 1)
    assert TxResult.from_bytes(result.to_bytes()) == result
    with pytest.raises(MalformedError, match="event.type"):
        Event("Bad Type")
