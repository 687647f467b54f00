"""The market module object, its genesis, and the argument checkers its methods share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloudchain.chaincode.context import Overlay
from cloudchain.chaincode.market import state
from cloudchain.chaincode.market.params import params_from_genesis
from cloudchain.chaincode.market.records import Offer, ReferencePrice, frozen_map
from cloudchain.chaincode.module import ArgError, Module, int_arg, text_arg
from cloudchain.chaincode.modules.storage import cid_arg as storage_cid_arg
from cloudchain.genesis import Genesis

MARKET = Module("market")

TIERS = ("enterprise", "community")
KINDS = ("training", "inference", "preprocessing")
MAX_CLASSES = 16
MAX_UNITS = 10**12  # compute units in one offer or one task
MAX_BPS = 10_000

class_name_arg = text_arg(32, r"[a-z0-9][a-z0-9._-]*")
# Content identifiers of blobs (CIDv0 "Qm..." or CIDv1), parsed in full and kept in
# their canonical text: the storage module's checker, so both read a CID alike.
cid_arg = storage_cid_arg
units_arg = int_arg(1, MAX_UNITS)
bps_arg = int_arg(0, MAX_BPS)


def offers_arg(value: Any) -> Mapping[str, Offer]:
    """{resource class: {gpu, gpus, memory_gb, units, price}}: what a provider sells,
    checked, as a read-only map of Offer records. `units` is the compute units it can
    have in flight at once in that class; `price` is per compute unit, in token units."""
    if not isinstance(value, Mapping) or not value:
        raise ArgError("expected a non-empty map of resource class -> offer")
    if len(value) > MAX_CLASSES:
        raise ArgError(f"at most {MAX_CLASSES} resource classes")
    checked: dict[str, Offer] = {}
    for name, offer in value.items():
        class_name_arg(name)
        if not isinstance(offer, Mapping) or set(offer) != {
            "gpu",
            "gpus",
            "memory_gb",
            "units",
            "price",
        }:
            raise ArgError(f"offer {name}: expected gpu, gpus, memory_gb, units and price")
        try:
            checked[name] = Offer(
                gpu=text_arg(64, r"[A-Za-z0-9 ._-]+")(offer["gpu"]),
                gpus=int_arg(1, 1_000_000)(offer["gpus"]),
                memory_gb=int_arg(1, 1_000_000_000)(offer["memory_gb"]),
                units=units_arg(offer["units"]),
                price=int_arg(1, 2**40)(offer["price"]),
            )
        except ArgError as exc:
            raise ArgError(f"offer {name}: {exc}") from None
    return frozen_map(checked)


def choice_arg(*choices: str) -> Any:
    def check(value: Any) -> str:
        if value not in choices:
            raise ArgError(f"{value!r} is not one of {', '.join(choices)}")
        return value

    return check


@MARKET.genesis
def init_genesis(kv: Overlay, genesis: Genesis) -> None:
    params, oracles, prices = params_from_genesis(genesis.params.get("market", {}))
    state.put_params(kv, params)
    for oracle in oracles:
        state.set_oracle(kv, oracle, True, 0)
    for name, price in sorted(prices.items()):
        class_name_arg(name)
        state.put_price(kv, name, ReferencePrice(price, utilisation_bps=0, updated_at=0))
