"""The real node is a NodeView: every member the RPC's protocols declare (rpc/view.py)
exists on the objects a Node holds, as what the protocol says it is.

No type checker runs on the tree (`make lint` is ruff), and runtime.py hands the RPC
server `self`, so without this a renamed attribute of Node, ChainStore, Application,
Mempool, PeerManager, NodeMetrics, BlobStore or BlobExchange would only show in a
network test. The check: a property is an attribute that is not a method (a property
whose type is a protocol of view.py is checked in turn, on its value); a method is
callable, async where the protocol's is, and takes the protocol's parameters by name,
kind and place (more are allowed if they have defaults). A Node is built from a
`testnet init` home and not started: the members that stay None until `start` (the
blob store and the exchange) are checked on the classes `start` puts there. The
checker is shown to reject fakes that miss, mistype or misname members.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Mapping
from types import UnionType
from typing import Any

from cloudchain.blobs.exchange import BlobExchange
from cloudchain.blobs.store import BlobStore
from cloudchain.node.rpc import view
from cloudchain.node.rpc.view import BlobExchanger, ChainReader, NodeView
from cloudchain.node.runtime import Node
from cloudchain.node.testnet import init_testnet

# What `Node.start` puts where the unstarted node holds None (runtime.py).
CLASSES_AFTER_START: dict[str, type] = {
    "NodeView.blobs": BlobStore,
    "NodeView.exchange": BlobExchange,
}
# What typing.Protocol adds to every protocol's namespace; not declared members.
PROTOCOL_MACHINERY = frozenset({"__init__", "__subclasshook__"})
POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_MISSING = object()


# --- the checker ---------------------------------------------------------------------------


def is_protocol(value: Any) -> bool:
    return isinstance(value, type) and bool(getattr(value, "_is_protocol", False))


def declared_members(protocol: type) -> dict[str, Any]:
    """name -> the property or function a protocol declares (None: a plain annotation),
    its protocol bases' too."""
    members: dict[str, Any] = {}
    for cls in reversed(protocol.__mro__):
        if not is_protocol(cls) or cls is typing.Protocol:
            continue
        for name in vars(cls).get("__annotations__", {}):
            members.setdefault(name, None)
        for name, value in vars(cls).items():
            if name not in PROTOCOL_MACHINERY and (
                isinstance(value, property) or inspect.isfunction(value)
            ):
                members[name] = value
    return members


def is_attribute(declared: Any) -> bool:
    """Whether a declared member is read as an attribute (a property, or an annotation)."""
    return declared is None or isinstance(declared, property)


def attribute_type(protocol: type, name: str, declared: Any) -> Any:
    """The type an attribute of `protocol` is declared with."""
    if declared is None:
        return typing.get_type_hints(protocol)[name]
    return typing.get_type_hints(declared.fget)["return"]


def protocols_in(hint: Any) -> list[type]:
    """The protocols a type names: `P`, or `P | None`."""
    args = typing.get_args(hint) if isinstance(hint, UnionType) else (hint,)
    return [a for a in args if is_protocol(a)]


def missing_members(
    protocol: type, target: Any, where: str, after_start: Mapping[str, type] = {}
) -> list[str]:
    """What `target` lacks of `protocol`, each problem naming the member by its path
    from `where`. `target` is an object, or a class (whose attributes must then be on
    the class, as properties, and are not followed); `after_start` names the class of
    a member that is None until the node starts, by its path."""
    problems: list[str] = []
    for name, declared in declared_members(protocol).items():
        path = f"{where}.{name}"
        if is_attribute(declared):
            hint = attribute_type(protocol, name, declared)
            problems += _attribute_problems(path, target, name, hint, after_start)
        else:
            problems += _method_problems(path, target, name, declared)
    return problems


def _attribute_problems(
    path: str, target: Any, name: str, hint: Any, after_start: Mapping[str, type]
) -> list[str]:
    value = getattr(target, name, _MISSING)
    if value is _MISSING:
        return [f"{path}: missing on {_name(target)}"]
    if inspect.ismethod(value) or inspect.isfunction(value):
        return [f"{path}: a method on {_name(target)}, the protocol reads an attribute"]
    protocols = protocols_in(hint)
    if not protocols or isinstance(target, type):  # a class's property: no value to follow
        return []
    if value is None:
        if path not in after_start:
            return [f"{path}: None on {_name(target)}, its members cannot be checked"]
        value = after_start[path]
    return [p for sub in protocols for p in missing_members(sub, value, path, after_start)]


def _method_problems(path: str, target: Any, name: str, declared: Any) -> list[str]:
    real = getattr(target, name, _MISSING)
    if real is _MISSING:
        return [f"{path}: missing on {_name(target)}"]
    if not callable(real) or isinstance(inspect.getattr_static(target, name), property):
        return [f"{path}: not a method on {_name(target)}"]
    if inspect.iscoroutinefunction(declared) and not inspect.iscoroutinefunction(real):
        return [f"{path}: not async on {_name(target)}"]
    want = list(inspect.signature(declared).parameters.values())[1:]  # after self
    have = list(inspect.signature(real).parameters.values())
    if isinstance(target, type):
        have = have[1:]  # a function on the class: its self
    if not _takes(want, have):
        return [f"{path}: takes ({_params(have)}), the protocol ({_params(want)})"]
    return []


def _takes(want: list[inspect.Parameter], have: list[inspect.Parameter]) -> bool:
    """Whether a callable with parameters `have` takes every call the protocol's
    `want` allows: the same names and kinds, positional ones in the same places,
    defaults where the protocol has them, and nothing more that is required."""
    by_name = {p.name: p for p in have}
    for place, wanted in enumerate(want):
        real = by_name.get(wanted.name)
        if real is None or real.kind != wanted.kind:
            return False
        if wanted.kind in POSITIONAL and have.index(real) != place:
            return False
        if (
            wanted.default is not inspect.Parameter.empty
            and real.default is inspect.Parameter.empty
        ):
            return False
    named = {p.name for p in want}
    return all(
        p.name in named
        or p.default is not inspect.Parameter.empty
        or p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        for p in have
    )


def _params(parameters: list[inspect.Parameter]) -> str:
    return ", ".join(str(p).split(":")[0].split("=")[0].strip() for p in parameters)


def _name(target: Any) -> str:
    return target.__name__ if isinstance(target, type) else type(target).__name__


# --- the real node -------------------------------------------------------------------------


def test_a_node_has_every_member_of_node_view_and_of_the_protocols_it_names(tmp_path):
    (home,) = init_testnet(tmp_path / "net", 1)
    node = Node(home)
    try:
        assert node.blobs is None and node.exchange is None  # not started: see below
        problems = missing_members(NodeView, node, "NodeView", CLASSES_AFTER_START)
    finally:
        node.store.close()
    assert not problems, "Node does not satisfy NodeView:\n" + "\n".join(problems)


def test_the_walk_reaches_every_protocol_of_view_py():
    """Each protocol view.py declares is one the check above reaches from NodeView, so
    none is left unchecked."""
    declared = {v for v in vars(view).values() if is_protocol(v) and v.__module__ == view.__name__}
    reached: set[type] = set()
    todo = [NodeView]
    while todo:
        protocol = todo.pop()
        reached.add(protocol)
        for name, member in declared_members(protocol).items():
            if is_attribute(member):
                hint = attribute_type(protocol, name, member)
                todo += [p for p in protocols_in(hint) if p not in reached]
    assert declared == reached, f"not reached from NodeView: {declared - reached}"


# --- the checker can fail ------------------------------------------------------------------


class _HalfAStore:
    """A chain store gone wrong: `height` is a method, `block` names its parameter
    otherwise, `block_results` wants more, `tx_result` and `txs_with_event` are missing."""

    last_block = None

    def height(self) -> int:
        return 0

    def block(self, number: int) -> None:
        return None

    def block_height(self, block_hash: bytes) -> None:
        return None

    def block_results(self, height: int, verbose: bool) -> None:
        return None

    def app_hash_at(self, height: int) -> None:
        return None

    def tx_location(self, tx_hash: bytes) -> None:
        return None


class _BlockingExchange:
    """An exchange whose `fetch` is not async and whose `replicate` is a property."""

    def fetch(self, root: Any) -> None:
        return None

    @property
    def replicate(self) -> None:
        return None


def test_the_checker_names_each_member_missing_mistyped_or_misnamed():
    assert missing_members(ChainReader, _HalfAStore(), "store") == [
        "store.height: a method on _HalfAStore, the protocol reads an attribute",
        "store.block: takes (number), the protocol (height)",
        "store.block_results: takes (height, verbose), the protocol (height)",
        "store.tx_result: missing on _HalfAStore",
        "store.txs_with_event: missing on _HalfAStore",
    ]
    assert missing_members(BlobExchanger, _BlockingExchange, "exchange") == [
        "exchange.replicate: not a method on _BlockingExchange",
        "exchange.fetch: not async on _BlockingExchange",
    ]


def test_the_checker_follows_the_protocols_a_view_names():
    """A node whose store is half a store fails on the store's members, by their path;
    a member left None, where the protocol names another, is not taken as checked."""

    class HalfANode:
        chain_id = "test"
        key = None
        store = _HalfAStore()

    problems = missing_members(NodeView, HalfANode(), "NodeView")
    assert "NodeView.config: missing on HalfANode" in problems
    assert "NodeView.store.tx_result: missing on _HalfAStore" in problems
    assert "NodeView.submit_tx: missing on HalfANode" in problems
    assert "NodeView.key: None on HalfANode, its members cannot be checked" in problems
    assert not any(p.startswith("NodeView.chain_id") for p in problems)
