"""Off-chain agents: provider and oracle daemons, their executors and workloads.

They reach the node only as its clients (JSON-RPC, WebSocket, the blob gateway).
"""
