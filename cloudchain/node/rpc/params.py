"""Reading a request's params as CometBFT v0.38's RPC does.

Params come by name (a JSON object) or by position (an array, mapped onto the
method's parameter names in PARAM_NAMES, as CometBFT's arrayParamsToArgs);
the URI form's query string is read as its http_uri_handler reads it (see
uri_params). Numbers are int64s, given as JSON integers or decimal strings;
hashes and transactions are bytes. What cannot be read is CometBFT's -32602
(`bad_params`); a page beyond the results is its -32603. A request body is JSON
as Go reads it: NaN and Infinity are not JSON (`loads`). Pure functions: no
node state, no I/O.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any

from cloudchain.ledger import INT64_MAX
from cloudchain.node.rpc.errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    JSON_PARAMS_PREFIX,
    RPCError,
)
from cloudchain.node.rpc.shapes import b64

DEFAULT_PER_PAGE, MAX_PER_PAGE = 30, 100  # CometBFT's validatePerPage
INT_TEXT = re.compile(r"-?[0-9]{1,19}")  # an int64 as text (fullmatch; ASCII digits only)

# CometBFT's routes.go: each method's parameter names, in order. Positional params (a JSON
# array) map onto them, as its arrayParamsToArgs does.
PARAM_NAMES: dict[str, tuple[str, ...]] = {
    "subscribe": ("query",),
    "unsubscribe": ("query",),
    "unsubscribe_all": (),
    "health": (),
    "status": (),
    "net_info": (),
    "blockchain": ("minHeight", "maxHeight"),
    "genesis": (),
    "block": ("height",),
    "block_by_hash": ("hash",),
    "block_results": ("height",),
    "commit": ("height",),
    "tx": ("hash", "prove"),
    "tx_search": ("query", "prove", "page", "per_page", "order_by"),
    "validators": ("height", "page", "per_page"),
    "unconfirmed_txs": ("limit",),
    "num_unconfirmed_txs": (),
    "broadcast_tx_commit": ("tx",),
    "broadcast_tx_sync": ("tx",),
    "broadcast_tx_async": ("tx",),
    "broadcast_evidence": ("evidence",),
    "abci_query": ("path", "data", "height", "prove"),
    "abci_info": (),
    # Ours: the blob store's (admin.py).
    "blob_stat": ("cid",),
    "blob_dag": ("cid", "max_nodes"),
    "manifest_canonical": ("manifest", "datasets"),
    "blob_pin": ("cid",),
    "blob_unpin": ("cid",),
    "blob_gc": (),
}


# The Go type of each parameter in CometBFT's rpc/core, which decides how the URI form
# reads it: "int64"/"int" numbers, "string" text, "bytes" ([]byte: base64 in the JSON
# form), "hexbytes" (HexBytes: hex in the JSON form), "bool".
PARAM_KINDS: dict[str, str] = {
    "height": "int64",
    "minHeight": "int64",
    "maxHeight": "int64",
    "page": "int",
    "per_page": "int",
    "limit": "int",
    "query": "string",
    "path": "string",
    "order_by": "string",
    "cid": "string",
    "hash": "bytes",
    "tx": "bytes",
    "evidence": "bytes",
    "data": "hexbytes",
    "prove": "bool",
}
_URI_INT = re.compile(r"-?[0-9]+")  # CometBFT's reInt (fullmatch)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # json.loads pairs the others


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


def _finite_float(text: str) -> float:
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise ValueError(f"number {text} is out of range")
    return number


def loads(text: str | bytes) -> Any:
    """JSON as Go's encoding/json reads it: no NaN, Infinity or -Infinity, and no number
    beyond a float64 (Python's json module takes all of these). ValueError otherwise."""
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)


def bad_params(why: str) -> RPCError:
    """CometBFT's -32602, whose data prefixes the decoder's complaint with this text."""
    return RPCError(INVALID_PARAMS, "Invalid params", JSON_PARAMS_PREFIX + why)


def is_request_id(value: Any) -> bool:
    """A JSON-RPC id: a string, a number or null (CometBFT refuses any other)."""
    return value is None or (isinstance(value, str | int | float) and not isinstance(value, bool))


def params_object(method: str, params: Any) -> dict[str, Any]:
    """The params by name: an object as it is, an array mapped onto the method's
    parameter names in order (CometBFT's arrayParamsToArgs: all of them, no fewer)."""
    if params is None:
        return {}
    if isinstance(params, dict):
        return params
    if not isinstance(params, list):
        raise bad_params("params must be an object or an array")
    names = PARAM_NAMES.get(method)
    if names is None:
        return {}  # an unknown method: _call answers "Method not found"
    if len(params) != len(names):
        raise bad_params(
            f"expected {len(names)} parameters ([{' '.join(names)}]), got {len(params)}"
        )
    return dict(zip(names, params, strict=True))


def uri_params(method: str, query: Mapping[str, str]) -> dict[str, Any]:
    """The URI form's params in the JSON form's terms, as CometBFT's http_uri_handler reads
    them: only the method's own parameters, each the first value given, an empty one
    absent. By the parameter's Go type (PARAM_KINDS):

    - a number: digits (with a '-') as they are; "quoted" as JSON text; 0x... is refused;
    - a string: "quoted" as JSON text; 0x... hex-decoded into the text;
    - bytes (tx, hash, data): "quoted" is the raw bytes of the text between the quotes;
      0x... hex-decoded; passed on as the JSON form takes them (base64, or hex for data);
    - a bool: true/false.

    A value of another form is taken as it is (CometBFT would refuse a bare string as
    not JSON; the methods here read it as the JSON form would)."""
    params: dict[str, Any] = {}
    for name in PARAM_NAMES.get(method, ()):
        value = query.get(name, "")
        if value:
            params[name] = _uri_value(name, value)
    return params


def _uri_value(name: str, value: str) -> Any:
    kind = PARAM_KINDS.get(name, "string")
    quoted = _is_quoted(value)
    if kind in ("int64", "int"):
        if value[:2].lower() == "0x":
            raise bad_params(f"got a hex string arg, but expected '{kind}'")
        return value if _URI_INT.fullmatch(value) or not quoted else _unquote(value)
    if kind == "bool":
        if value[:2].lower() == "0x":
            raise bad_params("got a hex string arg, but expected 'bool'")
        return {"true": True, "false": False}.get(value, value)
    if value[:2].lower() == "0x":
        try:
            raw = bytes.fromhex(value[2:])
        except ValueError:
            raise bad_params(f"{name}: encoding/hex: invalid byte in {value[:40]!r}") from None
    elif quoted:
        if kind == "string":
            return _unquote(value)
        raw = _unquote(value).encode()
    else:
        return value
    if kind == "string":
        return raw.decode(errors="replace")
    return raw.hex() if kind == "hexbytes" else b64(raw)


def _is_quoted(value: str) -> bool:
    return len(value) >= 2 and value[0] == value[-1] == '"'


def _unquote(value: str) -> str:
    try:
        text = loads(value)
    except ValueError:
        raise bad_params(f"invalid quoted string {value[:40]!r}") from None
    if not isinstance(text, str):
        raise bad_params(f"invalid quoted string {value[:40]!r}")
    # A lone surrogate escape ("\\udcff") is U+FFFD, as Go's encoding/json reads it:
    # Python's json keeps it, and no string holding one encodes to UTF-8.
    return _LONE_SURROGATE.sub("\ufffd", text)


def int_param(value: Any, name: str, signed: bool = False) -> int:
    """CometBFT's int64 params: a JSON integer, or a decimal string of at most 19 ASCII
    digits (after a '-' if `signed`), within int64; anything else is -32602."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and INT_TEXT.fullmatch(value):
        number = int(value)
    else:
        number = None
    if number is None or not (-INT64_MAX - 1 if signed else 0) <= number <= INT64_MAX:
        kind = "an integer" if signed else "a non-negative integer"
        raise bad_params(f"{name} must be {kind} within int64")
    return number


def per_page_param(value: Any, name: str) -> int:
    """CometBFT's validatePerPage: absent or below 1 is the default, at most the maximum."""
    if value is None or value == "":
        return DEFAULT_PER_PAGE
    per_page = int_param(value, name, signed=True)
    return DEFAULT_PER_PAGE if per_page < 1 else min(per_page, MAX_PER_PAGE)


def page_param(value: Any, per_page: int, total: int) -> int:
    """CometBFT's validatePage: absent is the first page; 0 or beyond the last is an error."""
    if value is None or value == "":
        return 1
    page = int_param(value, "page", signed=True)
    pages = max(1, (total + per_page - 1) // per_page)
    if not 1 <= page <= pages:
        raise RPCError(
            INTERNAL_ERROR,
            "Internal error",
            f"page should be within [1, {pages}] range, given {page}",
        )
    return page


def height_param(value: Any, latest: int) -> int:
    """CometBFT's getHeight: absent means the latest; below 1 or above the chain fails."""
    if value is None or value == "":
        if latest < 1:
            raise RPCError(INTERNAL_ERROR, "Internal error", "no block has been committed yet")
        return latest
    height = int_param(value, "height", signed=True)
    if height <= 0:
        raise RPCError(
            INTERNAL_ERROR, "Internal error", f"height must be greater than 0, but got {height}"
        )
    if height > latest:
        raise RPCError(
            INTERNAL_ERROR,
            "Internal error",
            f"height {height} must be less than or equal to the current blockchain height {latest}",
        )
    return height


def tx_param(params: dict[str, Any]) -> bytes:
    return _base64_param(params, "tx")


def _base64_param(params: dict[str, Any], name: str) -> bytes:
    value = params.get(name)
    if not isinstance(value, str):
        raise bad_params(f"{name} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise bad_params(f"{name} is not valid base64") from None


def evidence_param(params: dict[str, Any]) -> bytes:
    """broadcast_evidence's `evidence`: base64 of the evidence's canonical bytes (ours,
    not CometBFT's JSON: the one form a block carries and a signature covers)."""
    return _base64_param(params, "evidence")


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def hash_param(value: Any) -> bytes:
    if isinstance(value, str):
        text = value.removeprefix("0x")
        decode = bytes.fromhex if len(text) == 64 else _b64decode
        try:
            raw = decode(text)
        except ValueError:
            raw = b""
        if len(raw) == 32:
            return raw
    raise bad_params("hash must be 32 bytes (hex or base64)")
