"""A stand-in application for the mempool's own tests, with real fees and costs.

Transactions are real (decoded strictly, signatures verified), of one method,
`fake.pay`: its fee is the transaction's own, its `amount` argument what else it takes
from the sender's balance, and `pad` pads it to the size a test wants. The rules are
CONTRACT.md's (but for the minimum fee, which is the application's business): a nonce
used or too far ahead, a balance below the waiting transactions' cost and this one's
are refused, then (unless verify=False) a bad signature; recheck_tx does the same
checks without decoding or verifying. It counts every signature it verifies and every
pending_cost it is asked with, so tests see what the mempool asked.

It knows nothing of the mempool; `commit` plays a block: nonces advance, costs are paid.
"""

from __future__ import annotations

from collections.abc import Iterable

from cloudchain.chaincode.application import (
    BAD_SIGNATURE_LOG,
    MAX_NONCE_LEAD,
    CheckResult,
    PendingCost,
)
from cloudchain.chaincode.codes import Code
from cloudchain.crypto import PrivateKey
from cloudchain.ledger import MalformedError, Transaction
from tests.helpers.chain import CHAIN_ID

DEFAULT_BALANCE = 10**15


def pay(key: PrivateKey, nonce: int, fee: int, amount: int = 0, pad: int = 0) -> Transaction:
    """A `fake.pay` transaction of `key` (the one place tests build them)."""
    args = {"amount": amount, "pad": "x" * pad}
    return Transaction.create(key, CHAIN_ID, nonce, "fake", "pay", args, fee=fee)


class FakeApp:
    def __init__(self, balances: dict[str, int] | None = None) -> None:
        self.balances = dict(balances or {})
        self.nonces: dict[str, int] = {}
        self.verified = 0  # signatures verified, ever
        self.rechecked = 0  # recheck_tx calls
        self.asked_pending: list[tuple[str, int, int]] = []  # (sender, nonce, pending_cost)

    def balance(self, address: str) -> int:
        return self.balances.get(address, DEFAULT_BALANCE)

    def nonce(self, address: str) -> int:
        return self.nonces.get(address, 0)

    def check_tx(
        self, raw: bytes, *, pending_cost: PendingCost = 0, verify: bool = True
    ) -> CheckResult:
        try:
            tx = Transaction.from_bytes(raw)
        except MalformedError as exc:
            return CheckResult(Code.MALFORMED_TX, str(exc))
        checked = self._stateful(tx, pending_cost(tx) if callable(pending_cost) else pending_cost)
        if verify and checked.ok and not self.verify_signature(tx):  # last, as the app's
            return CheckResult(Code.BAD_SIGNATURE, BAD_SIGNATURE_LOG, tx)
        return checked

    def verify_signature(self, tx: Transaction) -> bool:
        self.verified += 1
        return tx.verify_signature()

    def recheck_tx(self, tx: Transaction, *, pending_cost: int = 0) -> CheckResult:
        self.rechecked += 1
        return self._stateful(tx, pending_cost)

    def _stateful(self, tx: Transaction, pending_cost: int) -> CheckResult:
        sender = tx.sender_address
        self.asked_pending.append((sender, tx.nonce, pending_cost))
        fee, cost = fee_and_cost(tx)

        def refuse(code: Code, log: str) -> CheckResult:
            return CheckResult(code, log, tx, fee=fee, cost=cost)

        expected = self.nonce(sender)
        if tx.nonce < expected:
            return refuse(Code.NONCE_TOO_LOW, f"nonce {tx.nonce} already used")
        if tx.nonce > expected + MAX_NONCE_LEAD:
            return refuse(Code.NONCE_TOO_HIGH, f"nonce {tx.nonce} too far ahead")
        if self.balance(sender) < pending_cost + cost:
            return refuse(
                Code.INSUFFICIENT_FUNDS,
                f"balance {self.balance(sender)} < {pending_cost} waiting + {cost}",
            )
        return CheckResult(Code.OK, "", tx, fee=fee, cost=cost)

    def commit(self, txs: Iterable[Transaction]) -> None:
        """A block of `txs` (in nonce order per sender): nonces advance, costs are paid."""
        for tx in txs:
            sender = tx.sender_address
            assert tx.nonce == self.nonce(sender), "a block never skips a nonce"
            self.nonces[sender] = tx.nonce + 1
            self.balances[sender] = self.balance(sender) - fee_and_cost(tx)[1]


def fee_and_cost(tx: Transaction) -> tuple[int, int]:
    return tx.fee, tx.fee + tx.args["amount"]
