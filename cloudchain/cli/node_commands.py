"""`cloudchain node start` and `cloudchain testnet up|status|stop`: nodes as OS processes.

The supervision itself (restarts, the run file HOME/testnet.json, whose pid is whose)
is node/supervisor.py's; this is the console and the status table."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import signal
import sys
import threading
from pathlib import Path

from cloudchain.cli.table import format_table
from cloudchain.node.config import NodeConfig
from cloudchain.node.logs import configure_logging
from cloudchain.node.supervisor import (
    LOG_NAME,
    NodeRun,
    RunFile,
    RunFileError,
    Supervisor,
    is_node_process,
    is_supervisor_process,
    last_log_line,
    read_log_lines,
    run_file_path,
    signal_name,
    stop_testnet,
)


def run_node(home: Path) -> int:
    """Run one node until SIGINT or SIGTERM, or until its disk fails (then it exits with
    STORAGE_FAILURE_EXIT, node/storage_failure.py)."""
    config = NodeConfig.load(home / "config" / "config.toml")
    configure_logging(config.log)
    # Past a file size limit (RLIMIT_FSIZE) a write then fails with EFBIG, which the node
    # handles as a full disk, instead of the signal killing the process.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency; this is a fallback
        pass
    return asyncio.run(_serve(home, config))


async def _serve(home: Path, config: NodeConfig) -> int:
    from cloudchain.node.runtime import Node
    from cloudchain.node.sign_state import SignStateError
    from cloudchain.node.storage_failure import STORAGE_FAILURE_EXIT, describe, failure_kind
    from cloudchain.storage.wal import WALError

    try:
        node = Node(home, config)
    except SignStateError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    except OSError as exc:  # the store or the WAL cannot be opened or recovered
        print(
            f"error: {failure_kind(exc)}: cannot open the node's data: {describe(exc)}",
            file=sys.stderr,
            flush=True,
        )
        return STORAGE_FAILURE_EXIT
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await node.start()
    except (OSError, WALError) as exc:  # recovery's WAL rewrite or the store's writes
        node.fail(exc)
    else:
        print(
            f"node {config.moniker} started: p2p {config.p2p.listen_address}, "
            f"rpc http://{config.rpc.listen_address}",
            flush=True,
        )
        stopping = asyncio.ensure_future(stop.wait())
        failing = asyncio.ensure_future(node.failed.wait())
        await asyncio.wait((stopping, failing), return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        failing.cancel()
    await node.stop()
    height = node.app.info().height
    if node.failure is not None:
        print(f"node {config.moniker} stopped on a storage failure at height {height}", flush=True)
        return STORAGE_FAILURE_EXIT
    print(f"node {config.moniker} stopped at height {height}", flush=True)
    return 0


def run_testnet(home: Path, restart: bool = False) -> int:
    """Start every node under `home` as its own process and supervise them (see
    node/supervisor.py) until Ctrl-C or SIGTERM (0), or until all have exited (1)."""
    node_homes = _node_homes(home)
    if not node_homes:
        return 2
    try:
        previous = RunFile.read(run_file_path(home))
    except RunFileError:  # none, or unreadable: this run writes a new one
        previous = None
    if previous is not None and (live := _live_pids(previous)):
        print(
            f"error: testnet up is already running under {home} (pids "
            f"{', '.join(map(str, live))}); cloudchain testnet stop --home {home} first",
            file=sys.stderr,
        )
        return 1
    for node_home in node_homes:
        config = NodeConfig.load(node_home / "config" / "config.toml")
        print(f"{node_home.name}: rpc http://{config.rpc.listen_address}", flush=True)
    console = _Console()
    supervisor = Supervisor(
        home, node_homes, restart=restart, on_line=console.log_line, on_event=console.event
    )
    code = supervisor.run()
    if code:
        console.event("up", "every node has exited; see cloudchain testnet status")
    return code


def testnet_status(home: Path, as_json: bool = False) -> int:
    """A table of the nodes under `home`: process, height, peers, last error."""
    node_homes = _node_homes(home)
    if not node_homes:
        return 2
    path = run_file_path(home)
    try:
        run: RunFile | None = RunFile.read(path)
    except RunFileError as exc:
        if path.exists():
            print(f"error: {exc}", file=sys.stderr)
            return 1
        run = None
    rows = asyncio.run(_status_rows(node_homes, run))
    supervisor = None
    if run is not None:
        alive = is_supervisor_process(run.supervisor_pid)
        supervisor = {"pid": run.supervisor_pid, "alive": alive, "restart": run.restart}
    if as_json:
        nodes = [dataclasses.asdict(row) for row in rows]
        print(json.dumps({"supervisor": supervisor, "nodes": nodes}, indent=2))
        return 0
    if supervisor is None:
        print(f"testnet up: not running (no {path})")
    else:
        state = "running" if supervisor["alive"] else "not running"
        restarts = "on" if supervisor["restart"] else "off"
        print(f"testnet up: pid {run.supervisor_pid} {state}, --restart {restarts}")
    headers = ("NODE", "PID", "STATE", "HEIGHT", "PEERS", "CATCHING_UP", "LAST_ERROR")
    table = []
    for row in rows:
        pid = "-" if row.pid is None else f"{row.pid} {'alive' if row.alive else 'dead'}"
        table.append(
            (
                row.name,
                pid,
                row.state,
                _dash(row.height),
                _dash(row.peers),
                _dash(None if row.catching_up is None else str(row.catching_up).lower()),
                _dash(row.last_error and _clip(row.last_error, LAST_ERROR_WIDTH)),
            )
        )
    print(format_table(headers, table))
    return 0


def testnet_stop(home: Path) -> int:
    """Stop the `testnet up` of `home` and its nodes, from any shell, by the run file."""
    if not _node_homes(home):
        return 2
    path = run_file_path(home)
    try:
        run = RunFile.read(path)
    except RunFileError as exc:
        if path.exists():
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"nothing to stop: {exc}")
        return 0
    results = stop_testnet(run)
    for result in results:
        print(f"{result.name} (pid {result.pid}): {result.outcome}")
    if all(r.outcome == "not running" for r in results):
        print("nothing was running")
    # testnet up removes it when it stops; not if it had died (SIGKILL) before
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return 0


LAST_ERROR_WIDTH = 72
RPC_TIMEOUT_S = 2.0  # a node that does not answer `status` in this is "not answering"


@dataclasses.dataclass(frozen=True)
class NodeStatus:
    """One row of `testnet status`; None is "-"."""

    name: str
    pid: int | None
    alive: bool
    state: str  # running, not answering, not running
    rpc: str
    height: int | None = None
    peers: int | None = None
    catching_up: bool | None = None
    restarts: int = 0
    last_exit_code: int | None = None
    last_error: str | None = None


async def _status_rows(node_homes: list[Path], run: RunFile | None) -> list[NodeStatus]:
    return list(await asyncio.gather(*(_node_status(h, run) for h in node_homes)))


async def _node_status(node_home: Path, run: RunFile | None) -> NodeStatus:
    from cloudchain.client import Client, RPCClientError

    config = NodeConfig.load(node_home / "config" / "config.toml")
    rpc = "http://" + config.rpc.listen_address.replace("0.0.0.0:", "127.0.0.1:")
    record = None if run is None else run.node(node_home.name)
    alive = record is not None and is_node_process(record.pid, record.home)
    lines = read_log_lines(node_home / LOG_NAME, 0 if record is None else record.log_offset)
    row = NodeStatus(
        name=node_home.name,
        pid=None if record is None else record.pid,
        alive=alive,
        state="not running",
        rpc=rpc,
        restarts=0 if record is None else record.restarts,
        last_exit_code=None if record is None else record.last_exit_code,
        last_error=_last_error(lines, record, alive),
    )
    if not alive:
        return row
    client = Client(rpc)
    try:
        status, net = await asyncio.wait_for(
            asyncio.gather(client.status(), client.net_info()), RPC_TIMEOUT_S
        )
    except (RPCClientError, TimeoutError):
        return dataclasses.replace(row, state="not answering")
    return dataclasses.replace(
        row,
        state="running",
        height=status.latest_block_height,
        peers=net.n_peers,
        catching_up=status.catching_up,
    )


def _last_error(lines: list[str], record: NodeRun | None, alive: bool) -> str | None:
    """A dead node's exit code and last ERROR line; a live one's last ERROR or WARNING."""
    if record is not None and not alive:
        code = record.last_exit_code
        exit_text = "exited" if code is None else f"exit {code}{signal_name(code)}"
        error = last_log_line(lines, ("error",))
        return exit_text if error is None else f"{exit_text}: {_readable(error)}"
    line = last_log_line(lines, ("error", "warning"))
    return None if line is None else _readable(line)


def _readable(line: str) -> str:
    """A log line without its time and module: `ERROR message k=v`."""
    if line.startswith("{"):
        with contextlib.suppress(ValueError, AttributeError):
            record = json.loads(line)
            extra = [f"{k}={v}" for k, v in record.items() if k not in ("level", "ts", "module")]
            return " ".join([str(record.get("level", "")).upper(), *extra])
    level, _, rest = line.partition(" ")
    if level in ("ERROR", "WARNING", "CRITICAL") and ": " in rest:
        return f"{level} {rest.split(': ', 1)[1]}"
    return line


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _dash(value: object) -> str:
    return "-" if value is None else str(value)


def _node_homes(home: Path) -> list[Path]:
    """The node directories testnet init wrote under `home`, or [] after saying why."""
    node_homes = sorted(p for p in home.glob("node*") if (p / "config" / "config.toml").exists())
    if not node_homes:
        print(
            f"error: no node directories under {home} (run cloudchain testnet init)",
            file=sys.stderr,
        )
    return node_homes


def _live_pids(run: RunFile) -> list[int]:
    live = [run.supervisor_pid] if is_supervisor_process(run.supervisor_pid) else []
    return live + [n.pid for n in run.nodes if is_node_process(n.pid, n.home)]


class _Console:
    """`testnet up`'s console: the nodes' lines worth showing and the supervisor's
    events, each prefixed with the node's name, one whole line at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def log_line(self, name: str, line: str) -> None:
        message = _worth_showing(line)
        if message is not None:
            self._print(name, message)

    def event(self, name: str, message: str) -> None:
        self._print(name, message)

    def _print(self, name: str, message: str) -> None:
        # our reader may have gone away (e.g. | head)
        with self._lock, contextlib.suppress(BrokenPipeError, ValueError):
            print(f"{name:>6} | {message}", flush=True)


def _worth_showing(line: str) -> str | None:
    """A node's log line as `testnet up` shows it (commits, warnings, errors, start and
    stop), in either log format; None for the rest."""
    if line.startswith("{"):
        try:
            record = json.loads(line)
        except ValueError:
            return None
        if record.get("msg") != "committed" and record.get("level") not in ("warning", "error"):
            return None
        extra = {k: v for k, v in record.items() if k not in ("level", "ts", "module", "msg")}
        return " ".join([record.get("msg", ""), *(f"{k}={v}" for k, v in extra.items())])
    if "committed height=" in line or "WARNING" in line or "ERROR" in line or "node " in line:
        return line.rstrip().split(": ", 1)[-1]
    return None
