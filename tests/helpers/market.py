"""A one-validator chain with the market's genesis, for the market's tests.

The parties' keys, fast market parameters and a block-by-block driver (MarketChain);
it knows nothing of nodes or networks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from cloudchain import codec
from cloudchain.chaincode.application import Application
from cloudchain.chaincode.auth import nonce_key
from cloudchain.chaincode.codes import Code
from cloudchain.chaincode.modules.token import SUPPLY_KEY, balance_key
from cloudchain.crypto import PrivateKey
from cloudchain.fees import priced_transaction
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


def market_genesis(fees: Mapping[str, Any] | None = None, **params: Any) -> Genesis:
    """A genesis with the market's `params` over FAST_PARAMS, and the fee schedule `fees`
    (default: cloudchain/fees.py's)."""
    market = {**FAST_PARAMS, **params}
    market.setdefault("oracles", [k.address for k in ORACLES])
    return Genesis(
        chain_id=CHAIN_ID,
        genesis_time_ns=GENESIS_TIME_NS,
        validators=(Validator(VALIDATOR.public_key, 10, "node0"),),
        authority=AUTHORITY.address,
        balances=tuple(sorted((k.address, BALANCE) for k in EVERYONE)),
        params={
            "token": {"denom": "ucc"},
            "market": market,
            **({} if fees is None else {"fees": fees}),
        },
    )


class SnapshotApplication(Application):
    """The application, keeping the whole state each transaction ran on and left behind
    (the block's writes so far included): a refused transaction must change nothing
    but its sender's nonce, and its sender's balance and the supply by its fee."""

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


def changed_beyond_fee_and_nonce(
    tx: Transaction, before: dict[bytes, bytes], after: dict[bytes, bytes]
) -> dict[bytes, tuple[Any, Any]]:
    """What a transaction changed in state besides what every included one does: use its
    sender's nonce, and take its fee from the sender's balance and from the supply (it is
    burnt). {key: (before, after)} of the rest, the balance and the supply with the fee
    given back (so a fee not taken, or taken twice, shows as a change)."""
    nonce = nonce_key(tx.sender_address)
    assert codec.decode(after[nonce]) == tx.nonce + 1, "the nonce is always used"
    old = {k: codec.decode(v) for k, v in before.items() if k != nonce}
    new = {k: codec.decode(v) for k, v in after.items() if k != nonce}
    for state_key in (balance_key(tx.sender_address), SUPPLY_KEY):
        new[state_key] = new.get(state_key, 0) + tx.fee
        if new[state_key] == old.get(state_key, 0) == 0:
            del new[state_key]  # an empty balance is no key
    return {
        k: (old.get(k), new.get(k)) for k in old.keys() | new.keys() if old.get(k) != new.get(k)
    }


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
        self.fees_paid: dict[str, int] = defaultdict(int)  # by address, in included txs

    def tx(self, sender: PrivateKey, method: str, **args: Any) -> Transaction:
        """Signed with the sender's next nonce, paying the genesis schedule's minimum fee."""
        nonce = self._nonces[sender.address]
        self._nonces[sender.address] += 1
        module, _, name = method.rpartition(".")
        return priced_transaction(
            sender, CHAIN_ID, nonce, module or "market", name, args, self.app.fees
        )

    def unsend(self, tx: Transaction) -> None:
        """Give back the nonce of `tx`, the sender's last one built, that will not be sent."""
        assert self._nonces[tx.sender_address] == tx.nonce + 1, "only the last one built"
        self._nonces[tx.sender_address] = tx.nonce

    def block(self, *txs: Transaction) -> tuple[TxResult, ...]:
        produced = self.chain.produce_block([tx.to_bytes() for tx in txs])
        assert len(produced.block.txs) == len(txs), "a transaction was left out of the block"
        self.block_events.extend(produced.result.block_events)
        for tx in produced.block.txs:
            self.fees_paid[tx.sender_address] += tx.fee
        return produced.result.tx_results

    def fees(self, who: PrivateKey) -> int:
        """What `who` has paid in fees so far (burnt)."""
        return self.fees_paid[who.address]

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
