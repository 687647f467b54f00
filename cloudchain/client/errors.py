"""The one exception a client raises: RPCClientError (re-exported by cloudchain.client),
and the one way the client words a reply that does not have the shape it expects."""

from __future__ import annotations

# The code of an RPCClientError that is not the node's JSON-RPC error: the node could not
# be reached, or its reply is malformed.
CLIENT_ERROR = -1
MALFORMED_REPLY_MESSAGE = "malformed reply from the node"


class RPCClientError(Exception):
    """An error reply from the node, a node that cannot be reached, or a reply that does
    not have the shape CometBFT gives it. `code` is the JSON-RPC code (-1 when the
    error is the client's: no connection, a malformed reply)."""

    def __init__(self, code: int, message: str, data: str = "") -> None:
        super().__init__(f"{message} ({code}){': ' + data if data else ''}")
        self.code, self.message, self.data = code, message, data


def malformed(path: str, problem: str) -> RPCClientError:
    """The error for a reply that lacks the shape: `path` names the field. The node's
    fault, not the caller's."""
    return RPCClientError(CLIENT_ERROR, MALFORMED_REPLY_MESSAGE, f"{path}: {problem}")
