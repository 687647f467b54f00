"""The market's records encode to the maps the market stores, and back, and nothing else.

Their `to_obj`/`from_obj` are derived from the dataclass fields (records._Record); these
tests pin the quirks the old maps had (a Task's output "" until completed, a Dispute's
`upheld` absent until resolved, an Outcome's derived `quality_bps`, the history and the
due time as lists) and show that a stored map with a key missing or unknown is refused.
test_market_stored_bytes checks the same against the app hashes of a whole scenario.
"""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType
from typing import Any

import pytest

from cloudchain import codec
from cloudchain.chaincode.market.records import (
    Attestation,
    Dispute,
    Due,
    HistoryEntry,
    MarketCounts,
    Offer,
    Oracle,
    Outcome,
    Payout,
    Provider,
    ProviderStats,
    ReferencePrice,
    ResourceClass,
    Task,
    Totals,
)

CID = "Qm" + "a" * 44


def _task(**changes: Any) -> Task:
    fields: dict[str, Any] = dict(
        id=7,
        requester="r",
        kind="training",
        inputs=(CID,),
        resource_class="a100",
        units=10,
        max_price=20,
        deposit=200,
        deadline_ns=5_000,
        min_uptime_bps=9_000,
        max_latency_ms=500,
        penalty=50,
        named_provider="",
        state="open",
        history=(HistoryEntry("open", 3),),
        provider="",
        price=0,
        submitted_at=3,
        units_used=0,
        output=None,
        completed_at=0,
        attestations=MappingProxyType({}),
        outcome=None,
        verified_at=0,
        dispute=None,
        payout=None,
        due=Due("t", 5_000),
    )
    return Task(**{**fields, **changes})


OUTCOME = Outcome(True, 8, 9_900, 100, 1, payment=80, penalty=50)
DISPUTE = Dispute("requester", "slow", 9, MappingProxyType({"o1": False}))
SETTLED = _task(
    state="resolved",
    history=(HistoryEntry("open", 3), HistoryEntry("assigned", 4), HistoryEntry("resolved", 20)),
    provider="p",
    price=10,
    units_used=8,
    output=(CID, CID),
    completed_at=6,
    attestations=MappingProxyType({"o1": Attestation(True, 8, 9_900, 100, 7)}),
    outcome=OUTCOME,
    verified_at=7,
    dispute=replace(DISPUTE.with_vote("o2", True), upheld=True),
    payout=Payout(30, 170, 0, 20),
    due=None,
)
RECORDS = [
    Offer("A100", 8, 640, 100, 10),
    Provider(
        "p",
        "community",
        MappingProxyType({"a100": Offer("A100", 8, 640, 100, 10)}),
        5_000,
        "active",
        0,
        1,
        MappingProxyType({"a100": 10}),
        1,
        5_000,
    ),
    Oracle(2),
    _task(),
    SETTLED,
    DISPUTE,
    ResourceClass(100, 10, 50, 500),
    ReferencePrice(12, 7_500, 30),
    Totals(200, 5_000),
    ProviderStats().added(earned=30, gross=80),
    MarketCounts().added(tasks_settled=1),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_a_record_comes_back_from_its_stored_bytes(record):
    stored = codec.decode(codec.encode(record.to_obj()))
    assert type(record).from_obj(stored) == record


def test_a_task_is_the_map_the_market_has_always_stored():
    assert _task().to_obj() == {
        "id": 7,
        "requester": "r",
        "kind": "training",
        "inputs": [CID],
        "resource_class": "a100",
        "units": 10,
        "max_price": 20,
        "deposit": 200,
        "deadline_ns": 5_000,
        "min_uptime_bps": 9_000,
        "max_latency_ms": 500,
        "penalty": 50,
        "named_provider": "",
        "state": "open",
        "history": [["open", 3]],  # a list of [state, height]
        "provider": "",
        "price": 0,
        "submitted_at": 3,
        "units_used": 0,
        "output": "",  # until completed
        "completed_at": 0,
        "attestations": {},
        "outcome": None,
        "verified_at": 0,
        "dispute": None,
        "payout": None,
        "due": ["t", 5_000],  # [kind, at]
    }
    obj = SETTLED.to_obj()
    assert obj["output"] == [CID, CID] and obj["due"] is None
    assert obj["attestations"] == {
        "o1": {"completed": True, "units": 8, "uptime_bps": 9_900, "latency_ms": 100, "at": 7}
    }
    assert obj["outcome"] == {
        "completed": True,
        "units": 8,
        "uptime_bps": 9_900,
        "latency_ms": 100,
        "violations": 1,
        "payment": 80,
        "penalty": 50,
        "quality_bps": 7_500,  # derived from the violations, stored with them
    }
    assert obj["payout"] == {"provider": 30, "requester": 170, "slashed": 0, "at": 20}
    # a dispute's `upheld` is stored once it is resolved, not before
    assert DISPUTE.to_obj() == {
        "by": "requester",
        "reason": "slow",
        "at": 9,
        "votes": {"o1": False},
    }
    assert obj["dispute"] == {
        "by": "requester",
        "reason": "slow",
        "at": 9,
        "votes": {"o1": False, "o2": True},
        "upheld": True,
    }
    # the field order is the map's key order, as the old maps had it
    assert list(_task().to_obj())[:3] == ["id", "requester", "kind"]
    assert list(OUTCOME.to_obj())[-1] == "quality_bps"


def _without(obj: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k != name}


@pytest.mark.parametrize(
    ("kind", "obj", "why"),
    [
        (Offer, _without(RECORDS[0].to_obj(), "price"), r"missing \['price'\]"),
        (Offer, {**RECORDS[0].to_obj(), "colour": "red"}, r"unknown \['colour'\]"),
        (Task, _without(_task().to_obj(), "output"), r"missing \['output'\]"),
        (Task, {**SETTLED.to_obj(), "outcome": _without(OUTCOME.to_obj(), "quality_bps")}, "qual"),
        (Task, {**SETTLED.to_obj(), "payout": {**SETTLED.to_obj()["payout"], "x": 1}}, "x"),
        (Dispute, _without(DISPUTE.to_obj(), "by"), r"missing \['by'\]"),
        (HistoryEntry, ["open", 3, 4], "3 values, not 2"),
        (Due, ["t"], "1 values, not 2"),
    ],
    ids=[
        "a field missing",
        "a key unknown",
        "a task's output missing",
        "a nested record's key missing",
        "a nested record's key unknown",
        "a dispute's party missing",
        "a list too long",
        "a list too short",
    ],
)
def test_a_stored_record_with_a_key_missing_or_unknown_is_refused(kind, obj, why):
    with pytest.raises(ValueError, match=why):
        kind.from_obj(obj)


def test_only_a_field_omitted_when_none_may_be_absent():
    assert Dispute.from_obj(DISPUTE.to_obj()).upheld is None  # not resolved: no key
    assert Dispute.from_obj({**DISPUTE.to_obj(), "upheld": False}).upheld is False
