"""The `blob` verbs: put, get, stat, pin, unpin and gc against one node's blob store.

    cloudchain blob put FILE [--replicas N] [--cid-version 1] [--anchor --from KEYFILE]
    cloudchain blob get CID -o FILE
    cloudchain blob stat CID | pin CID | unpin CID | gc

Each takes --node and --json (the node's JSON as it came). put and get stream the
file and show a progress bar (bytes, rate, time left) on stderr when it is a
terminal, or always with --progress. pin, unpin and gc are the node operator's: a
node answers them only with `[rpc] unsafe = true` in its config.toml, and the verbs
say so (exit 1) when it does not.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tqdm import tqdm

from cloudchain.cli.common import fee_option, node_options
from cloudchain.cli.storage_commands import anchor_blob
from cloudchain.cli.table import format_fields
from cloudchain.client import RPCClientError, SyncClient
from cloudchain.crypto import read_key_file

# JSON-RPC's "method not found": what a node answers an operator method with while its
# [rpc] unsafe is false (the error's data then names the setting).
METHOD_NOT_FOUND = -32601


def add_blob_commands(commands: Any) -> None:
    """Register `blob` and its verbs on the `cloudchain` command's subparsers."""
    blob = commands.add_parser(
        "blob",
        help="store and fetch files (models, datasets) by CID",
        description="Files live in the nodes' blob stores, named by the CID `ipfs add` "
        "would print. Example: cloudchain blob put model.bin --replicas 2",
    )
    verbs = blob.add_subparsers(title="blob commands", metavar="COMMAND")

    put = verbs.add_parser(
        "put",
        help="upload a file; prints its CID",
        description="Example: cloudchain blob put model.bin --replicas 2 --cid-version 1",
    )
    put.add_argument("file", help="the file to upload ('-': standard input)")
    put.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="return once this many nodes hold it, this one included (1)",
    )
    put.add_argument(
        "--cid-version",
        type=int,
        choices=(0, 1),
        default=0,
        help="0: Qm... (kubo's default); 1: raw leaves, as ipfs add --cid-version=1",
    )
    put.add_argument(
        "--anchor",
        action="store_true",
        help="then anchor it on chain (storage.anchor) with its replicas; needs --from",
    )
    put.add_argument("--from", dest="key_file", help="the key file that signs the anchor")
    put.add_argument(
        "--no-wait", action="store_true", help="with --anchor: return after the mempool check"
    )
    fee_option(put)
    _transfer_options(put)
    put.set_defaults(run=_run_put)

    get = verbs.add_parser(
        "get",
        help="download a blob to a file",
        description="Example: cloudchain blob get QmCID -o model.bin",
    )
    get.add_argument("cid")
    get.add_argument("-o", "--output", required=True, help="the file to write")
    _transfer_options(get)
    get.set_defaults(run=_run_get)

    for name, help_text, run in (
        ("stat", "size, completeness and pin of a blob on the node", _run_stat),
        ("pin", "keep a blob from garbage collection on the node", _run_pin),
        ("unpin", "let garbage collection remove a blob: drop its pin or lease", _run_unpin),
    ):
        verb = verbs.add_parser(
            name, help=help_text, description=f"Example: cloudchain blob {name} QmCID"
        )
        verb.add_argument("cid")
        node_options(verb)
        verb.set_defaults(run=run)
    gc = verbs.add_parser(
        "gc",
        help="remove the blocks of blobs neither pinned, anchored nor in their lease's grace",
        description="Example: cloudchain blob gc --json",
    )
    node_options(gc)
    gc.set_defaults(run=_run_gc)


def _transfer_options(parser: argparse.ArgumentParser) -> None:
    node_options(parser)
    parser.add_argument(
        "--progress",
        action="store_true",
        help="show the progress bar even when stderr is not a terminal",
    )


@contextmanager
def _progress_bar(
    args: argparse.Namespace, what: str
) -> Iterator[Callable[[int, int | None], None]]:
    """A progress callback drawing bytes, rate and time left on stderr (or nothing)."""
    shown = args.progress or sys.stderr.isatty()
    with tqdm(
        desc=what,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        disable=not shown,
        dynamic_ncols=True,
        leave=True,
    ) as bar:

        def update(done: int, total: int | None) -> None:
            if total is not None and bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

        yield update


def _print(args: argparse.Namespace, raw: Any, lines: list[tuple[str, object]]) -> None:
    if args.json:
        print(json.dumps(raw, indent=2))
    else:
        print(format_fields(lines))


def _run_put(args: argparse.Namespace) -> int:
    if args.replicas < 1:
        print("error: --replicas must be at least 1", file=sys.stderr)
        return 2
    if args.fee is not None and not args.anchor:
        print("error: --fee goes with --anchor (the upload itself is free)", file=sys.stderr)
        return 2
    if args.anchor and (args.key_file is None or args.json):
        print(
            "error: --anchor needs --from KEYFILE, and goes without --json (for scripts: "
            "blob put --json, then tx storage anchor)",
            file=sys.stderr,
        )
        return 2
    if args.anchor:
        read_key_file(args.key_file)  # a bad key file fails now, not after the upload
    source = sys.stdin.buffer if args.file == "-" else args.file
    try:
        with _progress_bar(args, "put") as progress:
            put = SyncClient(args.node).blob_put(source, args.replicas, progress, args.cid_version)
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    _print(
        args,
        put.raw,
        [("cid", put.cid), ("size", f"{put.size} bytes"), ("replicas", ", ".join(put.replicas))],
    )
    if args.anchor:
        return anchor_blob(args, put.cid, put.size, list(put.replicas))
    return 0


def _run_get(args: argparse.Namespace) -> int:
    try:
        with _progress_bar(args, "get") as progress:
            got = SyncClient(args.node).blob_get(args.cid, args.output, progress)
    except OSError as exc:
        print(f"error: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    raw = {"cid": got.cid, "path": str(got.path), "size": got.bytes_written}
    _print(
        args, raw, [("cid", got.cid), ("file", got.path), ("size", f"{got.bytes_written} bytes")]
    )
    return 0


def _run_stat(args: argparse.Namespace) -> int:
    stat = SyncClient(args.node).blob_stat(args.cid)
    _print(
        args,
        stat.raw,
        [
            ("cid", stat.cid),
            ("size", f"{stat.size} bytes"),
            ("complete", "yes" if stat.complete else "no"),
            ("blocks", f"{stat.blocks_local} here, {stat.blocks_missing} known to be missing"),
            ("pinned", "yes" if stat.pinned else "no"),
            ("leased", "yes (kept until anchored, or the grace ends)" if stat.leased else "no"),
        ],
    )
    return 0


def _run_pin(args: argparse.Namespace) -> int:
    return _pin_verb(args, pin=True)


def _run_unpin(args: argparse.Namespace) -> int:
    return _pin_verb(args, pin=False)


def _pin_verb(args: argparse.Namespace, *, pin: bool) -> int:
    client = SyncClient(args.node)
    method = "blob_pin" if pin else "blob_unpin"
    try:
        result = client.call(method, cid=args.cid)
    except RPCClientError as exc:
        return _refused(args, "pin" if pin else "unpin", exc)
    state = "pinned" if pin else "not pinned"
    changed = "" if result.get("changed") else " (already)"
    _print(args, result, [("cid", result.get("cid")), ("state", state + changed)])
    return 0


def _run_gc(args: argparse.Namespace) -> int:
    try:
        gc = SyncClient(args.node).blob_gc()
    except RPCClientError as exc:
        return _refused(args, "gc", exc)
    _print(
        args,
        gc.raw,
        [
            ("removed", f"{gc.blocks_removed} blocks"),
            ("freed", f"{gc.bytes_freed} bytes"),
            ("expired", f"{len(gc.leases_expired)} unanchored blobs past their grace"),
        ],
    )
    return 0


def _refused(args: argparse.Namespace, verb: str, exc: RPCClientError) -> int:
    """An operator verb the node does not answer: say which node and why (its error's
    data names `[rpc] unsafe`); any other error is main's to print."""
    if exc.code != METHOD_NOT_FOUND:
        raise exc
    why = exc.data or "it does not offer this method"
    print(f"error: the node at {args.node} refuses `blob {verb}`: {why}", file=sys.stderr)
    return 1
