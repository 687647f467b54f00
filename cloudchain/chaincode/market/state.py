"""Where the market keeps its records, and the only module that reads or writes them.

    market/params                  MarketParams
    market/provider/<address>      Provider: name, tier, offers by resource class,
                                   stake, status, reputation, units in flight by class
    market/endpoint/<address>      the provider's agent's public URL (`advertise`), where
                                   oracles probe its /health
    market/oracle/<address>        Oracle (and market/oracle_count)
    market/task/<id:16>            Task: its SLA terms, history and outcome
    market/next_task               the next task id
    market/open/<class>/<id:16>    index: tasks waiting for a provider, one queue per
                                   resource class, oldest first
    market/cursor/<class>          the task of that queue the last block's assignment
                                   looked at last, if it has to go on from there
    market/due/t/<ns:20><id:16>    index: open, assigned and running tasks by deadline
    market/due/h/<height:20><id:16> index: completed, verified and disputed tasks by the
                                   height their window closes
    market/unbonding/<address>     index: providers leaving the market
    market/class/<name>            ResourceClass: capacity and units in flight now, and
                                   their sums over the epoch's blocks (utilisation)
    market/price/<name>            ReferencePrice of a resource class
    market/totals                  Totals: tokens held by the market, escrow and stakes
    market/stats/<role>/<address>  ProviderStats, RequesterStats or OracleStats: what a
                                   provider, requester or oracle has earned, paid...
    market/global                  MarketCounts: tasks settled, and settled without a
                                   violation
    market/epoch/work/<address>    this epoch's quality-weighted verified units
    market/epoch/honest/<address>  this epoch's honest attestations

Values are the canonical msgpack of the records' `to_obj()` (records.py), or of an
integer; index entries are the byte 0x01. Ids are zero padded so that key order is id
order. Tokens leave balances only into escrow or stakes (and back), so that balances +
escrow + stakes = supply always.

A record read here is a frozen value: the caller builds the changed one and puts it
back (`put_*`), or calls one of the `add_*` here that do both.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any, Protocol, TypeVar

from cloudchain import codec
from cloudchain.chaincode.context import Overlay, StateReader, read_value
from cloudchain.chaincode.market.params import MarketParams
from cloudchain.chaincode.market.records import (
    STATS_BY_ROLE,
    Due,
    MarketCounts,
    Oracle,
    OracleStats,
    Provider,
    ProviderStats,
    ReferencePrice,
    RequesterStats,
    ResourceClass,
    Stats,
    Task,
    Totals,
)

PARAMS = b"market/params"
PROVIDER = b"market/provider/"
ENDPOINT = b"market/endpoint/"
ORACLE = b"market/oracle/"
ORACLE_COUNT = b"market/oracle_count"
TASK = b"market/task/"
NEXT_TASK = b"market/next_task"
OPEN = b"market/open/"
CURSOR = b"market/cursor/"
ID_DIGITS = 16  # of a task id in a key: zero padded, so that key order is id order
DUE = {"t": b"market/due/t/", "h": b"market/due/h/"}  # by time, by height
UNBONDING = b"market/unbonding/"
CLASS = b"market/class/"
PRICE = b"market/price/"
TOTALS = b"market/totals"
STATS = b"market/stats/"
GLOBAL = b"market/global"
EPOCH_WORK = b"market/epoch/work/"
EPOCH_HONEST = b"market/epoch/honest/"
PRESENT = b"\x01"  # the value of an index entry


class _Record(Protocol):
    def to_obj(self) -> Any: ...


R = TypeVar("R")
DECODED_CACHE = 8_192  # records, by their stored bytes


@lru_cache(maxsize=DECODED_CACHE)
def _decoded(kind: type[Any], raw: bytes) -> Any:
    return kind.from_obj(codec.decode(raw))


def _read(kind: type[R], raw: bytes) -> R:
    """The record `raw` stores. Records are frozen values, so one decoded from the same
    bytes before is the same record: most reads of a block are of records that did not
    change (the open tasks and the providers the assignment reads every block), and
    decoding them again was a fifth of a market simulation's time."""
    return _decoded(kind, bytes(raw))  # type: ignore[no-any-return]


def _put(kv: Overlay, key: bytes, record: _Record) -> None:
    kv.set(key, codec.encode(record.to_obj()))


def task_id_bytes(task_id: int) -> bytes:
    return f"{task_id:0{ID_DIGITS}d}".encode()


# --- parameters ----------------------------------------------------------------------------


def get_params(state: StateReader) -> MarketParams:
    return MarketParams(**read_value(state, PARAMS, {}))


def put_params(kv: Overlay, params: MarketParams) -> None:
    kv.set(PARAMS, codec.encode(params.to_obj()))


# --- providers and oracles -----------------------------------------------------------------


def get_provider(state: StateReader, address: str) -> Provider | None:
    raw = state.get(PROVIDER + address.encode())
    return None if raw is None else _read(Provider, raw)


def put_provider(kv: Overlay, address: str, provider: Provider) -> None:
    _put(kv, PROVIDER + address.encode(), provider)


def iterate_providers(state: StateReader) -> Iterator[tuple[str, Provider]]:
    """(address, provider) of every provider, left ones too, in address order."""
    for key, raw in state.iterate(PROVIDER):
        yield key[len(PROVIDER) :].decode(), _read(Provider, raw)


def get_endpoint(state: StateReader, address: str) -> str:
    """The URL the provider advertised, "" if none."""
    return read_value(state, ENDPOINT + address.encode(), "")


def put_endpoint(kv: Overlay, address: str, endpoint: str) -> None:
    kv.set(ENDPOINT + address.encode(), codec.encode(endpoint))


def is_oracle(state: StateReader, address: str) -> bool:
    return state.get(ORACLE + address.encode()) is not None


def oracle_count(state: StateReader) -> int:
    return read_value(state, ORACLE_COUNT, 0)


def iterate_oracles(state: StateReader) -> Iterator[str]:
    """The oracles' addresses, in order."""
    for key, _ in state.iterate(ORACLE):
        yield key[len(ORACLE) :].decode()


def set_oracle(kv: Overlay, address: str, present: bool, height: int) -> None:
    key = ORACLE + address.encode()
    count = oracle_count(kv)
    if present:
        _put(kv, key, Oracle(added_at=height))
        kv.set_value(ORACLE_COUNT, count + 1)
    else:
        kv.delete(key)
        kv.set_value(ORACLE_COUNT, count - 1)


def set_unbonding(kv: Overlay, address: str, present: bool) -> None:
    """File the provider in (or take it out of) the index of those leaving."""
    if present:
        kv.set(UNBONDING + address.encode(), PRESENT)
    else:
        kv.delete(UNBONDING + address.encode())


def iterate_unbonding(state: StateReader) -> Iterator[str]:
    """The addresses of the providers leaving, in order."""
    for key, _ in state.iterate(UNBONDING):
        yield key[len(UNBONDING) :].decode()


# --- tasks ---------------------------------------------------------------------------------


def get_task(state: StateReader, task_id: int) -> Task | None:
    raw = state.get(TASK + task_id_bytes(task_id))
    return None if raw is None else _read(Task, raw)


def put_task(kv: Overlay, task: Task) -> None:
    _put(kv, TASK + task_id_bytes(task.id), task)


def iterate_tasks(state: StateReader, after: int = 0) -> Iterator[Task]:
    """The tasks with an id above `after`, in id order (only those are decoded)."""
    for key, raw in state.iterate(TASK):
        if int(key[len(TASK) :]) > after:
            yield _read(Task, raw)


def next_task_id(kv: Overlay) -> int:
    task_id = read_value(kv, NEXT_TASK, 1)
    kv.set_value(NEXT_TASK, task_id + 1)
    return task_id


# --- open tasks: a queue per resource class ---------------------------------------------


def open_queue(name: str) -> bytes:
    """The prefix of the queue of open tasks of resource class `name`."""
    return OPEN + name.encode() + b"/"


def set_open(kv: Overlay, name: str, task_id: int, present: bool) -> None:
    """File task `task_id` in (or take it out of) the queue of open tasks of class `name`."""
    key = open_queue(name) + task_id_bytes(task_id)
    if present:
        kv.set(key, PRESENT)
    else:
        kv.delete(key)


def iterate_open(state: StateReader) -> Iterator[tuple[str, int]]:
    """(resource class, task id) of every open task, by class and then id."""
    for key, _ in state.iterate(OPEN):
        name, _, task_id = key[len(OPEN) :].decode().rpartition("/")
        yield name, int(task_id)


def iterate_queue(state: StateReader, name: str, after: int) -> Iterator[int]:
    """The ids in class `name`'s queue, each once: from the first after `after` to the
    last, then from the first up to `after`: a queue read in turns, from a cursor.

    State is read by prefix only, so the ids after the cursor are read under the
    decimal prefixes that cover them (`_prefixes_after`): the read goes straight to
    where it resumes, instead of through every task (and every deleted index entry,
    which the store keeps) before it."""
    prefix = open_queue(name)
    if after:
        below = read_value(state, NEXT_TASK, 1)  # no id reaches the next one
        for digits in _prefixes_after(after, below):
            for key, _ in state.iterate(prefix + digits):
                yield int(key[len(prefix) :])
    for key, _ in state.iterate(prefix):
        task_id = int(key[len(prefix) :])
        if after and task_id > after:
            return
        yield task_id


def _prefixes_after(after: int, below: int) -> Iterator[bytes]:
    """Prefixes of zero-padded ids that together hold exactly the ids between `after`
    and `below` (and no others below `below`), in key order: for 0…0123, the ids
    0…0124 to 0…0129, then 0…013 to 0…019, then 0…02 to 0…09, and so on up. At most
    9 prefixes a digit, and none that starts at or past `below`."""
    digits = f"{after:0{ID_DIGITS}d}"
    for place in range(ID_DIGITS - 1, -1, -1):
        for digit in range(int(digits[place]) + 1, 10):
            prefix = digits[:place] + str(digit)
            if int(prefix.ljust(ID_DIGITS, "0")) >= below:
                return
            yield prefix.encode()


def get_cursor(state: StateReader, name: str) -> int:
    """Where the assignment goes on in class `name`'s queue (0: at its oldest task)."""
    return read_value(state, CURSOR + name.encode(), 0)


def set_cursor(kv: Overlay, name: str, task_id: int) -> None:
    key = CURSOR + name.encode()
    if task_id:
        kv.set_value(key, task_id)
    elif kv.get(key) is not None:
        kv.delete(key)


# --- the due index -------------------------------------------------------------------------


def _due_key(due: Due, task_id: int) -> bytes:
    return DUE[due.kind] + f"{due.at:020d}".encode() + task_id_bytes(task_id)


def file_due(kv: Overlay, task_id: int, was: Due | None, now: Due | None) -> None:
    """Refile the task from when it was due to when it must next be looked at (None:
    not filed, or never again). The task's own `due` says where it is filed."""
    if was is not None:
        kv.delete(_due_key(was, task_id))
    if now is not None:
        kv.set(_due_key(now, task_id), PRESENT)


def iterate_due(state: StateReader, kind: str, until: int) -> Iterator[int]:
    """Ids of the tasks due (by time or by height) at or before `until`, earliest first;
    reads no further than the first one not yet due."""
    prefix = DUE[kind]
    for key, _ in state.iterate(prefix):
        if int(key[len(prefix) : len(prefix) + 20]) > until:
            return
        yield int(key[len(prefix) + 20 :])


# --- resource classes ----------------------------------------------------------------------


def get_class(state: StateReader, name: str) -> ResourceClass:
    raw = state.get(CLASS + name.encode())
    return ResourceClass() if raw is None else _read(ResourceClass, raw)


def put_class(kv: Overlay, name: str, record: ResourceClass) -> None:
    _put(kv, CLASS + name.encode(), record)


def add_class(kv: Overlay, name: str, capacity: int = 0, in_flight: int = 0) -> None:
    put_class(kv, name, get_class(kv, name).added(capacity=capacity, in_flight=in_flight))


def iterate_classes(state: StateReader) -> Iterator[tuple[str, ResourceClass]]:
    """(name, record) of every resource class ever offered, in name order."""
    for key, raw in state.iterate(CLASS):
        yield key[len(CLASS) :].decode(), _read(ResourceClass, raw)


def get_price(state: StateReader, name: str) -> ReferencePrice | None:
    raw = state.get(PRICE + name.encode())
    return None if raw is None else _read(ReferencePrice, raw)


def put_price(kv: Overlay, name: str, record: ReferencePrice) -> None:
    _put(kv, PRICE + name.encode(), record)


def iterate_prices(state: StateReader) -> Iterator[tuple[str, ReferencePrice]]:
    """(name, reference price) of every resource class that has one, in name order."""
    for key, raw in state.iterate(PRICE):
        yield key[len(PRICE) :].decode(), _read(ReferencePrice, raw)


# --- tokens held, and what everyone earned -------------------------------------------------


def get_totals(state: StateReader) -> Totals:
    raw = state.get(TOTALS)
    return Totals() if raw is None else _read(Totals, raw)


def add_totals(kv: Overlay, escrow: int = 0, stake: int = 0) -> None:
    _put(kv, TOTALS, get_totals(kv).added(escrow=escrow, stake=stake))


def _stats_key(role: str, address: str) -> bytes:
    return STATS + f"{role}/{address}".encode()


def get_stats(state: StateReader, role: str, address: str) -> Stats:
    """What `address` earned, paid... in `role` (a record of no sums if nothing yet)."""
    kind = STATS_BY_ROLE[role]
    raw = state.get(_stats_key(role, address))
    return kind() if raw is None else _read(kind, raw)


def get_provider_stats(state: StateReader, address: str) -> ProviderStats:
    stats = get_stats(state, "provider", address)
    assert isinstance(stats, ProviderStats)
    return stats


def get_requester_stats(state: StateReader, address: str) -> RequesterStats:
    stats = get_stats(state, "requester", address)
    assert isinstance(stats, RequesterStats)
    return stats


def get_oracle_stats(state: StateReader, address: str) -> OracleStats:
    stats = get_stats(state, "oracle", address)
    assert isinstance(stats, OracleStats)
    return stats


def iterate_requester_stats(state: StateReader) -> Iterator[tuple[str, RequesterStats]]:
    """(address, statistics) of every requester, in address order."""
    prefix = STATS + b"requester/"
    for key, raw in state.iterate(prefix):
        yield key[len(prefix) :].decode(), _read(RequesterStats, raw)


def add_stats(kv: Overlay, role: str, address: str, **deltas: int) -> None:
    """Add `deltas` to the sums of `address` in `role` (saturating, records.STAT_MAX)."""
    _put(kv, _stats_key(role, address), get_stats(kv, role, address).added(**deltas))


def get_global(state: StateReader) -> MarketCounts:
    raw = state.get(GLOBAL)
    return MarketCounts() if raw is None else _read(MarketCounts, raw)


def add_global(kv: Overlay, **deltas: int) -> None:
    _put(kv, GLOBAL, get_global(kv).added(**deltas))


# --- this epoch's weights --------------------------------------------------------------------


def add_epoch(kv: Overlay, prefix: bytes, address: str, amount: int) -> None:
    """Add to `address`'s weight this epoch (prefix EPOCH_WORK or EPOCH_HONEST)."""
    key = prefix + address.encode()
    kv.set_value(key, read_value(kv, key, 0) + amount)


def take_epoch(kv: Overlay, prefix: bytes) -> list[tuple[str, int]]:
    """Every (address, weight) of this epoch under `prefix`, in address order; they are
    deleted, so that the next epoch starts from none."""
    weights = [(key[len(prefix) :].decode(), codec.decode(raw)) for key, raw in kv.iterate(prefix)]
    for address, _ in weights:
        kv.delete(prefix + address.encode())
    return weights
