"""Micro-benchmark of decoding, encoding and hashing (issue 15, the codec part).

Run it against two trees side by side, e.g. the commit before and after:

    git archive f0a1554 cloudchain | tar -x -C /tmp/before
    PYTHONPATH=/tmp/before .venv/bin/python docs/bench/codec_micro.py before
    .venv/bin/python docs/bench/codec_micro.py after

It times, best of five: a transfer decoded from bytes, then `to_bytes`, `hash` and
`sign_bytes`; the same and a signature verification; a wire envelope {"ch", "m"} and
the transaction in it; a block of 5,000 transfers decoded, then `to_bytes` and every
transaction's hash. Keys are fixed, so every run times the same bytes.
"""

from __future__ import annotations

import sys
import timeit
from collections.abc import Callable

from cloudchain import codec
from cloudchain.crypto import PrivateKey
from cloudchain.ledger import Block, BlockHeader, Transaction, txs_hash

BLOCK_TXS = 5_000
CHAIN_ID = "cloudchain-bench"
SENDER = PrivateKey(bytes(range(32)))
RECIPIENT = PrivateKey(bytes(range(32, 64))).address


def _transfer(nonce: int) -> Transaction:
    args = {"to": RECIPIENT, "amount": 1}
    return Transaction.create(SENDER, CHAIN_ID, nonce, "token", "transfer", args, fee=1_900)


def _best_us(run: Callable[[], object], number: int, repeat: int = 5) -> float:
    return min(timeit.repeat(run, number=number, repeat=repeat)) / number * 1e6


def main(label: str) -> None:
    raw = _transfer(7).to_bytes()
    txs = tuple(_transfer(n) for n in range(BLOCK_TXS))
    zero = bytes(32)
    header = BlockHeader(CHAIN_ID, 5, 1, b"", b"", txs_hash(txs), zero, zero, zero, bytes(20))
    block_raw = Block(header, txs, None).to_bytes()
    envelope = codec.encode({"ch": "tx", "m": raw})

    def transaction() -> None:
        tx = Transaction.from_bytes(raw)
        tx.to_bytes(), tx.hash, tx.sign_bytes()

    def verified() -> None:
        assert Transaction.from_bytes(raw).verify_signature()

    def wire() -> None:
        Transaction.from_bytes(codec.decode(envelope)["m"])

    def block() -> None:
        decoded = Block.from_bytes(block_raw)
        decoded.to_bytes(), [tx.hash for tx in decoded.txs]

    print(
        f"{label:8} tx {len(raw)} B: decode+to_bytes+hash+sign_bytes "
        f"{_best_us(transaction, 5_000):6.1f} us | +verify {_best_us(verified, 2_000):6.1f} us"
        f" | wire envelope+tx {_best_us(wire, 5_000):6.1f} us | block of {BLOCK_TXS} txs"
        f" ({len(block_raw) // 1024} KiB) decode+to_bytes+hashes"
        f" {_best_us(block, 3, 3) / 1e3:6.1f} ms"
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")
