import pytest

from cloudchain.node.txquery import Condition, QueryError, parse, search
from tests.chainutil import ACCOUNTS, make_chain, transfer

ALICE, BOB, CAROL = ACCOUNTS[0], ACCOUNTS[1], ACCOUNTS[2]


def chain_with_transfers():
    chain = make_chain()
    chain.produce_block([transfer(ALICE, 0, BOB.address, 5).to_bytes(),
                         transfer(BOB, 0, CAROL.address, 50).to_bytes()])  # fmt: skip
    chain.produce_block([transfer(ALICE, 1, CAROL.address, 500).to_bytes()])
    chain.produce_block([])
    return chain.app.store


def test_parse_accepts_cometbft_queries():
    assert parse("tx.height=5 AND transfer.recipient = 'ab'") == [
        Condition("tx.height", "=", 5), Condition("transfer.recipient", "=", "ab")]  # fmt: skip
    assert parse("message.module EXISTS") == [Condition("message.module", "EXISTS", None)]
    assert parse("transfer.amount >= 10")[0].value == 10


@pytest.mark.parametrize(
    "query, message",
    [("", "non-empty"), ("tx.height", "cannot parse"), ("a.b EXISTS 'x'", "EXISTS"),
     ("a.b CONTAINS 5", "CONTAINS"), ("a.b > 'x'", "integer"), ("x = 'unclosed", "parse")],
)  # fmt: skip
def test_parse_errors_say_what(query, message):
    with pytest.raises(QueryError, match=message):
        parse(query)


@pytest.mark.parametrize(
    "query, expected",
    [
        (f"transfer.recipient = '{CAROL.address}'", [(1, 1), (2, 0)]),
        (f"transfer.recipient = '{CAROL.address}' AND tx.height = 2", [(2, 0)]),
        ("transfer.amount > 10", [(1, 1), (2, 0)]),
        ("transfer.amount <= 50 AND transfer.amount >= 50", [(1, 1)]),
        (f"transfer.sender CONTAINS '{ALICE.address[:6]}'", [(1, 0), (2, 0)]),
        ("message.module EXISTS", [(1, 0), (1, 1), (2, 0)]),
        ("tx.height >= 2", [(2, 0)]),
        ("tm.event = 'Tx' AND tx.height = 1", [(1, 0), (1, 1)]),
        ("transfer.recipient = 'nobody'", []),
    ],
)
def test_search_finds_exactly_the_matching_transactions(query, expected):
    assert search(chain_with_transfers(), parse(query)) == expected


def test_search_by_hash():
    store = chain_with_transfers()
    tx = store.block(2).txs[0]
    assert search(store, parse(f"tx.hash = '{tx.hash.hex().upper()}'")) == [(2, 0)]
    with pytest.raises(QueryError, match="hex"):
        search(store, parse("tx.hash = 'zz'"))
