"""The RPC methods that say who the node is and what its application knows: status,
net_info, health, genesis, abci_info and abci_query, in CometBFT v0.38's shapes.

Each reads the node through its NodeView (view.py) and builds its answer with
shapes.py's encodings; nothing here writes or waits.
"""

from __future__ import annotations

from typing import Any

from cloudchain.crypto import PUBKEY_TYPE
from cloudchain.ledger import MAX_BLOCK_EVIDENCE, MAX_EVIDENCE_BYTES
from cloudchain.node.rpc.params import bad_params, int_param
from cloudchain.node.rpc.shapes import b64, hex_upper
from cloudchain.node.rpc.view import NodeView
from cloudchain.timefmt import format_rfc3339_ns

VERSION = "0.38.0-cloudchain"
PROTOCOL_VERSION = {"p2p": "8", "block": "11", "app": "0"}  # CometBFT v0.38's


class InfoMethods:
    def __init__(self, node: NodeView) -> None:
        self._node = node

    async def status(self, params: dict[str, Any]) -> dict[str, Any]:
        node = self._node
        store = node.store
        latest = store.last_block
        first = store.block(1) if store.height >= 1 else None
        key = node.key
        power = next(
            (
                v.power
                for v in node.validators
                if key is not None and v.public_key == key.public_key
            ),
            0,
        )
        genesis_time_ns = node.app.genesis.genesis_time_ns
        return {
            "node_info": {
                "protocol_version": dict(PROTOCOL_VERSION),
                "id": node.peers.node_id,
                "listen_addr": f"tcp://{node.config.p2p.listen_address}",
                "network": node.chain_id,
                "version": VERSION,
                "channels": "",
                "moniker": node.config.moniker,
                "other": {
                    "tx_index": "on",
                    "rpc_address": f"tcp://{node.config.rpc.listen_address}",
                },
            },
            "sync_info": {
                # app hashes as in the headers (the state before that block), as CometBFT
                "latest_block_hash": hex_upper(latest.hash) if latest else "",
                "latest_app_hash": hex_upper(latest.header.app_hash) if latest else "",
                "latest_block_height": str(store.height),
                "latest_block_time": format_rfc3339_ns(
                    latest.header.time_ns if latest else genesis_time_ns
                ),
                "earliest_block_hash": hex_upper(first.hash) if first else "",
                "earliest_app_hash": hex_upper(first.header.app_hash) if first else "",
                "earliest_block_height": "1" if first else "0",
                "earliest_block_time": format_rfc3339_ns(
                    first.header.time_ns if first else genesis_time_ns
                ),
                "catching_up": node.catching_up,
            },
            "validator_info": {
                "address": hex_upper(bytes.fromhex(key.address)) if key else "",
                "pub_key": {"type": PUBKEY_TYPE, "value": b64(key.public_key) if key else ""},
                "voting_power": str(power),
            },
        }

    async def net_info(self, params: dict[str, Any]) -> dict[str, Any]:
        """Our peers in CometBFT's shape. We learn no NodeInfo in our handshake, so a peer's
        is what we know of it: its id, our chain, and the address we dial it at, if any;
        what we cannot know is empty. No connection_status: we keep no flow monitors."""
        node = self._node
        dialed = dict(p.lower().partition("@")[::2] for p in node.config.p2p.persistent_peers)
        peers = []
        for peer_id in node.peers.connected:
            host_port = dialed.get(peer_id, "")
            info = {
                "protocol_version": dict(PROTOCOL_VERSION),
                "id": peer_id,
                "listen_addr": f"tcp://{host_port}" if host_port else "",
                "network": node.chain_id,
                "version": "",
                "channels": "",
                "moniker": "",
                "other": {"tx_index": "", "rpc_address": ""},
            }
            peers.append(
                {
                    "node_info": info,
                    "is_outbound": peer_id > node.peers.node_id,
                    "remote_ip": host_port.rpartition(":")[0],
                }
            )
        return {
            "listening": True,
            "listeners": [f"tcp://{node.config.p2p.listen_address}"],
            "n_peers": str(len(peers)),
            "peers": peers,
        }

    async def health(self, params: dict[str, Any]) -> dict[str, Any]:
        return {}

    async def genesis(self, params: dict[str, Any]) -> dict[str, Any]:
        """The genesis document in CometBFT's GenesisDoc shape (int64s as strings)."""
        genesis = self._node.app.genesis
        document = genesis.to_obj()
        for validator, listed in zip(genesis.validators, document["validators"], strict=True):
            listed["address"] = hex_upper(validator.address)
            listed["power"] = str(listed["power"])
        # What CometBFT's params would say of us: no gas, the evidence ages of the genesis
        # (max_bytes: what MAX_BLOCK_EVIDENCE pieces take at most), Ed25519 keys, no
        # vote extensions; max_txs is ours and has no CometBFT counterpart.
        document["consensus_params"] = {
            "block": {
                "max_bytes": str(genesis.max_block_bytes),
                "max_gas": "-1",
                "max_txs": str(genesis.max_block_txs),
            },
            "evidence": {
                "max_age_num_blocks": str(genesis.evidence_max_age_blocks),
                "max_age_duration": str(genesis.evidence_max_age_ns),
                "max_bytes": str(MAX_BLOCK_EVIDENCE * MAX_EVIDENCE_BYTES),
            },
            "validator": {"pub_key_types": ["ed25519"]},
            "version": {"app": "0"},
            "abci": {"vote_extensions_enable_height": "0"},
        }
        return {"genesis": dict(document, initial_height="1", app_hash="")}

    async def abci_info(self, params: dict[str, Any]) -> dict[str, Any]:
        info = self._node.app.info()
        return {
            "response": {
                "data": "cloudchain",
                "version": VERSION,
                "app_version": "0",
                "last_block_height": str(info.height),
                "last_block_app_hash": b64(info.app_hash),
            }
        }

    async def abci_query(self, params: dict[str, Any]) -> dict[str, Any]:
        path = params.get("path")
        if not isinstance(path, str):
            raise bad_params("path must be a string")
        data_hex = params.get("data", "") or ""
        try:
            data = bytes.fromhex(data_hex.removeprefix("0x"))
        except (ValueError, AttributeError):
            raise bad_params("data must be hex") from None
        height = int_param(params.get("height", "0"), "height")
        answer = self._node.app.query(path, data, height)
        return {
            "response": {
                "code": int(answer.code),
                "log": answer.log,
                "info": "",
                "index": "0",
                "key": None,
                "value": b64(answer.value) or None,
                "proofOps": None,
                "height": str(answer.height),
                "codespace": "" if answer.code == 0 else "query",
            }
        }
