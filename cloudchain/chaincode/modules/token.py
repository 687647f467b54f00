"""The token module: balances in integer units, transfers, mint and burn.

State:
    token/balance/<address>   balance of an account (int; absent means 0)
    token/supply              total supply (int)
    token/params              {"denom": str}

Invariant (checked by the property tests): the sum of all balances equals the
supply, and no balance is ever negative. Only the genesis-named authority may
mint; anyone may burn from their own balance. Transaction fees are burnt too (the
application charges them with `burn`), so supply = genesis + minted - burned, fees
among the burned.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloudchain.chaincode.auth import get_authority
from cloudchain.chaincode.codes import Code
from cloudchain.chaincode.context import Context, Overlay, StateReader, read_value
from cloudchain.chaincode.module import (
    MAX_AMOUNT,
    Module,
    TxError,
    address_arg,
    amount_arg,
    query_address,
)
from cloudchain.codec import encode
from cloudchain.genesis import Genesis

TOKEN = Module("token")

SUPPLY_KEY = b"token/supply"
PARAMS_KEY = b"token/params"
DEFAULT_DENOM = "ucc"


def balance_key(address: str) -> bytes:
    return b"token/balance/" + address.encode()


def get_balance(state: StateReader, address: str) -> int:
    return read_value(state, balance_key(address), 0)


def get_supply(state: StateReader) -> int:
    return read_value(state, SUPPLY_KEY, 0)


def set_balance(kv: Overlay, address: str, amount: int) -> None:
    assert 0 <= amount <= MAX_AMOUNT
    if amount == 0:
        kv.delete(balance_key(address))  # an empty account leaves no trace in state
    else:
        kv.set(balance_key(address), encode(amount))


def move(kv: Overlay, sender: str, recipient: str, amount: int) -> None:
    """Move `amount` from sender to recipient."""
    debit(kv, sender, amount)
    credit(kv, recipient, amount)


def debit(kv: Overlay, address: str, amount: int) -> None:
    """Take `amount` from an account (into escrow or a stake, say): the caller holds it."""
    balance = get_balance(kv, address)
    # Verify that the account can pay.
    if balance < amount:
        raise TxError(
            Code.INSUFFICIENT_FUNDS, f"insufficient funds: balance {balance}, need {amount}"
        )
    set_balance(kv, address, balance - amount)


def credit(kv: Overlay, address: str, amount: int) -> None:
    """Give `amount` that the caller held (out of escrow or a stake) to an account."""
    set_balance(kv, address, get_balance(kv, address) + amount)


def burn(kv: Overlay, address: str, amount: int) -> None:
    """Destroy `amount` of the account's tokens (the supply shrinks by as much)."""
    debit(kv, address, amount)
    kv.set(SUPPLY_KEY, encode(get_supply(kv) - amount))


def destroy(kv: Overlay, amount: int) -> None:
    """Destroy `amount` of tokens the caller holds in no account (a stake it slashes):
    the supply shrinks by as much."""
    kv.set(SUPPLY_KEY, encode(get_supply(kv) - amount))


def mint(kv: Overlay, address: str, amount: int) -> None:
    """Create `amount` new tokens for `address` (the supply grows by as much)."""
    supply = get_supply(kv)
    # Verify that the supply stays representable.
    if supply + amount > MAX_AMOUNT:
        raise TxError(Code.LIMIT_EXCEEDED, f"minting {amount} would exceed the maximum supply")
    kv.set(SUPPLY_KEY, encode(supply + amount))
    credit(kv, address, amount)


@TOKEN.genesis
def init_genesis(kv: Overlay, genesis: Genesis) -> None:
    params = dict(genesis.params.get("token", {}))
    denom = params.pop("denom", DEFAULT_DENOM)
    if params:
        raise ValueError(f"genesis.app_state.params.token: unknown field(s) {sorted(params)}")
    if not (isinstance(denom, str) and denom.isascii() and denom.isalnum() and len(denom) <= 16):
        raise ValueError(f"genesis.app_state.params.token.denom: {denom!r} is not a denomination")
    kv.set(PARAMS_KEY, encode({"denom": denom}))
    supply = 0
    for address, amount in genesis.balances:
        if amount:
            set_balance(kv, address, amount)
            supply += amount
    kv.set(SUPPLY_KEY, encode(supply))


def _amount_spent(args: Mapping[str, Any]) -> int:
    return args["amount"]


@TOKEN.tx("transfer", spends=_amount_spent, to=address_arg, amount=amount_arg)
def process_transfer(ctx: Context, to: str, amount: int) -> None:
    move(ctx.kv, ctx.sender, to, amount)
    ctx.emit("transfer", sender=ctx.sender, recipient=to, amount=amount)


@TOKEN.tx("mint", to=address_arg, amount=amount_arg)
def process_mint(ctx: Context, to: str, amount: int) -> None:
    # Verify that the sender is the genesis-named authority.
    if ctx.sender != get_authority(ctx.kv):
        raise TxError(Code.UNAUTHORIZED, "only the authority may mint")
    mint(ctx.kv, to, amount)
    ctx.emit("mint", recipient=to, amount=amount)


@TOKEN.tx("burn", spends=_amount_spent, amount=amount_arg)
def process_burn(ctx: Context, amount: int) -> None:
    balance = get_balance(ctx.kv, ctx.sender)
    # Verify that the sender holds what it burns.
    if balance < amount:
        raise TxError(
            Code.INSUFFICIENT_FUNDS, f"insufficient funds: balance {balance}, burn {amount}"
        )
    burn(ctx.kv, ctx.sender, amount)
    ctx.emit("burn", burner=ctx.sender, amount=amount)


@TOKEN.query("balance")
def query_balance(state: StateReader, data: bytes) -> dict[str, Any]:
    address = query_address(data)
    return {"address": address, "balance": get_balance(state, address), "denom": _denom(state)}


@TOKEN.query("supply")
def query_supply(state: StateReader, data: bytes) -> dict[str, Any]:
    return {"supply": get_supply(state), "denom": _denom(state)}


def _denom(state: StateReader) -> str:
    return read_value(state, PARAMS_KEY, {"denom": DEFAULT_DENOM})["denom"]
