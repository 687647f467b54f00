from decimal import Decimal

import pytest

from cloudchain.node.rpc.txquery import Condition, QueryError, Stamp, matches, parse, search
from cloudchain.timefmt import parse_rfc3339_ns
from tests.helpers.chain import ACCOUNTS, make_chain, transfer

ALICE, BOB, CAROL = ACCOUNTS[0], ACCOUNTS[1], ACCOUNTS[2]


def chain_with_transfers():
    chain = make_chain()
    chain.produce_block(
        [
            transfer(ALICE, 0, BOB.address, 5).to_bytes(),
            transfer(BOB, 0, CAROL.address, 50).to_bytes(),
        ]
    )
    chain.produce_block([transfer(ALICE, 1, CAROL.address, 500).to_bytes()])
    chain.produce_block([])
    return chain.app.store


def test_parse_accepts_cometbft_queries():
    assert parse("tx.height=5 AND transfer.recipient = 'ab'") == [
        Condition("tx.height", "=", 5),
        Condition("transfer.recipient", "=", "ab"),
    ]
    assert parse("message.module EXISTS") == [Condition("message.module", "EXISTS", None)]
    assert parse("transfer.amount >= 10")[0].value == 10
    # AND inside a quoted value is text, not the operator.
    assert parse("memo.text = 'cats AND dogs' AND a.b EXISTS") == [
        Condition("memo.text", "=", "cats AND dogs"),
        Condition("a.b", "EXISTS", None),
    ]
    assert parse("a.b > 3.5")[0].value == Decimal("3.5")
    assert parse("block.time >= TIME 2026-01-02T03:04:05Z")[0].value == Stamp(
        parse_rfc3339_ns("2026-01-02T03:04:05Z")
    )
    assert parse("a.b < DATE 2026-02-01")[0].value == Stamp(
        parse_rfc3339_ns("2026-02-01T00:00:00Z"), is_date=True
    )


@pytest.mark.parametrize(
    "query, message",
    [
        # CometBFT's words (libs/pubsub/query/syntax), offsets in bytes.
        ("", r"offset 0: EOF \(a condition needs a key\)"),
        ("tx.height", r"offset 9: EOF \(tx.height needs an operator\)"),
        ("tx.height =", r"offset 11: EOF \(= needs an operand\)"),
        ("a.b EXISTS 'x'", "offset 11: got string, want AND operator"),
        ("a.b CONTAINS 5", "offset 13: got number, wanted string"),
        ("a.b > 'x'", "offset 6: got string, wanted number, timestamp or datestamp"),
        ("x = 'unclosed", "offset 4: EOF"),  # an unclosed string is the end of the input
        ("a.b ~ 1", "offset 4: invalid input ~ at offset 5"),
        ("tx.height > -1", "invalid input - at offset 13"),
        ("a.b = 5abc", "offset 7: got tag, want AND operator"),
        ("a.b > TIME 2026-01-01", "invalid TIME value"),
        ("a.b > DATE 1800-01-01", "datestamp year 1800 out of range"),
        ("é.b ~ 1", "offset 5: invalid input ~ at offset 6"),
        (" AND ".join(["a.b EXISTS"] * 17), "at most 16 conditions"),
    ],
)
def test_parse_errors_say_what(query, message):
    with pytest.raises(QueryError, match=message):
        parse(query)


@pytest.mark.parametrize(
    "query, value, holds",
    [
        # A number compares with the number a value starts with, as CometBFT's extractNum.
        ("a.amount > 99", "100ucc", True),
        ("a.amount = 100", "100ucc", True),
        ("a.amount < 100", "100ucc", False),
        ("a.amount > 3.5", "4", True),
        ("a.amount > 3.5", "3.5", False),
        ("a.amount = 3.5", "3.50stake", True),
        ("a.amount >= 0", "ucc", False),  # no number at all
        ("a.amount >= 0", "-5", False),  # CometBFT's numbers have no sign
        ("a.amount = 5", "5", True),
        ("a.text = '5'", "5.0", False),  # a string compares as text
        ("a.text CONTAINS 'AND'", "cats AND dogs", True),
        ("a.time >= TIME 2026-01-01T00:00:00Z", "2026-01-01T00:00:00.5Z", True),
        ("a.time < TIME 2026-01-01T00:00:00Z", "2025-12-31T23:00:00-02:00", False),
        ("a.time = TIME 2026-01-01T00:00:00Z", "2026-01-01T01:00:00+01:00", True),
        ("a.time > TIME 2026-01-01T00:00:00Z", "not a time", False),
        ("a.date < DATE 2026-02-01", "2026-01-31", True),
        ("a.date = DATE 2026-02-01", "2026-02-01T00:00:00Z", False),  # not a DATE
    ],
)
def test_conditions_match_values_as_cometbft(query, value, holds):
    assert matches(parse(query), {query.split()[0]: [value]}) is holds


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
        ("transfer.amount > 49.5", [(1, 1), (2, 0)]),
        ("transfer.amount = 50.0", [(1, 1)]),
        ("tx.height > 1.5", [(2, 0)]),
        ("tx.height < 1.5", [(1, 0), (1, 1)]),
        ("tx.height = 1.5", []),
        ("tx.height = '2'", [(2, 0)]),
        ("tx.height > TIME 2026-01-01T00:00:00Z", []),
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
