"""`cloudchain demo`: a single in-process chain applying blocks of signed transfers.

Until the networked node exists this is the main job: it writes a genesis with
one validator and a few funded accounts, then produces blocks of random signed
transfers (some of them overdrafts, which fail with a code and a log, and still
pay their fee; the proposer leaves out the sender's later transfers in that block,
whose fees the overdraft might leave unpaid), and prints each block's height,
transactions, app hash and the balances. Every transfer pays the minimum fee of the
default schedule; fees are burnt, so the supply falls by them.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

from cloudchain.chaincode.application import Application
from cloudchain.chaincode.modules.token import get_balance, get_supply
from cloudchain.crypto import PrivateKey, write_key_file
from cloudchain.fees import priced_transaction
from cloudchain.genesis import Genesis
from cloudchain.ledger import Validator
from cloudchain.node.solo import SoloChain
from cloudchain.storage.chain import ChainStore
from cloudchain.storage.kv import LevelDBKV

ACCOUNT_NAMES = ("alice", "bob", "carol", "dave")
INITIAL_BALANCE = 1_000_000


def run_demo(
    blocks: int, txs_per_block: int, interval_s: float, home: str | None, seed: int
) -> int:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="cloudchain-demo-") as scratch:
        root = Path(home) if home else Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        validator_key = PrivateKey.generate()
        accounts = {name: PrivateKey.generate() for name in ACCOUNT_NAMES}
        for name, key in accounts.items():
            write_key_file(root / "keys" / f"{name}.json", key)
        genesis = Genesis(
            chain_id="cloudchain-demo",
            genesis_time_ns=time.time_ns(),
            validators=(Validator(validator_key.public_key, 10, "node0"),),
            authority=accounts["alice"].address,
            balances=tuple(sorted((k.address, INITIAL_BALANCE) for k in accounts.values())),
            params={"token": {"denom": "ucc"}},
        )
        genesis.save(root / "genesis.json")
        store = ChainStore(LevelDBKV(root / "data"))
        try:
            chain = SoloChain(Application(store, genesis), validator_key)
            print(f"chain {genesis.chain_id} at {root}")
            supply = get_supply(chain.app.state())
            print(f"genesis app hash {store.app_hash.hex()[:16]}  supply {supply}")
            _print_balances(chain, accounts)
            nonces = {name: 0 for name in accounts}
            for _ in range(blocks):
                txs = []
                for _ in range(txs_per_block):
                    sender, recipient = rng.sample(ACCOUNT_NAMES, 2)
                    # Now and then an overdraft, to show a failed transaction's code and log.
                    amount = rng.choice((rng.randint(1, 50_000),) * 9 + (5 * INITIAL_BALANCE,))
                    tx = priced_transaction(
                        accounts[sender],
                        genesis.chain_id,
                        nonces[sender],
                        "token",
                        "transfer",
                        {"to": accounts[recipient].address, "amount": amount},
                        genesis.fees,
                    )
                    nonces[sender] += 1
                    txs.append(tx.to_bytes())
                produced = chain.produce_block(txs)
                results = produced.result.tx_results
                failed = [r for r in results if not r.ok]
                fees = sum(tx.fee for tx in produced.block.txs)
                # A proposer leaves out a transaction whose fee may not be payable: one
                # after an overdraft of the same sender (which may take all it holds).
                # Its sender goes on from the nonce the chain expects next.
                left_out = len(txs) - len(results)
                nonces = {name: chain.app.nonce(key.address) for name, key in accounts.items()}
                print(
                    f"height {produced.block.height:>4}  txs {len(results):>3}  "
                    f"failed {len(failed):>2}  left out {left_out}  fees {fees:>6}  "
                    f"app hash {produced.result.app_hash.hex()[:16]}"
                )
                for r in failed[:1]:
                    print(f"             tx {r.index}: code {r.code} ({r.codespace}) {r.log}")
                if interval_s > 0:
                    time.sleep(interval_s)
            _print_balances(chain, accounts)
        finally:
            store.close()
    return 0


def _print_balances(chain: SoloChain, accounts: dict[str, PrivateKey]) -> None:
    state = chain.app.state()
    total = 0
    print("  account  address                                    balance")
    for name, key in accounts.items():
        balance = get_balance(state, key.address)
        total += balance
        print(f"  {name:<7}  {key.address}  {balance:>10}")
    supply = get_supply(state)
    burnt = INITIAL_BALANCE * len(accounts) - supply
    print(f"  {'total':<7}  {'':<40}  {total:>10}  (supply {supply}, {burnt} burnt in fees)")
