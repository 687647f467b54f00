"""How a chaincode module declares its transactions, queries and genesis.

A module is a name and three tables: transaction handlers by method, query
handlers by path, a genesis initialiser and, optionally, end-of-block work.
Each transaction method declares its arguments with checkers, so malformed
arguments are refused before the handler runs (and before a transaction enters
a block):

    TOKEN = Module("token")

    @TOKEN.tx("transfer", to=address_arg, amount=amount_arg)
    def process_transfer(ctx: Context, to: str, amount: int) -> None: ...

A method that takes tokens from its sender's balance (a transfer, a deposit into
escrow, a stake) declares how many, at most, from its arguments, so that the
application can ask a sender to hold what its transactions may take before they
are admitted or included (see application.py):

    @TOKEN.tx("transfer", spends=lambda args: args["amount"], to=..., amount=...)

A handler signals an expected failure by raising `TxError(code, log)`; the
application then discards its writes and records the code and log.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cloudchain.chaincode.codes import Code, QueryError, TxError
from cloudchain.chaincode.context import BlockContext, Overlay, StateReader
from cloudchain.crypto import is_address
from cloudchain.genesis import Genesis

__all__ = [
    "MAX_AMOUNT",
    "ArgError",
    "Module",
    "Optional",
    "QueryError",
    "TxError",
    "TxMethod",
    "address_arg",
    "amount_arg",
    "bool_arg",
    "int_arg",
    "list_arg",
    "optional_address_arg",
    "query_address",
    "text_arg",
]

MAX_AMOUNT = 2**63 - 1  # every token amount and balance fits in a signed 64-bit integer

ArgCheck = Callable[[Any], Any]
# What a handler may take from its sender's balance, at most, given its arguments (as
# check_args returns them): token units, never more than MAX_AMOUNT.
Spends = Callable[[Mapping[str, Any]], int]
TxHandler = Callable[..., None]
QueryHandler = Callable[[StateReader, bytes], Any]
GenesisHandler = Callable[[Overlay, Genesis], None]
EndBlockHandler = Callable[[BlockContext], None]


class ArgError(ValueError):
    """An argument fails its declared check."""


def _spends_nothing(args: Mapping[str, Any]) -> int:
    return 0


@dataclass(frozen=True)
class TxMethod:
    handler: TxHandler
    args: Mapping[str, ArgCheck]
    spends: Spends = _spends_nothing

    def check_args(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """Return the checked arguments (an optional one left out: its default), or raise
        ArgError naming the bad one."""
        required = {name for name, check in self.args.items() if not isinstance(check, Optional)}
        missing = sorted(required - set(args))
        if missing:
            raise ArgError(f"missing argument(s): {', '.join(missing)}")
        extra = sorted(set(args) - set(self.args))
        if extra:
            raise ArgError(f"unknown argument(s): {', '.join(extra)}")
        checked = {}
        for name, check in self.args.items():
            if name not in args:
                assert isinstance(check, Optional)
                checked[name] = check.default
                continue
            try:
                checked[name] = check(args[name])
            except ArgError as exc:
                raise ArgError(f"argument {name}: {exc}") from None
        return checked


@dataclass
class Module:
    name: str
    methods: dict[str, TxMethod] = field(default_factory=dict)
    queries: dict[str, QueryHandler] = field(default_factory=dict)
    genesis_handler: GenesisHandler | None = None
    end_block_handler: EndBlockHandler | None = None

    def tx(
        self, method: str, *, spends: Spends = _spends_nothing, **args: ArgCheck
    ) -> Callable[[TxHandler], TxHandler]:
        """Register `handler` as `module.method` with its argument checkers, and, if it
        takes tokens from its sender, `spends`: at most how many, from its arguments."""

        def register(handler: TxHandler) -> TxHandler:
            assert method not in self.methods, f"{self.name}.{method} registered twice"
            self.methods[method] = TxMethod(handler, dict(args), spends)
            return handler

        return register

    def query(self, path: str) -> Callable[[QueryHandler], QueryHandler]:
        def register(handler: QueryHandler) -> QueryHandler:
            assert path not in self.queries, f"/{self.name}/{path} registered twice"
            self.queries[path] = handler
            return handler

        return register

    def genesis(self, handler: GenesisHandler) -> GenesisHandler:
        assert self.genesis_handler is None, f"{self.name} genesis registered twice"
        self.genesis_handler = handler
        return handler

    def end_block(self, handler: EndBlockHandler) -> EndBlockHandler:
        """Work done at the end of every block, after its transactions (assignment,
        deadlines, epochs): deterministic, bounded, and only from state and the header."""
        assert self.end_block_handler is None, f"{self.name} end_block registered twice"
        self.end_block_handler = handler
        return handler


# --- argument checkers ------------------------------------------------------------------


@dataclass(frozen=True)
class Optional:
    """An argument a transaction may leave out, then `default` (given, it is checked by
    `check`): how a method gains an argument without old transactions changing meaning."""

    check: ArgCheck
    default: Any

    def __call__(self, value: Any) -> Any:
        return self.check(value)


def address_arg(value: Any) -> str:
    if not is_address(value):
        raise ArgError(f"{value!r} is not an address (40 lower-case hex characters)")
    return value


def optional_address_arg(value: Any) -> str:
    """An address, or "" for none."""
    if value == "" or is_address(value):
        return value
    raise ArgError(f"{value!r} is neither empty nor an address")


def amount_arg(value: Any) -> int:
    """A positive integer number of token units."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ArgError(f"expected an integer number of units, got {type(value).__name__}")
    if not 0 < value <= MAX_AMOUNT:
        raise ArgError(f"{value} is not in [1, {MAX_AMOUNT}]")
    return value


def int_arg(low: int, high: int) -> ArgCheck:
    """An integer in [low, high]."""

    def check(value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ArgError(f"expected an integer, got {type(value).__name__}")
        if not low <= value <= high:
            raise ArgError(f"{value} is not in [{low}, {high}]")
        return value

    return check


def bool_arg(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ArgError(f"expected true or false, got {type(value).__name__}")
    return value


def text_arg(max_chars: int, pattern: str = r"[\x20-\x7e]*") -> ArgCheck:
    """A string of at most `max_chars` characters that fully matches `pattern`."""
    compiled = re.compile(pattern)

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise ArgError(f"expected a string, got {type(value).__name__}")
        if len(value) > max_chars:
            raise ArgError(f"longer than {max_chars} characters")
        if not compiled.fullmatch(value):
            raise ArgError(f"{value[:40]!r} is not of the form {pattern}")
        return value

    return check


def list_arg(item: ArgCheck, max_items: int, unique: bool = False) -> ArgCheck:
    """A list of at most `max_items` items, each passing `item` (a tuple once checked)."""

    def check(value: Any) -> tuple[Any, ...]:
        if not isinstance(value, list | tuple):
            raise ArgError(f"expected a list, got {type(value).__name__}")
        if len(value) > max_items:
            raise ArgError(f"more than {max_items} items")
        checked = []
        for index, element in enumerate(value):
            try:
                checked.append(item(element))
            except ArgError as exc:
                raise ArgError(f"item {index}: {exc}") from None
        if unique and len(set(checked)) != len(checked):
            raise ArgError("items must be distinct")
        return tuple(checked)

    return check


def query_address(data: bytes) -> str:
    """Query data that must be an address (as ASCII)."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        text = ""
    if not is_address(text):
        raise QueryError(Code.INVALID_QUERY, f"query data {data[:64]!r} is not an address")
    return text


def query_filters(data: bytes, allowed: tuple[str, ...]) -> dict[str, str]:
    """Query data of the form `key=value&key=value`, each key one of `allowed`, once."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise QueryError(Code.INVALID_QUERY, "query data must be ASCII key=value&...") from None
    filters: dict[str, str] = {}
    for part in filter(None, text.split("&")):
        name, sep, value = part.partition("=")
        if not sep or name not in allowed or name in filters:
            raise QueryError(
                Code.INVALID_QUERY,
                f"{part[:40]!r}: expected one of {', '.join(allowed)} as key=value, each once",
            )
        filters[name] = value
    return filters
