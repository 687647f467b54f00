"""Node processes on this machine: one `cloudchain node start` per home, and their stop.

What `testnet up` (node/supervisor.py), `demo` and `bench storage` share. It knows how
to start and stop a node's process; it does not know what the caller does with the nodes
once they run (each waits for their RPC itself, over the client).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

STOP_WAIT_S = 15.0  # a node's clean stop after SIGTERM, before SIGKILL


def start_node_processes(
    node_homes: list[Path], log_to_files: bool = False, own_session: bool = False
) -> list[subprocess.Popen[str]]:
    """One `cloudchain node start` process per home; output piped, or to home/node.log.
    With `own_session` the nodes do not receive the terminal's Ctrl-C: the caller stops
    them (stop_node_processes) when it is done with them."""
    processes = []
    for node_home in node_homes:
        output = open(node_home / "node.log", "w") if log_to_files else subprocess.PIPE  # noqa: SIM115
        processes.append(start_node_process(node_home, output, own_session=own_session))
    return processes


def start_node_process(
    node_home: Path, output: IO[Any] | int, *, own_session: bool = False
) -> subprocess.Popen[str]:
    """`cloudchain node start --home node_home`, stdout and stderr to `output` (a file or
    subprocess.PIPE); `own_session` as for start_node_processes."""
    return subprocess.Popen(
        [sys.executable, "-m", "cloudchain", "node", "start", "--home", str(node_home)],
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=own_session,
    )


def stop_node_processes(processes: list[subprocess.Popen[str]]) -> None:
    """SIGTERM every node, wait up to STOP_WAIT_S in all for a clean stop, SIGKILL what
    does not stop."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT_S
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
