"""`testnet up`'s supervision of its node processes, and the run file other shells read.

What lives here:

- `RestartBackoff`: when to start a dead node again. Pure: the caller passes how long
  the node stayed up, so the policy is tested without a clock.
- `RunFile` / `NodeRun`: HOME/testnet.json, what `up` writes (atomically) for
  `testnet status` and `testnet stop` in another shell: the supervisor's pid and each
  node's pid, home, last exit code and restarts.
- `is_node_process` / `is_supervisor_process`: whether a pid from the run file still is
  that process, so a pid the kernel has since reused is never signalled.
- `Supervisor`: the I/O shell. It starts one `cloudchain node start` per home with its
  output appended to HOME/nodeN/node.log, follows the logs, notices exits, restarts
  (with `restart`) and stops everything on KeyboardInterrupt.

It does not print: lines and events go to the caller's callbacks (cli/node_commands.py
decides what the console shows), and it does not talk to the nodes' RPC (the CLI does,
over the client; node/ does not import client/).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cloudchain.fsutil import replace_file
from cloudchain.node.processes import STOP_WAIT_S, start_node_process, stop_node_processes

RUN_FILE_NAME = "testnet.json"
RUN_FILE_VERSION = 1
LOG_NAME = "node.log"

# Restart backoff: 1 s, 2 s, 4 s ... up to 30 s; a node that stayed up a minute is
# treated as healthy again and its next restart waits 1 s (supervisord's startsecs and
# systemd's RestartSec/RestartSteps, reduced to the three numbers that matter here).
BACKOFF_INITIAL_S = 1.0
BACKOFF_MAX_S = 30.0
BACKOFF_RESET_AFTER_S = 60.0

DEATH_LOG_LINES = 10  # the lines of a dead node's log `up` shows
POLL_S = 0.2  # how often `up` looks at its processes and the logs grow
TAIL_BYTES_MAX = 256 * 1024  # how far back from a log's end a search for its errors reads


class RunFileError(Exception):
    """The run file is missing or is not one `testnet up` wrote."""


# --- the restart policy -----------------------------------------------------------------


@dataclass
class RestartBackoff:
    """Exponential backoff for one node: each exit doubles the wait before the next
    start, up to `max_s`; an exit after `reset_after_s` of uptime starts over."""

    initial_s: float = BACKOFF_INITIAL_S
    max_s: float = BACKOFF_MAX_S
    reset_after_s: float = BACKOFF_RESET_AFTER_S
    failures: int = 0  # exits since the node last stayed up `reset_after_s`

    def __post_init__(self) -> None:
        assert 0 < self.initial_s <= self.max_s
        assert self.reset_after_s > 0

    def next_delay_s(self, uptime_s: float) -> float:
        """The wait before restarting a node that exited after `uptime_s` of running."""
        assert uptime_s >= 0
        if uptime_s >= self.reset_after_s:
            self.failures = 0
        delay_s = min(self.initial_s * 2 ** min(self.failures, 32), self.max_s)
        self.failures += 1
        return delay_s


# --- the run file -----------------------------------------------------------------------


@dataclass(frozen=True)
class NodeRun:
    """One node as the supervisor last saw it. `pid` is the last process's, also after
    it exited (`running` false); `log_offset` is where that process's output begins in
    its node.log (the log is appended to across runs)."""

    name: str
    home: str
    pid: int
    running: bool
    started_at: str  # RFC 3339, UTC
    log_offset: int = 0
    restarts: int = 0
    last_exit_code: int | None = None


@dataclass(frozen=True)
class RunFile:
    supervisor_pid: int
    home: str
    restart: bool
    nodes: tuple[NodeRun, ...]
    version: int = RUN_FILE_VERSION

    def node(self, name: str) -> NodeRun | None:
        return next((n for n in self.nodes if n.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: object) -> RunFile:
        """Raises ValueError naming what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("expected an object")
        if data.get("version") != RUN_FILE_VERSION:
            raise ValueError(f"version {data.get('version')!r}, expected {RUN_FILE_VERSION}")
        nodes = data.get("nodes")
        if not isinstance(nodes, list):
            raise ValueError("nodes: expected a list")
        return cls(
            supervisor_pid=_typed(data, "supervisor_pid", int),
            home=_typed(data, "home", str),
            restart=_typed(data, "restart", bool),
            nodes=tuple(_node_run(n, i) for i, n in enumerate(nodes)),
        )

    def write(self, path: Path) -> None:
        """Write atomically: a reader sees the old file or the new one, never a part."""
        replace_file(path, json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def read(cls, path: Path) -> RunFile:
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise RunFileError(f"no run file {path} (testnet up is not running)") from None
        except OSError as exc:
            raise RunFileError(f"cannot read {path}: {exc.strerror}") from None
        try:
            return cls.from_json(json.loads(text))
        except ValueError as exc:  # json.JSONDecodeError is one
            raise RunFileError(
                f"{path} is not a testnet up run file ({exc}); remove it if no "
                "testnet up is running"
            ) from None


def _typed(data: dict[str, Any], key: str, kind: type, optional: bool = False) -> Any:
    value = data.get(key)
    if value is None and optional:
        return None
    # bool is an int: a pid of `true` is as wrong as a pid of "12"
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"{key}: expected {kind.__name__}, got {value!r}")
    return value


def _node_run(data: object, index: int) -> NodeRun:
    if not isinstance(data, dict):
        raise ValueError(f"nodes[{index}]: expected an object")
    return NodeRun(
        name=_typed(data, "name", str),
        home=_typed(data, "home", str),
        pid=_typed(data, "pid", int),
        running=_typed(data, "running", bool),
        started_at=_typed(data, "started_at", str),
        log_offset=_typed(data, "log_offset", int),
        restarts=_typed(data, "restarts", int),
        last_exit_code=_typed(data, "last_exit_code", int, optional=True),
    )


def run_file_path(home: Path) -> Path:
    return home / RUN_FILE_NAME


# --- whose pid is it --------------------------------------------------------------------


def process_command(pid: int) -> list[str] | None:
    """The command line of a live process, None when there is none (a zombie has none)."""
    if pid <= 0:
        return None
    proc = Path("/proc")
    if proc.is_dir():
        try:
            raw = (proc / str(pid) / "cmdline").read_bytes()
        except OSError:  # no such process, or not ours to read
            return None
        return raw.rstrip(b"\0").decode(errors="replace").split("\0") if raw else None
    # No /proc (macOS, BSD): ps, split on spaces, which is enough for the checks below.
    result = subprocess.run(
        ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False
    )
    return result.stdout.split() or None


def is_node_process(pid: int, home: str | Path) -> bool:
    """Whether `pid` is a live `cloudchain node start` of `home` (an absolute path, as
    the supervisor starts them)."""
    command = process_command(pid)
    return command is not None and _is_cloudchain(command) and str(home) in command


def is_supervisor_process(pid: int) -> bool:
    """Whether `pid` is a live `cloudchain testnet up`."""
    command = process_command(pid)
    return command is not None and _is_cloudchain(command) and "testnet up" in " ".join(command)


def _is_cloudchain(command: Sequence[str]) -> bool:
    return any("cloudchain" in word for word in command)


def signal_name(code: int | None) -> str:
    """' (SIGKILL)' for an exit code of -9 or 137, '' for a plain exit code."""
    if code is None:
        return ""
    number = -code if code < 0 else code - 128 if 128 < code < 160 else 0
    try:
        return f" ({signal.Signals(number).name})" if number else ""
    except ValueError:
        return ""


# --- reading a node's log ---------------------------------------------------------------


def read_log_lines(path: Path, since: int = 0) -> list[str]:
    """The lines of the log from byte `since`, at most TAIL_BYTES_MAX from the end."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            start = max(since, size - TAIL_BYTES_MAX, 0)
            f.seek(start)
            data = f.read()
    except OSError:
        return []
    lines = data.decode(errors="replace").splitlines()
    if start > since and lines:
        lines = lines[1:]  # the first is probably cut
    return [line for line in lines if line.strip()]


def log_level(line: str) -> str | None:
    """'error' or 'warning' for such a line of a node's log (plain or JSON format, or
    the `error: ...` the node prints before its log is set up), None for others."""
    if line.startswith("{"):
        try:
            level = json.loads(line).get("level")
        except (ValueError, AttributeError):
            return None
        return {"error": "error", "critical": "error", "warning": "warning"}.get(level)
    if line.startswith(("ERROR ", "CRITICAL ", "error: ")) or line.startswith("Traceback"):
        return "error"
    if line.startswith("WARNING "):
        return "warning"
    return None


def last_log_line(lines: Sequence[str], levels: tuple[str, ...]) -> str | None:
    return next((line for line in reversed(lines) if log_level(line) in levels), None)


# --- the supervisor ---------------------------------------------------------------------

OnLine = Callable[[str, str], None]  # (node name, a line of its log)
OnEvent = Callable[[str, str], None]  # (node name, what happened to it)


@dataclass
class _Slot:
    """One node: its current process (None while it is dead) and what the run file says."""

    name: str
    home: Path
    backoff: RestartBackoff
    process: subprocess.Popen[str] | None = None
    started_s: float = 0.0  # monotonic
    restart_at_s: float | None = None  # monotonic
    run: NodeRun | None = None
    tail: threading.Thread | None = field(default=None, repr=False)

    @property
    def log(self) -> Path:
        return self.home / LOG_NAME


class Supervisor:
    """Runs `node_homes` until KeyboardInterrupt (then stops them and returns 0) or,
    without `restart`, until every node has exited (returns 1, leaving the run file so
    `testnet status` can show why)."""

    def __init__(
        self,
        home: Path,
        node_homes: Sequence[Path],
        *,
        restart: bool,
        on_line: OnLine,
        on_event: OnEvent,
        backoff: Callable[[], RestartBackoff] = RestartBackoff,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.home = home.resolve()
        self.restart = restart
        self.on_line = on_line
        self.on_event = on_event
        self.clock = clock
        self.slots = [_Slot(h.name, h.resolve(), backoff()) for h in node_homes]
        self._stopping = threading.Event()

    @property
    def run_file(self) -> Path:
        return run_file_path(self.home)

    def run(self) -> int:
        completed = False
        try:
            for slot in self.slots:
                self._start(slot)
            self._write_run_file()
            for slot in self.slots:
                slot.tail = threading.Thread(target=self._follow, args=(slot,), daemon=True)
                slot.tail.start()
            while self.restart or any(s.process is not None for s in self.slots):
                self._check(self.clock())
                time.sleep(POLL_S)
            completed = True
            return 1
        except KeyboardInterrupt:
            return 0
        finally:
            self._stop_all(remove_run_file=not completed)

    def _start(self, slot: _Slot) -> None:
        with slot.log.open("ab") as log:
            offset = log.tell()
            restarts = 0 if slot.run is None else slot.run.restarts + 1
            log.write(f"--- {_now()} testnet up: start {restarts + 1} ---\n".encode())
            log.flush()
            slot.process = start_node_process(slot.home, log, own_session=True)
        slot.started_s = self.clock()
        slot.run = NodeRun(
            name=slot.name,
            home=str(slot.home),
            pid=slot.process.pid,
            running=True,
            started_at=_now(),
            log_offset=offset,
            restarts=restarts,
            last_exit_code=None if slot.run is None else slot.run.last_exit_code,
        )

    def _check(self, now_s: float) -> None:
        changed = False
        for slot in self.slots:
            if slot.process is not None and slot.process.poll() is not None:
                self._on_exit(slot, slot.process.returncode, now_s)
                changed = True
            if slot.restart_at_s is not None and now_s >= slot.restart_at_s:
                slot.restart_at_s = None
                self._start(slot)
                assert slot.run is not None
                self.on_event(
                    slot.name, f"restarted: pid {slot.run.pid} (restart {slot.run.restarts})"
                )
                changed = True
        if changed:
            self._write_run_file()

    def _on_exit(self, slot: _Slot, code: int, now_s: float) -> None:
        assert slot.run is not None
        slot.process = None
        slot.run = dataclasses.replace(slot.run, running=False, last_exit_code=code)
        lines = read_log_lines(slot.log, slot.run.log_offset)[-DEATH_LOG_LINES:]
        self.on_event(
            slot.name,
            f"exited with code {code}{signal_name(code)} (pid {slot.run.pid}); "
            f"last {len(lines)} lines of {slot.log}:",
        )
        for line in lines:
            self.on_event(slot.name, f"  {line}")
        if self.restart:
            delay_s = slot.backoff.next_delay_s(max(0.0, now_s - slot.started_s))
            slot.restart_at_s = now_s + delay_s
            self.on_event(slot.name, f"restarting in {delay_s:g} s")
        else:
            running = sum(s.process is not None for s in self.slots)
            self.on_event(
                slot.name,
                f"not restarted (no --restart); {running} of {len(self.slots)} nodes running",
            )

    def _write_run_file(self) -> None:
        runs = tuple(s.run for s in self.slots if s.run is not None)
        RunFile(os.getpid(), str(self.home), self.restart, runs).write(self.run_file)

    def _stop_all(self, remove_run_file: bool) -> None:
        """SIGTERM every node, wait, SIGKILL the rest; then let the log followers read
        to the end (the nodes' last lines), and remove the run file."""
        stop_node_processes([s.process for s in self.slots if s.process is not None])
        for slot in self.slots:
            if slot.process is not None and slot.run is not None:
                code = slot.process.returncode
                slot.run = dataclasses.replace(slot.run, running=False, last_exit_code=code)
                slot.process = None
        self._stopping.set()
        for slot in self.slots:
            if slot.tail is not None:
                slot.tail.join(timeout=2)
        if remove_run_file:
            with contextlib.suppress(FileNotFoundError):
                self.run_file.unlink()
        else:
            with contextlib.suppress(OSError):
                self._write_run_file()

    def _follow(self, slot: _Slot) -> None:
        """Hand each new line of the node's log to on_line, from where this run began,
        until the supervisor stops and the log is read to its end."""
        assert slot.run is not None
        try:
            with slot.log.open("rb") as f:
                f.seek(slot.run.log_offset)
                partial = b""
                while True:
                    chunk = f.readline()
                    if chunk.endswith(b"\n"):
                        self.on_line(slot.name, (partial + chunk).decode(errors="replace"))
                        partial = b""
                    elif chunk:
                        partial += chunk
                    elif self._stopping.is_set():
                        return
                    else:
                        time.sleep(POLL_S / 2)
        except (OSError, ValueError):  # the log went away, or our console did
            return


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# --- stopping from another shell --------------------------------------------------------


@dataclass(frozen=True)
class Stopped:
    """What `stop_testnet` did to one process."""

    name: str  # "testnet up" or the node's name
    pid: int
    outcome: str  # "stopped", "killed" or "not running"


def stop_testnet(run: RunFile, wait_s: float = STOP_WAIT_S + 5) -> list[Stopped]:
    """SIGTERM the supervisor and every node of `run` that still is the process the run
    file names, wait up to `wait_s` for them to go, SIGKILL the rest. The supervisor gets
    its signal first, so that it stops supervising (and restarting) before its nodes go;
    its own stop of the nodes allows STOP_WAIT_S, hence the longer default wait."""
    targets: list[tuple[str, int, Callable[[], bool]]] = [
        ("testnet up", run.supervisor_pid, lambda: is_supervisor_process(run.supervisor_pid))
    ]
    for node in run.nodes:
        targets.append((node.name, node.pid, _node_check(node)))
    live = [(name, pid, alive) for name, pid, alive in targets if alive()]
    for _, pid, _alive in live:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while any(alive() for _, _, alive in live) and time.monotonic() < deadline:
        time.sleep(0.1)
    outcomes = {pid: "not running" for _, pid, _ in targets}
    for _, pid, alive in live:
        outcomes[pid] = "stopped"
        if alive():  # checked again: never a pid that has meanwhile become another process
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            outcomes[pid] = "killed"
    return [Stopped(name, pid, outcomes[pid]) for name, pid, _ in targets]


def _node_check(node: NodeRun) -> Callable[[], bool]:
    return lambda: is_node_process(node.pid, node.home)
