"""The real application, driven block by block in this process: no network, no
consensus, block time from the simulated clock.

Each block goes through prepare_proposal, process_proposal, finalize_block and commit,
as a node drives it; its last commit carries the lone validator's real signature; its
header's time is genesis time plus `block_s` per height. Transactions are signed with
the sender's next nonce and the genesis schedule's fee. State lives in memory
(MemoryKV), pruned to the last KEEP_HEIGHTS heights: the simulation needs the state
machine, not the disk or the history (the app hash does not depend on either).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from cloudchain import codec
from cloudchain.chaincode.application import Application, FinalizeResult
from cloudchain.crypto import PrivateKey
from cloudchain.fees import priced_transaction
from cloudchain.genesis import Genesis
from cloudchain.ledger import Transaction
from cloudchain.node.solo import build_block, sign_commit
from cloudchain.storage.chain import ChainStore
from cloudchain.storage.kv import MemoryKV

KEEP_HEIGHTS = 16  # pruned: nothing reads history, and old versions only slow the scans


class SimChainError(RuntimeError):
    """The application refused what the simulation built: a bug of the simulation."""


class SimChain:
    def __init__(self, genesis: Genesis, validator: PrivateKey, block_s: int) -> None:
        self.app = Application(ChainStore(MemoryKV(), keep_heights=KEEP_HEIGHTS), genesis)
        self.genesis = genesis
        self.validator = validator
        self.block_ns = block_s * 10**9
        self.nonces: dict[str, int] = defaultdict(int)
        self.burnt = 0  # fees of the transactions in blocks (every one pays, even refused)

    @property
    def height(self) -> int:
        return self.app.store.height

    @property
    def time_ns(self) -> int:
        """The time of the next block's header."""
        return self.genesis.genesis_time_ns + self.height * self.block_ns

    def tx(self, sender: PrivateKey, module: str, method: str, args: dict[str, Any]) -> Transaction:
        nonce = self.nonces[sender.address]
        self.nonces[sender.address] += 1
        return priced_transaction(
            sender, self.genesis.chain_id, nonce, module, method, args, self.genesis.fees
        )

    def block(self, transactions: Sequence[Transaction]) -> FinalizeResult:
        app = self.app
        txs = [tx.to_bytes() for tx in transactions]
        last = app.store.last_block
        time_ns = self.time_ns
        commit = None
        if last is not None:
            commit = sign_commit(self.genesis.chain_id, last, self.validator, time_ns)
        chosen = app.prepare_proposal(list(txs))
        if len(chosen) != len(txs):
            left = [tx for tx in transactions if tx not in chosen]
            why = app.check_tx(left[0].to_bytes()).log
            raise SimChainError(f"{len(left)} transaction(s) left out of a block; the first: {why}")
        block = build_block(app, chosen, self.validator, commit, time_ns)
        if not app.process_proposal(block).accept:
            raise SimChainError(f"block {block.header.height} rejected")
        result = app.finalize_block(block)
        app.commit()
        self.burnt += sum(tx.fee for tx in transactions)
        return result

    def query(self, path: str, data: str = "") -> Any:
        answer = self.app.query(path, data.encode())
        if answer.code:
            raise SimChainError(f"{path} {data}: {answer.log}")
        return codec.thaw(codec.decode(answer.value))

    @property
    def app_hash(self) -> bytes:
        return self.app.info().app_hash
