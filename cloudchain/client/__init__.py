"""The Python SDK: a node's JSON-RPC, WebSocket events and blob gateway, as typed calls.

- `jsonrpc`: `Client` (async) and `SyncClient` (blocking), one method per RPC method;
- `results`: the frozen dataclasses those methods return, each field declaring where it
  sits in the node's JSON;
- `reader`: the one reader of those declarations, naming the field of a malformed reply;
- `subscriptions`: `EventStream`, the WebSocket subscription behind `Client.subscribe`;
- `blobs`: streamed uploads and downloads over the node's `/blobs` HTTP routes;
- `errors`: `RPCClientError`, the one exception any of them raises.

This package knows the node only through what it answers on the wire; it imports nothing
from `cloudchain.node`.
"""

from cloudchain.client.errors import RPCClientError
from cloudchain.client.jsonrpc import DEFAULT_NODE, Client, SyncClient, decode_query_value
from cloudchain.client.subscriptions import SubscriptionEvent

__all__ = [
    "DEFAULT_NODE",
    "Client",
    "RPCClientError",
    "SubscriptionEvent",
    "SyncClient",
    "decode_query_value",
]
