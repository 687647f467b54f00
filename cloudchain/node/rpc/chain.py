"""The RPC methods that read the committed chain: blocks, commits, results, the validator
set, and transactions by hash or by query (tx, tx_search), in CometBFT v0.38's shapes.

Each reads the block store and the transaction index through the NodeView
(view.py), checks its params as CometBFT does (params.py) and answers with
shapes.py's encodings. Read only; a height the chain does not have is CometBFT's
-32603 with a message saying so.
"""

from __future__ import annotations

from typing import Any

from cloudchain.crypto import PUBKEY_TYPE
from cloudchain.node.rpc import txquery
from cloudchain.node.rpc.errors import INTERNAL_ERROR, RPCError
from cloudchain.node.rpc.eventbus import MAX_QUERY_LENGTH
from cloudchain.node.rpc.params import (
    bad_params,
    hash_param,
    height_param,
    int_param,
    page_param,
    per_page_param,
)
from cloudchain.node.rpc.shapes import (
    b64,
    block_id_json,
    block_json,
    commit_json,
    events_json,
    header_json,
    hex_upper,
    tx_result_json,
)
from cloudchain.node.rpc.view import NodeView

BLOCKCHAIN_METAS_MAX = 20  # CometBFT's limit of block metas per blockchain call


class ChainMethods:
    def __init__(self, node: NodeView) -> None:
        self._node = node

    # --- blocks ------------------------------------------------------------------------------

    async def block(self, params: dict[str, Any]) -> dict[str, Any]:
        store = self._node.store
        height = height_param(params.get("height"), store.height)
        block = store.block(height)
        if block is None:
            raise RPCError(INTERNAL_ERROR, "Internal error", f"height {height} is not available")
        return block_json(block, self._node.validators)

    async def block_by_hash(self, params: dict[str, Any]) -> dict[str, Any]:
        block_hash = hash_param(params.get("hash"))
        height = self._node.store.block_height(block_hash)
        if height is None:  # not an error in CometBFT: an empty block id and a null block
            return {"block_id": block_id_json(b""), "block": None}
        block = self._node.store.block(height)
        assert block is not None
        return block_json(block, self._node.validators)

    async def block_results(self, params: dict[str, Any]) -> dict[str, Any]:
        store = self._node.store
        height = height_param(params.get("height"), store.height)
        results = store.block_results(height)
        assert results is not None
        return {
            "height": str(height),
            "txs_results": [tx_result_json(r) for r in results.tx_results] or None,
            "finalize_block_events": events_json(results.block_events),
            "validator_updates": None,
            "consensus_param_updates": None,
            "app_hash": b64(store.app_hash_at(height) or b""),
        }

    async def blockchain(self, params: dict[str, Any]) -> dict[str, Any]:
        """Block metas from max_height down to min_height, at most 20, as CometBFT's
        filterMinMax: a negative height is an error, 0 or absent means the chain's ends,
        and max is clamped to the chain."""
        store = self._node.store
        latest = store.height
        max_raw = params.get("maxHeight") or params.get("max_height") or 0
        min_raw = params.get("minHeight") or params.get("min_height") or 0
        max_height = int_param(max_raw, "maxHeight", signed=True)
        min_height = int_param(min_raw, "minHeight", signed=True)
        if min_height < 0 or max_height < 0:
            raise RPCError(INTERNAL_ERROR, "Internal error", "heights must be non-negative")
        max_height = min(max_height or latest, latest)
        min_height = max(min_height, max_height - (BLOCKCHAIN_METAS_MAX - 1), 1)
        if min_height > max_height:
            raise RPCError(
                INTERNAL_ERROR,
                "Internal error",
                f"min height {min_height} can't be greater than max height {max_height}",
            )
        metas = []
        for height in range(max_height, min_height - 1, -1):
            block = store.block(height)
            assert block is not None
            metas.append(
                {
                    "block_id": block_id_json(block.hash),
                    "block_size": str(len(block.to_bytes())),
                    "header": header_json(block.header),
                    "num_txs": str(len(block.txs)),
                }
            )
        return {"last_height": str(latest), "block_metas": metas}

    async def commit(self, params: dict[str, Any]) -> dict[str, Any]:
        """The header at `height` and the commit that finalised it: the next block's
        last commit, or, for the latest height, the node's own (canonical: false)."""
        node = self._node
        height = height_param(params.get("height"), node.store.height)
        block = node.store.block(height)
        following = node.store.block(height + 1)
        if following is not None:
            commit, canonical = following.last_commit, True
        else:
            commit, canonical = node.decided_commit(height), False
        assert block is not None
        return {
            "signed_header": {
                "header": header_json(block.header),
                "commit": commit_json(commit, node.validators),
            },
            "canonical": canonical,
        }

    async def validators(self, params: dict[str, Any]) -> dict[str, Any]:
        """The set at `height`, a page of it: CometBFT's, whose latest is the next height's
        set (the one after the last block; the last block's while catching up)."""
        node = self._node
        latest = node.store.height if node.catching_up else node.store.height + 1
        height = height_param(params.get("height"), latest)
        every = node.validators
        per_page = per_page_param(params.get("per_page"), "per_page")
        page = page_param(params.get("page"), per_page, len(every))
        listed = [
            {
                "address": hex_upper(v.address),
                "pub_key": {"type": PUBKEY_TYPE, "value": b64(v.public_key)},
                "voting_power": str(v.power),
                "proposer_priority": "0",
            }
            for v in every[(page - 1) * per_page : page * per_page]
        ]
        return {
            "block_height": str(height),
            "validators": listed,
            "count": str(len(listed)),
            "total": str(len(every)),
        }

    # --- transactions ------------------------------------------------------------------------

    async def tx(self, params: dict[str, Any]) -> dict[str, Any]:
        tx_hash = hash_param(params.get("hash"))
        location = self._node.store.tx_location(tx_hash)
        if location is None:
            raise RPCError(INTERNAL_ERROR, "Internal error", f"tx ({hex_upper(tx_hash)}) not found")
        return self._tx_json(*location)

    async def tx_search(self, params: dict[str, Any]) -> dict[str, Any]:
        """CometBFT's order of checks: the query's length, the query, then order_by
        ("asc", "desc" or "", which is "asc"), then the page."""
        query = params.get("query", "")
        if not isinstance(query, str):
            raise bad_params("query must be a string")
        order_by = params.get("order_by", "")
        if not isinstance(order_by, str):
            raise bad_params("order_by must be a string")
        if len(query) > MAX_QUERY_LENGTH:
            raise RPCError(INTERNAL_ERROR, "Internal error", "maximum query length exceeded")
        try:
            found = txquery.search(self._node.store, txquery.parse(query))
        except txquery.QueryError as exc:
            raise RPCError(INTERNAL_ERROR, "Internal error", str(exc)) from None
        if order_by not in ("asc", "desc", ""):
            raise RPCError(
                INTERNAL_ERROR,
                "Internal error",
                "expected order_by to be either `asc` or `desc` or empty",
            )
        per_page = per_page_param(params.get("per_page"), "per_page")
        page = page_param(params.get("page"), per_page, len(found))
        if order_by == "desc":
            found.reverse()
        chosen = found[(page - 1) * per_page : page * per_page]
        return {"txs": [self._tx_json(h, i) for h, i in chosen], "total_count": str(len(found))}

    def _tx_json(self, height: int, index: int) -> dict[str, Any]:
        store = self._node.store
        block = store.block(height)
        assert block is not None
        tx = block.txs[index]
        result = store.tx_result(tx.hash)
        assert result is not None
        return {
            "hash": hex_upper(tx.hash),
            "height": str(height),
            "index": index,
            "tx_result": tx_result_json(result),
            "tx": b64(tx.to_bytes()),
        }
