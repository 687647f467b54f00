"""A child process for the crash tests: a deterministic chain on LevelDB.

    python -m tests.helpers.crash_child run DIR        produce blocks until killed
    python -m tests.helpers.crash_child exit-at DIR H  die (os._exit) while committing
                                                       height H, after the batch is built,
                                                       before it is written
    python -m tests.helpers.crash_child exit-after DIR H  die right after height H's batch
                                                       is written, before the store's
                                                       in-memory view and cache move on

test_crash_recovery.py runs it as a child process and imports its chain
(`deterministic_chain`, `next_block_txs`) to compute the reference.

Blocks depend only on the height and the committed state (keys, amounts and
block times are derived from them), so a run that is killed and restarted
produces exactly the blocks of a run that never stopped, and a test can
compare against a reference chain computed in memory.
"""

from __future__ import annotations

import os
import sys

from cloudchain.chaincode.application import Application
from cloudchain.node.solo import SoloChain
from cloudchain.storage.chain import ChainStore
from cloudchain.storage.kv import KVStore, LevelDBKV
from tests.helpers.chain import ACCOUNTS, GENESIS_TIME_NS, VALIDATOR, make_genesis, transfer

TXS_PER_BLOCK = 100


def deterministic_chain(kv: KVStore) -> SoloChain:
    app = Application(ChainStore(kv), make_genesis())
    return SoloChain(app, VALIDATOR, lambda: GENESIS_TIME_NS + (app.info().height + 1) * 10**9)


def next_block_txs(chain: SoloChain) -> list[bytes]:
    height = chain.app.info().height + 1
    nonces = {a.address: chain.app.nonce(a.address) for a in ACCOUNTS}
    txs = []
    for i in range(TXS_PER_BLOCK):
        sender = ACCOUNTS[(height + i) % len(ACCOUNTS)]
        recipient = ACCOUNTS[(height + 2 * i + 1) % len(ACCOUNTS)]
        amount = 1 + (height * 7919 + i * 104729) % 40  # some of these overdraw
        txs.append(transfer(sender, nonces[sender.address], recipient.address, amount).to_bytes())
        nonces[sender.address] += 1
    return txs


class _ExitAt(LevelDBKV):
    def __init__(self, path: str, height: int) -> None:
        super().__init__(path)
        self._marker = b"m/height"
        self._target = height.to_bytes(8, "big")

    def write(self, changes):  # type: ignore[no-untyped-def]
        if changes.get(self._marker) == self._target:
            os._exit(3)  # the batch is built, nothing of it is written
        super().write(changes)


class _ExitAfter(_ExitAt):
    def write(self, changes):  # type: ignore[no-untyped-def]
        LevelDBKV.write(self, changes)
        if changes.get(self._marker) == self._target:
            os._exit(3)  # the batch is on disk; the process never learns it succeeded


def main(argv: list[str]) -> None:
    mode, path = argv[0], argv[1]
    kinds = {"exit-at": _ExitAt, "exit-after": _ExitAfter}
    kv: KVStore = kinds[mode](path, int(argv[2])) if mode in kinds else LevelDBKV(path)
    chain = deterministic_chain(kv)
    print(f"start {chain.app.info().height}", flush=True)
    while True:
        produced = chain.produce_block(next_block_txs(chain))
        print(f"committed {produced.block.height}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
