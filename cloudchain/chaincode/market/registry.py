"""Providers and oracles: who may sell compute, and who attests to its quality.

A provider registers with a name, a tier, offers by resource class and a stake
(at least `min_stake`, moved from its balance into the market). It may change
its offers, as long as each class keeps room for the units already in flight,
and add stake. `leave` starts unbonding: no new tasks, but the stake answers for
its tasks until `unbonding_blocks` have passed and every task it was assigned
has reached a final state (settled, resolved or refunded, so no penalty can still
come); then the end-of-block work returns it. Oracles are named in genesis or admitted and
removed by the authority.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from cloudchain.chaincode.auth import get_authority
from cloudchain.chaincode.codes import Code
from cloudchain.chaincode.context import BlockContext, Context, Overlay
from cloudchain.chaincode.market import state
from cloudchain.chaincode.market.module import (
    MARKET,
    TIERS,
    choice_arg,
    offers_arg,
)
from cloudchain.chaincode.market.records import Offer, Provider, ReferencePrice, frozen_map
from cloudchain.chaincode.module import TxError, address_arg, amount_arg, text_arg
from cloudchain.chaincode.modules import token


def _offered_units(offers: Mapping[str, Offer]) -> dict[str, int]:
    return {name: offer.units for name, offer in offers.items()}


def _ensure_price(kv: Overlay, offers: Mapping[str, Offer], height: int) -> None:
    """A class first offered gets its first offer's price as reference price."""
    for name in sorted(offers):
        if state.get_price(kv, name) is None:
            state.put_price(kv, name, ReferencePrice(offers[name].price, 0, updated_at=height))


@MARKET.tx(
    "register",
    spends=lambda args: args["stake"],
    name=text_arg(64, r"[\x20-\x7e]+"),
    tier=choice_arg(*TIERS),
    offers=offers_arg,
    stake=amount_arg,
)
def process_register(
    ctx: Context, name: str, tier: str, offers: Mapping[str, Offer], stake: int
) -> None:
    params = state.get_params(ctx.kv)
    existing = state.get_provider(ctx.kv, ctx.sender)
    # Verify that the sender is not a provider already.
    if existing is not None and existing.status != "left":
        raise TxError(Code.ALREADY_EXISTS, f"{ctx.sender} is already a provider")
    # Verify that the stake is enough to answer for tasks.
    if stake < params.min_stake:
        raise TxError(Code.OUT_OF_RANGE, f"stake {stake} is below the minimum {params.min_stake}")
    token.debit(ctx.kv, ctx.sender, stake)
    state.add_totals(ctx.kv, stake=stake)
    for class_name, units in _offered_units(offers).items():
        state.add_class(ctx.kv, class_name, capacity=units)
    _ensure_price(ctx.kv, offers, ctx.height)
    provider = Provider(
        name=name,
        tier=tier,
        offers=offers,
        stake=stake,
        status="active",
        unbond_at=0,
        joined_at=ctx.height,
        in_flight=frozen_map({}),
        tasks_pending=0,
        reputation=params.reputation_start_bps,
    )
    state.put_provider(ctx.kv, ctx.sender, provider)
    ctx.emit("market_register", provider=ctx.sender, tier=tier, stake=stake)


def _active_provider(ctx: Context) -> Provider:
    provider = state.get_provider(ctx.kv, ctx.sender)
    # Verify that the sender is a provider that has not left.
    if provider is None or provider.status == "left":
        raise TxError(Code.NOT_FOUND, f"{ctx.sender} is not a provider")
    return provider


@MARKET.tx("update", offers=offers_arg)
def process_update(ctx: Context, offers: Mapping[str, Offer]) -> None:
    provider = _active_provider(ctx)
    # Verify that the provider is not leaving.
    if provider.status != "active":
        raise TxError(Code.INVALID_STATE, "a provider that is leaving cannot change its offers")
    old, new = _offered_units(provider.offers), _offered_units(offers)
    for class_name, in_flight in sorted(provider.in_flight.items()):
        # Verify that every class keeps room for the units already in flight.
        if new.get(class_name, 0) < in_flight:
            raise TxError(
                Code.OUT_OF_RANGE,
                f"class {class_name} has {in_flight} units in "
                "flight; its capacity cannot go below that",
            )
    for class_name in sorted(set(old) | set(new)):
        delta = new.get(class_name, 0) - old.get(class_name, 0)
        if delta:
            state.add_class(ctx.kv, class_name, capacity=delta)
    _ensure_price(ctx.kv, offers, ctx.height)
    state.put_provider(ctx.kv, ctx.sender, replace(provider, offers=offers))
    ctx.emit("market_update", provider=ctx.sender)


# An agent's public URL: http(s), a host, an optional port and path; no spaces, quotes
# or angle brackets, so that it is safe to show and to fetch.
endpoint_arg = text_arg(200, r"https?://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~/%\-]*)?")


@MARKET.tx("advertise", endpoint=endpoint_arg)
def process_advertise(ctx: Context, endpoint: str) -> None:
    """Where the provider's agent answers (its /health, probed by oracles): set again to
    move it."""
    _active_provider(ctx)
    state.put_endpoint(ctx.kv, ctx.sender, endpoint)
    ctx.emit("market_advertise", provider=ctx.sender, endpoint=endpoint)


@MARKET.tx("add_stake", spends=lambda args: args["amount"], amount=amount_arg)
def process_add_stake(ctx: Context, amount: int) -> None:
    provider = _active_provider(ctx)
    token.debit(ctx.kv, ctx.sender, amount)
    state.add_totals(ctx.kv, stake=amount)
    provider = replace(provider, stake=provider.stake + amount)
    state.put_provider(ctx.kv, ctx.sender, provider)
    ctx.emit("market_stake", provider=ctx.sender, amount=amount, stake=provider.stake)


@MARKET.tx("leave")
def process_leave(ctx: Context) -> None:
    provider = _active_provider(ctx)
    # Verify that the provider is not leaving already.
    if provider.status != "active":
        raise TxError(Code.INVALID_STATE, "the provider is already leaving")
    unbond_at = ctx.height + state.get_params(ctx.kv).unbonding_blocks
    state.put_provider(
        ctx.kv, ctx.sender, replace(provider, status="unbonding", unbond_at=unbond_at)
    )
    state.set_unbonding(ctx.kv, ctx.sender, True)
    ctx.emit("market_leave", provider=ctx.sender, unbond_at=unbond_at)


def finish_unbonding(ctx: BlockContext) -> None:
    """Return the stake of providers whose unbonding is over and who have nothing in
    flight; their capacity leaves the market with them."""
    for address in list(state.iterate_unbonding(ctx.kv)):
        provider = state.get_provider(ctx.kv, address)
        assert provider is not None and provider.status == "unbonding"
        if ctx.height < provider.unbond_at or provider.tasks_pending:
            continue  # a task not yet final may still cost it a penalty
        stake = provider.stake
        if stake:
            state.add_totals(ctx.kv, stake=-stake)
            token.credit(ctx.kv, address, stake)
        for class_name, units in sorted(_offered_units(provider.offers).items()):
            state.add_class(ctx.kv, class_name, capacity=-units)
        left = replace(
            provider, status="left", stake=0, offers=frozen_map({}), in_flight=frozen_map({})
        )
        state.put_provider(ctx.kv, address, left)
        state.set_unbonding(ctx.kv, address, False)
        ctx.emit("market_left", provider=address, stake_returned=stake)


def _require_authority(ctx: Context) -> None:
    # Verify that the sender is the genesis-named authority.
    if ctx.sender != get_authority(ctx.kv):
        raise TxError(Code.UNAUTHORIZED, "only the authority may admit or remove oracles")


@MARKET.tx("add_oracle", oracle=address_arg)
def process_add_oracle(ctx: Context, oracle: str) -> None:
    _require_authority(ctx)
    # Verify that the address is not an oracle already.
    if state.is_oracle(ctx.kv, oracle):
        raise TxError(Code.ALREADY_EXISTS, f"{oracle} is already an oracle")
    state.set_oracle(ctx.kv, oracle, True, ctx.height)
    ctx.emit("market_oracle", oracle=oracle, admitted=True)


@MARKET.tx("remove_oracle", oracle=address_arg)
def process_remove_oracle(ctx: Context, oracle: str) -> None:
    _require_authority(ctx)
    # Verify that the address is an oracle.
    if not state.is_oracle(ctx.kv, oracle):
        raise TxError(Code.NOT_FOUND, f"{oracle} is not an oracle")
    state.set_oracle(ctx.kv, oracle, False, ctx.height)
    ctx.emit("market_oracle", oracle=oracle, admitted=False)
