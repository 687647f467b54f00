"""What every command that talks to a node shares: the --node and --json options, and
the signing and sending of a transaction (`tx MODULE METHOD ...`)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cloudchain.cli.table import format_fields
from cloudchain.client import DEFAULT_NODE, SyncClient, decode_query_value
from cloudchain.client.results import Event, QueryResponse
from cloudchain.ledger import INT64_MAX

NODE_HELP = "a node's RPC URL (default $CLOUDCHAIN_NODE or http://127.0.0.1:26657)"

# What a verb prints after "ok: ..." from its transaction's events: (label, value) lines.
Describe = Callable[[Sequence[Event]], Sequence[tuple[str, object]]]


def node_options(parser: argparse.ArgumentParser, with_json: bool = True) -> None:
    parser.add_argument("--node", default=DEFAULT_NODE, help=NODE_HELP)
    if with_json:
        parser.add_argument(
            "--json", action="store_true", help="print the node's JSON result (for scripts)"
        )


def fee_arg(text: str) -> int:
    """--fee N: a whole number of token units, 0 to 2^63-1."""
    if not (text.isascii() and text.isdigit()) or int(text) > INT64_MAX:
        raise argparse.ArgumentTypeError(f"{text!r} is not a fee in token units (0 to 2^63-1)")
    return int(text)


def fee_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--fee",
        type=fee_arg,
        default=None,
        metavar="N",
        help="pay N token units (default: the minimum the node's fee schedule asks)",
    )


def tx_options(parser: argparse.ArgumentParser) -> None:
    """--from KEYFILE, --node URL, --fee N and --no-wait: what every verb that sends a
    transaction takes (their values reach `send_tx` in its `args`)."""
    parser.add_argument("--from", dest="key_file", required=True, help="the signer's key file")
    node_options(parser, with_json=False)
    fee_option(parser)
    parser.add_argument(
        "--no-wait", action="store_true", help="return after the mempool check (broadcast_tx_sync)"
    )


def send_tx(
    args: argparse.Namespace,
    module: str,
    method: str,
    tx_args: Mapping[str, Any],
    describe: Describe | None = None,
) -> int:
    """Sign `module.method(tx_args)` with the key in args.key_file, with the account's next
    nonce and args.fee (default: the minimum fee the node's schedule asks for its bytes),
    and send it to args.node: by default wait until it is in a block
    (broadcast_tx_commit), with args.no_wait only for the mempool's check. Prints
    "ok: HASH at height H", the fee paid and what `describe` finds in its events, or the
    refusal on stderr; returns the exit status (0, 1, or 2 for a --fee below the node's
    minimum, found before anything is sent)."""
    from cloudchain.crypto import read_key_file

    key = read_key_file(args.key_file)
    client = SyncClient(args.node)
    fee = getattr(args, "fee", None)
    tx = client.sign_tx(key, module, method, dict(tx_args), fee=fee)
    if fee is not None:
        # Verify the given fee before sending: the node would refuse it (FEE_TOO_LOW).
        minimum = client.fee_schedule().min_fee_of(tx)
        if fee < minimum:
            print(
                f"error: --fee {fee} is below the minimum {minimum} this transaction must pay "
                f"({len(tx.to_bytes())} bytes of {module}.{method}, by the node's fee "
                "schedule: see `cloudchain query /fees/params`); leave out --fee to pay the "
                "minimum",
                file=sys.stderr,
            )
            return 2
    events: Sequence[Event] = ()
    if args.no_wait:
        checked = client.broadcast_tx_sync(tx.to_bytes())
        failure = None if checked.ok else checked
        where = "in the mempool"
    else:
        committed = client.broadcast_tx_commit(tx.to_bytes())
        failure = committed.failure
        where = f"at height {committed.height}"
        events = committed.tx_result.events
    if failure is not None:
        codespace = f" ({failure.codespace})" if failure.codespace else ""
        print(
            f"error: transaction refused with code {failure.code}{codespace}: {failure.log}",
            file=sys.stderr,
        )
        return 1
    print(f"ok: {tx.hash.hex().upper()} {where}")
    shown = describe(events) if describe is not None else ()
    print(format_fields([("fee", tx.fee), *shown]))
    return 0


def print_query_refusal(response: QueryResponse) -> None:
    codespace = f" ({response.codespace})" if response.codespace else ""
    print(
        f"error: query refused with code {response.code}{codespace}: {response.log}",
        file=sys.stderr,
    )


def show_query(args: argparse.Namespace, path: str, data: bytes, show: Callable[[Any], str]) -> int:
    """Run the query `path` on args.node at args.height; print its decoded value as JSON
    with args.json, else `show(value)`, or the refusal on stderr. The exit status."""
    response = SyncClient(args.node).abci_query(path, data, args.height)
    if not response.ok:
        print_query_refusal(response)
        return 1
    value = decode_query_value(response)
    print(json.dumps(value, indent=2) if args.json else show(value))
    return 0


def event_value(events: Sequence[Event], type_: str, key: str) -> str | None:
    """The value of attribute `key` of the first event of type `type_`, if there is one."""
    for event in events:
        if event.type == type_:
            for name, value in event.attributes:
                if name == key:
                    return value
    return None


TX_HASH = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")  # a transaction hash as `tx HASH` takes it
