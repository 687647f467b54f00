"""Entry point of the `cloudchain` command."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from cloudchain import __version__
from cloudchain.cli.agent_commands import add_agent_commands
from cloudchain.cli.blob_commands import add_blob_commands
from cloudchain.cli.chaos_commands import add_chaos_commands
from cloudchain.cli.common import TX_HASH, send_tx, tx_options
from cloudchain.cli.dataset_commands import add_dataset_commands
from cloudchain.cli.market_commands import add_market_tx_commands
from cloudchain.cli.read_commands import QUERY_PATH_COMMAND, add_read_commands
from cloudchain.cli.simulate_commands import add_simulate_commands
from cloudchain.cli.storage_commands import add_storage_tx_commands
from cloudchain.cli.task_commands import add_task_commands
from cloudchain.client import RPCClientError
from cloudchain.crypto import KeyFileError, PrivateKey, read_key_file, write_key_file
from cloudchain.genesis import Genesis, GenesisError
from cloudchain.node.config import ConfigError


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(_route(list(sys.argv[1:] if argv is None else argv)))
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    # SIGTERM as Ctrl-C: the commands that start nodes (demo, bench storage, testnet
    # up) stop them on the way out, which Python's default SIGTERM would skip.
    try:
        previous = signal.signal(signal.SIGTERM, _interrupt)
    except ValueError:  # not the main thread (a test calling main): leave signals be
        previous = None
    try:
        return args.run(args)
    except (KeyFileError, GenesisError, ConfigError, RPCClientError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


_OPTIONS_WITH_VALUES = frozenset({"--node", "--height", "--data", "--data-hex"})


def _route(argv: list[str]) -> list[str]:
    """argparse cannot give one command both subcommands and a positional of its own, so
    the two commands that have both are routed here: `tx HASH` runs `show-tx HASH` and
    `query /PATH` runs `query-path /PATH`; `tx token transfer ...` and `query balance
    ...` go on to their subcommands."""
    if len(argv) < 2 or argv[0] not in ("tx", "query"):
        return argv
    first = _first_positional(argv[1:])
    if first is None:
        return argv
    if argv[0] == "tx" and TX_HASH.match(first):
        return ["show-tx", *argv[1:]]
    if argv[0] == "query" and first.startswith("/"):
        return [QUERY_PATH_COMMAND, *argv[1:]]
    return argv


def _first_positional(words: Sequence[str]) -> str | None:
    takes_value = False
    for word in words:
        if takes_value:
            takes_value = False
        elif word.startswith("-"):
            takes_value = word in _OPTIONS_WITH_VALUES
        else:
            return word
    return None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cloudchain",
        description="CloudChain: a permissioned BFT ledger for an AI compute marketplace.",
    )
    parser.add_argument("--version", action="version", version=f"cloudchain {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="run a local network of validators, provider and oracle daemons doing real ML "
        "jobs, one provider cheating (Ctrl-C stops)",
        description="Example: cloudchain demo   |   cloudchain demo --tasks 3   |   "
        "cloudchain demo --stay (then open the printed /ui/ address)   |   "
        "cloudchain demo --solo --blocks 20 (one in-process chain, no network)",
    )
    demo.add_argument("--solo", action="store_true", help="one in-process chain, no network")
    demo.add_argument("--validators", type=int, default=4, help="validators (4)")
    demo.add_argument(
        "--tasks", type=int, help="submit only the first N of the demo's six jobs (default all)"
    )
    demo.add_argument("--blocks", type=int, help="--solo: stop after this height (20)")
    demo.add_argument("--txs-per-block", type=int, default=8, help="--solo: transfers per block")
    demo.add_argument("--interval", type=float, default=0.2, help="--solo: seconds between blocks")
    demo.add_argument("--home", help="--solo: directory for genesis, keys and data")
    demo.add_argument("--seed", type=int, default=1, help="seed of the jobs and transfers (1)")
    demo.add_argument(
        "--stay",
        action="store_true",
        help="keep the network running after the summary, to look at in the web UI, until Ctrl-C",
    )
    demo.set_defaults(run=_run_demo)

    bench = commands.add_parser("bench", help="measure what the ledger costs")
    bench_commands = bench.add_subparsers(title="bench commands", metavar="COMMAND")
    apply = bench_commands.add_parser(
        "apply",
        help="time prepare/process/finalize/commit of blocks of transfers",
        description="Example: cloudchain bench apply --blocks 30 --txs-per-block 500",
    )
    apply.add_argument("--blocks", type=int, default=30, help="blocks to apply (30)")
    apply.add_argument("--txs-per-block", type=int, default=500, help="transfers per block (500)")
    apply.add_argument("--accounts", type=int, default=100, help="accounts sending (100)")
    apply.set_defaults(run=_run_bench_apply)
    mempool = bench_commands.add_parser(
        "mempool",
        help="admission rate with a full mempool, and the re-check after a block",
        description="Today's mempool beside the one before issue 14, on the real "
        "application (LevelDB). Example: cloudchain bench mempool --pool 5000 --block 5000",
    )
    mempool.add_argument("--pool", type=int, default=5_000, help="ready transactions (5000)")
    mempool.add_argument(
        "--arrivals", type=int, default=2_000, help="transactions sent to the full pool (2000)"
    )
    mempool.add_argument(
        "--block", type=int, default=5_000, help="transactions in the committed block (5000)"
    )
    mempool.add_argument("--rounds", type=int, default=3, help="rounds; medians are shown (3)")
    mempool.add_argument(
        "--profile", action="store_true", help="also print the top of a cProfile of today's"
    )
    mempool.set_defaults(run=_run_bench_mempool)
    market = bench_commands.add_parser(
        "market",
        help="time the market's transactions and end-of-block work",
        description="Example: cloudchain bench market --tasks 5000 --providers 20",
    )
    market.add_argument("--tasks", type=int, default=2000, help="tasks submitted (2000)")
    market.add_argument("--providers", type=int, default=20, help="providers (20)")
    market.set_defaults(run=_run_bench_market)
    storage = bench_commands.add_parser(
        "storage",
        help="latency of writes and reads: blob store (p2p) vs consensus",
        description="Starts a local network of node processes, writes and reads files of "
        "each size through the blob store and through consensus, with a baseline of hashing "
        "and copying them on this machine; prints a table, writes JSON, CSV and a PNG chart. "
        "Example: cloudchain bench storage --sizes 50,100,200 --validators 4 --replicas 2",
    )
    storage.add_argument(
        "--sizes", default="50,100,200", help="file sizes in MB, comma-separated (50,100,200)"
    )
    storage.add_argument("--validators", type=int, default=4, help="validators (4)")
    storage.add_argument(
        "--replicas",
        type=int,
        default=2,
        help="nodes that must hold a blob before a put returns (2)",
    )
    storage.add_argument("--runs", type=int, default=3, help="runs of each size (3)")
    storage.add_argument(
        "--systems",
        default="baseline,p2p,consensus",
        help="what to measure, comma-separated (baseline,p2p,consensus)",
    )
    storage.add_argument(
        "--out",
        default="bench-storage",
        help="directory for storage.json, .csv and .png (bench-storage)",
    )
    storage.add_argument("--seed", type=int, default=1, help="seed of the files' bytes (1)")
    storage.set_defaults(run=_run_bench_storage)
    consensus_bench = bench_commands.add_parser(
        "consensus",
        help="committed tx/s and latency of a local network: offered rates and requesters",
        description="Starts a local network of node processes (the default consensus "
        "config), offers token transfers open loop at each --rates and runs --requesters "
        "closed loops of market tasks and transfers (the paper's Fig. 3); prints a table "
        "with the same-run signature ceiling, writes JSON, CSV and a PNG chart. "
        "Example: cloudchain bench consensus --rates 250,500,1000 --requesters 10,50,100",
    )
    consensus_bench.add_argument("--validators", type=int, default=4, help="validators (4)")
    consensus_bench.add_argument(
        "--rates", default="250,500,1000", help="offered tx/s, comma-separated (250,500,1000)"
    )
    consensus_bench.add_argument(
        "--requesters",
        default="10,50,100,200,300",
        help="concurrent requesters, comma-separated; '' skips the sweep (10,50,100,200,300)",
    )
    consensus_bench.add_argument(
        "--duration", type=float, default=20.0, help="seconds measured per step (20)"
    )
    consensus_bench.add_argument(
        "--warmup", type=float, default=3.0, help="seconds of load before each step's window (3)"
    )
    consensus_bench.add_argument(
        "--out",
        help="directory for consensus.json, .csv, .png and the profiles "
        "(default: a new bench-consensus-DATE-TIME under the current directory)",
    )
    consensus_bench.add_argument(
        "--profile",
        action="store_true",
        help="py-spy every node during the highest rate (pip install -e '.[bench]')",
    )
    consensus_bench.add_argument(
        "--soak",
        type=float,
        default=0.0,
        help="after the sweeps, offer one rate for this many seconds and report each "
        "node's RSS over it (0: no soak; 600 for the issue's 10 minutes)",
    )
    consensus_bench.add_argument(
        "--soak-rate",
        type=int,
        default=0,
        help="the soak's offered tx/s (0: the rate sweep's committed peak)",
    )
    consensus_bench.set_defaults(run=_run_bench_consensus)
    privacy = bench_commands.add_parser(
        "privacy",
        help="what DP-SGD and sealing cost: time, accuracy and ε at several targets",
        description="Trains an MLP on scikit-learn's digits without DP and with DP-SGD "
        "(Opacus) at each target ε, in this process and as a provider's whole job, runs "
        "interleaved; measures sealing against SHA-256 and the memory of sealing a large "
        "file (the paper's Fig. 6); prints a table, writes JSON, CSV and a PNG chart. "
        "Needs the torch extra. Example: cloudchain bench privacy --epsilons 0.5,1,2,4,8",
    )
    privacy.add_argument(
        "--epsilons", default="0.5,1,2,4,8", help="target ε, comma-separated (0.5,1,2,4,8)"
    )
    privacy.add_argument("--runs", type=int, default=3, help="runs of each configuration (3)")
    privacy.add_argument("--epochs", type=int, default=10, help="training epochs (10)")
    privacy.add_argument("--batch-size", type=int, default=64, help="expected batch size (64)")
    privacy.add_argument("--clip-norm", type=float, default=1.0, help="C (1.0)")
    privacy.add_argument("--delta", type=float, default=1e-5, help="δ (1e-5)")
    privacy.add_argument(
        "--seal-mb", type=int, default=64, help="MB sealed and opened for MB/s (64; 0: none)"
    )
    privacy.add_argument(
        "--rss-mb",
        type=int,
        default=1024,
        help="MB sealed in a child process whose peak RSS is reported (1024; 0: none)",
    )
    privacy.add_argument(
        "--no-jobs", action="store_true", help="measure the training alone, not whole jobs"
    )
    privacy.add_argument(
        "--out", default="bench-privacy", help="directory for privacy.json, .csv and .png"
    )
    privacy.set_defaults(run=_run_bench_privacy)

    sim = commands.add_parser("sim", help="run deterministic simulations")
    sim_commands = sim.add_subparsers(title="sim commands", metavar="COMMAND")
    consensus = sim_commands.add_parser(
        "consensus",
        help="run the consensus simulator over many seeds; non-zero exit on any violation",
        description="Example: cloudchain sim consensus --seeds 5000 --validators 7 --byzantine 2",
    )
    consensus.add_argument("--seeds", type=int, default=200, help="how many seeds (200)")
    consensus.add_argument("--first-seed", type=int, default=0, help="the first seed (0)")
    consensus.add_argument("--validators", type=int, default=4, help="validators (4)")
    consensus.add_argument(
        "--byzantine", type=int, default=1, help="Byzantine validators, at most (n-1)/3 (1)"
    )
    consensus.add_argument(
        "--mode",
        choices=("mixed", "equivocate", "silent"),
        default="mixed",
        help="what the Byzantine validators do (mixed)",
    )
    consensus.set_defaults(run=_run_sim_consensus)

    testnet = commands.add_parser("testnet", help="create a local multi-validator network")
    testnet_commands = testnet.add_subparsers(title="testnet commands", metavar="COMMAND")
    init = testnet_commands.add_parser(
        "init",
        help="write genesis, keys and config.toml for each node",
        description="Example: cloudchain testnet init --validators 4 --home ./testnet",
    )
    init.add_argument("--validators", type=int, default=4, help="number of validators (4)")
    init.add_argument("--home", required=True, help="directory to create (must be empty)")
    init.add_argument("--chain-id", default="cloudchain-local", help="chain id (cloudchain-local)")
    init.add_argument("--accounts", type=int, default=4, help="funded accounts (4)")
    init.add_argument(
        "--oracles",
        type=int,
        default=3,
        help="funded market oracles named in genesis, key files accounts/oracle<k>.json (3)",
    )
    init.add_argument(
        "--base-port",
        type=int,
        default=26656,
        help="node i listens on base+2i (p2p) and base+2i+1 (RPC), so node0's RPC "
        "is the default --node of every command (26656); 0: free ports",
    )
    init.add_argument(
        "--rpc-unsafe",
        action="store_true",
        help="write [rpc] unsafe = true: the nodes answer the operator's blob pin, unpin "
        "and gc (off by default, as in CometBFT)",
    )
    init.add_argument(
        "--oracle-window",
        type=int,
        default=300,
        metavar="BLOCKS",
        help="blocks the oracles have to attest to a task and to vote on a dispute (300: "
        "time for `oracle run` to re-run the job)",
    )
    init.set_defaults(run=_run_testnet_init)
    up = testnet_commands.add_parser(
        "up",
        help="start every node as its own process and supervise them; Ctrl-C stops them all",
        description="Example: cloudchain testnet up --home ./testnet [--restart]. Each "
        "node's output goes to HOME/nodeN/node.log; a node that exits is reported with its "
        "last log lines and the others keep running. The pids are in HOME/testnet.json.",
    )
    up.add_argument("--home", required=True, help="the directory testnet init wrote")
    up.add_argument(
        "--restart",
        action="store_true",
        help="start a node that exits again, after 1 s, 2 s, 4 s ... up to 30 s (without "
        "it, up exits with 1 once every node has exited)",
    )
    up.set_defaults(run=lambda a: _node_commands().run_testnet(Path(a.home), a.restart))
    status = testnet_commands.add_parser(
        "status",
        help="each node's process, height, peers and last error",
        description="Example: cloudchain testnet status --home ./testnet [--json]",
    )
    status.add_argument("--home", required=True, help="the directory testnet init wrote")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.set_defaults(run=lambda a: _node_commands().testnet_status(Path(a.home), a.json))
    stop = testnet_commands.add_parser(
        "stop",
        help="stop testnet up and its nodes, from any shell",
        description="Example: cloudchain testnet stop --home ./testnet",
    )
    stop.add_argument("--home", required=True, help="the directory testnet init wrote")
    stop.set_defaults(run=lambda a: _node_commands().testnet_stop(Path(a.home)))

    node = commands.add_parser("node", help="run a node")
    node_commands = node.add_subparsers(title="node commands", metavar="COMMAND")
    start = node_commands.add_parser(
        "start",
        help="run one node until SIGINT or SIGTERM",
        description="Example: cloudchain node start --home ./testnet/node0",
    )
    start.add_argument("--home", required=True, help="the node's directory")
    start.set_defaults(run=lambda a: _node_commands().run_node(Path(a.home)))

    add_read_commands(commands)
    add_blob_commands(commands)
    add_agent_commands(commands)
    add_dataset_commands(commands)
    add_simulate_commands(commands)
    add_chaos_commands(commands)
    add_task_commands(commands)

    tx = commands.add_parser(
        "tx",
        help="show a committed transaction (tx HASH), or sign and send one",
        usage="cloudchain tx HASH [--node URL] [--json]\n"
        "       cloudchain tx MODULE METHOD [options]",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Show the committed transaction with this hash (64 hex digits):\n"
        "  cloudchain tx HASH [--node URL] [--json]   (the same as: cloudchain show-tx HASH)\n"
        "Sign a transaction and send it:\n"
        "  cloudchain tx token transfer --from alice.json --to ADDRESS --amount 100\n"
        "  cloudchain tx market submit --from alice.json --kind inference ...   (tx market -h)\n"
        "  cloudchain tx storage anchor QmCID --from alice.json   (tx storage -h)",
    )
    tx_modules = tx.add_subparsers(title="modules", metavar="MODULE")
    token = tx_modules.add_parser("token", help="token transactions")
    token_methods = token.add_subparsers(title="methods", metavar="METHOD")
    transfer = token_methods.add_parser(
        "transfer",
        help="send tokens; waits until the transfer is in a block",
        description="Example: cloudchain tx token transfer --from alice.json --to ADDRESS "
        "--amount 100",
    )
    transfer.add_argument("--to", required=True, help="recipient address (40 hex)")
    transfer.add_argument("--amount", type=int, required=True, help="integer units")
    tx_options(transfer)
    transfer.set_defaults(run=_run_transfer)
    add_market_tx_commands(tx_modules)
    add_storage_tx_commands(tx_modules)

    keys = commands.add_parser("keys", help="create and inspect Ed25519 key files")
    key_commands = keys.add_subparsers(title="keys commands", metavar="COMMAND")
    new = key_commands.add_parser(
        "new",
        help="write a new key file (mode 0600)",
        description="Example: cloudchain keys new alice.json",
    )
    new.add_argument("path", help="file to create; an existing file is never overwritten")
    new.set_defaults(run=_run_keys_new)
    show = key_commands.add_parser(
        "show",
        help="print a key file's address and public key",
        description="Example: cloudchain keys show alice.json",
    )
    show.add_argument("path")
    show.set_defaults(run=_run_keys_show)

    genesis = commands.add_parser("genesis", help="check genesis files")
    genesis_commands = genesis.add_subparsers(title="genesis commands", metavar="COMMAND")
    validate = genesis_commands.add_parser(
        "validate",
        help="load a genesis file and report the first error, if any",
        description="Example: cloudchain genesis validate genesis.json",
    )
    validate.add_argument("path")
    validate.set_defaults(run=_run_genesis_validate)
    return parser


def _run_demo(args: argparse.Namespace) -> int:
    if (
        (args.blocks is not None and args.blocks < 1)
        or args.txs_per_block < 0
        or (args.interval < 0)
    ):
        print("error: --blocks must be >= 1, --txs-per-block and --interval >= 0", file=sys.stderr)
        return 2
    if args.solo:
        from cloudchain.cli.demo import run_demo

        blocks = 20 if args.blocks is None else args.blocks
        return run_demo(blocks, args.txs_per_block, args.interval, args.home, args.seed)
    from cloudchain.cli.network_demo import run_network_demo

    if not 1 <= args.validators <= 16 or (args.tasks is not None and args.tasks < 1):
        print("error: --validators must be 1..16 and --tasks >= 1", file=sys.stderr)
        return 2
    return run_network_demo(args.validators, args.tasks, args.seed, stay=args.stay)


def _run_bench_apply(args: argparse.Namespace) -> int:
    from cloudchain.bench.apply import format_report, run_apply_bench

    if args.blocks < 1 or args.txs_per_block < 1 or args.accounts < 2:
        print("error: --blocks and --txs-per-block must be >= 1, --accounts >= 2", file=sys.stderr)
        return 2
    print(format_report(run_apply_bench(args.blocks, args.txs_per_block, args.accounts)))
    return 0


def _run_bench_mempool(args: argparse.Namespace) -> int:
    from cloudchain.bench.mempool import format_report, run_mempool_bench
    from cloudchain.genesis import DEFAULT_MAX_BLOCK_TXS

    if min(args.pool, args.arrivals, args.block, args.rounds) < 1:
        print("error: --pool, --arrivals, --block and --rounds must be >= 1", file=sys.stderr)
        return 2
    if args.block > DEFAULT_MAX_BLOCK_TXS:
        print(f"error: --block must be at most {DEFAULT_MAX_BLOCK_TXS}", file=sys.stderr)
        return 2
    report = run_mempool_bench(args.pool, args.arrivals, args.block, args.rounds, args.profile)
    print(format_report(report))
    return 0


def _run_bench_market(args: argparse.Namespace) -> int:
    from cloudchain.bench.market import format_report, run_market_bench

    if args.tasks < 1 or args.providers < 1:
        print("error: --tasks and --providers must be >= 1", file=sys.stderr)
        return 2
    print(format_report(run_market_bench(args.tasks, args.providers)))
    return 0


def _run_bench_storage(args: argparse.Namespace) -> int:
    from cloudchain.bench.storage import (
        BenchError,
        StorageBenchConfig,
        parse_sizes,
        run_storage_bench,
    )
    from cloudchain.bench.storage_report import format_table, write_outputs

    try:
        config = StorageBenchConfig(
            parse_sizes(args.sizes),
            args.validators,
            args.replicas,
            args.runs,
            tuple(s.strip() for s in args.systems.split(",") if s.strip()),
            args.seed,
        )
        config.check()
        result = run_storage_bench(config, say=lambda line: print(line, flush=True))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if "--" in str(exc) else 1
    print(format_table(result))
    for path in write_outputs(result, Path(args.out)):
        print(f"wrote {path}")
    return 0


def _run_bench_privacy(args: argparse.Namespace) -> int:
    from cloudchain.bench.privacy import (
        BenchError,
        PrivacyBenchConfig,
        parse_epsilons,
        run_privacy_bench,
    )
    from cloudchain.bench.privacy_report import format_table, write_outputs

    try:
        config = PrivacyBenchConfig(
            epsilons=parse_epsilons(args.epsilons),
            runs=args.runs,
            epochs=args.epochs,
            batch_size=args.batch_size,
            clip_norm=args.clip_norm,
            delta=args.delta,
            seal_mb=args.seal_mb,
            rss_mb=args.rss_mb,
            jobs=not args.no_jobs,
        )
        config.check()
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        result = run_privacy_bench(config, say=lambda line: print(line, flush=True))
    except ImportError as exc:
        print(f"error: {exc.name} is missing: pip install -e '.[torch]'", file=sys.stderr)
        return 1
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(format_table(result))
    for path in write_outputs(result, Path(args.out)):
        print(f"wrote {path}")
    return 0


def _run_bench_consensus(args: argparse.Namespace) -> int:
    from cloudchain.bench.consensus import BenchError, ConsensusBenchConfig, run_consensus_bench
    from cloudchain.bench.consensus_report import format_table, write_outputs
    from cloudchain.bench.consensus_stats import ArgumentError, parse_rates, parse_requesters
    from cloudchain.bench.profiling import ProfileError, py_spy_path

    try:
        config = ConsensusBenchConfig(
            validators=args.validators,
            rates=parse_rates(args.rates),
            requesters=parse_requesters(args.requesters),
            duration_s=args.duration,
            warmup_s=args.warmup,
            profile=args.profile,
            soak_s=args.soak,
            soak_rate=args.soak_rate,
        )
        config.check()
        if args.profile and py_spy_path() is None:
            raise ProfileError(
                "--profile needs py-spy, which is not installed: "
                ".venv/bin/pip install -e '.[bench]'"
            )
    except (ArgumentError, ProfileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out_dir = Path(args.out or time.strftime("bench-consensus-%Y%m%d-%H%M%S")).resolve()
    if out_dir.exists() and any(out_dir.iterdir()):
        print(f"error: --out {out_dir} is not empty; choose another", file=sys.stderr)
        return 2
    print(f"results go to {out_dir}", flush=True)
    try:
        result = run_consensus_bench(config, out_dir, say=lambda line: print(line, flush=True))
    except ProfileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(format_table(result))
    for path in write_outputs(result, out_dir):
        print(f"wrote {path}")
    return 0


def _run_sim_consensus(args: argparse.Namespace) -> int:
    from cloudchain.sim.consensus_sim import SimConfig, SimViolation, run_seed

    if args.validators < 1 or not 0 <= args.byzantine <= (args.validators - 1) // 3:
        print(
            "error: need --validators >= 1 and 0 <= --byzantine <= (validators-1)/3",
            file=sys.stderr,
        )
        return 2
    if args.seeds < 1:
        print("error: --seeds must be >= 1", file=sys.stderr)
        return 2
    config = SimConfig(
        validators=args.validators, byzantine=args.byzantine, byzantine_mode=args.mode
    )
    failures = 0
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        try:
            run_seed(seed, config)
        except SimViolation as violation:
            failures += 1
            print(violation, file=sys.stderr)
        done = seed - args.first_seed + 1
        if done % 100 == 0 or done == args.seeds:
            print(f"{done}/{args.seeds} seeds, {failures} with violations", flush=True)
    return 1 if failures else 0


def _node_commands():
    from cloudchain.cli import node_commands

    return node_commands


def _run_testnet_init(args: argparse.Namespace) -> int:
    from cloudchain.node.config import NodeConfig
    from cloudchain.node.testnet import TestnetError, init_testnet

    if args.oracle_window < 1:
        print("error: --oracle-window must be at least 1 block", file=sys.stderr)
        return 2
    try:
        nodes = init_testnet(
            Path(args.home),
            args.validators,
            args.chain_id,
            args.accounts,
            args.base_port or None,
            args.oracles,
            rpc_unsafe=args.rpc_unsafe,
            market_params={
                "attestation_blocks": args.oracle_window,
                "dispute_vote_blocks": args.oracle_window,
            },
        )
    except TestnetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for node in nodes:
        config = NodeConfig.load(node / "config" / "config.toml")
        print(f"{node}  p2p {config.p2p.listen_address}  rpc http://{config.rpc.listen_address}")
    return 0


def _run_transfer(args: argparse.Namespace) -> int:
    from cloudchain.crypto import is_address

    if not is_address(args.to) or args.amount <= 0:
        print(
            "error: --to must be an address (40 lower-case hex) and --amount positive",
            file=sys.stderr,
        )
        return 2
    return send_tx(args, "token", "transfer", {"to": args.to, "amount": args.amount})


def _run_keys_new(args: argparse.Namespace) -> int:
    key = PrivateKey.generate()
    write_key_file(args.path, key)
    print(json.dumps({"address": key.address, "public_key": key.public_key.hex()}))
    return 0


def _run_keys_show(args: argparse.Namespace) -> int:
    key = read_key_file(args.path)
    print(json.dumps({"address": key.address, "public_key": key.public_key.hex()}))
    return 0


def _run_genesis_validate(args: argparse.Namespace) -> int:
    genesis = Genesis.load(args.path)
    print(
        f"ok: chain {genesis.chain_id}, {len(genesis.validators)} validators "
        f"(power {genesis.total_power()}), {len(genesis.balances)} accounts, "
        f"genesis hash {genesis.hash.hex()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
