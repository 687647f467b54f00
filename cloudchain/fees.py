"""The fee schedule: the least a transaction must pay, in token units, to be included.

    min_fee(tx) = base + per_byte x len(tx.to_bytes()) + surcharges["module.method"]

- `base` prices what every transaction costs every node, whatever it does: a
  signature verified, a nonce and a balance read and written, a result stored.
- `per_byte` prices block space: each byte of the transaction's canonical encoding
  (signature included) is gossiped to every node, stored in every block store and
  bounded by the block's size. A part stored on chain (`storage.put_part`) pays for
  its bytes this way, so it needs no surcharge.
- a surcharge prices the state a method leaves behind beyond its own bytes: a task
  (`market.submit`) or a provider (`market.register`) is a record of several hundred
  bytes that every node keeps, and an anchor (`storage.anchor`) keeps a CID's blob
  alive on the nodes that hold it.

The schedule is set in genesis (`app_state.params.fees`) and fixed after. Missing fields
take the defaults below; `surcharges`, when given, replaces the default table whole.

This module is pure and sits in the base, so that the genesis loader (which checks the
schedule), the application (which enforces it) and the client (which prices its own
transactions, `priced_transaction`) compute the same number from the same code. It knows
nothing of balances, of state, or of which methods exist: the application checks that
every surcharge names one of its methods.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from cloudchain.crypto import SIGNATURE_BYTES, PrivateKey
from cloudchain.ledger import INT64_MAX, MAX_NAME_CHARS, MAX_TX_BYTES, Transaction

# Defaults, in token units (the denomination is the token module's, `ucc` by default).
DEFAULT_BASE_FEE = 100
DEFAULT_FEE_PER_BYTE = 1  # a transfer is about 190 bytes: it pays about 290 in all
DEFAULT_SURCHARGES: Mapping[str, int] = MappingProxyType(
    {
        # About per_byte x the bytes of the record each leaves in state (see the README).
        "market.submit": 1_000,
        "market.register": 1_000,
        "storage.anchor": 500,
    }
)
MAX_SURCHARGES = 256  # entries in a schedule's table
# Rounds of `priced_transaction`: a fee's msgpack encoding grows at most four times
# (1, 2, 3, 5, 9 bytes), each growth at most one more round.
MAX_PRICING_ROUNDS = 8

GENESIS_FIELD = "genesis.app_state.params.fees"
_NAME = re.compile(r"\A[a-z][a-z0-9_]*\Z")  # a module's or a method's, as ledger.py


class FeeScheduleError(ValueError):
    """A fee schedule that breaks a rule; the message names the field."""


@dataclass(frozen=True)
class FeeSchedule:
    """Genesis fee parameters, every one a non-negative integer number of token units."""

    base: int = DEFAULT_BASE_FEE
    per_byte: int = DEFAULT_FEE_PER_BYTE
    surcharges: Mapping[str, int] = field(default_factory=lambda: DEFAULT_SURCHARGES)
    where: str = field(default=GENESIS_FIELD, compare=False, repr=False)  # for errors

    def __post_init__(self) -> None:
        _amount(self.base, f"{self.where}.base")
        _amount(self.per_byte, f"{self.where}.per_byte")
        if not isinstance(self.surcharges, Mapping):
            raise FeeScheduleError(f"{self.where}.surcharges: expected a map of module.method")
        if len(self.surcharges) > MAX_SURCHARGES:
            raise FeeScheduleError(
                f"{self.where}.surcharges: {len(self.surcharges)} entries, "
                f"limit is {MAX_SURCHARGES}"
            )
        for name, amount in self.surcharges.items():
            if not _is_method(name):
                raise FeeScheduleError(
                    f"{self.where}.surcharges: {name!r} is not of the form module.method"
                )
            _amount(amount, f"{self.where}.surcharges.{name}")
        object.__setattr__(
            self, "surcharges", MappingProxyType(dict(sorted(self.surcharges.items())))
        )
        # Verify that the minimum fee of every transaction is a representable amount.
        highest = (
            self.base + self.per_byte * MAX_TX_BYTES + max(self.surcharges.values(), default=0)
        )
        if highest > INT64_MAX:
            raise FeeScheduleError(
                f"{self.where}: the minimum fee of a {MAX_TX_BYTES}-byte transaction "
                f"({highest}) exceeds {INT64_MAX}"
            )

    def surcharge(self, module: str, method: str) -> int:
        return self.surcharges.get(f"{module}.{method}", 0)

    def min_fee(self, size_bytes: int, module: str, method: str) -> int:
        """The least fee a transaction of `size_bytes` encoded bytes calling
        `module.method` must carry."""
        return self.base + self.per_byte * size_bytes + self.surcharge(module, method)

    def min_fee_of(self, tx: Transaction) -> int:
        return self.min_fee(len(tx.to_bytes()), tx.module, tx.method)

    def to_obj(self) -> dict[str, Any]:
        return {"base": self.base, "per_byte": self.per_byte, "surcharges": dict(self.surcharges)}

    @classmethod
    def from_obj(cls, obj: Any, where: str = GENESIS_FIELD) -> FeeSchedule:
        """The schedule in `obj` (genesis `app_state.params.fees`, or what `/fees/params`
        answers); a missing field takes its default, an unknown one is refused."""
        if not isinstance(obj, Mapping):
            raise FeeScheduleError(f"{where}: expected a map, got {type(obj).__name__}")
        unknown = sorted(set(obj) - {"base", "per_byte", "surcharges"})
        if unknown:
            raise FeeScheduleError(f"{where}: unknown field(s) {', '.join(map(str, unknown))}")
        return cls(
            base=obj.get("base", DEFAULT_BASE_FEE),
            per_byte=obj.get("per_byte", DEFAULT_FEE_PER_BYTE),
            surcharges=obj.get("surcharges", DEFAULT_SURCHARGES),
            where=where,
        )


def _is_method(name: Any) -> bool:
    if not isinstance(name, str):
        return False
    module, dot, method = name.partition(".")
    return bool(dot) and all(
        _NAME.match(part) and len(part) <= MAX_NAME_CHARS for part in (module, method)
    )


def _amount(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise FeeScheduleError(f"{where}: expected an integer number of token units, got {value!r}")
    if not 0 <= value <= INT64_MAX:
        raise FeeScheduleError(f"{where}: {value} is outside [0, {INT64_MAX}]")
    return value


def priced_transaction(
    key: PrivateKey,
    chain_id: str,
    nonce: int,
    module: str,
    method: str,
    args: Mapping[str, Any],
    schedule: FeeSchedule,
) -> Transaction:
    """A transaction signed with `key` that pays exactly the minimum fee of its own bytes.

    The fee is part of the bytes it prices, so the fee is found by a fixed point: price
    the transaction with the fee found so far until its size stops growing (each round
    can only raise the fee, and the fee's encoding widens a few times at most). The
    signature is always 64 bytes, so sizes are measured unsigned and it is signed once.
    """
    fee = 0
    for _ in range(MAX_PRICING_ROUNDS):
        unsigned = Transaction(
            chain_id, key.public_key, nonce, fee, module, method, args, bytes(SIGNATURE_BYTES)
        )
        needed = schedule.min_fee_of(unsigned)
        if needed <= fee:
            return Transaction.create(key, chain_id, nonce, module, method, args, fee=fee)
        fee = needed
    raise AssertionError(f"the fee of {module}.{method} did not settle in {MAX_PRICING_ROUNDS}")
