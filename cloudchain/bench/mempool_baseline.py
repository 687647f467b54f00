"""The mempool as it was at c273d3c (before issue 14), kept only for `bench mempool`.

Arrival order, count and byte bounds, no fees, no eviction, and after each commit a
full check_tx (decoding and signature verification) of every waiting transaction.
This is that class's code unchanged but for its name and the Admission record, which
it shares with today's mempool; nothing but cloudchain/bench/mempool.py uses it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cloudchain.chaincode.application import Application
from cloudchain.chaincode.codes import MEMPOOL_CODESPACE, Code
from cloudchain.ledger import Transaction
from cloudchain.node.mempool import Admission

DEFAULT_MAX_TXS = 5_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class _Entry:
    seq: int
    raw: bytes
    tx: Transaction


class BaselineMempool:
    def __init__(
        self,
        app: Application,
        max_txs: int = DEFAULT_MAX_TXS,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self._app = app
        self.max_txs = max_txs
        self.max_bytes = max_bytes
        self._by_hash: dict[bytes, _Entry] = {}
        self._by_sender_nonce: dict[tuple[str, int], bytes] = {}
        self._bytes = 0
        self._seq = 0

    def __len__(self) -> int:
        return len(self._by_hash)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __contains__(self, tx_hash: bytes) -> bool:
        return tx_hash in self._by_hash

    def pending(self, limit: int) -> list[bytes]:
        """Up to `limit` waiting transactions, in arrival order."""
        entries = sorted(self._by_hash.values(), key=lambda e: e.seq)[:limit]
        return [e.raw for e in entries]

    def add(self, raw: bytes) -> Admission:
        """check_tx, then the mempool's own rules; admitted only if all pass."""
        check = self._app.check_tx(raw)
        if not check.ok:
            return Admission(check.code, check.codespace, check.log, b"")
        tx = check.tx
        assert tx is not None
        if tx.hash in self._by_hash:
            return _refuse(Code.TX_IN_MEMPOOL, "transaction already in the mempool", tx)
        if (tx.sender_address, tx.nonce) in self._by_sender_nonce:
            log = f"a transaction with nonce {tx.nonce} from this sender is waiting"
            return _refuse(Code.NONCE_PENDING, log, tx)
        if len(self._by_hash) >= self.max_txs:
            return _refuse(Code.MEMPOOL_FULL, f"mempool holds {self.max_txs} transactions", tx)
        if self._bytes + len(raw) > self.max_bytes:
            return _refuse(
                Code.MEMPOOL_FULL, f"mempool holds {self._bytes} of {self.max_bytes} bytes", tx
            )
        self._seq += 1
        self._by_hash[tx.hash] = _Entry(self._seq, raw, tx)
        self._by_sender_nonce[(tx.sender_address, tx.nonce)] = tx.hash
        self._bytes += len(raw)
        return Admission(Code.OK, "", "", tx.hash)

    def reap(self, max_txs: int | None = None) -> list[bytes]:
        """Candidates for a block: arrival order, each sender's in nonce order, no gaps."""
        by_sender: dict[str, list[_Entry]] = {}
        for entry in sorted(self._by_hash.values(), key=lambda e: e.seq):
            by_sender.setdefault(entry.tx.sender_address, []).append(entry)
        next_nonce = {s: self._app.nonce(s) for s in by_sender}
        pending = {s: sorted(es, key=lambda e: e.tx.nonce) for s, es in by_sender.items()}
        chosen: list[bytes] = []
        for entry in sorted(self._by_hash.values(), key=lambda e: e.seq):
            sender = entry.tx.sender_address
            queue = pending[sender]
            # Emit this sender's waiting transactions that are next in line.
            while queue and queue[0].tx.nonce == next_nonce[sender] and queue[0].seq <= entry.seq:
                chosen.append(queue.pop(0).raw)
                next_nonce[sender] += 1
            if max_txs is not None and len(chosen) >= max_txs:
                return chosen[:max_txs]
        return chosen

    def update(self, committed: Iterable[Transaction]) -> list[Admission]:
        """After a commit: drop the included transactions, re-check the others.
        Returns the refusals of the re-check (the transactions that were dropped)."""
        for tx in committed:
            self._remove(tx.hash)
        dropped = []
        for entry in sorted(self._by_hash.values(), key=lambda e: e.seq):
            check = self._app.check_tx(entry.raw)
            if not check.ok:
                self._remove(entry.tx.hash)
                dropped.append(Admission(check.code, check.codespace, check.log, entry.tx.hash))
        return dropped

    def _remove(self, tx_hash: bytes) -> None:
        entry = self._by_hash.pop(tx_hash, None)
        if entry is not None:
            del self._by_sender_nonce[(entry.tx.sender_address, entry.tx.nonce)]
            self._bytes -= len(entry.raw)


def _refuse(code: Code, log: str, tx: Transaction) -> Admission:
    return Admission(code, MEMPOOL_CODESPACE, log, tx.hash)
