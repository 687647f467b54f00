"""The wait after a commit: [consensus] timeout_commit_ms while the mempool is idle, and
timeout_commit_busy_ms once a transaction is ready, even one that arrives during the
idle wait (node/runtime.py's schedule_timeout and _hurry_commit)."""

import dataclasses

import pytest

from cloudchain.crypto import read_key_file
from cloudchain.fees import priced_transaction
from tests.helpers.network import FAST, start_node, wait_for_height, wait_on_commits

IDLE_COMMIT_MS = 60_000  # far longer than any wait below: only the busy wait can end it
BUSY_COMMIT_MS = 50
STILL_S = 1.0  # how long an idle chain is watched not to commit


async def test_a_transaction_arriving_during_the_idle_wait_ends_it(tmp_path):
    consensus = dataclasses.replace(
        FAST, timeout_commit_ms=IDLE_COMMIT_MS, timeout_commit_busy_ms=BUSY_COMMIT_MS
    )
    node = await start_node(tmp_path, consensus=consensus)
    try:
        await wait_for_height([node], 1)
        height = node.app.info().height
        with pytest.raises(TimeoutError):  # idle: the minute's wait holds
            await wait_on_commits([node], lambda: node.app.info().height > height, STILL_S)
        sender = read_key_file(tmp_path / "net" / "accounts" / "account0.json")
        tx = priced_transaction(
            sender,
            node.chain_id,
            0,
            "token",
            "transfer",
            {"to": sender.address, "amount": 1},
            node.app.fees,
        )
        assert node.submit_tx(tx.to_bytes()).ok
        # The wait ends BUSY_COMMIT_MS later, and the next block carries the transfer.
        await wait_on_commits(
            [node], lambda: node.store.tx_result(tx.hash) is not None, deadline_s=20
        )
        assert node.store.tx_result(tx.hash).ok
    finally:
        await node.stop()
