"""`cloudchain provider run` and `cloudchain oracle run`: the off-chain daemons.

Each checks its whole configuration first and exits 2 with the option named when it
cannot work; then runs until SIGINT or SIGTERM, logging one structured line per event
(`--log-format json` for machines), and stops its jobs and servers on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from cloudchain.agents.chain import TxRefused
from cloudchain.cli.common import NODE_HELP
from cloudchain.client import DEFAULT_NODE, RPCClientError
from cloudchain.crypto import PrivateKey
from cloudchain.node.config import LOG_FORMATS, LogConfig
from cloudchain.node.logs import configure_logging

DEFAULT_PROVIDER_HOME = Path.home() / ".cloudchain" / "provider"
DEFAULT_ORACLE_HOME = Path.home() / ".cloudchain" / "oracle"


def add_agent_commands(commands: Any) -> None:
    provider = commands.add_parser("provider", help="run a compute provider's daemon")
    provider_commands = provider.add_subparsers(title="provider commands", metavar="COMMAND")
    run = provider_commands.add_parser(
        "run",
        help="register, bid, run assigned ML jobs and report them (Ctrl-C stops)",
        description="Example: cloudchain provider run --key accounts/account1.json "
        "--node http://127.0.0.1:26657 --port 9100",
    )
    _common(run, DEFAULT_PROVIDER_HOME)
    run.add_argument("--name", default="provider", help="the provider's name on chain")
    run.add_argument("--tier", default="community", help="enterprise or community")
    run.add_argument("--resource-class", default="cpu-small", help="the class it sells")
    run.add_argument("--units", type=int, default=64, help="compute units in flight at once")
    run.add_argument("--stake", type=int, default=100_000, help="stake put up at registration")
    run.add_argument(
        "--pricing", default="fixed", help="fixed, reference or load (see agents/provider)"
    )
    run.add_argument("--price", type=int, default=10, help="base price per compute unit")
    run.add_argument("--markup-bps", type=int, default=0, help="the policy's markup")
    run.add_argument("--executor", default="local", help="local (default) or ray")
    run.add_argument("--ray-address", help="join this Ray cluster (default: ray.init() here)")
    run.add_argument("--workers", type=int, default=1, help="jobs at once (local executor)")
    run.add_argument("--advertise", help="the URL oracles probe (default: http://HOST:PORT)")
    run.add_argument(
        "--fault",
        default="none",
        help="misbehave on purpose: wrong-output, crash-mid-task, slow, offline or ignore-privacy",
    )
    run.add_argument("--slow-seconds", type=float, default=2.0, help="--fault slow's delay")
    run.set_defaults(run=_run_provider)

    oracle = commands.add_parser("oracle", help="run an oracle's daemon")
    oracle_commands = oracle.add_subparsers(title="oracle commands", metavar="COMMAND")
    orun = oracle_commands.add_parser(
        "run",
        help="probe providers, re-run their jobs and attest what was measured (Ctrl-C stops)",
        description="Example: cloudchain oracle run --key accounts/oracle0.json --port 9200",
    )
    _common(orun, DEFAULT_ORACLE_HOME)
    orun.add_argument("--probe-seconds", type=float, default=2.0, help="probe interval")
    orun.add_argument("--probe-window", type=int, default=30, help="probes measured over")
    orun.add_argument("--probe-timeout-ms", type=int, default=5_000, help="probe timeout")
    orun.add_argument("--attest-seconds", type=float, default=30.0, help="service records interval")
    orun.add_argument(
        "--sample-bps", type=int, default=10_000, help="share of completed tasks re-run"
    )
    orun.add_argument("--workers", type=int, default=1, help="re-runs at once")
    orun.set_defaults(run=_run_oracle)


def _common(parser: argparse.ArgumentParser, home: Path) -> None:
    parser.add_argument("--key", required=True, type=Path, help="the agent's key file")
    parser.add_argument("--node", default=DEFAULT_NODE, help=NODE_HELP)
    parser.add_argument("--home", type=Path, default=home, help=f"working directory ({home})")
    parser.add_argument("--host", default="127.0.0.1", help="of /health and /metrics")
    parser.add_argument("--port", type=int, default=0, help="of /health and /metrics (0: any)")
    parser.add_argument("--reconcile-seconds", type=float, default=2.0, help="look this often")
    parser.add_argument(
        "--encryption-key",
        type=Path,
        help="the X25519 key file data owners' grants are wrapped to, published on chain "
        "(default: HOME/encryption.key, made on first run)",
    )
    parser.add_argument("--log-level", default="info", help="debug, info, warning or error")
    parser.add_argument("--log-format", default="plain", help="plain or json")


def _logging(args: argparse.Namespace) -> LogConfig:
    from cloudchain.agents.setup import ConfigError

    if args.log_format not in LOG_FORMATS:
        raise ConfigError(f"--log-format {args.log_format!r}: expected plain or json")
    if args.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"--log-level {args.log_level!r}: expected debug, info, warning, error")
    return LogConfig(level=args.log_level.lower(), format=args.log_format)


def _run_daemon(
    args: argparse.Namespace,
    build: Callable[[], Any],
    serve: Callable[[Any, PrivateKey, asyncio.Event], Awaitable[None]],
) -> int:
    """The whole configuration `build()`s and checks (exit 2 naming the option), then
    `serve(config, key, stop)` until SIGINT or SIGTERM sets `stop` (exit 1 if the node
    cannot be reached or refuses the daemon)."""
    from cloudchain.agents.setup import ConfigError

    try:
        log_config = _logging(args)
        config = build()
        config.check()
        key = config.read_key()
        config.prepare_home()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(log_config)
    try:
        return asyncio.run(_until_signalled(lambda stop: serve(config, key, stop)))
    except (OSError, RPCClientError, TxRefused) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _run_provider(args: argparse.Namespace) -> int:
    from cloudchain.agents.provider.config import ProviderConfig, pricing_policy

    def build() -> ProviderConfig:
        return ProviderConfig(
            node=args.node,
            key_file=args.key,
            home=args.home.resolve(),
            name=args.name,
            tier=args.tier,
            resource_class=args.resource_class,
            units=args.units,
            stake=args.stake,
            pricing=pricing_policy(args.pricing, args.price, args.markup_bps),
            executor=args.executor,
            workers=args.workers,
            ray_address=args.ray_address,
            host=args.host,
            port=args.port,
            advertise=args.advertise,
            fault=args.fault,
            slow_s=args.slow_seconds,
            reconcile_s=args.reconcile_seconds,
            encryption_key=args.encryption_key,
        )

    return _run_daemon(args, build, _serve_provider)


async def _serve_provider(config: Any, key: PrivateKey, stop: asyncio.Event) -> None:
    from cloudchain.agents.executor import make_executor
    from cloudchain.agents.provider.capacity import detect_capacity
    from cloudchain.agents.provider.daemon import ProviderDaemon

    executor = make_executor(config.executor, config.workers, config.ray_address)
    try:
        await ProviderDaemon(config, key, detect_capacity(), executor).run(stop)
    finally:
        executor.close()


def _run_oracle(args: argparse.Namespace) -> int:
    from cloudchain.agents.oracle.config import OracleConfig

    def build() -> OracleConfig:
        return OracleConfig(
            node=args.node,
            key_file=args.key,
            home=args.home.resolve(),
            host=args.host,
            port=args.port,
            probe_s=args.probe_seconds,
            probe_window=args.probe_window,
            probe_timeout_ms=args.probe_timeout_ms,
            attest_s=args.attest_seconds,
            sample_bps=args.sample_bps,
            workers=args.workers,
            reconcile_s=args.reconcile_seconds,
            encryption_key=args.encryption_key,
        )

    return _run_daemon(args, build, _serve_oracle)


async def _serve_oracle(config: Any, key: PrivateKey, stop: asyncio.Event) -> None:
    from cloudchain.agents.executor import LocalExecutor
    from cloudchain.agents.oracle.daemon import OracleDaemon

    executor = LocalExecutor(config.workers)
    try:
        await OracleDaemon(config, key, executor).run(stop)
    finally:
        executor.close()


async def _until_signalled(serve: Callable[[asyncio.Event], Awaitable[None]]) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await serve(stop)
    return 0
