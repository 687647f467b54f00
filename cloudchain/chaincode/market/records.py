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

Both are derived from the dataclass fields (`_Record`), planned once per class at
import: a map of the fields by name, in their order; a field that is itself a record, a
tuple or a map of records, or optional (`X | None`), is encoded as its type says. Adding
a field is one line. The few quirks of the old maps are declared where they are: a field stored
otherwise when None (`Task.output`), or not at all (`Dispute.upheld`); a property
stored with the fields (`Outcome.quality_bps`); a record stored as a list
(`HistoryEntry`, `Due`). `from_obj` is strict: a stored map with a key missing, or one
the record does not have, is a bug, and raises.

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

import operator
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, ClassVar, Self, TypeVar

from cloudchain.chaincode.market.economics import Bps, ProfitTerm, Tokens, Units, quality_bps

STAT_MAX = 2**63 - 1  # a statistic's bound either way: a signed 64-bit integer, as amounts

V = TypeVar("V")


def frozen_map(items: Mapping[str, V]) -> Mapping[str, V]:
    """A read-only copy of `items`."""
    return MappingProxyType(dict(items))


def _with(items: Mapping[str, V], name: str, value: V) -> Mapping[str, V]:
    return MappingProxyType({**items, name: value})


# --- the encoding, derived from the fields ------------------------------------------------

Converter = Callable[[Any], Any]  # a value to its plain value, or back
Convert = Converter | None  # None: stored as it is

_NONE_AS = "none_as"  # field metadata: what None is stored as, instead of nil
_OMITTED_IF_NONE = "omitted_if_none"  # field metadata: None is not stored, nor its key


class _Record:
    """A frozen dataclass stored as the map of its fields, by name (or, `AS_LIST`, the
    list of their values, in order)."""

    __slots__ = ()
    AS_LIST: ClassVar[bool] = False
    DERIVED: ClassVar[tuple[str, ...]] = ()  # properties stored after the fields

    def to_obj(self) -> Any:
        return (_PLANS.get(type(self)) or _plan(type(self))).encode(self)

    @classmethod
    def from_obj(cls, obj: Any) -> Self:
        return (_PLANS.get(cls) or _plan(cls)).decode(obj)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class _Plan:
    """How one record class is encoded and decoded, made once from its fields."""

    encode: Converter  # a record to its plain value
    decode: Converter  # and back, refusing one that is not a stored record's


_PLANS: dict[type, _Plan] = {}


def _plan(cls: type[_Record]) -> _Plan:
    """`cls`'s plan, resolved from its fields and their types, and kept."""
    hints = typing.get_type_hints(cls)
    declared = fields(cls)  # type: ignore[arg-type]
    names = tuple(f.name for f in declared)
    converted: list[tuple[int, str, Converter, Converter]] = []  # (at, name, to, from)
    omitted = []
    for at, f in enumerate(declared):
        to, fro = _converters(hints[f.name], f"{cls.__name__}.{f.name}")
        if _NONE_AS in f.metadata:
            to, fro = _none_as(f.metadata[_NONE_AS], to, fro)
        if to is not None and fro is not None:
            converted.append((at, f.name, to, fro))
        if f.metadata.get(_OMITTED_IF_NONE):
            omitted.append(f.name)
    keys = frozenset(names) | frozenset(cls.DERIVED)
    required = keys - frozenset(omitted)
    values = _getter(operator.attrgetter, names)
    if cls.AS_LIST:
        assert not converted and not omitted and not cls.DERIVED, cls
        encode, decode = _list_codec(cls, names, values)
    else:
        encode = _map_encoder(names, values, converted, omitted, cls.DERIVED)
        decode = _map_decoder(cls, names, converted, omitted, keys, required)
    plan = _PLANS[cls] = _Plan(encode, decode)
    return plan


def _list_codec(
    cls: type[_Record], names: tuple[str, ...], values: Callable[[Any], tuple[Any, ...]]
) -> tuple[Converter, Converter]:
    """A record of plain values stored as the list of them."""

    def decode(obj: Any) -> Any:
        if len(obj) != len(names):
            raise ValueError(f"{cls.__name__}: {len(obj)} values, not {len(names)}")
        return cls(*obj)

    return (lambda record: list(values(record))), decode


def _map_encoder(
    names: tuple[str, ...],
    values: Callable[[Any], tuple[Any, ...]],
    converted: list[tuple[int, str, Converter, Converter]],
    omitted: list[str],
    derived: tuple[str, ...],
) -> Converter:
    """A record to the map of its fields, each converted as its type says."""
    # zip(..., strict=...) costs a third of the encoding of a small record: `values`
    # gives one value a name by construction, so B905 is off in this function.
    if not converted and not omitted and not derived:
        return lambda record: dict(zip(names, values(record)))  # noqa: B905
    conversions = tuple((name, to) for _, name, to, _ in converted)

    def encode(record: Any) -> dict[str, Any]:
        obj = dict(zip(names, values(record)))  # noqa: B905
        for name, to in conversions:
            obj[name] = to(obj[name])
        for name in omitted:
            if obj[name] is None:
                del obj[name]
        for name in derived:
            obj[name] = getattr(record, name)
        return obj

    return encode


def _map_decoder(
    cls: type[_Record],
    names: tuple[str, ...],
    converted: list[tuple[int, str, Converter, Converter]],
    omitted: list[str],
    keys: frozenset[str],
    required: frozenset[str],
) -> Converter:
    """A stored map back to its record: refused unless it has the keys of one."""
    pick = _picker(names, omitted, bool(converted))
    conversions = tuple((at, fro) for at, _, _, fro in converted)

    def decode(obj: Any) -> Any:
        if obj.keys() != keys:
            _check_keys(cls, obj, keys, required)
        values = pick(obj)
        for at, fro in conversions:
            values[at] = fro(values[at])
        return cls(*values)

    return decode


def _picker(
    names: tuple[str, ...], omitted: list[str], to_convert: bool
) -> Callable[[Mapping[str, Any]], Any]:
    """The values of a stored map's `names`, in order: a list (None for a key omitted)
    if some are to be converted or may be missing, else a tuple."""
    if omitted:
        return lambda obj: [obj.get(name) for name in names]
    get = _getter(operator.itemgetter, names)
    return (lambda obj: list(get(obj))) if to_convert else get


def _getter(
    make: Callable[..., Callable[[Any], Any]], names: tuple[str, ...]
) -> Callable[[Any], tuple[Any, ...]]:
    """operator.attrgetter or itemgetter of `names`, giving a tuple even of one."""
    get = make(*names)
    return get if len(names) > 1 else lambda value: (get(value),)


def _check_keys(
    cls: type, obj: Mapping[str, Any], keys: frozenset[str], required: frozenset[str]
) -> None:
    """Raise unless `obj` has the keys of a stored `cls`: every field's, but those
    omitted when None, and no other."""
    missing, unknown = required - obj.keys(), obj.keys() - keys
    if missing or unknown:
        raise ValueError(f"{cls.__name__}: missing {sorted(missing)}, unknown {sorted(unknown)}")


def _converters(hint: Any, where: str) -> tuple[Convert, Convert]:
    """How a value of type `hint` becomes its plain value, and back: (None, None) for
    one stored as it is (a bool, int or str), else both."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union) and len(args) == 2 and type(None) in args:
        (inner,) = (a for a in args if a is not type(None))
        encode, decode = _converters(inner, where)
        return _or_none(encode), _or_none(decode)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        encode, decode = _converters(args[0], where)
        if encode is None or decode is None:
            return list, tuple
        return _list_of(encode), _tuple_of(decode)
    if origin is Mapping and args[0] is str:
        encode, decode = _converters(args[1], where)
        if encode is None or decode is None:
            return dict, frozen_map
        return _dict_of(encode), _frozen_map_of(decode)
    if isinstance(hint, type) and issubclass(hint, _Record):
        plan = _PLANS.get(hint) or _plan(hint)
        return plan.encode, plan.decode
    if hint in (bool, int, str):
        return None, None
    raise TypeError(f"{where}: no encoding for {hint}")


def _or_none(convert: Convert) -> Convert:
    if convert is None:
        return None
    return lambda value: None if value is None else convert(value)


def _list_of(convert: Converter) -> Converter:
    return lambda values: [convert(value) for value in values]


def _tuple_of(convert: Converter) -> Converter:
    return lambda values: tuple([convert(value) for value in values])


def _dict_of(convert: Converter) -> Converter:
    return lambda items: {key: convert(value) for key, value in items.items()}


def _frozen_map_of(convert: Converter) -> Converter:
    return lambda items: MappingProxyType({key: convert(value) for key, value in items.items()})


def _none_as(stored: Any, encode: Convert, decode: Convert) -> tuple[Convert, Convert]:
    """Converters that store None as `stored` (and read `stored` as None)."""
    assert encode is not None and decode is not None, "only for a field of a converted type"
    return (
        lambda value: stored if value is None else encode(value),
        lambda value: None if value == stored else decode(value),
    )


# --- providers and oracles -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Offer(_Record):
    """What a provider sells in one resource class."""

    gpu: str
    gpus: int
    memory_gb: int
    units: Units  # compute units it can have in flight at once in this class
    price: Tokens  # per compute unit


@dataclass(frozen=True, slots=True)
class Provider(_Record):
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

    @property
    def capacity(self) -> Units:
        """The units it offers, every class: what fairness and the capacity reward count."""
        return sum(offer.units for offer in self.offers.values())

    def with_in_flight(self, name: str, units: Units) -> Provider:
        """`units` more (or fewer) in flight in class `name`."""
        now = self.in_flight.get(name, 0) + units
        assert now >= 0, (name, now)
        in_flight = {**self.in_flight, name: now}
        if now == 0:
            del in_flight[name]
        return replace(self, in_flight=MappingProxyType(in_flight))


@dataclass(frozen=True, slots=True)
class Oracle(_Record):
    added_at: int  # height


# --- tasks ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HistoryEntry(_Record):
    """A state the task entered, and the height at which it did."""

    AS_LIST: ClassVar[bool] = True

    state: str
    height: int


@dataclass(frozen=True, slots=True)
class Due(_Record):
    """When the end-of-block work must next look at a task."""

    AS_LIST: ClassVar[bool] = True

    kind: str  # "t": `at` is a block time (ns); "h": `at` is a height
    at: int


@dataclass(frozen=True, slots=True)
class Attestation(_Record):
    """An oracle's report on a completed task."""

    completed: bool
    units: Units
    uptime_bps: Bps
    latency_ms: int
    at: int  # height


@dataclass(frozen=True, slots=True)
class Outcome(_Record):
    """What the oracles' quorum decided about a completed task (or a dispute made of it)."""

    DERIVED: ClassVar[tuple[str, ...]] = ("quality_bps",)

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


@dataclass(frozen=True, slots=True)
class Dispute(_Record):
    by: str  # "requester" or "provider"
    reason: str
    at: int  # height
    votes: Mapping[str, bool]  # by oracle: uphold the outcome or not
    upheld: bool | None = field(default=None, metadata={_OMITTED_IF_NONE: True})  # resolved

    def with_vote(self, oracle: str, uphold: bool) -> Dispute:
        return replace(self, votes=_with(self.votes, oracle, uphold))


@dataclass(frozen=True, slots=True)
class Payout(_Record):
    """Who got what when the task reached its final state."""

    provider: Tokens
    requester: Tokens
    slashed: Tokens  # of the provider's stake, given to the requester (in `requester`)
    at: int  # height


@dataclass(frozen=True, slots=True)
class Task(_Record):
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
    output: tuple[str, ...] | None = field(metadata={_NONE_AS: ""})  # CIDs, once completed
    completed_at: int
    attestations: Mapping[str, Attestation]  # by oracle
    outcome: Outcome | None
    verified_at: int
    dispute: Dispute | None
    payout: Payout | None
    due: Due | None  # None once final
    # The sealed dataset it reads (access module) and the ε it spends of that dataset's
    # budget, if a DP task: None, and not stored, for a task that reads none.
    dataset: int | None = field(default=None, metadata={_OMITTED_IF_NONE: True})
    dp_micro_eps: int | None = field(default=None, metadata={_OMITTED_IF_NONE: True})

    def with_attestation(self, oracle: str, attestation: Attestation) -> Task:
        return replace(self, attestations=_with(self.attestations, oracle, attestation))


# --- resource classes and prices -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResourceClass(_Record):
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


@dataclass(frozen=True, slots=True)
class ReferencePrice(_Record):
    price: Tokens  # per compute unit
    utilisation_bps: Bps  # over the last epoch
    updated_at: int  # height


# --- tokens held, and what everyone earned ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Totals(_Record):
    """Tokens the market holds: deposits in escrow, and providers' stakes."""

    escrow: Tokens = 0
    stake: Tokens = 0

    def added(self, escrow: Tokens = 0, stake: Tokens = 0) -> Totals:
        totals = Totals(self.escrow + escrow, self.stake + stake)
        assert totals.escrow >= 0 and totals.stake >= 0, totals
        return totals


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
    rewarded_capacity: Tokens = 0  # of that, for the capacity it offered (epoch.py)
    # Σ price x units of the tasks assigned to it, kept only under the fair policy, which
    # reads it (so that a chain on the default policy stores what it always did)
    assigned_value: Tokens = 0
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
    # the fair policy's budget (policy.Budget), kept only under it
    fair_base: Tokens = 0
    fair_premium: Tokens = 0
    stored: frozenset[str] = frozenset()


Stats = ProviderStats | RequesterStats | OracleStats
STATS_BY_ROLE: Mapping[str, type[ProviderStats] | type[RequesterStats] | type[OracleStats]] = {
    "provider": ProviderStats,
    "requester": RequesterStats,
    "oracle": OracleStats,
}


# Made at import, so that no block pays for them, and a field of a type with no encoding
# fails here rather than when a record of it is first stored.
for _record in (Provider, Oracle, Task, ResourceClass, ReferencePrice, Totals):
    _PLANS.get(_record) or _plan(_record)
