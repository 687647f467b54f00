"""The tests' own rules, read from their source with ast (nothing here is imported or run).

- Shared helpers live in tests/conftest.py or the package tests/helpers/; the top of
  tests/ holds only test modules, conftest.py and __init__.py.
- No module under tests/ imports a test module (tests/test_*.py): not a test module,
  not conftest.py, not a helper. A test module's helpers are its own or shared.
- Nothing under tests/ sleeps (time.sleep, asyncio.sleep, also in a child's script
  held in a string) but the functions of tests/helpers/waiting.py named below, the one
  audited place: a test waits for a condition with a deadline, never for time.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
HELPERS = TESTS / "helpers"
WAITING = HELPERS / "waiting.py"
CHECKER = Path(__file__).resolve()  # its examples of what is forbidden are strings of code
# The only functions that may sleep: each polls a condition under a deadline, or (the
# last) yields to the event loop for no time; their docstrings say why.
SLEEPERS = frozenset({"wait_until", "wait_until_blocking", "give_other_tasks_a_turn"})
SLEEPING_MODULES = frozenset({"time", "asyncio"})


def module_name(path: Path) -> str:
    """The dotted name a file under tests/ is imported as (tests/helpers/x.py: tests.helpers.x)."""
    parts = path.relative_to(TESTS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def owning_test_module(name: str) -> str | None:
    """The test module (tests/test_*.py) a dotted name is or lies in, if any; `test_x`
    imported bare counts too."""
    parts = name.split(".")
    if len(parts) == 1:
        return name if name.startswith("test_") else None
    if parts[0] == "tests" and parts[1].startswith("test_"):
        return ".".join(parts[:2])
    return None


def imported_names(tree: ast.AST, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, dotted name) of every module `tree` may import, relative imports resolved
    against `module`; `from P import n` yields P and P.n (n may be a submodule)."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    names: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            parent = ".".join([*base, *(node.module.split(".") if node.module else [])])
            if parent:
                names.append((node.lineno, parent))
            names.extend((node.lineno, f"{parent}.{a.name}".lstrip(".")) for a in node.names)
    return names


def imports_of_test_modules(tree: ast.AST, module: str, is_package: bool = False) -> list[str]:
    """The test modules `tree` imports, as "line: name", in order."""
    found = {
        (line, test_module)
        for line, name in imported_names(tree, module, is_package)
        if (test_module := owning_test_module(name)) is not None
    }
    return [f"{line}: {name}" for line, name in sorted(found)]


def sleeps(tree: ast.AST) -> list[tuple[int, str, ast.AST]]:
    """(line, what, node) of every sleep in `tree`: an import of a `sleep`, a reference to
    time.sleep or asyncio.sleep (however the module is named here), and the same in a
    string that holds Python source (a child process's script)."""
    modules: dict[str, str] = {}  # local name -> time or asyncio
    found: list[tuple[int, str, ast.AST]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in SLEEPING_MODULES:
                    modules[alias.asname or alias.name] = alias.name
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module in SLEEPING_MODULES
            and any(alias.name == "sleep" for alias in node.names)
        ):
            found.append((node.lineno, f"from {node.module} import sleep", node))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "sleep"
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
        ):
            found.append((node.lineno, f"{modules[node.value.id]}.sleep", node))
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and "sleep" in node.value
        ):
            try:
                script = ast.parse(node.value)
            except SyntaxError:
                continue
            for _, what, _ in sleeps(script):
                found.append((node.lineno, f"{what} in a script", node))
    return sorted(found, key=lambda f: f[0])


def enclosing_functions(tree: ast.AST) -> dict[ast.AST, str]:
    """Each node of `tree` inside a function, mapped to its outermost function's name."""
    owner: dict[ast.AST, str] = {}
    for top in ast.iter_child_nodes(tree):
        if isinstance(top, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(top):
                owner[node] = top.name
    return owner


def python_files() -> list[Path]:
    return sorted(TESTS.rglob("*.py"))


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def test_shared_helpers_live_in_conftest_or_the_helpers_package():
    stray = [
        p.name
        for p in TESTS.glob("*.py")
        if not p.name.startswith("test_") and p.name not in ("conftest.py", "__init__.py")
    ]
    assert stray == [], f"helpers belong in tests/helpers/, not at the top of tests/: {stray}"
    init = parse(HELPERS / "__init__.py")  # trivial: at most a docstring, nothing to import
    assert all(
        isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
        for statement in init.body
    ), "tests/helpers/__init__.py holds nothing but its docstring"
    assert not any(p.name.startswith("test_") for p in HELPERS.rglob("*.py"))


def test_no_module_under_tests_imports_a_test_module():
    offences = [
        f"{path.relative_to(TESTS.parent)}:{found}"
        for path in python_files()
        for found in imports_of_test_modules(
            parse(path), module_name(path), is_package=path.name == "__init__.py"
        )
    ]
    assert offences == [], "a test module imported (move what is shared to tests/helpers/):\n" + (
        "\n".join(offences)
    )


def test_nothing_under_tests_sleeps_but_the_audited_waits():
    offences = [
        f"{path.relative_to(TESTS.parent)}:{line}: {what}"
        for path in python_files()
        if path not in (WAITING, CHECKER)
        for line, what, _ in sleeps(parse(path))
    ]
    assert offences == [], "wait for a condition (tests/helpers/waiting.py), not for time:\n" + (
        "\n".join(offences)
    )
    tree = parse(WAITING)
    owner = enclosing_functions(tree)
    where = {owner.get(node, "<module>") for _, _, node in sleeps(tree)}
    assert where <= SLEEPERS, f"tests/helpers/waiting.py sleeps outside {sorted(SLEEPERS)}"
    assert where, "the audited waits no longer sleep: update SLEEPERS"


# --- the checks themselves can fail -------------------------------------------------------


def test_the_import_check_names_each_test_module_imported_however_it_is_spelt():
    source = "\n".join(
        [
            "from tests.test_rpc import call",  # 1
            "from . import test_cli",  # 2
            "from .helpers import chain",  # 3: a helper, allowed
            "import tests.test_gossip as gossip",  # 4
            "from tests import test_rpc, helpers",  # 5
            "def f():",
            "    from .test_node_network import network",  # 7
            "from tests.helpers.chain import key",  # 8: allowed
        ]
    )
    assert imports_of_test_modules(ast.parse(source), "tests.test_blob_http") == [
        "1: tests.test_rpc",
        "2: tests.test_cli",
        "4: tests.test_gossip",
        "5: tests.test_rpc",
        "7: tests.test_node_network",
    ]
    # A helper two levels down, importing upwards.
    upwards = ast.parse("from .. import test_rpc\nfrom ..test_cli import verbs")
    assert imports_of_test_modules(upwards, "tests.helpers.rpc") == [
        "1: tests.test_rpc",
        "2: tests.test_cli",
    ]


def test_the_sleep_check_finds_sleeps_under_any_name_and_in_child_scripts():
    source = "\n".join(
        [
            "import time as clock",
            "from asyncio import sleep",  # 2
            "async def f(loop):",
            "    clock.sleep(1)",  # 4
            "    await loop.run_in_executor(None, clock.sleep, 1)",  # 5: passed, not called
            "CHILD = 'import time\\ntime.sleep(0.1)'",  # 6
            "LOG = 'the node went to sleep'",  # words, not Python: fine
            "def g(node):",
            "    node.sleep()",  # 9: not time's or asyncio's
        ]
    )
    assert [(line, what) for line, what, _ in sleeps(ast.parse(source))] == [
        (2, "from asyncio import sleep"),
        (4, "time.sleep"),
        (5, "time.sleep"),
        (6, "time.sleep in a script"),
    ]
