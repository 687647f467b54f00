"""The client's one reader (cloudchain/client/reader.py): each codec, the path a malformed
reply's error names, optional fields and objects, lists of results and lists of lists,
and the plan every result of cloudchain/client/results.py is read by."""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from dataclasses import dataclass, field
from typing import Any

import pytest

from cloudchain.client import RPCClientError, reader, results
from cloudchain.client.reader import BASE64, HEX, TIME_NS, Result, at, plan_of
from cloudchain.client.results import Validators
from cloudchain.timefmt import parse_rfc3339_ns

# Results declared only for these tests, one per thing the reader does.


@dataclass(frozen=True)
class Scalars(Result):
    number: int = at("number")
    name: str = at("name")
    flag: bool = at("flag")
    hash: bytes = at("hash", HEX)
    blob: bytes = at("blob", BASE64)
    time_ns: int = at("time", TIME_NS)
    raw: dict[str, Any] = field(repr=False, compare=False)


SCALARS = {
    "number": "-12",
    "name": "n",
    "flag": False,
    "hash": "aBcD",
    "blob": "c2ln",
    "time": "2019-08-01T11:52:22.818762194Z",
}


@dataclass(frozen=True)
class Optionals(Result):
    number: int = at("number", optional=True)
    name: str = at("name", optional=True)
    hash: bytes = at("hash", HEX, optional=True)
    blob: bytes = at("blob", BASE64, optional=True)
    many: tuple[int, ...] = at("many", optional=True)
    deep: int = at("outer?.inner?.number", optional=True)
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class Item(Result):
    x: int = at("x")
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class Nested(Result):
    item: Item = at("wrapper.item")
    items: tuple[Item, ...] = at("items")
    grid: tuple[tuple[int, ...], ...] = at("grid")
    hashes: tuple[tuple[bytes, ...], ...] = at("hashes", HEX, optional=True)
    raw: dict[str, Any] = field(repr=False, compare=False)


NESTED = {
    "wrapper": {"item": {"x": 1}},
    "items": [{"x": "2"}, {"x": 3}],
    "grid": [[1, "2"], [], ["3"]],
    "hashes": [["ab", "CD"], []],
}


def _error(kind: type[Result], obj: Any) -> str:
    """The `data` of the error reading `obj` raises, checking it is the one error."""
    with pytest.raises(RPCClientError) as raised:
        kind.from_json(obj)
    error = raised.value
    assert (error.code, error.message) == (-1, "malformed reply from the node")
    return error.data


def test_each_codec_reads_cometbft_encodings_into_python_types():
    read = Scalars.from_json(SCALARS)
    assert read.number == -12 and Scalars.from_json(SCALARS | {"number": 7}).number == 7
    assert read.name == "n" and read.flag is False
    assert read.hash == b"\xab\xcd"  # hex in either case
    assert read.blob == b"sig"
    assert read.time_ns == parse_rfc3339_ns("2019-08-01T11:52:22.818762194Z")
    assert read.time_ns % 1_000_000_000 == 818762194
    assert read.raw is SCALARS


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("number", True, "Scalars.number: expected an integer, got True"),
        ("number", 1.0, "Scalars.number: expected an integer, got 1.0"),
        ("number", "1.5", "Scalars.number: expected an integer, got '1.5'"),
        ("number", " 1", "Scalars.number: expected an integer, got ' 1'"),
        ("number", "\u0661", "Scalars.number: expected an integer, got '\u0661'"),  # not ASCII
        ("name", 5, "Scalars.name: expected a string, got 5"),
        ("flag", "false", "Scalars.flag: expected true or false, got 'false'"),
        ("flag", 0, "Scalars.flag: expected true or false, got 0"),
        ("hash", "abc", "Scalars.hash: expected hex, got 'abc'"),
        ("hash", 12, "Scalars.hash: expected a string, got 12"),
        ("blob", "c2l", "Scalars.blob: expected base64, got 'c2l'"),
        ("blob", "c2ln\n", "Scalars.blob: expected base64, got 'c2ln\\n'"),
        ("time", "yesterday", "Scalars.time: expected an RFC 3339 time, got 'yesterday'"),
        ("time", 0, "Scalars.time: expected a string, got 0"),
        ("time", "x" * 100, "Scalars.time: expected an RFC 3339 time, got '" + "x" * 56 + "..."),
    ],
)
def test_a_value_its_codec_refuses_is_named_by_its_path(key, value, message):
    assert _error(Scalars, SCALARS | {key: value}) == message


@pytest.mark.parametrize("value", [None, [], "text", 3])
def test_a_reply_that_is_not_an_object_is_named_by_the_class(value):
    assert _error(Scalars, value) == f"Scalars: expected an object, got {value!r}"


def test_a_missing_field_is_named_by_its_path_even_where_null_is_sent():
    missing = {k: v for k, v in SCALARS.items() if k != "name"}
    assert (
        _error(Scalars, missing)
        == "Scalars.name: expected a string, got nothing (the field is missing)"
    )
    assert _error(Scalars, SCALARS | {"name": None}) == "Scalars.name: expected a string, got None"


def test_optional_fields_read_as_empty_when_left_out_or_null():
    empty = Optionals(number=0, name="", hash=b"", blob=b"", many=(), deep=0, raw={})
    assert Optionals.from_json({}) == empty
    nulls = dict.fromkeys(["number", "name", "hash", "blob", "many", "outer"])
    assert Optionals.from_json(nulls) == empty
    assert Optionals.from_json({"outer": {"inner": None}}) == empty
    given = {"number": "4", "name": "n", "hash": "ab", "blob": "c2ln", "many": [1, "2"]}
    assert Optionals.from_json(given | {"outer": {"inner": {"number": "5"}}}) == Optionals(
        number=4, name="n", hash=b"\xab", blob=b"sig", many=(1, 2), deep=5, raw={}
    )


@pytest.mark.parametrize(
    "obj, message",
    [
        ({"number": "four"}, "Optionals.number: expected an integer, got 'four'"),
        ({"hash": "zz"}, "Optionals.hash: expected hex, got 'zz'"),
        ({"many": {}}, "Optionals.many: expected a list, got {}"),
        ({"many": [None]}, "Optionals.many[0]: expected an integer, got None"),
        ({"outer": "flat"}, "Optionals.outer: expected an object, got 'flat'"),
        ({"outer": {"inner": []}}, "Optionals.outer.inner: expected an object, got []"),
        ({"outer": {"inner": {"number": []}}}, "Optionals.outer.inner.number: expected an integer"),
    ],
)
def test_optional_does_not_hide_a_value_of_the_wrong_shape(obj, message):
    assert message in _error(Optionals, obj)


def test_nested_results_and_lists_of_lists():
    read = Nested.from_json(NESTED)
    assert read.item.x == 1 and read.item.raw is NESTED["wrapper"]["item"]
    assert tuple(i.x for i in read.items) == (2, 3)
    assert read.grid == ((1, 2), (), (3,))
    assert read.hashes == ((b"\xab", b"\xcd"), ())  # the codec reads each innermost item


@pytest.mark.parametrize(
    "change, message",
    [
        ({"wrapper": {}}, "Nested.wrapper.item: expected an object, got nothing"),
        ({"wrapper": {"item": {"x": "y"}}}, "Nested.wrapper.item.x: expected an integer, got 'y'"),
        ({"items": None}, "Nested.items: expected a list, got None"),
        ({"items": [{"x": 1}, {}]}, "Nested.items[1].x: expected an integer, got nothing"),
        ({"items": [{"x": 1}, 5]}, "Nested.items[1]: expected an object, got 5"),
        ({"grid": [[1], [2, "z"]]}, "Nested.grid[1][1]: expected an integer, got 'z'"),
        ({"grid": [[1], None]}, "Nested.grid[1]: expected a list, got None"),
        ({"hashes": [[], ["ab", "q"]]}, "Nested.hashes[1][1]: expected hex, got 'q'"),
    ],
)
def test_an_error_inside_a_nested_result_or_list_names_the_whole_path(change, message):
    assert message in _error(Nested, NESTED | change)


def test_results_compare_and_hash_without_raw():
    first = Nested.from_json(NESTED)
    second = Nested.from_json(NESTED | {"unknown": "a field a newer node sends"})
    assert first == second and hash(first) == hash(second)
    assert "unknown" in second.raw and "raw" not in repr(second)


def test_the_complete_hook_fills_counts_the_node_leaves_out():
    validator = {"address": "ab", "pub_key": {"value": "c2ln"}, "voting_power": "1"}
    page = {"block_height": "3", "validators": [validator, validator]}
    assert (Validators.from_json(page).count, Validators.from_json(page).total) == (2, 2)
    given = Validators.from_json(page | {"count": "1", "total": "9"})
    assert (given.count, given.total) == (1, 9)
    zero = Validators.from_json(page | {"count": 0, "total": None})
    assert (zero.count, zero.total) == (2, 2)


def _results() -> list[type[Result]]:
    return [
        kind
        for _, kind in inspect.getmembers(results, inspect.isclass)
        if issubclass(kind, Result) and kind is not Result
    ]


def test_every_result_declares_every_field_and_keeps_raw_last():
    kinds = _results()
    assert len(kinds) == 27
    for kind in kinds:
        names = [f.name for f in dataclasses.fields(kind)]
        plan = plan_of(kind)  # raises TypeError on a field the reader cannot read
        assert [line.split(" <- ")[0] for line in plan] == names[:-1], kind
        assert names[-1] == "raw", kind


def test_a_plan_says_where_each_field_is_read_from():
    assert plan_of(results.BlockID) == (
        "hash <- hash? as hex",
        "parts_total <- parts?.total? as integer",
        "parts_hash <- parts?.hash? as hex",
    )
    assert plan_of(Nested)[1:3] == (
        "items <- items as list of Item",
        "grid <- grid as list of list of integer",
    )


def test_the_plan_is_made_once_per_class(monkeypatch):
    @dataclass(frozen=True)
    class Once(Result):
        x: int = at("x")
        raw: dict[str, Any] = field(repr=False, compare=False)

    resolved = []
    real = typing.get_type_hints

    def counting(cls, *args, **kwargs):
        resolved.append(cls)
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(reader.typing, "get_type_hints", counting)
    assert [Once.from_json({"x": n}).x for n in range(3)] == [0, 1, 2]
    assert resolved == [Once]


# Declarations the reader refuses: our bug, told when the class is first read.


@dataclass(frozen=True)
class BytesWithoutCodec(Result):
    data: bytes = at("data")
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class Undeclared(Result):
    x: int
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class OptionalTime(Result):
    time_ns: int = at("time", TIME_NS, optional=True)
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class OptionalResult(Result):
    item: Item = at("holder?.item")
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class NoRaw(Result):
    x: int = at("x")


@dataclass(frozen=True)
class BadPath(Result):
    x: int = at("a..x")
    raw: dict[str, Any] = field(repr=False, compare=False)


@pytest.mark.parametrize(
    "kind, message",
    [
        (BytesWithoutCodec, "BytesWithoutCodec.data: bytes needs a codec (bytes: HEX or BASE64)"),
        (Undeclared, "Undeclared.x: declare where the field sits with at"),
        (
            OptionalTime,
            "OptionalTime.time_ns: RFC 3339 time in ns has no empty value, so cannot be optional",
        ),
        (OptionalResult, "OptionalResult.item: Item has no empty value, so cannot be optional"),
        (NoRaw, "NoRaw: a result keeps the node's JSON in a field 'raw'"),
        (BadPath, "BadPath.x: 'a..x' is not a path"),
    ],
)
def test_a_declaration_the_reader_cannot_read_is_a_type_error(kind, message):
    with pytest.raises(TypeError, match="^" + re.escape(message)):
        kind.from_json({"x": 1})
