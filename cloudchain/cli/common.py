"""What every command that talks to a node shares: the --node and --json options."""

from __future__ import annotations

import argparse
import re

from cloudchain.client import DEFAULT_NODE

NODE_HELP = "a node's RPC URL (default $CLOUDCHAIN_NODE or http://127.0.0.1:26657)"


def node_options(parser: argparse.ArgumentParser, with_json: bool = True) -> None:
    parser.add_argument("--node", default=DEFAULT_NODE, help=NODE_HELP)
    if with_json:
        parser.add_argument("--json", action="store_true",
                            help="print the node's JSON result (for scripts)")  # fmt: skip


TX_HASH = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")  # a transaction hash as `tx HASH` takes it
