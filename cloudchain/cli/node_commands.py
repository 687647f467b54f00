"""`cloudchain node start` and `cloudchain testnet up`: running nodes as OS processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from cloudchain.node.config import NodeConfig
from cloudchain.node.logs import configure_logging


def run_node(home: Path) -> int:
    """Run one node until SIGINT or SIGTERM."""
    config = NodeConfig.load(home / "config" / "config.toml")
    configure_logging(config.log)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency; this is a fallback
        pass
    return asyncio.run(_serve(home, config))


async def _serve(home: Path, config: NodeConfig) -> int:
    from cloudchain.node.runtime import Node

    node = Node(home, config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await node.start()
    print(
        f"node {config.moniker} started: p2p {config.p2p.listen_address}, "
        f"rpc http://{config.rpc.listen_address}",
        flush=True,
    )
    await stop.wait()
    await node.stop()
    print(f"node {config.moniker} stopped at height {node.app.info().height}", flush=True)
    return 0


def run_testnet(home: Path) -> int:
    """Start every node under `home` as its own process and stream their logs until Ctrl-C."""
    node_homes = sorted(p for p in home.glob("node*") if (p / "config" / "config.toml").exists())
    if not node_homes:
        print(
            f"error: no node directories under {home} (run cloudchain testnet init)",
            file=sys.stderr,
        )
        return 2
    for node_home in node_homes:
        config = NodeConfig.load(node_home / "config" / "config.toml")
        print(f"{node_home.name}: rpc http://{config.rpc.listen_address}", flush=True)
    processes = start_node_processes(node_homes)
    threads = [
        threading.Thread(target=_stream, args=(p, h.name), daemon=True)
        for p, h in zip(processes, node_homes, strict=True)
    ]
    for thread in threads:
        thread.start()
    try:
        while all(p.poll() is None for p in processes):
            with contextlib.suppress(subprocess.TimeoutExpired):
                processes[0].wait(timeout=1)
    except KeyboardInterrupt:
        pass
    finally:
        stop_node_processes(processes)
    return 0


def start_node_processes(
    node_homes: list[Path], log_to_files: bool = False, own_session: bool = False
) -> list[subprocess.Popen[str]]:
    """One `cloudchain node start` process per home; output piped, or to home/node.log.
    With `own_session` the nodes do not receive the terminal's Ctrl-C: the caller stops
    them (stop_node_processes) when it is done with them."""
    processes = []
    for node_home in node_homes:
        output = open(node_home / "node.log", "w") if log_to_files else subprocess.PIPE  # noqa: SIM115
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "cloudchain", "node", "start", "--home", str(node_home)],
                stdout=output,
                stderr=subprocess.STDOUT,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=own_session,
            )
        )
    return processes


def stop_node_processes(processes: list[subprocess.Popen[str]]) -> None:
    """SIGTERM every node, wait for a clean stop, SIGKILL what does not stop."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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


def _stream(process: subprocess.Popen[str], name: str) -> None:
    """Print a node's committed blocks and warnings, prefixed with its name."""
    assert process.stdout is not None
    for line in process.stdout:
        message = _worth_showing(line)
        if message is not None:
            try:
                print(f"{name:>6} | {message}", flush=True)
            except (BrokenPipeError, ValueError):  # our reader went away (e.g. | head)
                return
