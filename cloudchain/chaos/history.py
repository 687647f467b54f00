"""What the workload asked of the network and what it was told: the history a checker reads.

A history is a sequence of operations, each a frozen record with the monotonic times
(`time.monotonic_ns`, one clock for the whole run) at which it was invoked and at which
its answer arrived:

- `Transfer`: a signed `token.transfer` sent through one node. Its outcome is
    OK       the node acknowledged it committed, at `height`, with result `code`. A
             committed transaction whose handler failed (code != 0) is still OK: it
             is in the chain, its fee is burnt and its nonce used, only its amount did
             not move. The checker holds an OK transfer to be in the chain exactly once,
             at that height, with that code.
    FAILED   it was definitely not applied: the node's check_tx refused bytes that were
             never sent anywhere else, so no mempool holds them. The checker holds a
             FAILED transfer never to be in the chain.
    UNKNOWN  anything else: a timeout, a connection refused or reset, a node killed
             mid-call, or a re-sent transaction refused (the first copy may still
             commit). The checker allows it in the chain at most once.
  `resend` marks the same bytes sent again (same hash, same nonce) to settle an UNKNOWN.
- `Read`: every account's balance read through one node, all at the one height the
  node answered the first query at. A read that failed is recorded as UNKNOWN with no
  balances; the checker ignores it.

Saved as JSON Lines, one operation per line with a `type` field, so a run's history
can be re-checked later (`save_history`, `load_history`).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


class Outcome(enum.Enum):
    OK = "ok"
    FAILED = "failed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Transfer:
    """A `token.transfer` of `amount` from `sender` to `recipient` (addresses), sent
    through node `node` (its index); `tx_hash` is the transaction's hash in lower-case
    hex, `fee` what it pays. `height` and `code` are the node's answer (OK: the block
    and the result code; FAILED: height 0 and check_tx's code)."""

    op_id: int
    node: int
    sender: str
    recipient: str
    amount: int
    nonce: int
    fee: int
    tx_hash: str
    invoke_ns: int
    complete_ns: int
    outcome: Outcome
    height: int = 0
    code: int = 0
    resend: bool = False
    detail: str = ""

    def __post_init__(self) -> None:
        assert self.complete_ns >= self.invoke_ns, "an answer comes after its question"
        assert self.outcome is Outcome.OK or self.height == 0, "only a commit has a height"


@dataclass(frozen=True)
class Read:
    """Every account's balance through node `node`, at `height` (sorted by address)."""

    op_id: int
    node: int
    invoke_ns: int
    complete_ns: int
    outcome: Outcome
    height: int = 0
    balances: tuple[tuple[str, int], ...] = ()
    detail: str = ""

    def __post_init__(self) -> None:
        assert self.complete_ns >= self.invoke_ns, "an answer comes after its question"
        assert self.outcome is not Outcome.FAILED, "a read is answered or not"
        assert self.outcome is Outcome.OK or not self.balances, "only an answer has balances"


Op = Transfer | Read


@dataclass(frozen=True)
class History:
    """The operations of one run, in the order they completed."""

    ops: tuple[Op, ...] = field(default_factory=tuple)

    @property
    def transfers(self) -> tuple[Transfer, ...]:
        return tuple(op for op in self.ops if isinstance(op, Transfer))

    @property
    def reads(self) -> tuple[Read, ...]:
        return tuple(op for op in self.ops if isinstance(op, Read))

    def to_jsonl(self) -> str:
        return "".join(json.dumps(op_to_obj(op), sort_keys=True) + "\n" for op in self.ops)

    @classmethod
    def from_jsonl(cls, text: str) -> History:
        return cls(tuple(op_from_obj(json.loads(line)) for line in _lines(text)))


def _lines(text: str) -> Iterator[str]:
    for line in text.splitlines():
        if line.strip():
            yield line


def op_to_obj(op: Op) -> dict[str, Any]:
    obj = asdict(op)
    obj["outcome"] = op.outcome.value
    obj["type"] = "transfer" if isinstance(op, Transfer) else "read"
    if isinstance(op, Read):
        obj["balances"] = [[address, amount] for address, amount in op.balances]
    return obj


def op_from_obj(obj: dict[str, Any]) -> Op:
    """The operation `op_to_obj` wrote; ValueError names what does not fit."""
    fields = dict(obj)
    kind = fields.pop("type", None)
    try:
        fields["outcome"] = Outcome(fields["outcome"])
        if kind == "transfer":
            return Transfer(**fields)
        if kind == "read":
            fields["balances"] = tuple((str(a), int(b)) for a, b in fields.get("balances", ()))
            return Read(**fields)
    except (KeyError, TypeError, AssertionError) as exc:
        raise ValueError(f"history line of type {kind!r}: {exc}") from None
    raise ValueError(f"history line of unknown type {kind!r}")


def save_history(history: History, path: Path) -> None:
    path.write_text(history.to_jsonl())


def load_history(path: Path) -> History:
    return History.from_jsonl(path.read_text())


def merge(ops: Iterable[Op]) -> History:
    """A history of `ops` in the order they completed (ties by op id)."""
    return History(tuple(sorted(ops, key=lambda op: (op.complete_ns, op.op_id))))
