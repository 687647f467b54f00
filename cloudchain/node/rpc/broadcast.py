"""The RPC methods that take transactions in, and say what waits in the mempool:
broadcast_tx_async, broadcast_tx_sync, broadcast_tx_commit, num_unconfirmed_txs
and unconfirmed_txs, in CometBFT v0.38's shapes; and broadcast_evidence, which takes
evidence of a double vote (its canonical bytes, base64) into the evidence pool and
answers {"hash": HEX}, or -32602 saying why it does not decode or may not be committed.

A transaction is admitted through the NodeView's `submit_tx` (view.py: the
mempool's check, then gossip); broadcast_tx_commit then waits on the event bus
(eventbus.py) for the block that commits it, subscribed under the caller
(dispatch.py's CALLER), so that the subscription limits bound its waiters too.

CometBFT's mempool has no gapped transactions (a nonce ahead of the sender's next,
waiting apart: node/mempool/). Here they count as unconfirmed: `total` and
`total_bytes` are of every waiting transaction, and `txs` lists the ready ones first,
in the order a block would take them, then the gapped ones in arrival order;
`n_txs` is how many are listed (num_unconfirmed_txs: all).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from cloudchain import codec
from cloudchain.ledger import MalformedError, TxResult
from cloudchain.node.evidence_pool import EvidenceRefused
from cloudchain.node.rpc.dispatch import CALLER
from cloudchain.node.rpc.errors import INTERNAL_ERROR, RPCError
from cloudchain.node.rpc.eventbus import EventBus, Subscription, SubscriptionError, Tags
from cloudchain.node.rpc.params import bad_params, evidence_param, per_page_param, tx_param
from cloudchain.node.rpc.shapes import b64, hex_upper, tx_result_json
from cloudchain.node.rpc.view import NodeView

BROADCAST_COMMIT_TIMEOUT_S = 30.0


class BroadcastMethods:
    def __init__(self, node: NodeView, bus: EventBus) -> None:
        self._node = node
        self._bus = bus

    async def broadcast_tx_async(self, params: dict[str, Any]) -> dict[str, Any]:
        raw = tx_param(params)
        self._node.submit_tx(raw)  # the result is not awaited, as CometBFT's async
        return {
            "code": 0,
            "data": "",
            "log": "",
            "codespace": "",
            "hash": hex_upper(codec.sha256(raw)),
        }

    async def broadcast_evidence(self, params: dict[str, Any]) -> dict[str, Any]:
        raw = evidence_param(params)
        try:
            evidence = self._node.submit_evidence(raw)
        except MalformedError as exc:
            raise bad_params(f"evidence does not decode: {exc}") from None
        except EvidenceRefused as exc:
            raise bad_params(f"evidence refused: {exc}") from None
        return {"hash": hex_upper(evidence.hash)}

    async def broadcast_tx_sync(self, params: dict[str, Any]) -> dict[str, Any]:
        raw = tx_param(params)
        admission = self._node.submit_tx(raw)
        return {
            "code": int(admission.code),
            "data": "",
            "log": admission.log,
            "codespace": admission.codespace,
            "hash": hex_upper(codec.sha256(raw)),
        }

    async def broadcast_tx_commit(self, params: dict[str, Any]) -> dict[str, Any]:
        """CometBFT's: subscribe to the transaction's Tx event under the caller's name, so
        that the subscription limits bound the waiters too (over them, its errors), then
        check it into the mempool and wait for the block that commits it."""
        raw = tx_param(params)
        tx_hash = codec.sha256(raw)
        node = self._node
        waiter = _CommitWaiter()
        query = f"tm.event='Tx' AND tx.hash='{hex_upper(tx_hash)}'"  # its EventQueryTxFor
        client = CALLER.get(None) or waiter
        try:
            self._bus.subscribe(waiter, query, None, client=client)
        except SubscriptionError as exc:
            why = str(exc)
            raise RPCError(
                INTERNAL_ERROR,
                "Internal error",
                why if why.startswith("max_") else f"failed to subscribe to tx: {why}",
            ) from None
        try:
            admission = node.submit_tx(raw)
            check = {
                "code": int(admission.code),
                "data": None,
                "log": admission.log,
                "info": "",
                "gas_wanted": "0",
                "gas_used": "0",
                "events": [],
                "codespace": admission.codespace,
            }
            if not admission.ok:
                empty = tx_result_json(TxResult(0, "", "", (), 1, 0))
                return {
                    "check_tx": check,
                    "tx_result": empty,
                    "hash": hex_upper(tx_hash),
                    "height": "0",
                }
            try:
                height = await asyncio.wait_for(waiter.committed, BROADCAST_COMMIT_TIMEOUT_S)
            except TimeoutError:
                raise RPCError(
                    INTERNAL_ERROR,
                    "Internal error",
                    "timed out waiting for tx to be included in a block",
                ) from None
        finally:
            # (already gone if the bus cancelled it, with the client's other subscriptions)
            with contextlib.suppress(SubscriptionError):
                self._bus.unsubscribe(client, query)
        result = node.store.tx_result(tx_hash)
        assert result is not None
        return {
            "check_tx": check,
            "tx_result": tx_result_json(result),
            "hash": hex_upper(tx_hash),
            "height": str(height),
        }

    async def num_unconfirmed_txs(self, params: dict[str, Any]) -> dict[str, Any]:
        mempool = self._node.mempool
        return {
            "n_txs": str(len(mempool)),
            "total": str(len(mempool)),
            "total_bytes": str(mempool.size_bytes),
            "txs": None,
        }

    async def unconfirmed_txs(self, params: dict[str, Any]) -> dict[str, Any]:
        limit = per_page_param(params.get("limit"), "limit")
        mempool = self._node.mempool
        return {
            "n_txs": str(min(limit, len(mempool))),
            "total": str(len(mempool)),
            "total_bytes": str(mempool.size_bytes),
            "txs": [b64(raw) for raw in mempool.pending(limit)],
        }


class _CommitWaiter:
    """broadcast_tx_commit's subscriber: takes its transaction's Tx event (the height
    it was committed at), or learns that the bus cancelled it."""

    def __init__(self) -> None:
        self.committed: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def deliver(self, subscription: Subscription, data: Any, tags: Tags) -> bool:
        if not self.committed.done():
            self.committed.set_result(int(tags["tx.height"][0]))
        return True

    def cancelled(self, subscription: Subscription, reason: str) -> None:
        if not self.committed.done():
            self.committed.set_exception(
                RPCError(
                    INTERNAL_ERROR,
                    "Internal error",
                    f"deliverTxSub was canceled (reason: {reason})",
                )
            )
