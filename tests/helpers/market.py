"""A one-validator chain with the market's genesis, for the market's tests.

The parties' keys, fast market parameters and a block-by-block driver (MarketChain);
it knows nothing of nodes or networks.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from cloudchain import codec
from cloudchain.chaincode.application import Application
from cloudchain.chaincode.codes import Code
from cloudchain.crypto import PrivateKey
from cloudchain.genesis import Genesis
from cloudchain.ledger import Block, Transaction, TxResult, Validator
from cloudchain.node.solo import SoloChain
from cloudchain.storage.chain import ChainStore
from cloudchain.storage.kv import MemoryKV
from tests.helpers.chain import CHAIN_ID, GENESIS_TIME_NS, VALIDATOR, StepClock, key

AUTHORITY = key("authority")
PROVIDERS = tuple(key(f"provider{i}") for i in range(3))
REQUESTERS = tuple(key(f"requester{i}") for i in range(3))
ORACLES = tuple(key(f"oracle{i}") for i in range(3))
EVERYONE = (AUTHORITY, *PROVIDERS, *REQUESTERS, *ORACLES)
BALANCE = 1_000_000

FAST_PARAMS = {
    "min_stake": 1_000,
    "unbonding_blocks": 3,
    "quorum_bps": 6_666,
    "attestation_blocks": 10,
    "dispute_blocks": 2,
    "dispute_vote_blocks": 10,
    "epoch_blocks": 5,
    "epoch_reward": 10_000,
    "oracle_reward_bps": 1_000,
}

GPU = "a100-80gb"


def offer(units: int = 100, price: int = 10) -> dict[str, Any]:
    return {GPU: {"gpu": "A100", "gpus": 8, "memory_gb": 640, "units": units, "price": price}}


def task_args(**overrides: Any) -> dict[str, Any]:
    args = {
        "kind": "training",
        "inputs": ["Qm" + "a" * 44],
        "resource_class": GPU,
        "units": 10,
        "max_price": 20,
        "deadline_s": 60,
        "min_uptime_bps": 9_000,
        "max_latency_ms": 500,
        "penalty": 50,
        "provider": "",
    }
    args.update(overrides)
    return args


def market_genesis(**params: Any) -> Genesis:
    market = {**FAST_PARAMS, **params}
    market.setdefault("oracles", [k.address for k in ORACLES])
    return Genesis(
        chain_id=CHAIN_ID,
        genesis_time_ns=GENESIS_TIME_NS,
        validators=(Validator(VALIDATOR.public_key, 10, "node0"),),
        authority=AUTHORITY.address,
        balances=tuple(sorted((k.address, BALANCE) for k in EVERYONE)),
        params={"token": {"denom": "ucc"}, "market": market},
    )


class SnapshotApplication(Application):
    """The application, keeping the whole state each transaction ran on and left behind
    (the block's writes so far included): a refused transaction must change nothing
    but its sender's nonce."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.snapshots: list[
            tuple[Transaction, TxResult, dict[bytes, bytes], dict[bytes, bytes]]
        ] = []
        super().__init__(*args, **kwargs)

    def _deliver(self, block_kv: Any, block: Block, index: int, tx: Transaction) -> TxResult:
        before = dict(block_kv.iterate())
        result = super()._deliver(block_kv, block, index, tx)
        self.snapshots.append((tx, result, before, dict(block_kv.iterate())))
        return result


class MarketChain:
    """Blocks of signed market transactions, one clock second per block."""

    def __init__(
        self, genesis: Genesis | None = None, application: type[Application] = Application
    ) -> None:
        self.app = application(ChainStore(MemoryKV()), genesis or market_genesis())
        self.clock = StepClock()
        self.chain = SoloChain(self.app, VALIDATOR, self.clock)
        self._nonces: dict[str, int] = defaultdict(int)
        self.block_events: list[Any] = []

    def tx(self, sender: PrivateKey, method: str, **args: Any) -> Transaction:
        nonce = self._nonces[sender.address]
        self._nonces[sender.address] += 1
        module, _, name = method.rpartition(".")
        return Transaction.create(sender, CHAIN_ID, nonce, module or "market", name, args)

    def block(self, *txs: Transaction) -> tuple[TxResult, ...]:
        produced = self.chain.produce_block([tx.to_bytes() for tx in txs])
        assert len(produced.block.txs) == len(txs), "a transaction was left out of the block"
        self.block_events.extend(produced.result.block_events)
        return produced.result.tx_results

    def run(self, sender: PrivateKey, method: str, **args: Any) -> TxResult:
        return self.block(self.tx(sender, method, **args))[0]

    def ok(self, sender: PrivateKey, method: str, **args: Any) -> TxResult:
        result = self.run(sender, method, **args)
        assert result.code == Code.OK, f"{method}: {result.code.name} {result.log}"
        return result

    def tick(self, blocks: int = 1) -> None:
        for _ in range(blocks):
            self.block()

    @property
    def height(self) -> int:
        return self.app.store.height

    def query(self, path: str, data: str = "") -> Any:
        answer = self.app.query(path, data.encode())
        assert answer.code == Code.OK, f"{path}: {answer.log}"
        return codec.thaw(codec.decode(answer.value))

    def balance(self, who: PrivateKey) -> int:
        return self.query("/token/balance", who.address)["balance"]

    def task(self, task_id: int) -> dict[str, Any]:
        return self.query("/market/task", str(task_id))
