"""The verbs that read a node: status, block, tx HASH (show-tx), txs, validators, query,
events. Human output is aligned fields and tables; --json prints the node's JSON
result as it came (one JSON object per line for `events`), for scripts."""

from __future__ import annotations

import argparse
import base64
import json
import sys
from typing import Any

from cloudchain import codec
from cloudchain.cli.common import TX_HASH, node_options, print_query_refusal
from cloudchain.cli.market_commands import add_market_queries
from cloudchain.cli.storage_commands import add_storage_queries
from cloudchain.cli.table import format_fields, format_table
from cloudchain.client import SubscriptionEvent, SyncClient, decode_query_value
from cloudchain.timefmt import format_rfc3339_ns

QUERY_PATH_COMMAND = "query-path"  # unlisted; `cloudchain query /PATH ...` is routed to it
DEFAULT_EVENTS_QUERY = "tm.event='NewBlock'"


def add_read_commands(commands: Any) -> None:
    """Register the verbs on the `cloudchain` command's subparsers."""
    status = commands.add_parser(
        "status",
        help="a node's height, latest block and identity",
        description="Example: cloudchain status --node http://127.0.0.1:26657",
    )
    node_options(status)
    status.set_defaults(run=_run_status)

    block = commands.add_parser(
        "block",
        help="a block (default: the latest)",
        description="Example: cloudchain block 5 --json",
    )
    block.add_argument("height", type=int, nargs="?")
    node_options(block)
    block.set_defaults(run=_run_block)
    tx_show = commands.add_parser(
        "show-tx",
        help="a committed transaction by hash (the same as: tx HASH)",
        description="Example: cloudchain show-tx HASH   |   cloudchain tx HASH --json",
    )
    tx_show.add_argument("hash", help="the transaction hash (64 hex digits)")
    node_options(tx_show)
    tx_show.set_defaults(run=_run_show_tx)
    txs = commands.add_parser(
        "txs",
        help="search committed transactions by event",
        description="Example: cloudchain txs --query "
        "\"transfer.recipient = 'ADDRESS' AND tx.height >= 10\"",
    )
    txs.add_argument("--query", required=True, help="CometBFT event query")
    txs.add_argument("--page", type=int, default=1, help="which page of results (1)")
    txs.add_argument(
        "--per-page", type=int, default=100, help="results per page, at most 100 (100)"
    )
    txs.add_argument(
        "--order",
        choices=("asc", "desc"),
        default="asc",
        help="by height and index: asc (oldest first) or desc",
    )
    node_options(txs)
    txs.set_defaults(run=_run_txs)
    validators = commands.add_parser(
        "validators",
        help="the validator set and voting powers",
        description="Example: cloudchain validators --height 5   |   cloudchain validators --json",
    )
    validators.add_argument("--height", type=int, help="at this height (default: the latest)")
    node_options(validators)
    validators.set_defaults(run=_run_validators)

    query_usage = (
        "cloudchain query PATH [--data TEXT | --data-hex HEX] [--height H] "
        "[--node URL] [--json]\n"
        "       cloudchain query balance ADDRESS [--height H] [--node URL]\n"
        "       cloudchain query market WHAT [...] [--height H] [--node URL] "
        "[--json]"
    )
    query = commands.add_parser(
        "query",
        help="read application state: any query path, a balance, the market",
        usage=query_usage,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Any application query: a PATH that starts with '/' (/token/balance,\n"
        "/token/supply, /auth/nonce, ...). Prints the decoded answer as JSON, or the code\n"
        "and log of a refusal (exit 1). --data TEXT or --data-hex HEX: the query's data;\n"
        "--height H: at this height (0: the latest); --json: the node's result as it is.\n"
        "Examples:\n"
        "  cloudchain query /token/supply\n"
        "  cloudchain query /auth/nonce --data ADDRESS\n"
        "  cloudchain query balance ADDRESS\n"
        "  cloudchain query market tasks --state open   (query market -h: the market's)",
    )
    query_path = commands.add_parser(QUERY_PATH_COMMAND, prog="cloudchain query", usage=query_usage)
    query_path.add_argument("path", help="the query path, e.g. /token/balance")
    data = query_path.add_mutually_exclusive_group()
    data.add_argument("--data", help="the query's data as text (e.g. an address)")
    data.add_argument("--data-hex", help="the query's data as hex")
    query_path.add_argument("--height", type=int, default=0, help="at this height (0: latest)")
    node_options(query_path)
    query_path.set_defaults(run=_run_query_path)
    queries = query.add_subparsers(title="queries", metavar="QUERY")
    balance = queries.add_parser(
        "balance",
        help="an account's balance",
        description="Example: cloudchain query balance ADDRESS",
    )
    balance.add_argument("address")
    balance.add_argument("--height", type=int, default=0, help="at this height (0: latest)")
    node_options(balance, with_json=False)
    balance.set_defaults(run=_run_balance)
    add_market_queries(queries)
    add_storage_queries(queries)

    events = commands.add_parser(
        "events",
        help="follow a node's events as blocks are committed (Ctrl-C stops)",
        description="Example: cloudchain events   (every new block)   |   cloudchain events "
        "--query \"tm.event='Tx' AND transfer.recipient='ADDRESS'\" --json",
    )
    events.add_argument(
        "--query",
        action="append",
        help=f"a CometBFT event query; repeat for several (default: {DEFAULT_EVENTS_QUERY})",
    )
    events.add_argument("--limit", type=int, help="stop after this many events (default: never)")
    node_options(events)
    events.set_defaults(run=_run_events)


def print_json(result: Any) -> None:
    """A node's JSON result as `--json` prints it."""
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
        print_json(status.raw)
        return 0
    validator = (
        f"{_address_hex(status.validator_address)}  (power {status.voting_power})"
        if status.validator_address
        else "none (this node does not validate)"
    )
    print(
        format_fields(
            [
                ("chain", status.network),
                ("node", f"{status.moniker}  {status.node_id}"),
                ("version", status.version),
                ("height", status.latest_block_height),
                ("time", _time(status.latest_block_time_ns)),
                ("block", _hash_hex(status.latest_block_hash)),
                ("app hash", f"{_hash_hex(status.latest_app_hash)}  (in the latest header)"),
                ("earliest", status.earliest_block_height),
                ("catching up", "yes" if status.catching_up else "no"),
                ("validator", validator),
            ]
        )
    )
    return 0


def _run_block(args: argparse.Namespace) -> int:
    block = SyncClient(args.node).block(args.height)
    if args.json:
        print_json(block.raw)
        return 0
    header = block.header
    print(
        format_fields(
            [
                ("height", header.height),
                ("time", _time(header.time_ns)),
                ("hash", _hash_hex(block.hash)),
                ("chain", header.chain_id),
                ("proposer", _address_hex(header.proposer_address)),
                ("app hash", f"{_hash_hex(header.app_hash)}  (state after the previous block)"),
                ("signatures", f"{len(block.last_commit.signatures)}  (of the previous block)"),
                ("txs", len(block.txs)),
            ]
        )
    )
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
    from cloudchain.ledger import MalformedError, Transaction

    try:
        tx = Transaction.from_bytes(raw)
    except MalformedError:
        return []
    return [
        ("call", f"{tx.module}.{tx.method}"),
        ("sender", tx.sender_address),
        ("nonce", tx.nonce),
        ("fee", tx.fee),
        ("args", json.dumps(codec.thaw(tx.args), sort_keys=True, default=_json_bytes)),
    ]


def _run_show_tx(args: argparse.Namespace) -> int:
    if not TX_HASH.match(args.hash):
        print("error: the hash must be 64 hex digits", file=sys.stderr)
        return 2
    found = SyncClient(args.node).tx(bytes.fromhex(args.hash.removeprefix("0x")))
    if args.json:
        print_json(found.raw)
        return 0
    result = found.tx_result
    print(
        format_fields(
            [
                ("hash", _hash_hex(found.hash)),
                ("height", found.height),
                ("index", found.index),
                ("result", _tx_outcome(result.code, result.codespace, result.log)),
                *_tx_call(found.tx),
                ("bytes", len(found.tx)),
            ]
        )
    )
    rows = [(event.type, key, value) for event in result.events for key, value in event.attributes]
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
        print_json(found.raw)
        return 0
    rows = [
        (
            _hash_hex(tx.hash),
            tx.height,
            tx.index,
            _tx_outcome(tx.tx_result.code, tx.tx_result.codespace, tx.tx_result.log),
        )
        for tx in found.txs
    ]
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
        print_json(answer.raw)
        return 0
    rows = [(_address_hex(v.address), v.voting_power, v.pub_key.hex()) for v in answer.validators]
    print(format_table(("ADDRESS", "VOTING POWER", "PUB KEY"), rows, right=(1,)))
    print(
        f"{len(rows)} validator{'' if len(rows) == 1 else 's'}, total power "
        f"{answer.total_power}, at height {answer.block_height}"
    )
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
        print_json(response.raw)
    if not response.ok:
        print_query_refusal(response)
        return 1
    if not args.json:
        print(json.dumps(decode_query_value(response), indent=2, default=_json_bytes))
    return 0


def _run_balance(args: argparse.Namespace) -> int:
    answer = SyncClient(args.node).query("/token/balance", args.address.encode(), args.height)
    print(f"{answer['address']} {answer['balance']} {answer['denom']}")
    return 0


def _run_events(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        print("error: --limit must be >= 1", file=sys.stderr)
        return 2
    queries = tuple(args.query or [DEFAULT_EVENTS_QUERY])
    stream = SyncClient(args.node).subscribe(*queries)
    seen = 0
    try:
        for event in stream:
            line = json.dumps(event.raw) if args.json else _event_line(event)
            print(line, flush=True)
            seen += 1
            if seen == args.limit:
                break
    except KeyboardInterrupt:  # the way to stop following
        pass
    finally:
        stream.close()
    return 0


def _event_line(event: SubscriptionEvent) -> str:
    """One event on one line, in columns that line up from one event to the next."""
    value = event.value
    if event.kind == "Tx":
        tx = value["TxResult"]
        result = tx["result"]
        outcome = _tx_outcome(result["code"], result.get("codespace", ""), result.get("log", ""))
        tx_hash = (event.tags.get("tx.hash") or [""])[0]
        call = dict(_tx_call(base64.b64decode(tx["tx"]))).get("call", "")
        index = tx.get("index", 0)  # CometBFT's omitempty leaves out index 0
        return f"{'Tx':<15} {event.height:>8}  {tx_hash}  #{index:<4} {call}  {outcome}"
    if event.kind == "NewBlock":
        header = value["block"]["header"]
        txs = len(value["block"]["data"].get("txs") or [])
        return (
            f"{'NewBlock':<15} {event.height:>8}  {value['block_id']['hash']}  "
            f"txs {txs:<4} {header['time']}"
        )
    if event.kind == "NewBlockHeader":
        header = value["header"]
        return (
            f"{'NewBlockHeader':<15} {event.height:>8}  proposer "
            f"{header['proposer_address'].lower()}  {header['time']}"
        )
    return f"{event.kind:<15} {json.dumps(dict(value))}"
