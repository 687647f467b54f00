"""A signature is verified once per node (chaincode/signatures.py), whichever of
check_tx, prepare_proposal and process_proposal sees the transaction first, and a
signature that does not verify is refused everywhere, however often it is asked."""

import pytest

from cloudchain.chaincode.codes import Code
from cloudchain.chaincode.signatures import VerifiedSignatures
from cloudchain.node.solo import build_block
from tests.helpers.chain import (
    ACCOUNTS,
    VALIDATOR,
    CountingVerifier,
    key,
    make_chain,
    transfer,
)

ALICE, BOB = ACCOUNTS[:2]


def test_a_signature_that_verified_is_not_verified_again_and_a_bad_one_always_is():
    verifier = CountingVerifier()
    signatures = VerifiedSignatures(verifier, capacity=2)
    good = [transfer(ALICE, n, BOB.address, 1) for n in range(3)]
    forged = good[0].with_signature(bytes(64))
    assert signatures.verify(good[0]) and signatures.verify(good[0])
    assert verifier.calls == 1
    assert not signatures.verify(forged) and not signatures.verify(forged)
    assert verifier.calls == 3  # failures are never remembered
    assert forged not in signatures and good[0] in signatures


def test_the_least_recently_used_leaves_first_and_committed_ones_are_forgotten():
    signatures = VerifiedSignatures(CountingVerifier(), capacity=2)
    a, b, c = (transfer(ALICE, n, BOB.address, 1) for n in range(3))
    signatures.verify(a)
    signatures.verify(b)
    signatures.verify(a)  # a is used again: b is now the oldest
    signatures.verify(c)
    assert a in signatures and c in signatures and b not in signatures and len(signatures) == 2
    signatures.forget([a, b])
    assert a not in signatures and len(signatures) == 1
    with pytest.raises(ValueError):
        VerifiedSignatures(CountingVerifier(), capacity=0)


def test_admitted_proposed_processed_and_finalized_a_transaction_is_verified_once():
    verifier = CountingVerifier()
    chain = make_chain(verifier=verifier)
    txs = [transfer(ALICE, n, BOB.address, 1) for n in range(3)] + [
        transfer(BOB, 0, ALICE.address, 1)
    ]
    assert all(chain.app.check_tx(tx.to_bytes()).ok for tx in txs)
    assert verifier.calls == len(txs)
    produced = chain.produce_block([tx.to_bytes() for tx in txs])
    assert [r.code for r in produced.result.tx_results] == [Code.OK] * len(txs)
    assert verifier.calls == len(txs)  # prepare, process and finalize verified none again


def test_a_block_of_transactions_this_node_never_saw_is_verified_and_a_forgery_rejected():
    verifier = CountingVerifier()
    chain = make_chain(verifier=verifier)
    app = chain.app
    seen = transfer(ALICE, 0, BOB.address, 1)
    assert app.check_tx(seen.to_bytes()).ok
    unseen = transfer(BOB, 0, ALICE.address, 1)
    block = build_block(app, (seen, unseen), VALIDATOR, None)
    assert app.process_proposal(block).accept
    assert verifier.calls == 2  # `unseen` once, in process_proposal; `seen` not again
    # The same sender, nonce and body with another signature is another transaction.
    forged = seen.with_signature(key("forger").sign(seen.sign_bytes()))
    refused = app.process_proposal(build_block(app, (forged,), VALIDATOR, None))
    assert not refused.accept and "signature" in refused.reason
    assert app.prepare_proposal([forged.to_bytes()]) == ()


def test_check_tx_refuses_what_the_state_refuses_without_verifying():
    verifier = CountingVerifier()
    chain = make_chain(verifier=verifier)
    unfunded = transfer(key("stranger"), 0, BOB.address, 1)  # owns nothing
    assert chain.app.check_tx(unfunded.to_bytes()).code == Code.INSUFFICIENT_FUNDS
    assert verifier.calls == 0
    replay_source = transfer(ALICE, 0, BOB.address, 1)
    chain.produce_block([replay_source.to_bytes()])
    calls = verifier.calls
    assert chain.app.check_tx(replay_source.to_bytes()).code == Code.NONCE_TOO_LOW
    forged = transfer(ALICE, 1, BOB.address, 1).with_signature(bytes(64))
    assert chain.app.check_tx(forged.to_bytes()).code == Code.BAD_SIGNATURE
    assert verifier.calls == calls + 1  # only the forgery, whose state checks passed
