"""Every block: utilisation sums. Every epoch: rewards minted, reference prices moved.

Rewards: `epoch_reward` new tokens per epoch. Providers share (1 - oracle_reward_bps)
of it, oracles the rest in proportion to their honest attestations. Of the providers'
pool, `capacity_reward_bps` is paid for capacity offered: to every active provider
staked at least `min_stake`, by its units (every class) as far as its stake backs them
at `capacity_stake_per_unit` a unit, times its reputation, so that capacity nobody
measured as up, or that breaks its SLAs, earns less. This is how Filecoin's block
reward pays for proven storage power rather than deals: a market whose cheap offers
take all the work still pays the capacity that stands ready, at no cost to requesters.
The rest of the pool is paid in proportion to verified compute units weighted by
quality, in an epoch in which anyone did verified work. Shares are rounded down and
only what is paid out is minted, so the supply grows by exactly the sum of the rewards;
near the maximum supply the reward is what still fits (minting more would fail the
block's work).

Pricing: each resource class's reference price moves once per epoch by at most
`price_step_bps` of itself (and at least one unit): up when the epoch's
utilisation (units in flight over capacity, summed over its blocks) was above
`target_utilisation_bps`, down (never below one) when it was below.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from cloudchain.chaincode.context import BlockContext, StateReader
from cloudchain.chaincode.market import state
from cloudchain.chaincode.market.params import BPS, MarketParams
from cloudchain.chaincode.module import MAX_AMOUNT
from cloudchain.chaincode.modules import token

# Reward events per role and epoch, in address order: an epoch paying thousands must
# not exceed the block's event limit (which would fail the market's end-of-block work).
MAX_REWARD_EVENTS = 512
MAX_PRICE = 2**40  # a reference price's ceiling, as an offer's


def accumulate_utilisation(ctx: BlockContext) -> None:
    for name, record in list(state.iterate_classes(ctx.kv)):
        if record.capacity or record.in_flight:
            record = replace(
                record,
                util_sum=record.util_sum + record.in_flight,
                cap_sum=record.cap_sum + record.capacity,
            )
            state.put_class(ctx.kv, name, record)


def end_epoch(ctx: BlockContext, params: MarketParams) -> None:
    epoch = ctx.height // params.epoch_blocks
    reward = min(params.epoch_reward, MAX_AMOUNT - token.get_supply(ctx.kv))
    provider_pool = reward * (BPS - params.oracle_reward_bps) // BPS
    capacity_pool = provider_pool * params.capacity_reward_bps // BPS
    work = state.take_epoch(ctx.kv, state.EPOCH_WORK)
    paid = _distribute(ctx, work, "provider", provider_pool - capacity_pool, epoch)
    honest = state.take_epoch(ctx.kv, state.EPOCH_HONEST)
    paid += _distribute(ctx, honest, "oracle", reward - provider_pool, epoch)
    if capacity_pool:  # only then: a chain without it emits the events it always did
        weights = _capacity_weights(ctx.kv, params)
        paid += _distribute(ctx, weights, "provider", capacity_pool, epoch, capacity=True)
    _move_prices(ctx, params)
    ctx.emit("market_epoch", epoch=epoch, minted=paid)


def _capacity_weights(kv: StateReader, params: MarketParams) -> list[tuple[str, int]]:
    """(address, weight) of the providers the capacity reward pays, in address order:
    units backed by stake, times reputation in basis points."""
    weights = []
    for address, provider in state.iterate_providers(kv):
        if provider.status != "active" or provider.stake < params.min_stake:
            continue
        backed = min(provider.capacity, provider.stake // params.capacity_stake_per_unit)
        weight = backed * provider.reputation
        if weight:
            weights.append((address, weight))
    return weights


def _distribute(
    ctx: BlockContext,
    weights: Sequence[tuple[str, int]],
    role: str,
    pool: int,
    epoch: int,
    capacity: bool = False,
) -> int:
    """Mint `pool` to `weights`' addresses in proportion, rounded down; what was paid."""
    attributes = {"basis": "capacity"} if capacity else {}
    total = sum(weight for _, weight in weights)
    paid = events = 0
    for address, weight in weights:
        share = pool * weight // total if total else 0
        if share:
            token.mint(ctx.kv, address, share)
            sums = {"rewarded_capacity": share} if capacity else {}
            state.add_stats(ctx.kv, role, address, rewarded=share, **sums)
            if events < MAX_REWARD_EVENTS:  # the rest are in /market/account only
                ctx.emit(
                    "market_reward",
                    epoch=epoch,
                    recipient=address,
                    role=role,
                    amount=share,
                    **attributes,
                )
                events += 1
            paid += share
    return paid


def _move_prices(ctx: BlockContext, params: MarketParams) -> None:
    for name, record in list(state.iterate_classes(ctx.kv)):
        utilisation = record.util_sum * BPS // record.cap_sum if record.cap_sum else 0
        state.put_class(ctx.kv, name, replace(record, util_sum=0, cap_sum=0))
        price = state.get_price(ctx.kv, name)
        if price is None:
            continue
        step = max(1, price.price * params.price_step_bps // BPS)
        new_price = price.price
        if utilisation > params.target_utilisation_bps:
            new_price = min(price.price + step, MAX_PRICE)
        elif utilisation < params.target_utilisation_bps:
            new_price = max(1, price.price - step)
        moved = replace(price, price=new_price, utilisation_bps=utilisation, updated_at=ctx.height)
        state.put_price(ctx.kv, name, moved)
