"""Where the market keeps its records, and the few ways to change them.

    market/params                  MarketParams
    market/provider/<address>      a provider: name, tier, offers by resource class,
                                   stake, status, reputation, units in flight by class
    market/oracle/<address>        an oracle (and market/oracle_count)
    market/task/<id:16>            a task, its SLA terms, history and outcome
    market/next_task               the next task id
    market/open/<class>/<id:16>    index: tasks waiting for a provider, one queue per
                                   resource class, oldest first
    market/cursor/<class>          the task of that queue the last block's assignment
                                   looked at last, if it has to go on from there
    market/due/t/<ns:20><id:16>    index: open, assigned and running tasks by deadline
    market/due/h/<height:20><id:16> index: completed, verified and disputed tasks by the
                                   height their window closes
    market/unbonding/<address>     index: providers leaving the market
    market/class/<name>            a resource class: capacity and units in flight now,
                                   and their sums over the epoch's blocks (utilisation)
    market/price/<name>            a resource class's reference price
    market/totals                  tokens held by the market: escrow and stakes
    market/stats/<role>/<address>  what a provider, requester or oracle has earned, paid...
    market/global                  tasks settled, and settled without a violation
    market/epoch/work/<address>    this epoch's quality-weighted verified units
    market/epoch/honest/<address>  this epoch's honest attestations

Records are msgpack maps of integers, strings, booleans and lists; ids are zero
padded so that key order is id order. Tokens leave balances only into escrow
or stakes (and back), so that balances + escrow + stakes = supply always.
Statistics are running sums over the whole history, so they saturate at
±STAT_MAX rather than outgrow what state can hold (and fail the transaction or
the end-of-block work that adds to them).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cloudchain import codec
from cloudchain.chaincode.context import Overlay, StateReader, read_value

PREFIX = b"market/"
PROVIDER = b"market/provider/"
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

ROLES = ("provider", "requester", "oracle")
STAT_MAX = 2**63 - 1  # a statistic's bound either way: a signed 64-bit integer, as amounts


def _read(state: StateReader, key: bytes, default: Any = None) -> Any:
    value = read_value(state, key)
    return default if value is None else codec.thaw(value)


def task_id_bytes(task_id: int) -> bytes:
    return f"{task_id:0{ID_DIGITS}d}".encode()


def iterate_records(state: StateReader, prefix: bytes) -> Iterator[tuple[str, dict[str, Any]]]:
    """(key suffix, record) under a prefix, in key order."""
    for key, raw in state.iterate(prefix):
        yield key[len(prefix) :].decode(), codec.thaw(codec.decode(raw))


# --- providers and oracles ---------------------------------------------------------------


def get_provider(state: StateReader, address: str) -> dict[str, Any] | None:
    return _read(state, PROVIDER + address.encode())


def put_provider(kv: Overlay, address: str, provider: dict[str, Any]) -> None:
    kv.set_value(PROVIDER + address.encode(), provider)


def is_oracle(state: StateReader, address: str) -> bool:
    return state.get(ORACLE + address.encode()) is not None


def oracle_count(state: StateReader) -> int:
    return read_value(state, ORACLE_COUNT, 0)


def set_oracle(kv: Overlay, address: str, present: bool, height: int) -> None:
    key = ORACLE + address.encode()
    count = oracle_count(kv)
    if present:
        kv.set_value(key, {"added_at": height})
        kv.set_value(ORACLE_COUNT, count + 1)
    else:
        kv.delete(key)
        kv.set_value(ORACLE_COUNT, count - 1)


# --- tasks -------------------------------------------------------------------------------


def get_task(state: StateReader, task_id: int) -> dict[str, Any] | None:
    return _read(state, TASK + task_id_bytes(task_id))


def put_task(kv: Overlay, task: dict[str, Any]) -> None:
    kv.set_value(TASK + task_id_bytes(task["id"]), task)


# --- open tasks: a queue per resource class ---------------------------------------------


def open_queue(name: str) -> bytes:
    """The prefix of the queue of open tasks of resource class `name`."""
    return OPEN + name.encode() + b"/"


def set_open(kv: Overlay, task: dict[str, Any], present: bool) -> None:
    """File the task in (or take it out of) its class's queue of open tasks."""
    key = open_queue(task["resource_class"]) + task_id_bytes(task["id"])
    if present:
        kv.set(key, b"\x01")
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


def set_due(kv: Overlay, task: dict[str, Any], due: tuple[str, int] | None) -> None:
    """File the task under when it must next be looked at (None: never again)."""
    if task.get("due"):
        kind, value = task["due"]
        kv.delete(DUE[kind] + f"{value:020d}".encode() + task_id_bytes(task["id"]))
    task["due"] = None if due is None else list(due)
    if due is not None:
        kind, value = due
        kv.set(DUE[kind] + f"{value:020d}".encode() + task_id_bytes(task["id"]), b"\x01")


def iterate_due(state: StateReader, kind: str, until: int) -> Iterator[int]:
    """Ids of the tasks due (by time or by height) at or before `until`, earliest first;
    reads no further than the first one not yet due."""
    prefix = DUE[kind]
    for key, _ in state.iterate(prefix):
        if int(key[len(prefix) : len(prefix) + 20]) > until:
            return
        yield int(key[len(prefix) + 20 :])


def next_task_id(kv: Overlay) -> int:
    task_id = read_value(kv, NEXT_TASK, 1)
    kv.set_value(NEXT_TASK, task_id + 1)
    return task_id


# --- resource classes ----------------------------------------------------------------------


def get_class(state: StateReader, name: str) -> dict[str, int]:
    return _read(
        state, CLASS + name.encode(), {"capacity": 0, "in_flight": 0, "util_sum": 0, "cap_sum": 0}
    )


def add_class(kv: Overlay, name: str, capacity: int = 0, in_flight: int = 0) -> None:
    record = get_class(kv, name)
    record["capacity"] += capacity
    record["in_flight"] += in_flight
    assert record["capacity"] >= 0 and record["in_flight"] >= 0, record
    kv.set_value(CLASS + name.encode(), record)


def get_price(state: StateReader, name: str) -> dict[str, int] | None:
    return _read(state, PRICE + name.encode())


def put_price(kv: Overlay, name: str, record: dict[str, int]) -> None:
    kv.set_value(PRICE + name.encode(), record)


# --- tokens held, and what everyone earned -------------------------------------------------


def get_totals(state: StateReader) -> dict[str, int]:
    return _read(state, TOTALS, {"escrow": 0, "stake": 0})


def add_totals(kv: Overlay, escrow: int = 0, stake: int = 0) -> None:
    totals = get_totals(kv)
    totals["escrow"] += escrow
    totals["stake"] += stake
    assert totals["escrow"] >= 0 and totals["stake"] >= 0, totals
    kv.set_value(TOTALS, totals)


def get_stats(state: StateReader, role: str, address: str) -> dict[str, int]:
    assert role in ROLES
    return _read(state, STATS + f"{role}/{address}".encode(), {})


def add_stats(kv: Overlay, role: str, address: str, **deltas: int) -> None:
    record = get_stats(kv, role, address)
    for name, delta in deltas.items():
        record[name] = _saturating(record.get(name, 0) + delta)
    kv.set_value(STATS + f"{role}/{address}".encode(), record)


def add_global(kv: Overlay, **deltas: int) -> None:
    record = _read(kv, GLOBAL, {})
    for name, delta in deltas.items():
        record[name] = _saturating(record.get(name, 0) + delta)
    kv.set_value(GLOBAL, record)


def _saturating(value: int) -> int:
    return max(-STAT_MAX, min(STAT_MAX, value))


def get_global(state: StateReader) -> dict[str, int]:
    return _read(state, GLOBAL, {})


def add_epoch(kv: Overlay, prefix: bytes, address: str, amount: int) -> None:
    key = prefix + address.encode()
    kv.set_value(key, read_value(kv, key, 0) + amount)
