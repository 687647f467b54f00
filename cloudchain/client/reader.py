"""The one reader of the client's results: a node's JSON read into a frozen dataclass by
what each of its fields declares.

What this module owns: the vocabulary a result declares its fields with (`at`, the
codecs), and `Result.from_json`, which reads any result from those declarations. A
result is a frozen dataclass subclassing `Result`; each field says where it sits in
the node's JSON and, where its type does not say it, how it is encoded:

    @dataclass(frozen=True)
    class Status(Result):
        latest_block_height: int = at("sync_info.latest_block_height")
        latest_block_hash: bytes = at("sync_info.latest_block_hash", HEX, optional=True)
        raw: dict[str, Any] = field(repr=False, compare=False)  # the node's JSON

What a field's type reads, unless it names a codec:
- `int`: a JSON number or a decimal string (CometBFT writes int64 values as strings);
- `str`, `bool`: a JSON string, true or false;
- a `Result` subclass: an object, read by that class's own declarations;
- `tuple[X, ...]`: a JSON list, each item read as an X (by the codec, if one is named).
`bytes` must name its encoding (`HEX` or `BASE64`); an `int` that is a time names
`TIME_NS` (RFC 3339, read as integer nanoseconds since the epoch, UTC).

`optional=True`: the node may leave the field out or send null (CometBFT does both for
empty values); it then reads as its codec's empty value ("", 0, b"", ()). A `?` after a
key of the path (`"parts?.total"`) says the same of an object on the way. The field
`raw` holds the object the result was read from. A class whose fields follow from
others when the node leaves them out (the only logic that is not a field mapping)
fills them in its `_complete` hook.

The plan of a class (its fields, resolved with `typing.get_type_hints`, each with the
path and codec it reads by) is made once, on its first read, and kept. A field without
a declaration, or of a type with no codec, is our bug and a TypeError at that point
(tests/test_client_reader.py makes every result's plan).

The one error of reading: a reply without the declared shape raises the client's
`RPCClientError` (code CLIENT_ERROR, "malformed reply from the node") naming, in
`data`, the JSON path of the field from the class's name and what was wrong with it
(`Status.sync_info.latest_block_height: expected an integer, got 'abc'`); never a
KeyError or TypeError.

What it does not know: any particular result (`cloudchain/client/results.py` declares
them) and transport.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

from cloudchain.client.errors import RPCClientError, malformed
from cloudchain.timefmt import TimeFormatError, parse_rfc3339_ns

SHOWN_VALUE_CHARS_MAX = 60  # how much of a bad value an error message quotes
RAW_FIELD = "raw"  # the field every result keeps the node's JSON in
_DECLARED = "cloudchain.client.reader"  # the key of a field's declaration in its metadata

_MISSING: Any = object()


def _shown(value: Any) -> str:
    if value is _MISSING:
        return "nothing (the field is missing)"
    text = repr(value)
    if len(text) <= SHOWN_VALUE_CHARS_MAX:
        return text
    return text[: SHOWN_VALUE_CHARS_MAX - 3] + "..."


class Cursor:
    """A value inside a reply and its path from the root, for reading typed values
    and for saying which field is wrong when one is."""

    __slots__ = ("path", "value")

    def __init__(self, value: Any, path: str) -> None:
        self.value, self.path = value, path

    def wrong(self, expected: str) -> RPCClientError:
        return malformed(self.path, f"expected {expected}, got {_shown(self.value)}")

    def absent(self) -> bool:
        return self.value is _MISSING or self.value is None

    def __getitem__(self, key: str) -> Cursor:
        return Cursor(self.mapping().get(key, _MISSING), f"{self.path}.{key}")

    def mapping(self) -> dict[str, Any]:
        if not isinstance(self.value, dict):
            raise self.wrong("an object")
        return self.value

    def items(self) -> list[Cursor]:
        if not isinstance(self.value, list):
            raise self.wrong("a list")
        return [Cursor(v, f"{self.path}[{i}]") for i, v in enumerate(self.value)]

    def read(self, codec: Codec, optional: bool = False) -> Any:
        """The value read by `codec`; its empty value when `optional` and the node left
        it out or sent null."""
        if optional and self.absent():
            assert codec.empty is not None, "a codec without an empty value is never optional"
            return codec.empty
        return codec.read(self)


@dataclass(frozen=True)
class Codec:
    """How one JSON value becomes a Python value. `empty` is what an optional field
    reads as when the node leaves it out; None: the field cannot be optional."""

    name: str
    read: Callable[[Cursor], Any]
    empty: Any = None


def _integer(at: Cursor) -> int:
    value = at.value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.removeprefix("-").isdigit() and value.isascii():
        return int(value)
    raise at.wrong("an integer")


def _text(at: Cursor) -> str:
    if not isinstance(at.value, str):
        raise at.wrong("a string")
    return at.value


def _flag(at: Cursor) -> bool:
    if not isinstance(at.value, bool):
        raise at.wrong("true or false")
    return at.value


def _hex(at: Cursor) -> bytes:
    """A hash or an address: hex, either case; "" is no hash (e.g. before height 1)."""
    try:
        return bytes.fromhex(_text(at))
    except ValueError:
        raise at.wrong("hex") from None


def _base64(at: Cursor) -> bytes:
    try:
        return base64.b64decode(_text(at), validate=True)
    except (ValueError, binascii.Error):
        raise at.wrong("base64") from None


def _time_ns(at: Cursor) -> int:
    try:
        return parse_rfc3339_ns(_text(at))
    except TimeFormatError:
        raise at.wrong("an RFC 3339 time") from None


INTEGER = Codec("integer", _integer, 0)
TEXT = Codec("text", _text, "")
FLAG = Codec("flag", _flag)
HEX = Codec("hex", _hex, b"")
BASE64 = Codec("base64", _base64, b"")
TIME_NS = Codec("RFC 3339 time in ns", _time_ns)

_BY_TYPE: dict[Any, Codec] = {int: INTEGER, str: TEXT, bool: FLAG}


def list_of(item: Codec) -> Codec:
    """A JSON list, each item read by `item`, as a tuple; empty: ()."""

    def read(at: Cursor) -> tuple[Any, ...]:
        return tuple(item.read(each) for each in at.items())

    return Codec(f"list of {item.name}", read, ())


@dataclass(frozen=True)
class _Declared:
    path: str
    codec: Codec | None
    optional: bool


def at(path: str, codec: Codec | None = None, *, optional: bool = False) -> Any:
    """Declare a result's field: where it sits in the node's JSON (`path`, keys from the
    result's object joined by dots; `key?` where that object may be absent), how it is
    encoded when its type does not say it, and whether the node may leave it out."""
    return dataclasses.field(metadata={_DECLARED: _Declared(path, codec, optional)})


@dataclass(frozen=True)
class _Step:
    """How one field is read: the keys to it from the result's object (each with
    whether the node may leave it out) and its codec."""

    name: str
    keys: tuple[tuple[str, bool], ...]
    codec: Codec

    def read(self, obj: Cursor) -> Any:
        value = obj
        for key, may_be_absent in self.keys:
            value = value[key]
            if may_be_absent and value.absent():
                return self.codec.empty
        return self.codec.read(value)


class Result:
    """What every result shares: read from the node's JSON by its fields' declarations."""

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        """Read `obj` (a JSON-RPC result, or the part of one this type describes);
        RPCClientError (malformed reply) when it does not have the declared shape."""
        return cls._read(Cursor(obj, cls.__name__))

    @classmethod
    def _read(cls, obj: Cursor) -> Self:
        values = {step.name: step.read(obj) for step in _plan(cls)}
        values[RAW_FIELD] = obj.mapping()
        cls._complete(values)
        return cls(**values)

    @classmethod
    def _complete(cls, values: dict[str, Any]) -> None:
        """The hook of a class whose fields follow from others when the node leaves them
        out: fill them in `values` (field name to value read). Most have none."""


def _codec_for(hint: Any, declared: Codec | None, where: str) -> Codec:
    """The codec a field of type `hint` reads by: a tuple[X, ...] is a list of X."""
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return list_of(_codec_for(args[0], declared, where))
    if declared is not None:
        return declared
    if hint in _BY_TYPE:
        return _BY_TYPE[hint]
    if isinstance(hint, type) and issubclass(hint, Result):
        return Codec(hint.__name__, hint._read)
    raise TypeError(
        f"{where}: {getattr(hint, '__name__', hint)} needs a codec (bytes: HEX or BASE64)"
    )


def _keys(path: str, optional: bool, where: str) -> tuple[tuple[str, bool], ...]:
    *parents, last = path.split(".")
    keys = [(key.removesuffix("?"), key.endswith("?")) for key in parents]
    keys.append((last, optional))
    if any(not key or "?" in key for key, _ in keys):
        raise TypeError(f"{where}: {path!r} is not a path (keys joined by '.', 'key?')")
    return tuple(keys)


@functools.cache
def _plan(cls: type[Result]) -> tuple[_Step, ...]:
    """The steps that read `cls`, in the order of its fields; made once per class."""
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    if RAW_FIELD not in {f.name for f in fields}:
        raise TypeError(f"{cls.__name__}: a result keeps the node's JSON in a field 'raw'")
    steps = []
    for f in fields:
        if f.name == RAW_FIELD:
            continue
        where = f"{cls.__name__}.{f.name}"
        declared = f.metadata.get(_DECLARED)
        if declared is None:
            raise TypeError(f"{where}: declare where the field sits with at(...)")
        codec = _codec_for(hints[f.name], declared.codec, where)
        keys = _keys(declared.path, declared.optional, where)
        if codec.empty is None and any(may_be_absent for _, may_be_absent in keys):
            raise TypeError(f"{where}: {codec.name} has no empty value, so cannot be optional")
        steps.append(_Step(f.name, keys, codec))
    return tuple(steps)


def plan_of(cls: type[Result]) -> tuple[str, ...]:
    """The fields `cls` reads and where from (`name <- path as codec`), making its plan:
    what the tests check every result's declarations with."""
    return tuple(
        f"{step.name} <- {'.'.join(k + ('?' if m else '') for k, m in step.keys)}"
        f" as {step.codec.name}"
        for step in _plan(cls)
    )
