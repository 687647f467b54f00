"""The flood of issue 14, on four `node start` processes: keys that own nothing spam
gapped transfers at every node, then funded accounts send one transfer each while other
funded accounts park gapped transfers at every node.

Without a price on block space and a bound per sender, the spam filled every mempool
and no honest transfer committed. Now every unfunded transaction is refused at
admission (its sender cannot pay the fee), no mempool ever holds one, the parked ones
stay within their senders' gapped bound, and every honest transfer commits within
HONEST_DEADLINE_S of being sent.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import time

import aiohttp

from cloudchain.chaincode.codes import Code
from cloudchain.client import Client
from cloudchain.crypto import PrivateKey, read_key_file
from cloudchain.fees import priced_transaction
from cloudchain.genesis import Genesis
from cloudchain.ledger import Transaction
from cloudchain.node.config import NodeConfig
from cloudchain.storage.chain import ChainStore
from cloudchain.storage.kv import LevelDBKV
from tests.helpers.processes import NodeProcess, fast_testnet, wait_on_logs

SPAMMERS = 100  # fresh keys that own no tokens
SPAM_NONCES = range(1, 65)  # all ahead of their next nonce, 0: gapped
HONEST = 50  # funded accounts, one ordinary transfer each
PARKERS = 10  # funded accounts that park gapped transfers (nonces 1..64) at the minimum fee
HONEST_DEADLINE_S = 10  # the bound, from the first honest send to the last commit
GAPPED_PER_SENDER = 16  # [mempool] max_gapped_txs_per_sender's default
BATCH = 10  # requests per JSON-RPC batch: the RPC's default max_request_batch_size
IN_FLIGHT = 8  # batches outstanding at once, over all nodes


def test_unfunded_spam_is_refused_everywhere_and_honest_transfers_commit(tmp_path):
    homes = fast_testnet(tmp_path / "net", 4, accounts=HONEST + PARKERS)
    genesis = Genesis.load(homes[0] / "config" / "genesis.json")
    urls = [
        f"http://{NodeConfig.load(home / 'config' / 'config.toml').rpc.listen_address}"
        for home in homes
    ]
    accounts = [
        read_key_file(tmp_path / "net" / "accounts" / f"account{k}.json") for k in range(HONEST)
    ]
    spammers = [PrivateKey.generate() for _ in range(SPAMMERS)]
    spam_senders = {key.public_key for key in spammers}

    def transfer(key: PrivateKey, nonce: int, to: str) -> Transaction:
        args = {"to": to, "amount": 1}
        return priced_transaction(
            key, genesis.chain_id, nonce, "token", "transfer", args, genesis.fees
        )

    sink = accounts[0].address
    spam = [transfer(k, n, sink).to_bytes() for k in spammers for n in SPAM_NONCES]
    parkers = [
        read_key_file(tmp_path / "net" / "accounts" / f"account{HONEST + k}.json")
        for k in range(PARKERS)
    ]
    parked = [transfer(k, n, sink).to_bytes() for k in parkers for n in SPAM_NONCES]
    honest = [transfer(k, 0, accounts[(i + 1) % HONEST].address) for i, k in enumerate(accounts)]
    nodes = [NodeProcess(home) for home in homes]
    try:
        wait_on_logs(lambda: all(n.height >= 2 for n in nodes), nodes)
        answers = asyncio.run(_broadcast_to_every_node(urls, spam))
        assert len(answers) == len(spam) * len(urls)
        refused = {(answer["code"], answer["codespace"]) for answer in answers}
        assert refused == {(int(Code.INSUFFICIENT_FUNDS), "auth")}, refused
        asyncio.run(_assert_no_spam_waits(urls, spam_senders))
        # Funded senders park gapped transfers while the honest ones are sent: each node
        # keeps at most max_gapped_txs_per_sender (16) of each, apart from the ready set.
        parked_answers, elapsed = asyncio.run(_park_while_sending(urls, parked, honest))
        assert elapsed <= HONEST_DEADLINE_S, f"honest transfers took {elapsed:.1f} s"
        refusals = {(a["code"], a["codespace"]) for a in parked_answers if a["code"] != 0}
        assert refusals == {(int(Code.SENDER_FULL), "mempool")}, refusals
        # Node 0 saw the honest ones committed; another node may be a block behind them.
        most = PARKERS * GAPPED_PER_SENDER + HONEST
        asyncio.run(_assert_no_spam_waits(urls, spam_senders, most=most))
    finally:
        for node in nodes:
            node.stop()
    honest_hashes = {tx.hash for tx in honest}
    for home in homes:  # every node committed every honest transfer, and no spam
        store = ChainStore(LevelDBKV(home / "data" / "chain"))
        try:
            senders = {tx.sender for h in range(1, store.height + 1) for tx in store.block(h).txs}
            assert not senders & spam_senders
            for tx_hash in honest_hashes:
                result = store.tx_result(tx_hash)
                assert result is not None and result.ok, home.name
        finally:
            store.close()


async def _broadcast_to_every_node(urls: list[str], txs: list[bytes]) -> list[dict]:
    """Every transaction to every node by `broadcast_tx_sync`, in JSON-RPC batches; the
    result of every answer."""
    batches = [
        (url, txs[start : start + BATCH]) for start in range(0, len(txs), BATCH) for url in urls
    ]
    answers: list[dict] = []
    ids = itertools.count()
    gate = asyncio.Semaphore(IN_FLIGHT)
    async with aiohttp.ClientSession() as session:

        async def send(url: str, batch: list[bytes]) -> None:
            body = [
                {
                    "jsonrpc": "2.0",
                    "id": next(ids),
                    "method": "broadcast_tx_sync",
                    "params": {"tx": base64.b64encode(tx).decode()},
                }
                for tx in batch
            ]
            async with gate, session.post(url, json=body) as response:
                replies = await response.json()
            for reply in replies:
                assert "result" in reply, reply
                answers.append(reply["result"])

        await asyncio.gather(*(send(url, batch) for url, batch in batches))
    return answers


async def _assert_no_spam_waits(urls: list[str], spam_senders: set[bytes], most: int = 0) -> None:
    """No node lists a spam transaction, and none holds more than `most` at all."""
    for url in urls:
        waiting = await Client(url).unconfirmed_txs(limit=100)
        senders = {Transaction.from_bytes(raw).sender for raw in waiting.txs}
        assert not senders & spam_senders, url
        count = await Client(url).num_unconfirmed_txs()
        assert count.total <= most, (url, count)


async def _park_while_sending(
    urls: list[str], parked: list[bytes], honest: list[Transaction]
) -> tuple[list[dict], float]:
    """The parked transactions to every node while the honest ones are sent and waited
    for: the parked ones' answers, and the honest ones' seconds to commit."""
    return await asyncio.gather(
        _broadcast_to_every_node(urls, parked), _send_and_wait_for_commits(urls, honest)
    )


async def _send_and_wait_for_commits(urls: list[str], txs: list[Transaction]) -> float:
    """Send each transaction to one node, round robin; the seconds from the first send
    until node 0 has announced every one committed (its Tx events), at most the deadline."""
    pending = {tx.hash.hex().upper() for tx in txs}
    async with Client(urls[0]).subscribe("tm.event='Tx'") as events:
        started = time.monotonic()
        for k, tx in enumerate(txs):
            answer = await Client(urls[k % len(urls)]).broadcast_tx_sync(tx.to_bytes())
            assert answer.ok, answer

        async def committed() -> None:
            async for event in events:
                assert int(event.value["TxResult"]["result"].get("code", 0)) == 0, event
                pending.difference_update(event.tags.get("tx.hash", ()))
                if not pending:
                    return

        try:
            await asyncio.wait_for(committed(), HONEST_DEADLINE_S)
        except TimeoutError:
            raise AssertionError(
                f"{len(pending)} of {len(txs)} honest transfers not committed in "
                f"{HONEST_DEADLINE_S} s"
            ) from None
    return time.monotonic() - started
