"""Deterministic keys, a genesis, transfers and a one-validator chain in memory.

What the chain, ledger and token tests build their blocks from; it knows nothing of
nodes, networks or the market (tests/helpers/market.py builds on it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from cloudchain.chaincode.application import Application
from cloudchain.crypto import PrivateKey
from cloudchain.genesis import Genesis
from cloudchain.ledger import Transaction, Validator
from cloudchain.node.solo import SoloChain
from cloudchain.storage.chain import ChainStore
from cloudchain.storage.kv import KVStore, MemoryKV

CHAIN_ID = "cloudchain-test"
GENESIS_TIME_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
INITIAL_BALANCE = 1_000
# A flat fee, so that balances of 1,000 last and a test can say what a sender paid:
# TEST_FEE a transaction, whatever its size (tests/test_fees.py prices bytes).
TEST_FEE = 3
TEST_FEES = {"base": TEST_FEE, "per_byte": 0, "surcharges": {}}


def key(name: str) -> PrivateKey:
    """A deterministic key per name, so runs and failures reproduce exactly."""
    return PrivateKey(hashlib.sha256(b"cloudchain-test-key:" + name.encode()).digest())


VALIDATOR = key("validator")
ACCOUNTS = tuple(key(n) for n in ("alice", "bob", "carol", "dave"))
AUTHORITY = ACCOUNTS[0]


def make_genesis(
    balances: Sequence[tuple[str, int]] | None = None,
    chain_id: str = CHAIN_ID,
    fees: Mapping[str, Any] = TEST_FEES,
) -> Genesis:
    if balances is None:
        balances = [(k.address, INITIAL_BALANCE) for k in ACCOUNTS]
    return Genesis(
        chain_id=chain_id,
        genesis_time_ns=GENESIS_TIME_NS,
        validators=(Validator(VALIDATOR.public_key, 10, "node0"),),
        authority=AUTHORITY.address,
        balances=tuple(sorted(balances)),
        params={"token": {"denom": "ucc"}, "fees": fees},
    )


class StepClock:
    """A deterministic clock: each reading is one second after the last."""

    def __init__(self, start_ns: int = GENESIS_TIME_NS) -> None:
        self.now_ns = start_ns

    def __call__(self) -> int:
        self.now_ns += 1_000_000_000
        return self.now_ns


class CountingVerifier:
    """The Application's signature verifier, counting its calls: how a test proves that
    something was, or was not, verified again."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, tx: Transaction) -> bool:
        self.calls += 1
        return tx.verify_signature()


def make_chain(
    kv: KVStore | None = None,
    genesis: Genesis | None = None,
    *,
    verifier: CountingVerifier | None = None,
    keep_heights: int | None = None,
) -> SoloChain:
    store = ChainStore(kv if kv is not None else MemoryKV(), keep_heights=keep_heights)
    if verifier is None:
        app = Application(store, genesis or make_genesis())
    else:
        app = Application(store, genesis or make_genesis(), verifier=verifier)
    return SoloChain(app, VALIDATOR, StepClock())


def transfer(
    sender: PrivateKey,
    nonce: int,
    to: str,
    amount: int,
    chain_id: str = CHAIN_ID,
    fee: int = TEST_FEE,
) -> Transaction:
    return Transaction.create(
        sender, chain_id, nonce, "token", "transfer", {"to": to, "amount": amount}, fee=fee
    )


def signed(
    sender: PrivateKey,
    nonce: int,
    module: str,
    method: str,
    args: Mapping[str, Any],
    fee: int = TEST_FEE,
    chain_id: str = CHAIN_ID,
) -> Transaction:
    """Any transaction, paying TEST_FEE (what make_genesis's schedule asks) by default."""
    return Transaction.create(sender, chain_id, nonce, module, method, args, fee=fee)
