"""Transaction fees as the application keeps them: the schedule in state, charging, queries.

fees/params   the genesis fee schedule (cloudchain/fees.py), as its map

What a fee is and how its minimum is computed is `cloudchain/fees.py`'s (pure, shared
with the client); when it is charged, and what a sender must hold, is the application's
(`application.py`). This module holds what lies between: the schedule written at genesis
so that `/fees/params` answers at every height, the charge itself, and the queries.

Fees are burnt: the supply shrinks by every fee charged (see the README for why).

Queries:
    /fees/params                                    {"base", "per_byte", "surcharges"}
    /fees/min   data: bytes=N&method=MODULE.METHOD  {"bytes", "method", "min_fee"}
"""

from __future__ import annotations

from typing import Any

from cloudchain.chaincode.codes import Code
from cloudchain.chaincode.context import Overlay, StateReader, read_value
from cloudchain.chaincode.module import Module, QueryError, query_filters
from cloudchain.chaincode.modules import token
from cloudchain.codec import encode
from cloudchain.fees import FeeSchedule
from cloudchain.genesis import Genesis
from cloudchain.ledger import MAX_TX_BYTES, Event

PARAMS_KEY = b"fees/params"
FEE_EVENT = "fee"  # attributes: amount (token units), payer (address)

FEES = Module("fees")


@FEES.genesis
def init_genesis(kv: Overlay, genesis: Genesis) -> None:
    kv.set(PARAMS_KEY, encode(genesis.fees.to_obj()))


def get_schedule(state: StateReader) -> FeeSchedule:
    stored = read_value(state, PARAMS_KEY)
    assert stored is not None, "the fee schedule is written at genesis"
    return FeeSchedule.from_obj(stored, where="fees/params")


def charge(kv: Overlay, payer: str, fee: int) -> Event:
    """Burn `fee` from the payer's balance; the event that records it. The caller has
    made sure that the payer holds it (process_proposal refuses a block where a fee
    may not be payable)."""
    token.burn(kv, payer, fee)
    return Event(FEE_EVENT, (("amount", str(fee)), ("payer", payer)))


@FEES.query("params")
def query_params(state: StateReader, data: bytes) -> dict[str, Any]:
    return get_schedule(state).to_obj()


@FEES.query("min")
def query_min(state: StateReader, data: bytes) -> dict[str, Any]:
    """The minimum fee of a transaction of `bytes` encoded bytes calling `method`."""
    filters = query_filters(data, ("bytes", "method"))
    size_text, method = filters.get("bytes", ""), filters.get("method", "")
    if not (size_text.isascii() and size_text.isdigit() and len(size_text) <= 7):
        raise QueryError(Code.INVALID_QUERY, f"bytes={size_text[:20]!r}: expected a byte count")
    size = int(size_text)
    if size > MAX_TX_BYTES:
        raise QueryError(
            Code.INVALID_QUERY, f"bytes={size}: a transaction is at most {MAX_TX_BYTES}"
        )
    module_name, dot, method_name = method.partition(".")
    if not (dot and module_name and method_name):
        raise QueryError(Code.INVALID_QUERY, f"method={method[:70]!r}: expected module.method")
    return {
        "bytes": size,
        "method": method,
        "min_fee": get_schedule(state).min_fee(size, module_name, method_name),
    }
