"""Talking to a running node's RPC in tests: raw JSON-RPC calls, a signed transfer.

Raw on purpose: the RPC tests check the server's exact shapes, so they do not go
through cloudchain.client. The node itself comes from tests/helpers/network.py
(or the `node` fixture of tests/conftest.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from cloudchain.crypto import PrivateKey, read_key_file
from cloudchain.fees import priced_transaction
from cloudchain.ledger import Transaction
from cloudchain.node.runtime import Node


async def call(node: Node, method: str | None, params: Any = None, raw: bytes | None = None) -> Any:
    """POST one JSON-RPC request (id 7) to `node`, or the `raw` body as it is; the reply."""
    url = f"http://{node.config.rpc.listen_address}/"
    async with aiohttp.ClientSession() as session:
        if raw is not None:
            async with session.post(url, data=raw) as response:
                return await response.json()
        body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params or {}}
        async with session.post(url, json=body) as response:
            return await response.json()


def transfer(tmp_path: Path, node: Node, nonce: int, amount: int) -> tuple[Transaction, PrivateKey]:
    """A transfer of `amount` from the testnet's account0 to account1 (its key returned),
    paying the minimum fee."""
    sender = read_key_file(tmp_path / "net" / "accounts" / "account0.json")
    recipient = read_key_file(tmp_path / "net" / "accounts" / "account1.json")
    tx = priced_transaction(
        sender,
        node.chain_id,
        nonce,
        "token",
        "transfer",
        {"to": recipient.address, "amount": amount},
        node.app.fees,
    )
    return tx, recipient


def ws_url(node: Node) -> str:
    return f"ws://{node.config.rpc.listen_address}/websocket"
