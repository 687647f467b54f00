"""A provider's pricing policy: the price per compute unit it offers, from what the chain
says of its class and of its own load. Integer token units only, like the chain.

    fixed      always `base`
    reference  the class's reference price (the chain's, moved by utilisation every
               epoch) plus `markup_bps`, never below `floor`
    load       `base`, raised by `markup_bps` at full load in proportion to the share
               of its capacity in flight: busy providers ask more, idle ones less

The daemon re-prices at every block and sends `market.update` only when the price
changes: that is its bid for the tasks the chain assigns next (assignment takes the
cheapest offer at or under a task's max_price).
"""

from __future__ import annotations

from dataclasses import dataclass

BPS = 10_000
POLICIES = ("fixed", "reference", "load")


class PricingError(ValueError):
    pass


@dataclass(frozen=True)
class PricingPolicy:
    kind: str
    base: int  # token units per compute unit
    markup_bps: int = 0
    floor: int = 1

    def __post_init__(self) -> None:
        if self.kind not in POLICIES:
            raise PricingError(
                f"pricing policy {self.kind!r}: expected one of {', '.join(POLICIES)}"
            )
        if self.base < 1 or self.floor < 1:
            raise PricingError("a price is at least 1 token unit")
        if not 0 <= self.markup_bps <= 10 * BPS:
            raise PricingError(f"markup {self.markup_bps} bps: expected 0 to {10 * BPS}")

    def price(self, reference: int | None, in_flight: int, capacity: int) -> int:
        """The price to offer now: `reference` is the class's reference price (None
        before the chain has one), `in_flight` of `capacity` units are busy."""
        if self.kind == "fixed":
            return self.base
        if self.kind == "reference":
            anchor = reference if reference is not None else self.base
            return max(self.floor, anchor * (BPS + self.markup_bps) // BPS)
        load_bps = in_flight * BPS // capacity if capacity else 0
        return max(self.floor, self.base + self.base * self.markup_bps * load_bps // (BPS * BPS))
