"""The one exception a client raises: RPCClientError (re-exported by cloudchain.client)."""

from __future__ import annotations


class RPCClientError(Exception):
    """An error reply from the node, a node that cannot be reached, or a reply that does
    not have the shape CometBFT gives it. `code` is the JSON-RPC code (-1 when the
    error is the client's: no connection, a malformed reply)."""

    def __init__(self, code: int, message: str, data: str = "") -> None:
        super().__init__(f"{message} ({code}){': ' + data if data else ''}")
        self.code, self.message, self.data = code, message, data
