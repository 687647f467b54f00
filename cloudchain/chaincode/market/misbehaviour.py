"""Validators that voted twice, as providers: a share of their stake is burnt.

A block commits evidence of a double vote (chaincode/evidence.py); if the
equivocating validator's key is also a registered provider's (its address is the
provider's), `double_sign_slash_bps` of that provider's stake is destroyed, leaving
and unbonding providers included (an unbonding stake stays slashable). The tokens are
burnt rather than given to anyone, as Cosmos does: no one profits from reporting, so
no one is tempted to forge it. A validator without a provider's stake loses nothing
here; the evidence stays on chain, for the operators to act on.
"""

from __future__ import annotations

from dataclasses import replace

from cloudchain.chaincode.context import BlockContext
from cloudchain.chaincode.market import state
from cloudchain.chaincode.market.params import BPS, MarketParams
from cloudchain.chaincode.modules import token

SLASH_EVENT = "market_double_sign_slash"


def slash_double_signers(ctx: BlockContext, params: MarketParams) -> None:
    for evidence in ctx.misbehavior:
        address = evidence.validator_address.hex()
        provider = state.get_provider(ctx.kv, address)
        if provider is None:
            continue  # a validator that is not also a provider has no stake here
        amount = provider.stake * params.double_sign_slash_bps // BPS
        if amount == 0:
            continue
        state.put_provider(ctx.kv, address, replace(provider, stake=provider.stake - amount))
        state.add_totals(ctx.kv, stake=-amount)
        token.destroy(ctx.kv, amount)
        ctx.emit(
            SLASH_EVENT,
            provider=address,
            amount=amount,
            stake=provider.stake - amount,
            evidence=evidence.hash.hex(),
            height=evidence.height,
        )
