"""Result codes of transactions and queries, and the errors that carry them.

0 is success; every refusal has its own code.

Codes below 100 are decided before any handler runs (decoding, signature,
chain id, nonce, routing, arguments, fee) and carry the codespace "auth"; codes
from 100 are a module's own and carry its name as codespace. One of them is also
decided before any handler: check_tx refuses a sender whose balance cannot cover its
waiting transactions' costs and this one's with INSUFFICIENT_FUNDS, in codespace "auth".
"""

from __future__ import annotations

from enum import IntEnum


class Code(IntEnum):
    OK = 0
    # Checked before any handler runs (codespace "auth").
    MALFORMED_TX = 1  # bytes do not decode to a transaction
    TX_TOO_LARGE = 2
    WRONG_CHAIN_ID = 3
    BAD_SIGNATURE = 4
    NONCE_TOO_LOW = 5  # a replay, or a nonce already used
    NONCE_TOO_HIGH = 6  # out of order: an earlier nonce has not been included yet
    UNKNOWN_MODULE = 7
    UNKNOWN_METHOD = 8
    INVALID_ARGS = 9
    FEE_TOO_LOW = 10  # below the genesis schedule's minimum for the transaction's bytes
    # Refused by the node's mempool (codespace "mempool").
    MEMPOOL_FULL = 20
    TX_IN_MEMPOOL = 21  # the same bytes are already waiting
    NONCE_PENDING = 22  # this sender's nonce is waiting, and the fee does not replace it
    SENDER_FULL = 23  # this sender has as many transactions waiting as the mempool allows
    # Raised by handlers (codespace = the module's name).
    INSUFFICIENT_FUNDS = 100
    UNAUTHORIZED = 101
    LIMIT_EXCEEDED = 102
    NOT_FOUND = 103
    INVALID_STATE = 104  # the object is not in a state that allows this (e.g. task not open)
    DEADLINE_PASSED = 105
    ALREADY_EXISTS = 106
    OUT_OF_RANGE = 107  # well-formed, but not acceptable given state (stake below minimum)
    INTERNAL = 199  # a handler failed unexpectedly: a bug, recorded rather than halting
    # Queries.
    UNKNOWN_QUERY = 200
    INVALID_QUERY = 201
    HEIGHT_NOT_AVAILABLE = 202


AUTH_CODESPACE = "auth"
MEMPOOL_CODESPACE = "mempool"


class TxError(Exception):
    """An expected failure of a transaction: its writes are discarded, its nonce is used."""

    def __init__(self, code: Code, log: str) -> None:
        if code == Code.OK:
            raise ValueError("a TxError needs a non-zero code")
        super().__init__(log)
        self.code = code
        self.log = log


class QueryError(Exception):
    """A query that cannot be answered; its code and log go back to the client."""

    def __init__(self, code: Code, log: str) -> None:
        super().__init__(log)
        self.code = code
        self.log = log
