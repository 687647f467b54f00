"""The market's records: what state holds under market/, as frozen dataclasses.

    Provider, Offer          market/provider/<address>
    Oracle                   market/oracle/<address>
    Task                     market/task/<id>, with its HistoryEntry, Due, Attestation,
                             Outcome, Dispute and Payout
    ResourceClass            market/class/<name>
    ReferencePrice           market/price/<name>
    Totals                   market/totals
    ProviderStats, RequesterStats, OracleStats
                             market/stats/<role>/<address>
    MarketCounts             market/global

Each record has `to_obj()`, the plain value (maps, lists, ints, strings, booleans) its
canonical msgpack encoding is made of, and `from_obj(obj)`, its inverse on a decoded
value. `to_obj` gives exactly the map the market stored when its records were dicts,
key for key, so that the stored bytes (and the app hash) are what they were; queries
answer with it too. Only state.py encodes and decodes records, and only it reads or
writes market/ keys.

Records are frozen: a change is a new record (`dataclasses.replace`, or a method
here that returns one), which the caller stores. Maps inside a record are read-only
(`frozen_map`).

Statistics are running sums, and a sum is stored only once something was added to it
(even 0): ProviderStats and the others remember which (`stored`), as the dicts did by
having the key or not. They saturate at ±STAT_MAX rather than outgrow what state can
hold.

What this module does not know: where records live (state.py), and what the rules are
that change them (the handlers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from types import MappingProxyType
from typing import Any, Self, TypeVar

from cloudchain.chaincode.market.economics import Bps, ProfitTerm, Tokens, Units, quality_bps

STAT_MAX = 2**63 - 1  # a statistic's bound either way: a signed 64-bit integer, as amounts

V = TypeVar("V")


def frozen_map(items: Mapping[str, V]) -> Mapping[str, V]:
    """A read-only copy of `items`."""
    return MappingProxyType(dict(items))


def _with(items: Mapping[str, V], name: str, value: V) -> Mapping[str, V]:
    return MappingProxyType({**items, name: value})


# --- providers and oracles -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Offer:
    """What a provider sells in one resource class."""

    gpu: str
    gpus: int
    memory_gb: int
    units: Units  # compute units it can have in flight at once in this class
    price: Tokens  # per compute unit

    def to_obj(self) -> dict[str, Any]:
        return {
            "gpu": self.gpu,
            "gpus": self.gpus,
            "memory_gb": self.memory_gb,
            "units": self.units,
            "price": self.price,
        }

    @classmethod
    def from_obj(cls, obj: Mapping[str, Any]) -> Offer:
        return cls(obj["gpu"], obj["gpus"], obj["memory_gb"], obj["units"], obj["price"])


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    tier: str
    offers: Mapping[str, Offer]  # by resource class
    stake: Tokens
    status: str  # active, unbonding or left
    unbond_at: int  # height at which an unbonding stake may be returned
    joined_at: int
    in_flight: Mapping[str, Units]  # by resource class; a class with none is absent
    tasks_pending: int  # tasks assigned to it and not yet final: its stake answers for them
    reputation: Bps

    def with_in_flight(self, name: str, units: Units) -> Provider:
        """`units` more (or fewer) in flight in class `name`."""
        now = self.in_flight.get(name, 0) + units
        assert now >= 0, (name, now)
        in_flight = {**self.in_flight, name: now}
        if now == 0:
            del in_flight[name]
        return replace(self, in_flight=MappingProxyType(in_flight))

    def to_obj(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tier": self.tier,
            "offers": {name: offer.to_obj() for name, offer in self.offers.items()},
            "stake": self.stake,
            "status": self.status,
            "unbond_at": self.unbond_at,
            "joined_at": self.joined_at,
            "in_flight": dict(self.in_flight),
            "tasks_pending": self.tasks_pending,
            "reputation": self.reputation,
        }

    @classmethod
    def from_obj(cls, obj: Mapping[str, Any]) -> Provider:
        return cls(
            obj["name"],
            obj["tier"],
            MappingProxyType({n: Offer.from_obj(o) for n, o in obj["offers"].items()}),
            obj["stake"],
            obj["status"],
            obj["unbond_at"],
            obj["joined_at"],
            frozen_map(obj["in_flight"]),
            obj["tasks_pending"],
            obj["reputation"],
        )


@dataclass(frozen=True, slots=True)
class Oracle:
    added_at: int  # height

    def to_obj(self) -> dict[str, Any]:
        return {"added_at": self.added_at}

    @classmethod
    def from_obj(cls, obj: Mapping[str, Any]) -> Oracle:
        return cls(obj["added_at"])


# --- tasks ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """A state the task entered, and the height at which it did."""

    state: str
    height: int

    def to_obj(self) -> list[Any]:
        return [self.state, self.height]

    @classmethod
    def from_obj(cls, obj: Any) -> HistoryEntry:
        state, height = obj
        return cls(state, height)


@dataclass(frozen=True, slots=True)
class Due:
    """When the end-of-block work must next look at a task."""

    kind: str  # "t": `at` is a block time (ns); "h": `at` is a height
    at: int

    def to_obj(self) -> list[Any]:
        return [self.kind, self.at]

    @classmethod
    def from_obj(cls, obj: Any) -> Due:
        kind, at = obj
        return cls(kind, at)


@dataclass(frozen=True, slots=True)
class Attestation:
    """An oracle's report on a completed task."""

    completed: bool
    units: Units
    uptime_bps: Bps
    latency_ms: int
    at: int  # height

    def to_obj(self) -> dict[str, Any]:
        return {
            "completed": self.completed,
            "units": self.units,
            "uptime_bps": self.uptime_bps,
            "latency_ms": self.latency_ms,
            "at": self.at,
        }

    @classmethod
    def from_obj(cls, obj: Mapping[str, Any]) -> Attestation:
        return cls(obj["completed"], obj["units"], obj["uptime_bps"], obj["latency_ms"], obj["at"])


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the oracles' quorum decided about a completed task (or a dispute made of it)."""

    completed: bool
    units: Units  # verified compute units, C_i
    uptime_bps: Bps
    latency_ms: int
    violations: int  # R_i: SLA terms the quorum found broken
    payment: Tokens  # P_i·C_i
    penalty: Tokens  # λ_i·R_i

    @property
    def quality_bps(self) -> Bps:
        return quality_bps(self.violations)

    @property
    def profit(self) -> ProfitTerm:
        """The task's term of Π_p."""
        return ProfitTerm(self.payment, self.penalty)

    def to_obj(self) -> dict[str, Any]:
        return {
            "completed": self.completed,
            "units": self.units,
            "uptime_bps": self.uptime_bps,
            "latency_ms": self.latency_ms,
            "violations": self.violations,
            "payment": self.payment,
            "penalty": self.penalty,
            "quality_bps": self.quality_bps,
        }

    @classmethod
    def from_obj(cls, obj: Mapping[str, Any]) -> Outcome:
        return cls(
            obj["completed"],
            obj["units"],
            obj["uptime_bps"],
            obj["latency_ms"],
            obj["violations"],
            obj["payment"],
            obj["penalty"],
        )


@dataclass(frozen=True, slots=True)
class Dispute:
    by: str  # "requester" or "provider"
    reason: str
    at: int  # height
    votes: Mapping[str, bool]  # by oracle: uphold the outcome or not
    upheld: bool | None = None  # once resolved (not stored before)

    def with_vote(self, oracle: str, uphold: bool) -> Dispute:
        return replace(self, votes=_with(self.votes, oracle, uphold))

    def to_obj(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "by": self.by,
            "reason": self.reason,
            "at": self.at,
            "votes": dict(self.votes),
        }
        if self.upheld is not None:
            obj["upheld"] = self.upheld
        return obj

    @classmethod
    def from_obj(cls, obj: Mapping[str, Any]) -> Dispute:
        return cls(obj["by"], obj["reason"], obj["at"], frozen_map(obj["votes"]), obj.get("upheld"))


@dataclass(frozen=True, slots=True)
class Payout:
    """Who got what when the task reached its final state."""

    provider: Tokens
    requester: Tokens
    slashed: Tokens  # of the provider's stake, given to the requester (in `requester`)
    at: int  # height

    def to_obj(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "requester": self.requester,
            "slashed": self.slashed,
            "at": self.at,
        }

    @classmethod
    def from_obj(cls, obj: Mapping[str, Any]) -> Payout:
        return cls(obj["provider"], obj["requester"], obj["slashed"], obj["at"])


@dataclass(frozen=True, slots=True)
class Task:
    """A requester's task: its terms, where it stands, and what came of it."""

    id: int
    requester: str
    kind: str
    inputs: tuple[str, ...]  # CIDs
    resource_class: str
    units: Units
    max_price: Tokens  # per compute unit
    deposit: Tokens  # max_price x units, in escrow until the task is final
    deadline_ns: int
    min_uptime_bps: Bps
    max_latency_ms: int
    penalty: Tokens  # λ_i, per violation
    named_provider: str  # "" for any
    state: str
    history: tuple[HistoryEntry, ...]
    provider: str  # "" until assigned
    price: Tokens  # P_i, per compute unit: the offer it was assigned at
    submitted_at: int
    units_used: Units  # as the provider reported them
    output: tuple[str, ...] | None  # CIDs; None until completed (stored as "")
    completed_at: int
    attestations: Mapping[str, Attestation]  # by oracle
    outcome: Outcome | None
    verified_at: int
    dispute: Dispute | None
    payout: Payout | None
    due: Due | None  # None once final

    def with_attestation(self, oracle: str, attestation: Attestation) -> Task:
        return replace(self, attestations=_with(self.attestations, oracle, attestation))

    def to_obj(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "requester": self.requester,
            "kind": self.kind,
            "inputs": list(self.inputs),
            "resource_class": self.resource_class,
            "units": self.units,
            "max_price": self.max_price,
            "deposit": self.deposit,
            "deadline_ns": self.deadline_ns,
            "min_uptime_bps": self.min_uptime_bps,
            "max_latency_ms": self.max_latency_ms,
            "penalty": self.penalty,
            "named_provider": self.named_provider,
            "state": self.state,
            "history": [entry.to_obj() for entry in self.history],
            "provider": self.provider,
            "price": self.price,
            "submitted_at": self.submitted_at,
            "units_used": self.units_used,
            "output": "" if self.output is None else list(self.output),
            "completed_at": self.completed_at,
            "attestations": {o: a.to_obj() for o, a in self.attestations.items()},
            "outcome": None if self.outcome is None else self.outcome.to_obj(),
            "verified_at": self.verified_at,
            "dispute": None if self.dispute is None else self.dispute.to_obj(),
            "payout": None if self.payout is None else self.payout.to_obj(),
            "due": None if self.due is None else self.due.to_obj(),
        }

    @classmethod
    def from_obj(cls, obj: Mapping[str, Any]) -> Task:
        output, outcome, dispute = obj["output"], obj["outcome"], obj["dispute"]
        payout, due = obj["payout"], obj["due"]
        return cls(
            id=obj["id"],
            requester=obj["requester"],
            kind=obj["kind"],
            inputs=tuple(obj["inputs"]),
            resource_class=obj["resource_class"],
            units=obj["units"],
            max_price=obj["max_price"],
            deposit=obj["deposit"],
            deadline_ns=obj["deadline_ns"],
            min_uptime_bps=obj["min_uptime_bps"],
            max_latency_ms=obj["max_latency_ms"],
            penalty=obj["penalty"],
            named_provider=obj["named_provider"],
            state=obj["state"],
            history=tuple(HistoryEntry.from_obj(entry) for entry in obj["history"]),
            provider=obj["provider"],
            price=obj["price"],
            submitted_at=obj["submitted_at"],
            units_used=obj["units_used"],
            output=None if output == "" else tuple(output),
            completed_at=obj["completed_at"],
            attestations=MappingProxyType(
                {o: Attestation.from_obj(a) for o, a in obj["attestations"].items()}
            ),
            outcome=None if outcome is None else Outcome.from_obj(outcome),
            verified_at=obj["verified_at"],
            dispute=None if dispute is None else Dispute.from_obj(dispute),
            payout=None if payout is None else Payout.from_obj(payout),
            due=None if due is None else Due.from_obj(due),
        )


# --- resource classes and prices -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResourceClass:
    """Capacity and units in flight now in a class, and their sums over the epoch's
    blocks so far (for its utilisation)."""

    capacity: Units = 0
    in_flight: Units = 0
    util_sum: Units = 0
    cap_sum: Units = 0

    def added(self, capacity: Units = 0, in_flight: Units = 0) -> ResourceClass:
        record = replace(
            self, capacity=self.capacity + capacity, in_flight=self.in_flight + in_flight
        )
        assert record.capacity >= 0 and record.in_flight >= 0, record
        return record

    def to_obj(self) -> dict[str, Any]:
        return {
            "capacity": self.capacity,
            "in_flight": self.in_flight,
            "util_sum": self.util_sum,
            "cap_sum": self.cap_sum,
        }

    @classmethod
    def from_obj(cls, obj: Mapping[str, Any]) -> ResourceClass:
        return cls(obj["capacity"], obj["in_flight"], obj["util_sum"], obj["cap_sum"])


@dataclass(frozen=True, slots=True)
class ReferencePrice:
    price: Tokens  # per compute unit
    utilisation_bps: Bps  # over the last epoch
    updated_at: int  # height

    def to_obj(self) -> dict[str, Any]:
        return {
            "price": self.price,
            "utilisation_bps": self.utilisation_bps,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_obj(cls, obj: Mapping[str, Any]) -> ReferencePrice:
        return cls(obj["price"], obj["utilisation_bps"], obj["updated_at"])


# --- tokens held, and what everyone earned ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Totals:
    """Tokens the market holds: deposits in escrow, and providers' stakes."""

    escrow: Tokens = 0
    stake: Tokens = 0

    def added(self, escrow: Tokens = 0, stake: Tokens = 0) -> Totals:
        totals = Totals(self.escrow + escrow, self.stake + stake)
        assert totals.escrow >= 0 and totals.stake >= 0, totals
        return totals

    def to_obj(self) -> dict[str, Any]:
        return {"escrow": self.escrow, "stake": self.stake}

    @classmethod
    def from_obj(cls, obj: Mapping[str, Any]) -> Totals:
        return cls(obj["escrow"], obj["stake"])


def _saturating(value: int) -> int:
    return max(-STAT_MAX, min(STAT_MAX, value))


class _Sums:
    """Running sums by name, each stored once something was added to it."""

    __slots__ = ()
    stored: frozenset[str]

    def added(self, **deltas: int) -> Self:
        """These sums with `deltas` added (saturating at ±STAT_MAX)."""
        names = _sum_names(type(self))
        values = {}
        for name, delta in deltas.items():
            assert name in names, f"{type(self).__name__} has no sum {name!r}"
            values[name] = _saturating(getattr(self, name) + delta)
        return replace(self, stored=self.stored.union(deltas), **values)  # type: ignore[type-var]

    def to_obj(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in sorted(self.stored)}

    @classmethod
    def from_obj(cls, obj: Mapping[str, Any]) -> Self:
        unknown = set(obj) - _sum_names(cls)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown sums {sorted(unknown)}")
        return cls(stored=frozenset(obj), **obj)


_SUM_NAMES: dict[type, frozenset[str]] = {}


def _sum_names(cls: type) -> frozenset[str]:
    names = _SUM_NAMES.get(cls)
    if names is None:
        names = _SUM_NAMES[cls] = frozenset(f.name for f in fields(cls)) - {"stored"}
    return names


@dataclass(frozen=True, slots=True)
class ProviderStats(_Sums):
    earned: Tokens = 0  # paid for tasks (P_i·C_i - λ_i·R_i where positive)
    gross: Tokens = 0  # Σ P_i·C_i
    penalties: Tokens = 0  # Σ λ_i·R_i
    slashed: Tokens = 0  # taken from its stake, given to requesters
    units: Units = 0  # verified
    tasks: int = 0  # settled, resolved, or expired in its hands
    violated: int = 0  # of those, with a violation
    assigned_units: Units = 0
    attested: int = 0  # SLA records about its service (attest_provider)
    uptime_sum: Bps = 0  # of those records
    latency_sum: int = 0  # of those records, ms
    rewarded: Tokens = 0  # minted for it at epochs
    stored: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class RequesterStats(_Sums):
    submitted: int = 0
    requested_units: Units = 0
    served_units: Units = 0  # assigned to a provider
    paid: Tokens = 0  # Σ P_i, net of the stakes slashed in its favour
    worth: Tokens = 0  # Σ Q_i
    refunded: Tokens = 0  # deposits back, and stakes slashed in its favour
    tasks: int = 0  # settled or resolved
    stored: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class OracleStats(_Sums):
    attestations: int = 0  # counted
    honest: int = 0  # of those, agreeing with the outcome on every SLA term
    rewarded: Tokens = 0
    stored: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class MarketCounts(_Sums):
    tasks_settled: int = 0  # paid out with an outcome, or expired in a provider's hands
    tasks_compliant: int = 0  # of those settled with an outcome, without a violation
    stored: frozenset[str] = frozenset()


Stats = ProviderStats | RequesterStats | OracleStats
STATS_BY_ROLE: Mapping[str, type[ProviderStats] | type[RequesterStats] | type[OracleStats]] = {
    "provider": ProviderStats,
    "requester": RequesterStats,
    "oracle": OracleStats,
}
