"""The storage module's verbs: anchoring blobs on chain, and reading the anchors back.

    cloudchain tx storage anchor CID [--size N] [--replica NODE_ID ...] --from KEYFILE
    cloudchain tx storage unanchor CID --from KEYFILE
    cloudchain query storage blob CID          the anchors of a CID
    cloudchain query storage anchored [--owner ADDRESS] [--after CID]

`anchor` without --size or --replica asks the node for them: the size from its blob
store (blob_stat: the blob must be wholly there) and the node itself as the
replica, so `blob put FILE --replicas 2 --anchor --from KEY` and a bare `tx
storage anchor CID` on a node that holds the blob need no bookkeeping by hand.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cloudchain.cli.common import event_value, node_options, send_tx, show_query, tx_options
from cloudchain.cli.table import format_fields, format_table
from cloudchain.client import RPCClientError, SyncClient
from cloudchain.client.results import Event


def add_storage_tx_commands(tx_modules: Any) -> None:
    """Register `tx storage METHOD` on the `tx` command's module subparsers."""
    storage = tx_modules.add_parser(
        "storage",
        prog="cloudchain tx storage",
        help="anchor blobs on chain by CID",
        description="Example: cloudchain tx storage anchor QmCID --from alice.json",
    )
    methods = storage.add_subparsers(
        title="methods", metavar="METHOD", prog="cloudchain tx storage"
    )
    anchor = methods.add_parser(
        "anchor",
        help="record that you keep a blob: its CID, size and replica nodes",
        description="Without --size the node's blob store says it; without --replica the "
        "node's own id is the replica. Example: cloudchain tx storage anchor QmCID "
        "--from alice.json",
    )
    anchor.add_argument("cid")
    anchor.add_argument("--size", type=int, help="bytes of the file (default: the node's)")
    anchor.add_argument(
        "--replica",
        action="append",
        metavar="NODE_ID",
        help="a node that holds the whole blob; repeat for several",
    )
    tx_options(anchor)
    anchor.set_defaults(run=_run_anchor)
    unanchor = methods.add_parser(
        "unanchor",
        help="remove your anchor of a blob (other owners' stay)",
        description="Example: cloudchain tx storage unanchor QmCID --from alice.json",
    )
    unanchor.add_argument("cid")
    tx_options(unanchor)
    unanchor.set_defaults(run=lambda a: send_tx(a, "storage", "unanchor", {"cid": a.cid}))


def add_storage_queries(queries: Any) -> None:
    """Register `query storage WHAT` on the `query` command's subparsers."""
    storage = queries.add_parser(
        "storage",
        prog="cloudchain query storage",
        help="anchored blobs",
        description="Example: cloudchain query storage blob QmCID",
    )
    whats = storage.add_subparsers(title="queries", metavar="WHAT", prog="cloudchain query storage")
    blob = whats.add_parser(
        "blob",
        help="the anchors of a CID: owners, sizes, replicas",
        description="Example: cloudchain query storage blob QmCID",
    )
    blob.add_argument("cid")
    anchored = whats.add_parser(
        "anchored",
        help="anchored CIDs in order, 100 at a time",
        description="Example: cloudchain query storage anchored --owner ADDRESS",
    )
    anchored.add_argument("--owner", metavar="ADDRESS", help="only this owner's")
    anchored.add_argument("--after", metavar="CID", help="the page after this CID")
    for parser, name in ((blob, "blob"), (anchored, "anchored")):
        parser.add_argument("--height", type=int, default=0, help="at this height (0: latest)")
        node_options(parser)
        parser.set_defaults(run=lambda args, name=name: _run_query(name, args))


def anchor_blob(
    args: argparse.Namespace, cid: str, size: int | None, replicas: list[str] | None
) -> int:
    """Send storage.anchor for `cid`, asking the node for what is not given."""
    client = SyncClient(args.node)
    if size is None:
        try:
            stat = client.blob_stat(cid)
        except RPCClientError as exc:
            print(f"error: --size not given and the node cannot say it: {exc}", file=sys.stderr)
            return 1
        if not stat.complete:
            print(f"error: --size not given and the node holds only part of {cid}", file=sys.stderr)
            return 1
        size = stat.size
    if not replicas:
        replicas = [client.status().node_id]
    return send_tx(
        args,
        "storage",
        "anchor",
        {"cid": cid, "size": size, "replicas": replicas},
        _describe_anchor,
    )


def _run_anchor(args: argparse.Namespace) -> int:
    return anchor_blob(args, args.cid, args.size, args.replica)


def _describe_anchor(events: Any) -> list[tuple[str, object]]:
    typed: list[Event] = list(events)
    cid = event_value(typed, "anchor", "cid")
    if cid is None:
        return []
    updated = event_value(typed, "anchor", "updated") == "true"
    return [
        ("anchored", cid),
        ("size", f"{event_value(typed, 'anchor', 'size')} bytes"),
        ("replicas", event_value(typed, "anchor", "replicas")),
        ("update", "yes" if updated else "no"),
    ]


def _run_query(what: str, args: argparse.Namespace) -> int:
    if what == "blob":
        return show_query(args, "/storage/blob", args.cid.encode(), _show_blob)
    filters = [(f, getattr(args, f)) for f in ("owner", "after")]
    data = "&".join(f"{f}={v}" for f, v in filters if v is not None).encode()
    return show_query(args, "/storage/anchored", data, _show_anchored)


def _show_blob(value: dict[str, Any]) -> str:
    rows = [
        (a["owner"], a["size"], a["height"], ", ".join(a["replicas"])) for a in value["anchors"]
    ]
    fields = format_fields([("cid", value["cid"]), ("anchors", len(rows))])
    return fields + "\n" + format_table(("OWNER", "SIZE", "HEIGHT", "REPLICAS"), rows, right=(1, 2))


def _show_anchored(value: dict[str, Any]) -> str:
    more = "  (more: --after " + value["cids"][-1] + ")" if value["more"] else ""
    return "\n".join([*value["cids"], f"{len(value['cids'])} CIDs{more}"])
