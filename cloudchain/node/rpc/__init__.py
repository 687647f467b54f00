"""The node's RPC port: CometBFT v0.38's JSON-RPC, URI and WebSocket, and the blob HTTP routes."""
