"""Transactions decoded lately are decoded once (ledger.RECENT_TXS): the proposal that
includes a gossiped transaction gets the object its gossip made. What must not change
with it: a bad signature is refused however often its bytes are seen, other bytes are
another transaction, and the order a node saw transactions in cannot change what a
block does to the state."""

import pytest

from cloudchain.chaincode.codes import Code
from cloudchain.ledger import Block, MalformedError, Transaction
from cloudchain.node.solo import build_block
from tests.helpers.chain import ACCOUNTS, VALIDATOR, CountingVerifier, key, make_chain, transfer

ALICE, BOB, CAROL = ACCOUNTS[:3]


def test_the_same_bytes_give_the_same_transaction_and_other_bytes_another():
    tx = transfer(ALICE, 0, BOB.address, 5)
    raw = tx.to_bytes()
    first = Transaction.from_bytes(raw)
    assert Transaction.from_bytes(bytes(raw)) is first  # equal bytes, another object
    assert first == tx and first.to_bytes() == raw
    forged = tx.with_signature(key("forger").sign(tx.sign_bytes())).to_bytes()
    other = Transaction.from_bytes(forged)
    assert other is not first and other.signature != first.signature
    assert other.to_bytes() == forged


def test_a_block_decoded_after_gossip_holds_the_gossiped_objects():
    chain = make_chain()
    txs = [transfer(ALICE, n, BOB.address, 1) for n in range(3)]
    gossiped = [Transaction.from_bytes(tx.to_bytes()) for tx in txs]
    block = build_block(chain.app, gossiped, VALIDATOR, None)
    decoded = Block.from_bytes(block.to_bytes())
    assert all(a is b for a, b in zip(decoded.txs, gossiped, strict=True))
    assert decoded.to_bytes() == block.to_bytes()


def test_a_bad_signature_is_refused_every_time_its_bytes_come_back():
    verifier = CountingVerifier()
    chain = make_chain(verifier=verifier)
    app = chain.app
    tx = transfer(ALICE, 0, BOB.address, 1)
    forged = tx.with_signature(key("forger").sign(tx.sign_bytes())).to_bytes()
    for _ in range(3):
        assert app.check_tx(forged).code == Code.BAD_SIGNATURE
    assert verifier.calls == 3  # decoded once, verified (and refused) each time
    block = build_block(app, (Transaction.from_bytes(forged),), VALIDATOR, None)
    verdict = app.process_proposal(Block.from_bytes(block.to_bytes()))
    assert not verdict.accept and "signature" in verdict.reason


def test_malformed_bytes_raise_every_time():
    raw = transfer(ALICE, 0, BOB.address, 1).to_bytes()
    broken = raw[:-1]
    for _ in range(2):
        with pytest.raises(MalformedError):
            Transaction.from_bytes(broken)


def test_the_order_transactions_arrived_in_does_not_change_the_app_hash():
    txs = [
        transfer(ALICE, 0, BOB.address, 7),
        transfer(BOB, 0, CAROL.address, 3),
        transfer(ALICE, 1, CAROL.address, 2),
        transfer(CAROL, 0, ALICE.address, 1),
    ]
    raws = [tx.to_bytes() for tx in txs]
    proposer = make_chain()
    block = build_block(proposer.app, txs, VALIDATOR, None)
    hashes = []
    for arrival in (raws, raws[::-1], []):  # gossip in block order, reversed, or none
        app = make_chain().app
        for raw in arrival:
            app.check_tx(raw)
        decoded = Block.from_bytes(block.to_bytes())
        assert app.process_proposal(decoded).accept
        hashes.append(app.finalize_block(decoded).app_hash)
        app.commit()
    assert hashes[0] == hashes[1] == hashes[2]
