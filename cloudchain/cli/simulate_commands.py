"""`cloudchain simulate market`: days of the market on the real chaincode, in this
process (cloudchain/sim/market/), for each requester group size."""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path
from typing import Any


def add_simulate_commands(commands: Any) -> None:
    simulate = commands.add_parser("simulate", help="simulate the market on the real chaincode")
    verbs = simulate.add_subparsers(title="simulate commands", metavar="COMMAND")
    market = verbs.add_parser(
        "market",
        help="days of a market of 28 providers, for each requester group size (Figs. 4-5)",
        description="Drives the real application block by block with seeded requesters, "
        "providers and oracles; writes per-day and per-provider CSV and JSON, "
        "summary.json, fig4-tokens.png and fig5-fairness.png. The same seed gives the "
        "same bytes. Example: cloudchain simulate market --days 30 --requesters 10,50,100",
    )
    market.add_argument("--days", type=float, default=30.0, help="simulated days (30)")
    market.add_argument("--block-seconds", type=int, default=60, help="block time (60)")
    market.add_argument(
        "--requesters",
        default="10,50,100,200,300",
        help="requester group sizes, comma-separated, one run each (10,50,100,200,300)",
    )
    market.add_argument("--tasks-per-day", type=float, default=2.0, help="per requester (2)")
    market.add_argument("--oracles", type=int, default=3, help="oracles (3)")
    market.add_argument(
        "--faulty-oracles", type=int, default=0, help="of them, attesting the opposite (0)"
    )
    market.add_argument("--seed", type=int, default=1, help="the world's seed (1)")
    market.add_argument(
        "--policies",
        default="cheapest,fair+capacity",
        help="policies compared side by side, each run on every group size: the assignment "
        "policy, cheapest, fair (at --fair-slack-bps) or fair:BPS (at that slack), with "
        "+capacity (the providers' epoch reward paid for capacity offered) or +capacity:BPS "
        "(that share of it) (cheapest,fair+capacity)",
    )
    market.add_argument(
        "--fair-slack-bps",
        type=int,
        default=1_000,
        help="the fair policy's price slack over the cheapest offer, in bps (1000: 10%%)",
    )
    market.add_argument(
        "--epoch-reward",
        type=int,
        default=1_000_000,
        help="tokens minted per epoch (a simulated hour) for providers and oracles "
        "(1000000: $100 an hour at $0.0001 a token)",
    )
    market.add_argument(
        "--providers",
        type=Path,
        metavar="FILE",
        help="a scenario (JSON, or TOML with [[providers]]); default: the paper's 28",
    )
    market.add_argument("--out", type=Path, default=Path("sim-market"), help="(sim-market)")
    market.add_argument("--quiet", action="store_true", help="no progress bar")
    market.add_argument(
        "--profile",
        action="store_true",
        help="run under cProfile and write its top lines to OUT/profile-top.txt",
    )
    market.set_defaults(run=_run_market)


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise ValueError(f"--requesters {text!r}: expected positive integers, comma-separated")
    return sizes


def _policies(text: str, slack_bps: int) -> list[tuple[int, int, int]]:
    """(policy, fair slack, capacity reward) of each name: cheapest, fair or fair:BPS (the
    assignment policy), then optionally +capacity or +capacity:BPS (the share of the
    providers' epoch reward paid for capacity; +capacity alone: all of it)."""
    from cloudchain.chaincode.market.policy import BPS, FAIR, POLICIES

    by_name = {name: number for number, name in POLICIES.items()}
    expected = f"--policies {text!r}: expected cheapest or fair[:BPS], each with +capacity[:BPS]"
    chosen = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        assignment, plus, reward = part.partition("+")
        name, _, slack = assignment.partition(":")
        what, _, capacity = reward.partition(":")
        if (
            name not in by_name
            or (slack and (name != "fair" or not slack.isdigit()))
            or (plus and what != "capacity")
            or (capacity and not capacity.isdigit())
        ):
            raise ValueError(expected)
        capacity_bps = int(capacity) if capacity else (BPS if plus else 0)
        chosen.append((by_name[name], int(slack) if slack else slack_bps, capacity_bps))
    if not chosen or any(not 0 <= slack <= 100_000 for _, slack, _ in chosen):
        raise ValueError(f"--policies {text!r}: at least one, a slack of 0 to 100000 bps")
    if any(capacity > BPS for _, _, capacity in chosen):
        raise ValueError(f"--policies {text!r}: +capacity:BPS at most {BPS}")
    # each policy once: fair:BPS at --fair-slack-bps is fair itself
    return list(dict.fromkeys((p, s if p == FAIR else slack_bps, c) for p, s, c in chosen))


def _run_market(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from cloudchain.sim.market.report import format_table, summaries, write_run, write_summary
    from cloudchain.sim.market.scenario import ScenarioError, load_scenario, paper_scenario
    from cloudchain.sim.market.world import SimConfig, simulate

    try:
        sizes = _sizes(args.requesters)
        if not 0 < args.days <= 366 or args.block_seconds < 1:
            raise ValueError("--days in (0, 366] and --block-seconds at least 1")
        if not 0 <= args.faulty_oracles <= args.oracles or args.oracles < 1:
            raise ValueError("--oracles at least 1, --faulty-oracles 0 to --oracles")
        if not 0 <= args.fair_slack_bps <= 100_000:
            raise ValueError("--fair-slack-bps: 0 to 100000")
        if not 0 <= args.epoch_reward <= 10**12:
            raise ValueError("--epoch-reward: 0 to 10^12 tokens")
        policies = _policies(args.policies, args.fair_slack_bps)
        providers = load_scenario(args.providers) if args.providers else paper_scenario(args.seed)
    except (ValueError, ScenarioError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configs = [
        SimConfig(
            providers,
            days=args.days,
            block_s=args.block_seconds,
            requesters=size,
            tasks_per_day=args.tasks_per_day,
            oracles=args.oracles,
            faulty_oracles=args.faulty_oracles,
            seed=args.seed,
            policy=policy,
            fair_slack_bps=slack,
            capacity_reward_bps=capacity,
            epoch_reward=args.epoch_reward,
        )
        for policy, slack, capacity in policies
        for size in sizes
    ]
    results = []
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    started = time.perf_counter()
    with tqdm(
        total=sum(c.blocks for c in configs), unit="block", disable=args.quiet, file=sys.stderr
    ) as bar:
        for config in configs:
            bar.set_description(f"{config.label}, {config.requesters} requesters")
            results.append(simulate(config, bar.update))
    elapsed = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
    rows = summaries(results)
    written = [p for result in results for p in write_run(result, args.out)]
    written += write_summary(results, rows, args.out)
    if profiler is not None:
        written.append(_write_profile(profiler, args.out / "profile-top.txt"))
    print(format_table(rows))
    for result in results:
        print(
            f"{result.config.label}, {result.config.requesters} requesters: "
            f"app hash {result.app_hash.upper()}"
        )
    print(f"simulated in {elapsed:.1f} s")
    for path in written:
        print(f"wrote {path}")
    return 0


def _write_profile(profiler: cProfile.Profile, path: Path) -> Path:
    """The profile's top lines by own time, and by cumulative time."""
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text).strip_dirs()
    stats.sort_stats("tottime").print_stats(20)
    stats.sort_stats("cumulative").print_stats(20)
    path.write_text(text.getvalue())
    return path
