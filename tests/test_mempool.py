from cloudchain.chaincode.application import BAD_SIGNATURE_LOG
from cloudchain.chaincode.codes import Code
from cloudchain.ledger import Transaction
from cloudchain.node.mempool import Mempool
from tests.helpers.chain import (
    ACCOUNTS,
    TEST_FEE,
    CountingVerifier,
    key,
    make_chain,
    signed,
    transfer,
)

ALICE, BOB, CAROL = ACCOUNTS[0], ACCOUNTS[1], ACCOUNTS[2]
MALLORY = key("mempool-mallory")


def test_admits_checked_transactions_and_refuses_with_codes():
    chain = make_chain()
    pool = Mempool(chain.app)
    tx = transfer(ALICE, 0, BOB.address, 5)
    assert pool.add(tx.to_bytes()).ok
    again = pool.add(tx.to_bytes())
    assert (again.code, again.codespace) == (Code.TX_IN_MEMPOOL, "mempool")
    same_nonce = pool.add(transfer(ALICE, 0, CAROL.address, 6).to_bytes())
    assert same_nonce.code == Code.NONCE_PENDING and "nonce 0" in same_nonce.log
    bad = pool.add(b"not a transaction")
    assert (bad.code, bad.codespace) == (Code.MALFORMED_TX, "auth") and bad.log
    wrong_chain = pool.add(transfer(BOB, 0, ALICE.address, 1, chain_id="elsewhere").to_bytes())
    assert wrong_chain.code == Code.WRONG_CHAIN_ID
    assert len(pool) == 1 and tx.hash in pool


def test_bounded_by_count_and_by_bytes():
    chain = make_chain()
    pool = Mempool(chain.app, max_txs=2)
    assert pool.add(transfer(ALICE, 0, BOB.address, 1).to_bytes()).ok
    assert pool.add(transfer(ALICE, 1, BOB.address, 1).to_bytes()).ok
    full = pool.add(transfer(ALICE, 2, BOB.address, 1).to_bytes())
    assert full.code == Code.MEMPOOL_FULL and "2 transactions" in full.log
    raw = transfer(BOB, 0, ALICE.address, 1).to_bytes()
    small = Mempool(chain.app, max_bytes=len(raw) + 10)
    assert small.add(raw).ok
    refused = small.add(transfer(BOB, 1, ALICE.address, 1).to_bytes())
    assert refused.code == Code.MEMPOOL_FULL and "bytes" in refused.log
    assert small.size_bytes == len(raw)


def test_reap_keeps_each_senders_nonce_order_and_arrival_order_otherwise():
    chain = make_chain()
    pool = Mempool(chain.app)
    a1 = transfer(ALICE, 1, BOB.address, 1)
    b0 = transfer(BOB, 0, ALICE.address, 1)
    a0 = transfer(ALICE, 0, BOB.address, 1)
    c5 = transfer(CAROL, 5, ALICE.address, 1)  # a gap: CAROL's next nonce is 0
    for tx in (a1, b0, a0, c5):
        assert pool.add(tx.to_bytes()).ok
    assert pool.reap() == [b0.to_bytes(), a0.to_bytes(), a1.to_bytes()]
    assert pool.reap(max_txs=2) == [b0.to_bytes(), a0.to_bytes()]
    produced = chain.produce_block(pool.reap())
    assert [r.code for r in produced.result.tx_results] == [Code.OK] * 3


def test_update_drops_included_and_no_longer_valid_transactions():
    chain = make_chain()
    pool = Mempool(chain.app)
    included = transfer(ALICE, 0, BOB.address, 1)
    rival = signed(ALICE, 0, "token", "burn", {"amount": 1})
    waiting = transfer(BOB, 0, CAROL.address, 1)
    assert pool.add(included.to_bytes()).ok and pool.add(waiting.to_bytes()).ok
    other = Mempool(chain.app)
    assert other.add(rival.to_bytes()).ok
    chain.produce_block([included.to_bytes()])
    assert pool.update([included]) == [] and len(pool) == 1
    dropped = other.update([included])  # the rival's nonce is used now
    assert [d.code for d in dropped] == [Code.NONCE_TOO_LOW] and len(other) == 0
    assert pool.size_bytes == len(waiting.to_bytes())


def test_after_a_commit_the_real_application_rechecks_without_verifying_signatures():
    """recheck_tx, not check_tx: once admitted, a signature is never verified again (the
    Application's verifier counts every signature it checks)."""
    verifier = CountingVerifier()
    chain = make_chain(verifier=verifier)
    pool = Mempool(chain.app)
    txs = [transfer(ALICE, n, BOB.address, 1) for n in range(3)] + [
        transfer(BOB, 0, CAROL.address, 1)
    ]
    for tx in txs:
        assert pool.add(tx.to_bytes()).ok
    assert verifier.calls == len(txs)
    block = [txs[0]]
    chain.produce_block([t.to_bytes() for t in block])
    calls = verifier.calls  # the block's own checks verified txs[0]
    assert pool.update(block) == []
    assert verifier.calls == calls and len(pool) == 3
    assert pool.stats().recheck_times == 2  # ALICE's two others; BOB had nothing in the block
    assert pool.reap() == [txs[1].to_bytes(), txs[2].to_bytes(), txs[3].to_bytes()]


def forged(tx: Transaction) -> Transaction:
    """`tx` signed by a key that is not its sender's."""
    return tx.with_signature(MALLORY.sign(tx.sign_bytes()))


def test_the_signature_is_verified_last_and_a_bad_one_is_still_refused_whatever_the_order():
    """check_tx(verify=False), the mempool's rules, then verify_signature: a refusal for
    room costs no verification, and a forged transaction never gets in, whichever rule
    it meets first."""
    verifier = CountingVerifier()
    chain = make_chain(verifier=verifier)
    pool = Mempool(chain.app, max_txs=2)
    waiting = [transfer(ALICE, 0, BOB.address, 1), transfer(BOB, 0, ALICE.address, 1)]
    for tx in waiting:
        assert pool.add(tx.to_bytes()).ok
    assert verifier.calls == 2
    cheap = pool.add(transfer(CAROL, 0, ALICE.address, 1).to_bytes())  # no one pays less
    assert cheap.code == Code.MEMPOOL_FULL and verifier.calls == 2, "refused unverified"
    rich = transfer(CAROL, 0, ALICE.address, 1, fee=10 * TEST_FEE)
    bad = pool.add(forged(rich).to_bytes())  # it would evict: its signature decides
    assert (bad.code, bad.codespace, bad.log) == (Code.BAD_SIGNATURE, "auth", BAD_SIGNATURE_LOG)
    assert verifier.calls == 3 and pool.reap() == [tx.to_bytes() for tx in waiting]
    replacement = transfer(ALICE, 0, CAROL.address, 1, fee=10 * TEST_FEE)
    assert pool.add(forged(replacement).to_bytes()).code == Code.BAD_SIGNATURE
    assert waiting[0].hash in pool and forged(replacement).hash not in pool
    pool.check_invariants()
    assert pool.add(rich.to_bytes()).ok  # the genuine one evicts the cheapest
    assert len(pool) == 2 and rich.hash in pool
    spare = Mempool(chain.app)  # with room, a forged one is refused as check_tx refuses it
    alone = spare.add(forged(transfer(CAROL, 1, BOB.address, 1)).to_bytes())
    assert (alone.code, alone.log) == (Code.BAD_SIGNATURE, BAD_SIGNATURE_LOG) and len(spare) == 0


def test_check_tx_without_verify_leaves_the_signature_to_verify_signature():
    chain = make_chain()
    tx = forged(transfer(ALICE, 0, BOB.address, 1))
    assert chain.app.check_tx(tx.to_bytes()).code == Code.BAD_SIGNATURE
    assert chain.app.check_tx(tx.to_bytes(), verify=False).ok  # the state alone passes it
    assert not chain.app.verify_signature(tx)
    genuine = transfer(ALICE, 0, BOB.address, 1)
    assert chain.app.verify_signature(genuine) and chain.app.verify_signature(genuine)
