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
