"""The application boundary: proposals, execution, commit and queries."""

import dataclasses

import pytest

from cloudchain import codec
from cloudchain.chaincode.application import Application, InvalidBlockError
from cloudchain.chaincode.codes import Code
from cloudchain.chaincode.module import Module
from cloudchain.chaincode.modules.token import TOKEN
from cloudchain.ledger import (
    MAX_TX_BYTES,
    Block,
    Commit,
    CommitSig,
    Event,
    Validator,
    block_overhead_bytes,
)
from cloudchain.node.solo import SoloChain, build_block, sign_commit
from cloudchain.storage.chain import ChainStore, StoreError
from cloudchain.storage.kv import MemoryKV
from tests.helpers.chain import (
    ACCOUNTS,
    TEST_FEE,
    VALIDATOR,
    StepClock,
    key,
    make_chain,
    make_genesis,
    signed,
    transfer,
)

ALICE, BOB, CAROL = ACCOUNTS[0], ACCOUNTS[1], ACCOUNTS[2]


def chain_at_height_one():
    chain = make_chain()
    chain.produce_block([transfer(ALICE, 0, BOB.address, 5).to_bytes()])
    return chain


def next_block(chain, txs=(), **header_changes):
    app = chain.app
    last = app.store.last_block
    commit = None if last is None else sign_commit(app.genesis.chain_id, last, VALIDATOR)
    block = build_block(app, list(txs), VALIDATOR, commit)
    if header_changes:
        block = Block(
            dataclasses.replace(block.header, **header_changes), block.txs, block.last_commit
        )
    return block


def test_a_well_formed_block_is_accepted():
    chain = chain_at_height_one()
    assert chain.app.process_proposal(next_block(chain)).accept


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"chain_id": "other"}, "chain id"),
        ({"height": 3}, "height 3, expected 2"),
        ({"app_hash": b"\x00" * 32}, "app_hash"),
        ({"last_results_hash": b"\x05" * 32}, "last_results_hash"),
        ({"last_block_hash": b"\x01" * 32}, "last_block_hash"),
        ({"data_hash": b"\x02" * 32}, "data_hash"),
        ({"validators_hash": b"\x03" * 32}, "validators_hash"),
        ({"proposer_address": bytes.fromhex(key("mallory").address)}, "proposer"),
        ({"last_commit_hash": b"\x04" * 32}, "last_commit_hash"),
        ({"time_ns": 0}, "weighted median"),
    ],
)
def test_blocks_that_do_not_extend_the_chain_are_rejected(changes, reason):
    chain = chain_at_height_one()
    verdict = chain.app.process_proposal(next_block(chain, **changes))
    assert not verdict.accept
    assert reason in verdict.reason


def test_finalize_refuses_an_invalid_block_and_changes_nothing():
    chain = chain_at_height_one()
    store = chain.app.store
    before = (store.height, store.app_hash)
    with pytest.raises(InvalidBlockError, match="app_hash"):
        chain.app.finalize_block(next_block(chain, app_hash=b"\x00" * 32))
    assert (store.height, store.app_hash) == before
    chain.produce_block([])  # the application is still usable
    assert store.height == 2


def test_commit_without_finalize_and_double_finalize_are_refused():
    chain = chain_at_height_one()
    with pytest.raises(StoreError, match="without a finalized block"):
        chain.app.commit()
    block = next_block(chain)
    chain.app.finalize_block(block)
    with pytest.raises(InvalidBlockError, match="twice"):
        chain.app.finalize_block(block)
    assert chain.app.commit().height == 2


def test_results_and_app_hash_are_known_before_commit_and_durable_after():
    chain = chain_at_height_one()
    tx = transfer(BOB, 0, CAROL.address, 3)
    block = next_block(chain, [tx])
    result = chain.app.finalize_block(block)
    assert chain.app.query("/token/balance", CAROL.address.encode()).height == 1
    committed = chain.app.commit()
    assert committed.app_hash == result.app_hash == chain.app.store.app_hash
    assert chain.app.store.tx_result(tx.hash) == result.tx_results[0]


def test_prepare_proposal_keeps_valid_transactions_in_nonce_order():
    chain = make_chain()
    good0 = transfer(ALICE, 0, BOB.address, 1)
    good1 = transfer(ALICE, 1, BOB.address, 1)
    gap = transfer(ALICE, 5, BOB.address, 1)
    wrong_chain = transfer(BOB, 0, ALICE.address, 1, chain_id="elsewhere")
    chosen = chain.app.prepare_proposal(
        [good0.to_bytes(), gap.to_bytes(), b"junk", wrong_chain.to_bytes(), good1.to_bytes()]
    )
    assert chosen == (good0, good1)


def test_prepare_proposal_respects_the_block_limits():
    chain = make_chain(genesis=dataclasses.replace(make_genesis(), max_block_txs=7))
    txs = [transfer(ALICE, n, BOB.address, 1).to_bytes() for n in range(20)]
    chosen = chain.app.prepare_proposal(txs)
    assert [tx.nonce for tx in chosen] == list(range(7))
    # Room for 70,000 bytes of transactions: two 30 KB notes fit, a third does not.
    genesis = dataclasses.replace(make_genesis(), max_block_bytes=block_overhead_bytes(1) + 70_000)
    app = Application(ChainStore(MemoryKV()), genesis, modules=(TOKEN, NOTE))
    notes = [signed(ALICE, n, "note", "post", {"text": "x" * 30_000}) for n in range(3)]
    assert [tx.nonce for tx in app.prepare_proposal([t.to_bytes() for t in notes])] == [0, 1]


def test_a_full_block_with_a_commit_from_every_validator_fits_the_limit():
    validators = [key(f"v{i}") for i in range(1000)]
    genesis = dataclasses.replace(
        make_genesis(),
        validators=tuple(Validator(v.public_key, 1) for v in validators),
        max_block_bytes=block_overhead_bytes(1000) + MAX_TX_BYTES + 5,  # the least allowed
    )
    app = Application(ChainStore(MemoryKV()), genesis, modules=(TOKEN, NOTE))
    first = build_block(app, [], validators[0], None)
    app.finalize_block(first)
    app.commit()
    sigs = tuple(CommitSig(bytes.fromhex(v.address), 2**62, b"\xff" * 64) for v in validators)
    commit = Commit(1, 2**31 - 1, first.hash, sigs)
    notes = [signed(ALICE, n, "note", "post", {"text": "x" * 20_000}) for n in range(5)]
    chosen = app.prepare_proposal([t.to_bytes() for t in notes])
    assert len(chosen) == 3
    block = build_block(app, chosen, validators[1], commit)
    assert len(block.to_bytes()) <= genesis.max_block_bytes
    assert app.process_proposal(block).accept


NOTE = Module("note")


@NOTE.tx("post", text=lambda v: v)
def process_post(ctx, text):
    ctx.kv.set(b"note/" + ctx.sender.encode(), text.encode())


def decode(result):
    assert result.code == Code.OK, result.log
    return codec.decode(result.value)


def test_queries_answer_at_the_latest_and_at_past_heights():
    chain = chain_at_height_one()
    app = chain.app
    assert decode(app.query("/token/balance", BOB.address.encode()))["balance"] == 1005
    assert decode(app.query("/token/balance", BOB.address.encode(), 0))["balance"] == 1005
    latest = app.query("/token/balance", BOB.address.encode(), height=0)  # 0: the latest
    assert latest.height == 1 and decode(latest)["balance"] == 1005
    supply = decode(app.query("/token/supply"))
    assert supply == {"supply": 4000 - TEST_FEE, "denom": "ucc"}  # ALICE's fee, burnt
    chain.produce_block([transfer(BOB, 0, CAROL.address, 5).to_bytes()])
    assert decode(app.query("/token/balance", BOB.address.encode(), height=1))["balance"] == 1005
    at_two = decode(app.query("/token/balance", BOB.address.encode(), height=2))
    assert at_two["balance"] == 1000 - TEST_FEE


@pytest.mark.parametrize(
    "path, data, height, code",
    [
        ("/token/nosuch", b"", 0, Code.UNKNOWN_QUERY),
        ("/nosuch/balance", b"", 0, Code.UNKNOWN_QUERY),
        ("token/balance", b"", 0, Code.UNKNOWN_QUERY),
        ("/token/balance", b"not-an-address", 0, Code.INVALID_QUERY),
        ("/token/balance", b"\xff\xfe", 0, Code.INVALID_QUERY),
        ("/token/supply", b"", 99, Code.HEIGHT_NOT_AVAILABLE),
        ("/token/supply", b"", -1, Code.HEIGHT_NOT_AVAILABLE),
    ],
)
def test_bad_queries_get_a_code_and_a_log(path, data, height, code):
    result = chain_at_height_one().app.query(path, data, height)
    assert result.code == code
    assert result.log
    assert result.value == b""


def test_mint_by_authority_and_burn_change_the_supply():
    chain = make_chain()
    mint = signed(ALICE, 0, "token", "mint", {"to": CAROL.address, "amount": 500})
    burn = signed(CAROL, 0, "token", "burn", {"amount": 200})
    produced = chain.produce_block([mint.to_bytes(), burn.to_bytes()])
    assert [r.code for r in produced.result.tx_results] == [Code.OK, Code.OK]
    assert decode(chain.app.query("/token/supply"))["supply"] == 4300 - 2 * TEST_FEE
    carol = decode(chain.app.query("/token/balance", CAROL.address.encode()))
    assert carol["balance"] == 1300 - TEST_FEE
    types = [e.type for r in produced.result.tx_results for e in r.events]
    assert types == ["fee", "message", "mint", "fee", "message", "burn"]


def test_a_block_equal_as_objects_but_different_as_bytes_is_not_taken_for_the_accepted_one():
    chain = chain_at_height_one()
    app = chain.app
    tx = transfer(BOB, 0, CAROL.address, 1)
    block = next_block(chain, [tx])
    assert app.process_proposal(block).accept
    forged_tx = dataclasses.replace(tx, args={"to": CAROL.address, "amount": True})
    forged = Block(block.header, (forged_tx,), block.last_commit)
    assert forged == block and forged.to_bytes() != block.to_bytes()  # True == 1 in Python
    assert not app.process_proposal(forged).accept
    with pytest.raises(InvalidBlockError):
        app.finalize_block(forged)


NOISY = Module("noisy")


@NOISY.tx("shout", count=lambda v: v, width=lambda v: v)
def process_shout(ctx, count, width):
    ctx.kv.set(b"noisy/" + ctx.sender.encode(), b"written")
    for i in range(count):
        ctx.emit("shout", index=i, text="x" * width)


@pytest.mark.parametrize(
    "count, width, code, log",
    [
        # A handler may emit all the events but the application's fee and message.
        (255, 1, Code.LIMIT_EXCEEDED, "at most 254 events"),
        (250, 250, Code.LIMIT_EXCEEDED, "exceed 65536 bytes"),
        (254, 1, Code.OK, ""),
    ],
)
def test_events_beyond_the_limits_fail_the_transaction_not_the_chain(count, width, code, log):
    app = Application(ChainStore(MemoryKV()), make_genesis(), modules=(TOKEN, NOISY))
    chain = SoloChain(app, VALIDATOR, StepClock())
    tx = signed(BOB, 0, "noisy", "shout", {"count": count, "width": width})
    result = chain.produce_block([tx.to_bytes()]).result.tx_results[0]
    assert result.code == code
    assert log in result.log
    assert app.store.tx_result(tx.hash) == result  # committed results stay readable
    assert (app.state().get(b"noisy/" + BOB.address.encode()) is not None) == (code == Code.OK)
    assert app.nonce(BOB.address) == 1


DEEP = Module("deep")


@DEEP.tx("dive", depth=lambda v: v)
def process_dive(ctx, depth):
    def down(n):
        return 0 if n == 0 else 1 + down(n - 1)

    down(depth)


def test_a_machine_dependent_failure_halts_instead_of_being_recorded():
    app = Application(ChainStore(MemoryKV()), make_genesis(), modules=(TOKEN, DEEP))
    chain = SoloChain(app, VALIDATOR, StepClock())
    tx = signed(BOB, 0, "deep", "dive", {"depth": 10**6})
    with pytest.raises(RecursionError):
        chain.produce_block([tx.to_bytes()])
    assert app.store.height == 0  # nothing was committed


def test_tx_error_needs_a_failure_code():
    from cloudchain.chaincode.codes import TxError

    with pytest.raises(ValueError, match="non-zero"):
        TxError(Code.OK, "fine")


def test_event_values_must_have_a_node_independent_text():
    from cloudchain.chaincode.context import EventLog

    log = EventLog()
    log.emit("ok", text="a", number=5, flag=True, raw=b"\x01")
    assert log.events[0].attributes == (
        ("text", "a"),
        ("number", "5"),
        ("flag", "true"),
        ("raw", "01"),
    )
    with pytest.raises(TypeError, match="set"):
        log.emit("bad", members={1, 2})


def test_the_first_block_carries_the_genesis_time():
    chain = make_chain()
    app = chain.app
    late = build_block(app, [], VALIDATOR, None, time_ns=app.genesis.genesis_time_ns + 1)
    assert "genesis time" in app.process_proposal(late).reason
    assert app.process_proposal(build_block(app, [], VALIDATOR, None)).accept


def test_time_comes_from_the_last_commit_and_must_advance():
    chain = chain_at_height_one()
    app = chain.app
    last = app.store.last_block
    stale_sig = CommitSig(bytes.fromhex(VALIDATOR.address), last.header.time_ns, b"\x00" * 64)
    stale = Commit(last.height, 0, last.hash, (stale_sig,))
    assert "does not advance" in app.process_proposal(build_block(app, [], VALIDATOR, stale)).reason
    stranger = CommitSig(bytes.fromhex(key("mallory").address), 2**62, b"\x00" * 64)
    unknown = Commit(last.height, 0, last.hash, (stranger,))
    block = build_block(app, [], VALIDATOR, unknown, time_ns=2**62)
    assert "unknown" in app.process_proposal(block).reason
    ours = sign_commit(app.genesis.chain_id, last, VALIDATOR, last.header.time_ns + 5)
    twice = Commit(last.height, 0, last.hash, ours.signatures * 2)
    assert "repeated" in app.process_proposal(build_block(app, [], VALIDATOR, twice)).reason
    block = build_block(app, [], VALIDATOR, ours)
    assert block.header.time_ns == last.header.time_ns + 5
    assert app.process_proposal(block).accept


@pytest.mark.parametrize(
    "powers, expected",
    # As CometBFT's WeightedMedian: the walk stops once half the power (rounded down)
    # is covered, so with (1, 1, 1) the first timestamp already covers 3 // 2 = 1.
    [
        ((1, 1, 5), 30),
        ((3, 1, 1), 10),
        ((1, 1, 1), 10),
        ((2, 2), 10),
        ((1, 3), 20),
        ((1, 1, 1, 1), 20),
    ],
)
def test_median_time_is_weighted_by_power(powers, expected):
    signers = [key(f"signer{i}") for i in range(len(powers))]
    sigs = tuple(
        CommitSig(bytes.fromhex(k.address), 10 * (i + 1), b"\x00" * 64)
        for i, k in enumerate(signers)
    )
    commit = Commit(1, 0, b"\x00" * 32, sigs)
    weights = {bytes.fromhex(k.address): p for k, p in zip(signers, powers, strict=True)}
    assert commit.median_time_ns(weights) == expected


def test_each_header_commits_to_the_previous_blocks_results():
    from cloudchain.ledger import results_hash

    chain = make_chain()
    first = chain.produce_block(
        [
            transfer(ALICE, 0, BOB.address, 5).to_bytes(),
            transfer(BOB, 0, ALICE.address, 10**6).to_bytes(),
        ]  # fails: insufficient funds
    )
    codes = [r.code for r in first.result.tx_results]
    assert codes == [Code.OK, Code.INSUFFICIENT_FUNDS]
    assert first.block.header.last_results_hash == results_hash(())
    second = chain.produce_block([])
    assert second.block.header.last_results_hash == results_hash(first.result.tx_results)
    assert second.block.header.last_results_hash != results_hash(
        tuple(dataclasses.replace(r, code=Code.OK, codespace="") for r in first.result.tx_results)
    )
    assert chain.app.store.results_hash_at(1) == second.block.header.last_results_hash


TICKER = Module("ticker")


@TICKER.end_block
def end_ticker(ctx):
    count = ctx.kv.get_value(b"ticker/count", 0) + 1
    ctx.kv.set_value(b"ticker/count", count)
    ctx.emit("tick", height=ctx.height, count=count)
    if ctx.kv.get_value(b"ticker/fail", False):
        raise KeyError("a bug in end-of-block work")


@TICKER.tx("fail", on=lambda v: v)
def process_fail(ctx, on):
    ctx.kv.set_value(b"ticker/fail", on)


def test_end_of_block_work_runs_after_the_transactions_and_a_failure_changes_nothing():
    app = Application(ChainStore(MemoryKV()), make_genesis(), modules=(TOKEN, TICKER))
    chain = SoloChain(app, VALIDATOR, StepClock())
    first = chain.produce_block([])
    assert first.result.block_events == (Event("tick", (("height", "1"), ("count", "1"))),)
    assert app.store.block_results(1).block_events == first.result.block_events
    fail = signed(BOB, 0, "ticker", "fail", {"on": True})
    second = chain.produce_block([fail.to_bytes()])
    # the transaction's write is seen by the work, which fails: none of its writes apply
    assert second.result.block_events == (
        Event("end_block_error", (("module", "ticker"), ("error", "KeyError"))),
    )
    assert codec.decode(app.state().get(b"ticker/count")) == 1
    assert app.store.block_results(2).block_events == second.result.block_events
    assert app.store.block_results(2).tx_results[0].code == Code.OK
