"""Validators as real OS processes (`python -m cloudchain node start`), and waiting on
their logs.

Each process's output is read by a thread into one queue, LINES; `wait_on_logs` reads
it until a condition on the heights the logs announced holds, within a deadline, and
fails as soon as a process exits. In-process nodes are tests/helpers/network.py's.
"""

from __future__ import annotations

import dataclasses
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from cloudchain.node.config import NodeConfig
from cloudchain.node.testnet import init_testnet
from tests.helpers.network import FAST

ROOT = Path(__file__).resolve().parents[2]  # the repository: where `-m cloudchain` runs
DEADLINE_S = 90
COMMITTED = re.compile(r"committed height=(\d+)")

# (node, line) from every node's output
LINES: queue.Queue[tuple[NodeProcess, str]] = queue.Queue()


class NodeProcess:
    """`cloudchain node start` for `home`; `height` is the last commit its log announced
    (as far as `wait_on_logs` has read)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.height = 0
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cloudchain", "node", "start", "--home", str(home)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            LINES.put((self, line))
        LINES.put((self, ""))  # the process ended: wake the waiter

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def cli(*args: str, timeout_s: float = DEADLINE_S) -> subprocess.CompletedProcess[str]:
    """`python -m cloudchain ARGS` from the repository, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "cloudchain", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def fast_testnet(home: Path, validators: int, *, accounts: int = 4) -> list[Path]:
    """A testnet whose nodes use short timeouts, so tests see many blocks quickly."""
    homes = init_testnet(home, validators, accounts=accounts)
    for node_home in homes:
        path = node_home / "config" / "config.toml"
        dataclasses.replace(NodeConfig.load(path), consensus=FAST).save(path)
    return homes


def wait_on_logs(
    condition: Callable[[], object],
    processes: Sequence[NodeProcess],
    deadline_s: float = DEADLINE_S,
) -> None:
    """Read the nodes' logs as they come until `condition` holds, within the deadline
    (TimeoutError when it does not)."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"timed out; heights {[p.height for p in processes]}")
        try:
            node, line = LINES.get(timeout=remaining)
        except queue.Empty:
            continue
        match = COMMITTED.search(line)
        if match:
            node.height = max(node.height, int(match.group(1)))
        for p in processes:
            assert p.process.poll() is None, f"{p.home.name} exited: {p.process.returncode}"
