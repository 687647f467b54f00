"""The demo's task book: what it learns from committed blocks' events, and what it
asks the agents to send (the demo itself runs in test_cli.py on real processes)."""

import random

import pytest

from cloudchain.cli.market_demo import RESEND_BLOCKS, TaskBook
from cloudchain.client.results import BlockResults

SECOND_NS = 10**9


def results(height: int, tx_events=(), block_events=(), failed=()) -> BlockResults:
    """block_results JSON with one successful transaction per tx event (and `failed`
    transactions whose events must be ignored)."""

    def event(kind, attributes):
        return {
            "type": f"market_{kind}",
            "attributes": [{"key": k, "value": str(v)} for k, v in attributes.items()],
        }

    txs = [{"code": 0, "events": [event(*e)]} for e in tx_events]
    txs += [{"code": 107, "log": "refused", "events": [event(*e)]} for e in failed]
    return BlockResults.from_json(
        {
            "height": str(height),
            "txs_results": txs,
            "finalize_block_events": [event(*e) for e in block_events],
            "app_hash": "",
        }
    )


def test_the_book_follows_a_task_from_submission_to_settlement():
    book = TaskBook(random.Random(1), {"p1": "community"})
    submit = ("submit", {"task": 1, "requester": "r1", "units": 8})
    book.on_block(
        1, 10 * SECOND_NS, results(1, [submit], [("assign", dict(task=1, provider="p1"))])
    )
    (task,) = book.in_state("assigned")
    assert (task.provider, task.units, task.submitted_at) == ("p1", 8, 1)
    assert book.tally() == {"open": 0, "assigned": 1, "verifying": 0, "settled": 0, "refunded": 0}
    assert task.send_now("start", 1) and not task.send_now("start", 2)
    assert task.send_now("start", 1 + RESEND_BLOCKS)  # lost on the way: sent again
    book.on_block(2, 11 * SECOND_NS, results(2, [("start", dict(task=1))]))
    book.on_block(
        3,
        12 * SECOND_NS,
        results(3, [("complete", dict(task=1))], failed=[("start", dict(task=1))]),
    )
    assert book.tally()["verifying"] == 1
    book.on_block(4, 13 * SECOND_NS, results(4, [("verified", dict(task=1, violations=1))]))
    book.on_block(
        5,
        15 * SECOND_NS,
        results(
            5, block_events=[("settle", dict(task=1)), ("reward", dict(recipient="p1", amount=90))]
        ),
    )
    assert book.in_state("settled") == []  # final tasks leave the book
    assert (list(book.latency_blocks), list(book.latency_s)) == ([4], [5.0])
    assert book.counts["settled"] == book.counts["verified"] == book.counts["penalised"] == 1
    assert book.rewards == {"p1": 90}
    with pytest.raises(AssertionError, match="blocks in order"):
        book.on_block(7, 16 * SECOND_NS, results(7))


def test_the_plan_serves_community_tasks_badly_more_often():
    book = TaskBook(random.Random(7), {"e": "enterprise", "c": "community"})
    events = []
    for task in range(4_000):
        events.append(("submit", {"task": task, "requester": "r", "units": 1}))
        events.append(("assign", dict(task=task, provider="ec"[task % 2])))
    book.on_block(1, 0, results(1, events))
    bad = {
        tier: sum(bool(t.violates) for t in book.active.values() if t.provider == tier)
        for tier in "ec"
    }
    assert 60 <= bad["e"] <= 140 and 240 <= bad["c"] <= 360  # 5% and 15% of 2,000
