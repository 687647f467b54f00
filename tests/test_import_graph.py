"""The import graph of cloudchain: no cycle anywhere, and the layer rules that hold.

Every module under cloudchain/ is parsed (not imported) and every import counts:
at module level, under `if TYPE_CHECKING:`, and inside functions, since each is
an arrow a reader has to follow. `from pkg import name` is an arrow to the
submodule pkg.name when there is one, else to pkg; `import a.b.c` is an arrow to
the deepest module of the path; relative imports are resolved against the
importing module's package. The arrows must point down (cli -> client/agents ->
(RPC) -> node -> consensus/chaincode/network/blobs -> storage -> codec/crypto):
a cycle, or an arrow up from consensus, chaincode or client, fails with the
modules named.
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

import cloudchain

PACKAGE_DIR = Path(cloudchain.__file__).parent

# Layer rules, as docs/ARCHITECTURE.md draws them: modules under the key import nothing
# under any of its values.
ABOVE_NODE = (
    "cloudchain.cli",
    "cloudchain.bench",
    "cloudchain.sim",
    "cloudchain.client",
    "cloudchain.agents",
)
SHELL = ("cloudchain.node", "cloudchain.network", *ABOVE_NODE)
LAYERS = (
    "cloudchain.consensus",
    "cloudchain.chaincode",
    "cloudchain.storage",
    "cloudchain.blobs",
    *SHELL,
)
BASE = (
    "cloudchain.codec",
    "cloudchain.crypto",
    "cloudchain.ledger",
    "cloudchain.merkle",
    "cloudchain.genesis",
    "cloudchain.fees",
    "cloudchain.timefmt",
    "cloudchain.fsutil",
    "cloudchain.logfields",
)
# What of the blob store and of storage the chaincode may not touch: it parses CIDs
# (blobs.cid, blobs.errors) and commits through storage.chain, nothing more.
BLOB_MACHINERY = tuple(
    f"cloudchain.blobs.{name}"
    for name in (
        "store",
        "exchange",
        "flatfs",
        "pinfile",
        "leasefile",
        "importer",
        "walk",
        "traverse",
    )
)
STORAGE_FILES = (
    "cloudchain.storage.kv",
    "cloudchain.storage.wal",
    "cloudchain.storage.apphash",
    "cloudchain.storage.statecache",
)
LAYER_RULES: dict[str, tuple[str, ...]] = {
    "cloudchain.consensus": (
        *SHELL,
        "cloudchain.chaincode",
        "cloudchain.storage",
        "cloudchain.blobs",
    ),
    "cloudchain.chaincode": (*SHELL, "cloudchain.consensus", *BLOB_MACHINERY, *STORAGE_FILES),
    "cloudchain.storage": (
        *SHELL,
        "cloudchain.consensus",
        "cloudchain.chaincode",
        "cloudchain.blobs",
    ),
    "cloudchain.network": (
        *ABOVE_NODE,
        "cloudchain.node",
        "cloudchain.consensus",
        "cloudchain.chaincode",
        "cloudchain.storage",
        "cloudchain.blobs",
    ),
    "cloudchain.blobs": (
        *SHELL,
        "cloudchain.consensus",
        "cloudchain.chaincode",
        "cloudchain.storage",
    ),
    "cloudchain.node": ABOVE_NODE,
    "cloudchain.node.rpc": ("cloudchain.node.runtime", "cloudchain.node.driver"),
    "cloudchain.client": tuple(layer for layer in LAYERS if layer != "cloudchain.client"),
    "cloudchain.bench": ("cloudchain.cli",),
    # Sealing and key wrapping: pure cryptography, below every layer that uses it.
    "cloudchain.privacy": (
        *SHELL,
        "cloudchain.consensus",
        "cloudchain.chaincode",
        "cloudchain.storage",
        "cloudchain.blobs",
    ),
    # The daemons reach the network only through the client, like any requester.
    "cloudchain.agents": (
        "cloudchain.cli",
        "cloudchain.bench",
        "cloudchain.sim",
        "cloudchain.node",
        "cloudchain.network",
        "cloudchain.consensus",
        "cloudchain.storage",
        *BLOB_MACHINERY,
    ),
    # What a task asks for and returns: read alike by client, provider and oracle, so it
    # knows nothing of any of them (of the blob store, only blobs.cid, the CID parser).
    "cloudchain.workload": (
        *SHELL,
        "cloudchain.consensus",
        "cloudchain.chaincode",
        "cloudchain.storage",
        *BLOB_MACHINERY,
    ),
    "cloudchain.sim": ("cloudchain.cli", "cloudchain.bench"),
    # The web UI's files: the page reads the node over HTTP, never its Python.
    "cloudchain.ui": LAYERS,
    **{module: LAYERS for module in BASE},
}

Graph = dict[str, set[str]]


# --- building the graph ----------------------------------------------------------------------


def modules_under(package_dir: Path) -> dict[str, Path]:
    """Every module of the package at `package_dir`, by dotted name (a package is its
    __init__.py)."""
    root = package_dir.parent
    found = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _deepest_module(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of `modules` that `module` (at `path`) imports, anywhere in it."""
    package_name = module.partition(".")[0]
    is_package = path.name == "__init__.py"
    targets: set[str | None] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(_deepest_module(alias.name, modules) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.partition(".")[0] != package_name:
                continue
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                targets.add(submodule if submodule in modules else _deepest_module(source, modules))
    return {t for t in targets if t is not None and t != module}


def import_graph(package_dir: Path = PACKAGE_DIR) -> Graph:
    modules = modules_under(package_dir)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


# --- reading it --------------------------------------------------------------------------------


def strongly_connected(graph: Graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm),
    each sorted; a module never imports itself here (imports_of drops that)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(components)


def one_cycle(graph: Graph, component: list[str]) -> list[str]:
    """A shortest cycle through the first module of a strongly connected component,
    as the path start -> ... -> start (breadth first, inside the component)."""
    start, inside = component[0], set(component)
    parent: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in sorted(graph[v] & inside):
            if w == start:
                path = [v]
                while (up := parent[path[-1]]) is not None:
                    path.append(up)
                return [*reversed(path), start]
            if w not in parent:
                parent[w] = v
                queue.append(w)
    raise AssertionError(f"{component} is not strongly connected")


def describe_cycles(graph: Graph) -> list[str]:
    return [
        f"{len(c)} modules import each other: {' -> '.join(one_cycle(graph, c))}"
        for c in strongly_connected(graph)
    ]


def upward_imports(graph: Graph, rules: dict[str, tuple[str, ...]]) -> list[str]:
    """Every arrow that breaks a layer rule, as "importer -> imported"."""

    def under(module: str, package: str) -> bool:
        return module == package or module.startswith(package + ".")

    broken: list[str] = []
    for module, imported in sorted(graph.items()):
        for layer, forbidden in rules.items():
            if under(module, layer):
                broken.extend(
                    f"{module} -> {target}"
                    for target in sorted(imported)
                    if any(under(target, f) for f in forbidden)
                )
    return broken


# --- cloudchain --------------------------------------------------------------------------------


def test_cloudchain_has_no_import_cycle():
    graph = import_graph()
    assert "cloudchain.node.runtime" in graph and "cloudchain.node.rpc.server" in graph
    assert "cloudchain.node.rpc.server" in graph["cloudchain.node.runtime"]  # arrows are seen
    cycles = describe_cycles(graph)
    assert not cycles, "import cycles (counting TYPE_CHECKING and function-level imports):\n" + (
        "\n".join(cycles)
    )


def test_every_layer_imports_nothing_above_it():
    broken = upward_imports(import_graph(), LAYER_RULES)
    assert not broken, "imports against the layers:\n" + "\n".join(broken)


def test_the_rules_name_modules_that_exist():
    graph = import_graph()
    for layer, forbidden in LAYER_RULES.items():
        for name in (layer, *forbidden):
            assert any(m == name or m.startswith(name + ".") for m in graph), name


# --- the checker itself, on a package written for it -------------------------------------------


def write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_the_checker_finds_a_cycle_hidden_behind_type_checking_and_inside_a_function(tmp_path):
    package = write_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/low.py": "import os\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/a.py": "from . import b\nfrom pkg import low\n",
            "pkg/sub/b.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..top import Thing\n"
            ),
            "pkg/top.py": "def later():\n    import pkg.sub.a\n",
        },
    )
    graph = import_graph(package)
    assert graph["pkg.sub.a"] == {"pkg.sub.b", "pkg.low"}  # relative, and from pkg import module
    assert graph["pkg.sub.b"] == {"pkg.top"}  # under TYPE_CHECKING, two levels up
    assert graph["pkg.top"] == {"pkg.sub.a"}  # inside a function
    assert graph["pkg.low"] == set()  # the standard library is not ours
    assert describe_cycles(graph) == [
        "3 modules import each other: pkg.sub.a -> pkg.sub.b -> pkg.top -> pkg.sub.a"
    ]


def test_the_checker_names_the_arrows_against_the_layers(tmp_path):
    package = write_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/core/__init__.py": "",
            "pkg/core/rules.py": "from pkg.shell.server import serve\nfrom pkg import util\n",
            "pkg/shell/__init__.py": "",
            "pkg/shell/server.py": "from pkg.core import rules\n",
            "pkg/util.py": "",
        },
    )
    graph = import_graph(package)
    assert describe_cycles(graph) == [
        "2 modules import each other: pkg.core.rules -> pkg.shell.server -> pkg.core.rules"
    ]
    assert upward_imports(graph, {"pkg.core": ("pkg.shell",)}) == [
        "pkg.core.rules -> pkg.shell.server"
    ]
    assert upward_imports(graph, {"pkg.shell": ("pkg.core",)}) == [
        "pkg.shell.server -> pkg.core.rules"
    ]
