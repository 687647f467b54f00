"""Entry point of the `cloudchain` command."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cloudchain import __version__, codec
from cloudchain.cli.table import format_fields, format_table
from cloudchain.client import DEFAULT_NODE, RPCClientError, SyncClient, decode_query_value
from cloudchain.crypto import KeyFileError, PrivateKey, read_key_file, write_key_file
from cloudchain.genesis import Genesis, GenesisError
from cloudchain.node.config import ConfigError
from cloudchain.timefmt import format_rfc3339_ns


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(_route(list(sys.argv[1:] if argv is None else argv)))
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except (KeyFileError, GenesisError, ConfigError, RPCClientError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


QUERY_PATH_COMMAND = "query-path"  # unlisted; `cloudchain query /PATH ...` is routed to it
_TX_HASH = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
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
    if argv[0] == "tx" and _TX_HASH.match(first):
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


NODE_HELP = "a node's RPC URL (default $CLOUDCHAIN_NODE or http://127.0.0.1:26657)"


def _node_options(parser: argparse.ArgumentParser, with_json: bool = True) -> None:
    parser.add_argument("--node", default=DEFAULT_NODE, help=NODE_HELP)
    if with_json:
        parser.add_argument("--json", action="store_true",
                            help="print the node's JSON result (for scripts)")  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cloudchain",
        description="CloudChain: a permissioned BFT ledger for an AI compute marketplace.",
    )
    parser.add_argument("--version", action="version", version=f"cloudchain {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="run a local 4-validator network doing signed transfers (Ctrl-C stops)",
        description="Example: cloudchain demo   |   cloudchain demo --blocks 10   |   "
        "cloudchain demo --solo --blocks 20 (one in-process chain, no network)",
    )
    demo.add_argument("--solo", action="store_true", help="one in-process chain, no network")
    demo.add_argument("--validators", type=int, default=4, help="validators (4)")
    demo.add_argument("--txs-per-second", type=int, default=20, help="transfers sent (20)")
    demo.add_argument("--blocks", type=int, help="stop after this height (default: Ctrl-C; "
                      "--solo: 20)")  # fmt: skip
    demo.add_argument("--txs-per-block", type=int, default=8, help="transfers per block (8)")
    demo.add_argument("--interval", type=float, default=0.2, help="seconds between blocks (0.2)")
    demo.add_argument("--home", help="directory for genesis, keys and data (default: temporary)")
    demo.add_argument("--seed", type=int, default=1, help="seed of the random transfers (1)")
    demo.set_defaults(run=_run_demo)

    bench = commands.add_parser("bench", help="measure what the ledger costs")
    bench_commands = bench.add_subparsers(title="bench commands", metavar="COMMAND")
    apply = bench_commands.add_parser(
        "apply", help="time prepare/process/finalize/commit of blocks of transfers",
        description="Example: cloudchain bench apply --blocks 30 --txs-per-block 500",
    )  # fmt: skip
    apply.add_argument("--blocks", type=int, default=30, help="blocks to apply (30)")
    apply.add_argument("--txs-per-block", type=int, default=500, help="transfers per block (500)")
    apply.add_argument("--accounts", type=int, default=100, help="accounts sending (100)")
    apply.set_defaults(run=_run_bench_apply)

    sim = commands.add_parser("sim", help="run deterministic simulations")
    sim_commands = sim.add_subparsers(title="sim commands", metavar="COMMAND")
    consensus = sim_commands.add_parser(
        "consensus", help="run the consensus simulator over many seeds; non-zero exit on any "
        "violation", description="Example: cloudchain sim consensus --seeds 5000 --validators 7 "
        "--byzantine 2",
    )  # fmt: skip
    consensus.add_argument("--seeds", type=int, default=200, help="how many seeds (200)")
    consensus.add_argument("--first-seed", type=int, default=0, help="the first seed (0)")
    consensus.add_argument("--validators", type=int, default=4, help="validators (4)")
    consensus.add_argument("--byzantine", type=int, default=1,
                           help="Byzantine validators, at most (n-1)/3 (1)")  # fmt: skip
    consensus.add_argument("--mode", choices=("mixed", "equivocate", "silent"), default="mixed",
                           help="what the Byzantine validators do (mixed)")  # fmt: skip
    consensus.set_defaults(run=_run_sim_consensus)

    testnet = commands.add_parser("testnet", help="create a local multi-validator network")
    testnet_commands = testnet.add_subparsers(title="testnet commands", metavar="COMMAND")
    init = testnet_commands.add_parser(
        "init", help="write genesis, keys and config.toml for each node",
        description="Example: cloudchain testnet init --validators 4 --home ./testnet",
    )  # fmt: skip
    init.add_argument("--validators", type=int, default=4, help="number of validators (4)")
    init.add_argument("--home", required=True, help="directory to create (must be empty)")
    init.add_argument("--chain-id", default="cloudchain-local", help="chain id (cloudchain-local)")
    init.add_argument("--accounts", type=int, default=4, help="funded accounts (4)")
    init.add_argument("--base-port", type=int, default=26656,
                      help="node i listens on base+2i (p2p) and base+2i+1 (RPC), so node0's RPC "
                      "is the default --node of every command (26656); 0: free ports")  # fmt: skip
    init.set_defaults(run=_run_testnet_init)
    up = testnet_commands.add_parser(
        "up", help="start every node as its own process; Ctrl-C stops them all",
        description="Example: cloudchain testnet up --home ./testnet",
    )  # fmt: skip
    up.add_argument("--home", required=True, help="the directory testnet init wrote")
    up.set_defaults(run=lambda a: _node_commands().run_testnet(Path(a.home)))

    node = commands.add_parser("node", help="run a node")
    node_commands = node.add_subparsers(title="node commands", metavar="COMMAND")
    start = node_commands.add_parser(
        "start", help="run one node until SIGINT or SIGTERM",
        description="Example: cloudchain node start --home ./testnet/node0",
    )  # fmt: skip
    start.add_argument("--home", required=True, help="the node's directory")
    start.set_defaults(run=lambda a: _node_commands().run_node(Path(a.home)))

    status = commands.add_parser("status", help="a node's height, latest block and identity",
                                 description="Example: cloudchain status --node "
                                 "http://127.0.0.1:26657")  # fmt: skip
    _node_options(status)
    status.set_defaults(run=_run_status)

    tx = commands.add_parser(
        "tx", help="show a committed transaction (tx HASH), or sign and send one",
        usage="cloudchain tx HASH [--node URL] [--json]\n"
        "       cloudchain tx MODULE METHOD [options]",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Show the committed transaction with this hash (64 hex digits):\n"
        "  cloudchain tx HASH [--node URL] [--json]   (the same as: cloudchain show-tx HASH)\n"
        "Sign a transaction and send it:\n"
        "  cloudchain tx token transfer --from alice.json --to ADDRESS --amount 100",
    )  # fmt: skip
    tx_modules = tx.add_subparsers(title="modules", metavar="MODULE")
    token = tx_modules.add_parser("token", help="token transactions")
    token_methods = token.add_subparsers(title="methods", metavar="METHOD")
    transfer = token_methods.add_parser(
        "transfer", help="send tokens; waits until the transfer is in a block",
        description="Example: cloudchain tx token transfer --from alice.json --to ADDRESS "
        "--amount 100",
    )  # fmt: skip
    transfer.add_argument("--from", dest="key_file", required=True, help="sender's key file")
    transfer.add_argument("--to", required=True, help="recipient address (40 hex)")
    transfer.add_argument("--amount", type=int, required=True, help="integer units")
    _node_options(transfer, with_json=False)
    transfer.add_argument("--no-wait", action="store_true",
                          help="return after the mempool check (broadcast_tx_sync)")  # fmt: skip
    transfer.set_defaults(run=_run_transfer)

    block = commands.add_parser("block", help="a block (default: the latest)",
                                description="Example: cloudchain block 5 --json")  # fmt: skip
    block.add_argument("height", type=int, nargs="?")
    _node_options(block)
    block.set_defaults(run=_run_block)
    tx_show = commands.add_parser("show-tx", help="a committed transaction by hash (the same "
                                  "as: tx HASH)", description="Example: cloudchain show-tx "
                                  "HASH   |   cloudchain tx HASH --json")  # fmt: skip
    tx_show.add_argument("hash", help="the transaction hash (64 hex digits)")
    _node_options(tx_show)
    tx_show.set_defaults(run=_run_show_tx)
    txs = commands.add_parser("txs", help="search committed transactions by event",
                              description="Example: cloudchain txs --query "
                              "\"transfer.recipient = 'ADDRESS' AND tx.height >= 10\"")  # fmt: skip
    txs.add_argument("--query", required=True, help="CometBFT event query")
    txs.add_argument("--page", type=int, default=1, help="which page of results (1)")
    txs.add_argument("--per-page", type=int, default=100, help="results per page, at most 100 "
                     "(100)")  # fmt: skip
    txs.add_argument("--order", choices=("asc", "desc"), default="asc",
                     help="by height and index: asc (oldest first) or desc")  # fmt: skip
    _node_options(txs)
    txs.set_defaults(run=_run_txs)
    validators = commands.add_parser(
        "validators", help="the validator set and voting powers",
        description="Example: cloudchain validators --height 5   |   cloudchain validators --json",
    )  # fmt: skip
    validators.add_argument("--height", type=int, help="at this height (default: the latest)")
    _node_options(validators)
    validators.set_defaults(run=_run_validators)

    query_usage = ("cloudchain query PATH [--data TEXT | --data-hex HEX] [--height H] "
                   "[--node URL] [--json]\n"
                   "       cloudchain query balance ADDRESS [--height H] [--node URL]")  # fmt: skip
    query = commands.add_parser(
        "query", help="read application state: any query path, or a balance",
        usage=query_usage,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Any application query: a PATH that starts with '/' (/token/balance,\n"
        "/token/supply, /auth/nonce, ...). Prints the decoded answer as JSON, or the code\n"
        "and log of a refusal (exit 1). --data TEXT or --data-hex HEX: the query's data;\n"
        "--height H: at this height (0: the latest); --json: the node's result as it is.\n"
        "Examples:\n"
        "  cloudchain query /token/supply\n"
        "  cloudchain query /auth/nonce --data ADDRESS\n"
        "  cloudchain query balance ADDRESS",
    )  # fmt: skip
    query_path = commands.add_parser(QUERY_PATH_COMMAND, prog="cloudchain query",
                                     usage=query_usage)  # fmt: skip
    query_path.add_argument("path", help="the query path, e.g. /token/balance")
    data = query_path.add_mutually_exclusive_group()
    data.add_argument("--data", help="the query's data as text (e.g. an address)")
    data.add_argument("--data-hex", help="the query's data as hex")
    query_path.add_argument("--height", type=int, default=0, help="at this height (0: latest)")
    _node_options(query_path)
    query_path.set_defaults(run=_run_query_path)
    queries = query.add_subparsers(title="queries", metavar="QUERY")
    balance = queries.add_parser(
        "balance", help="an account's balance",
        description="Example: cloudchain query balance ADDRESS",
    )  # fmt: skip
    balance.add_argument("address")
    balance.add_argument("--height", type=int, default=0, help="at this height (0: latest)")
    _node_options(balance, with_json=False)
    balance.set_defaults(run=_run_balance)

    keys = commands.add_parser("keys", help="create and inspect Ed25519 key files")
    key_commands = keys.add_subparsers(title="keys commands", metavar="COMMAND")
    new = key_commands.add_parser(
        "new", help="write a new key file (mode 0600)",
        description="Example: cloudchain keys new alice.json",
    )  # fmt: skip
    new.add_argument("path", help="file to create; an existing file is never overwritten")
    new.set_defaults(run=_run_keys_new)
    show = key_commands.add_parser(
        "show", help="print a key file's address and public key",
        description="Example: cloudchain keys show alice.json",
    )  # fmt: skip
    show.add_argument("path")
    show.set_defaults(run=_run_keys_show)

    genesis = commands.add_parser("genesis", help="check genesis files")
    genesis_commands = genesis.add_subparsers(title="genesis commands", metavar="COMMAND")
    validate = genesis_commands.add_parser(
        "validate", help="load a genesis file and report the first error, if any",
        description="Example: cloudchain genesis validate genesis.json",
    )  # fmt: skip
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

    if not 1 <= args.validators <= 16 or args.txs_per_second < 0:
        print("error: --validators must be 1..16 and --txs-per-second >= 0", file=sys.stderr)
        return 2
    return run_network_demo(args.validators, args.blocks, args.txs_per_second, args.seed)


def _run_bench_apply(args: argparse.Namespace) -> int:
    from cloudchain.bench.apply import format_report, run_apply_bench

    if args.blocks < 1 or args.txs_per_block < 1 or args.accounts < 2:
        print("error: --blocks and --txs-per-block must be >= 1, --accounts >= 2", file=sys.stderr)
        return 2
    print(format_report(run_apply_bench(args.blocks, args.txs_per_block, args.accounts)))
    return 0


def _run_sim_consensus(args: argparse.Namespace) -> int:
    from cloudchain.sim.consensus_sim import SimConfig, SimViolation, run_seed

    if args.validators < 1 or not 0 <= args.byzantine <= (args.validators - 1) // 3:
        print("error: need --validators >= 1 and 0 <= --byzantine <= (validators-1)/3",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.seeds < 1:
        print("error: --seeds must be >= 1", file=sys.stderr)
        return 2
    config = SimConfig(validators=args.validators, byzantine=args.byzantine,
                       byzantine_mode=args.mode)  # fmt: skip
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

    try:
        nodes = init_testnet(Path(args.home), args.validators, args.chain_id, args.accounts,
                             args.base_port or None)  # fmt: skip
    except TestnetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for node in nodes:
        config = NodeConfig.load(node / "config" / "config.toml")
        print(f"{node}  p2p {config.p2p.listen_address}  "
              f"rpc http://{config.rpc.listen_address}")  # fmt: skip
    return 0


def _print_json(result: Any) -> None:
    print(json.dumps(result, indent=2))


def _hash_hex(data: bytes) -> str:
    return data.hex().upper()  # hashes as CometBFT shows them


def _address_hex(data: bytes) -> str:
    return data.hex()  # addresses as accounts have them (`keys show`, `query balance`)


def _time(time_ns: int) -> str:
    return format_rfc3339_ns(time_ns)


def _run_status(args: argparse.Namespace) -> int:
    status = SyncClient(args.node).status()
    if args.json:
        _print_json(status.raw)
        return 0
    validator = (f"{_address_hex(status.validator_address)}  (power {status.voting_power})"
                 if status.validator_address else "none (this node does not validate)")  # fmt: skip
    print(format_fields([
        ("chain", status.network),
        ("node", f"{status.moniker}  {status.node_id}"),
        ("version", status.version),
        ("height", status.latest_block_height),
        ("time", _time(status.latest_block_time_ns)),
        ("block", _hash_hex(status.latest_block_hash)),
        ("app hash", _hash_hex(status.latest_app_hash)),
        ("earliest", status.earliest_block_height),
        ("catching up", "yes" if status.catching_up else "no"),
        ("validator", validator),
    ]))  # fmt: skip
    return 0


def _run_transfer(args: argparse.Namespace) -> int:
    from cloudchain.crypto import is_address
    from cloudchain.types import Transaction

    if not is_address(args.to) or args.amount <= 0:
        print("error: --to must be an address (40 lower-case hex) and --amount positive",
              file=sys.stderr)  # fmt: skip
        return 2
    key = read_key_file(args.key_file)
    client = SyncClient(args.node)
    chain_id = client.status().network
    tx = Transaction.create(key, chain_id, client.nonce(key.address), "token", "transfer",
                            {"to": args.to, "amount": args.amount})  # fmt: skip
    if args.no_wait:
        checked = client.broadcast_tx_sync(tx.to_bytes())
        failure = None if checked.ok else checked
        where = "in the mempool"
    else:
        committed = client.broadcast_tx_commit(tx.to_bytes())
        failure = committed.failure
        where = f"at height {committed.height}"
    if failure is not None:
        print(f"error: transaction refused with code {failure.code}: {failure.log}",
              file=sys.stderr)  # fmt: skip
        return 1
    print(f"ok: {_hash_hex(tx.hash)} {where}")
    return 0


def _run_block(args: argparse.Namespace) -> int:
    block = SyncClient(args.node).block(args.height)
    if args.json:
        _print_json(block.raw)
        return 0
    header = block.header
    print(format_fields([
        ("height", header.height),
        ("time", _time(header.time_ns)),
        ("hash", _hash_hex(block.hash)),
        ("chain", header.chain_id),
        ("proposer", _address_hex(header.proposer_address)),
        ("app hash", f"{_hash_hex(header.app_hash)}  (state after the previous block)"),
        ("signatures", f"{len(block.last_commit.signatures)}  (of the previous block)"),
        ("txs", len(block.txs)),
    ]))  # fmt: skip
    if block.txs:
        print()
        rows = [(i, _hash_hex(codec.sha256(tx)), len(tx)) for i, tx in enumerate(block.txs)]
        print(format_table(("INDEX", "TX HASH", "BYTES"), rows, right=(0, 2)))
    return 0


def _tx_outcome(code: int, codespace: str, log: str) -> str:
    if code == 0:
        return "ok"
    return f"code {code}{f' ({codespace})' if codespace else ''}: {log}"


def _tx_call(raw: bytes) -> list[tuple[str, object]]:
    """What a transaction asks for, if it decodes as one of ours."""
    from cloudchain.types import MalformedError, Transaction

    try:
        tx = Transaction.from_bytes(raw)
    except MalformedError:
        return []
    return [("call", f"{tx.module}.{tx.method}"), ("sender", tx.sender_address),
            ("nonce", tx.nonce), ("args", json.dumps(codec.thaw(tx.args), sort_keys=True,
                                                     default=_json_bytes))]  # fmt: skip


def _run_show_tx(args: argparse.Namespace) -> int:
    if not _TX_HASH.match(args.hash):
        print("error: the hash must be 64 hex digits", file=sys.stderr)
        return 2
    found = SyncClient(args.node).tx(bytes.fromhex(args.hash.removeprefix("0x")))
    if args.json:
        _print_json(found.raw)
        return 0
    result = found.tx_result
    print(format_fields([
        ("hash", _hash_hex(found.hash)),
        ("height", found.height),
        ("index", found.index),
        ("result", _tx_outcome(result.code, result.codespace, result.log)),
        *_tx_call(found.tx),
        ("bytes", len(found.tx)),
    ]))  # fmt: skip
    rows = [(event.type, key, value) for event in result.events
            for key, value in event.attributes]  # fmt: skip
    if rows:
        print()
        print(format_table(("EVENT", "KEY", "VALUE"), rows))
    return 0


def _run_txs(args: argparse.Namespace) -> int:
    if args.page < 1 or not 1 <= args.per_page <= 100:
        print("error: --page must be >= 1 and --per-page 1..100", file=sys.stderr)
        return 2
    found = SyncClient(args.node).tx_search(args.query, args.page, args.per_page, args.order)
    if args.json:
        _print_json(found.raw)
        return 0
    rows = [(_hash_hex(tx.hash), tx.height, tx.index,
             _tx_outcome(tx.tx_result.code, tx.tx_result.codespace, tx.tx_result.log))
            for tx in found.txs]  # fmt: skip
    if rows:
        print(format_table(("HASH", "HEIGHT", "INDEX", "RESULT"), rows, right=(1, 2)))
    total = found.total_count
    first = (args.page - 1) * args.per_page + 1
    shown = "" if len(rows) == total else f" ({first}-{first + len(rows) - 1} shown)"
    print(f"{total} transaction{'' if total == 1 else 's'}{shown}")
    return 0


def _run_validators(args: argparse.Namespace) -> int:
    answer = SyncClient(args.node).validators(args.height)
    if args.json:
        _print_json(answer.raw)
        return 0
    rows = [(_address_hex(v.address), v.voting_power, v.pub_key.hex())
            for v in answer.validators]  # fmt: skip
    print(format_table(("ADDRESS", "VOTING POWER", "PUB KEY"), rows, right=(1,)))
    print(f"{len(rows)} validator{'' if len(rows) == 1 else 's'}, total power "
          f"{answer.total_power}, at height {answer.block_height}")  # fmt: skip
    return 0


def _json_bytes(value: object) -> str:
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _run_query_path(args: argparse.Namespace) -> int:
    if args.data_hex is not None:
        try:
            data = bytes.fromhex(args.data_hex.removeprefix("0x"))
        except ValueError:
            print("error: --data-hex must be hex", file=sys.stderr)
            return 2
    else:
        data = (args.data or "").encode()
    response = SyncClient(args.node).abci_query(args.path, data, args.height)
    if args.json:
        _print_json(response.raw)
    if not response.ok:
        codespace = f" ({response.codespace})" if response.codespace else ""
        print(f"error: query refused with code {response.code}{codespace}: {response.log}",
              file=sys.stderr)  # fmt: skip
        return 1
    if not args.json:
        print(json.dumps(decode_query_value(response), indent=2, default=_json_bytes))
    return 0


def _run_balance(args: argparse.Namespace) -> int:
    answer = SyncClient(args.node).query("/token/balance", args.address.encode(), args.height)
    print(f"{answer['address']} {answer['balance']} {answer['denom']}")
    return 0


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
