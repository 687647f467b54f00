"""The Python SDK: a node's JSON-RPC, WebSocket events and blob gateway, as typed calls.

- `jsonrpc`: `Client` (async) and `SyncClient` (blocking), one method per RPC method;
- `results`: the frozen dataclasses those methods return, each field declaring where it
  sits in the node's JSON;
- `reader`: the one reader of those declarations, naming the field of a malformed reply;
- `subscriptions`: `EventStream`, the WebSocket subscription behind `Client.subscribe`;
- `blobs`: streamed uploads and downloads over the node's `/blobs` HTTP routes;
- `tasks`: a requester's tasks (`Client.submit_task`, `wait_task`, `fetch_result`,
  `fetch_logs`), over the rules of `task_terms` (data files, price, balance warning);
- `errors`: `RPCClientError`, the one exception the node's calls raise (a task's own
  failures are `TaskError`s, its bad manifest a `ManifestError` naming the field).

This package knows the node only through what it answers on the wire; it imports nothing
from `cloudchain.node`.
"""

from cloudchain.client.errors import RPCClientError
from cloudchain.client.jsonrpc import DEFAULT_NODE, Client, SyncClient, decode_query_value
from cloudchain.client.subscriptions import SubscriptionEvent
from cloudchain.client.task_terms import FINAL_STATES, TaskRecord, TaskUsageError
from cloudchain.client.tasks import (
    FetchedResult,
    SubmittedTask,
    TaskError,
    TaskRefused,
    TaskTimeout,
)

__all__ = [
    "DEFAULT_NODE",
    "FINAL_STATES",
    "Client",
    "FetchedResult",
    "RPCClientError",
    "SubmittedTask",
    "SubscriptionEvent",
    "SyncClient",
    "TaskError",
    "TaskRecord",
    "TaskRefused",
    "TaskTimeout",
    "TaskUsageError",
    "decode_query_value",
]
