"""`cloudchain node start` and `cloudchain testnet up`: running nodes as OS processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

from cloudchain.node.config import NodeConfig
from cloudchain.node.logs import configure_logging
from cloudchain.node.processes import start_node_processes, stop_node_processes


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
