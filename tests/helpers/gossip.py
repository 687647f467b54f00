"""A node's gossip seen without a network: the peers it would send to, and transfers
for it to admit."""

from __future__ import annotations

from cloudchain.crypto import read_key_file
from cloudchain.fees import priced_transaction
from cloudchain.node.runtime import Node


class RecordingPeers:
    """Stands in for the PeerManager of a node that is not started: what it was sent."""

    refused_peers = refused_messages = 0

    def __init__(self) -> None:
        self.connected = ["peer-1", "peer-2"]
        self.sent: list[tuple[bytes, bool]] = []

    def broadcast(self, data: bytes, *, gossip: bool = False) -> int:
        self.sent.append((data, gossip))
        return len(self.connected)


def transfers(home_net, node: Node, count: int) -> list[bytes]:
    """`count` transfers spread over the testnet's four funded accounts."""
    keys = [read_key_file(home_net / "accounts" / f"account{i}.json") for i in range(4)]
    args = {"to": keys[0].address, "amount": 1}
    return [
        priced_transaction(
            keys[n % 4], node.chain_id, n // 4, "token", "transfer", args, node.app.fees
        ).to_bytes()
        for n in range(count)
    ]
