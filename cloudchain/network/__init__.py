"""Moving bytes between nodes: the encrypted transport, peers, gossip, blob exchange."""
