"""JSON-RPC 2.0 errors as CometBFT gives them: a code, a fixed message, and `data`
saying what went wrong (CometBFT's handlers put the Go error text there)."""

from __future__ import annotations

from typing import Any

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = (
    -32700,
    -32600,
    -32601,
    -32602,
    -32603,
)
SERVER_ERROR = -32000  # CometBFT's code for a cancelled subscription
JSON_PARAMS_PREFIX = "error converting json params to arguments: "
HTTP_PARAMS_PREFIX = "error converting http params to arguments: "


class RPCError(Exception):
    def __init__(self, code: int, message: str, data: str = "") -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data:  # Go's omitempty: CometBFT leaves out an empty data
            body["data"] = self.data
        return body


def error_body(request_id: Any, error: RPCError) -> dict[str, Any]:
    """An error reply; without an id (a request that could not be read), no "id" member,
    as CometBFT's omitempty gives."""
    body: dict[str, Any] = {"jsonrpc": "2.0"}
    if request_id is not None:
        body["id"] = request_id
    body["error"] = error.to_json()
    return body


def result_body(request_id: Any, result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}
