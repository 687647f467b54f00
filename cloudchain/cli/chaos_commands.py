"""`cloudchain chaos`: the nemesis against a network of real node processes (issue 19)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cloudchain.cli.market_commands import parse_duration_s
from cloudchain.node.testnet import MAX_VALIDATORS

MIN_DURATION_S = 20  # the warm-up, one fault and its gap


def add_chaos_commands(commands: Any) -> None:
    chaos = commands.add_parser(
        "chaos",
        help="run a network of node processes under a seeded nemesis and check it",
        description="Starts VALIDATORS real `cloudchain node start` processes on loopback "
        "(peer links through relays the nemesis controls), runs a bank workload through "
        "every node while faults are injected on a schedule drawn from SEED, then heals "
        "everything and checks: no fork, every acknowledged transfer committed once, "
        "balances conserved, no stale read, progress after the heal, no honest double "
        "sign, no crash. Prints the report and writes OUT/report.json and "
        "OUT/history.jsonl. Exit code 0: no violations; 1: violations; 2: the network "
        "did not start. Example: cloudchain chaos --duration 10m --faults all --seed 3",
    )
    chaos.add_argument("--validators", type=_validators, default=4, help="(4)")
    chaos.add_argument(
        "--duration", type=_duration, default=60, help="90s, 10m, ... of faults (60s)"
    )
    chaos.add_argument("--seed", type=int, default=1, help="the schedule's seed (1)")
    chaos.add_argument(
        "--faults",
        type=_faults,
        default="all",
        help="all, or a comma list of: kill, pause, partition (all four), "
        "partition-halves, partition-bridge, partition-proposer, partition-flap, latency, "
        "loss, disk-full, wal-corrupt, clock-skew, equivocate (all)",
    )
    chaos.add_argument("--accounts", type=int, default=8, help="workload accounts (8)")
    chaos.add_argument("--out", type=Path, default=Path("chaos-out"), help="(chaos-out)")
    chaos.set_defaults(run=_run)


def _validators(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 4 <= value <= MAX_VALIDATORS:
        raise argparse.ArgumentTypeError(
            f"--validators must be between 4 and {MAX_VALIDATORS} (f >= 1 needs 4)"
        )
    return value


def _duration(text: str) -> int:
    seconds = parse_duration_s(text)
    if seconds < MIN_DURATION_S:
        raise argparse.ArgumentTypeError(f"--duration must be at least {MIN_DURATION_S}s")
    return seconds


def _faults(text: str) -> tuple[str, ...]:
    from cloudchain.chaos.nemesis import FaultSpecError, parse_faults

    try:
        return parse_faults(text)
    except FaultSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _run(args: argparse.Namespace) -> int:
    from cloudchain.chaos.runner import ChaosSettings, run_and_print

    if not 2 <= args.accounts <= 1_000:
        print("error: --accounts must be between 2 and 1000")
        return 2
    settings = ChaosSettings(
        validators=args.validators,
        duration_s=float(args.duration),
        seed=args.seed,
        faults=args.faults,  # argparse applies _faults to the default too
        out=args.out,
        accounts=args.accounts,
    )
    return run_and_print(settings)
