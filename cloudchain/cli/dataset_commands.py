"""`cloudchain dataset add|grant|revoke|rotate|show|budget`: a data owner's verbs
(cloudchain/client/datasets.py does the work)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from cloudchain.cli.common import NODE_HELP
from cloudchain.cli.table import format_fields
from cloudchain.client import DEFAULT_NODE, Client, RPCClientError
from cloudchain.client.datasets import (
    DEFAULT_STORE,
    DataKeyStore,
    DatasetError,
    add_dataset,
    grant,
    revoke,
    rotate,
)
from cloudchain.crypto import KeyFileError, is_address, read_key_file
from cloudchain.privacy.units import MICRO_EPS


def add_dataset_commands(commands: Any) -> None:
    dataset = commands.add_parser("dataset", help="sealed datasets: add, grant, revoke, rotate")
    verbs = dataset.add_subparsers(title="dataset commands", metavar="COMMAND")

    add = verbs.add_parser(
        "add",
        help="seal a file under a new data key, upload the ciphertext, record it on chain",
        description="Example: cloudchain dataset add patients.csv --encrypt --epsilon 8 "
        "--delta 1e-5 --from owner.json",
    )
    add.add_argument("file", type=Path)
    add.add_argument("--encrypt", action="store_true", help="seal it (required: see below)")
    add.add_argument("--epsilon", type=float, default=8.0, help="the total ε budget (8)")
    add.add_argument("--delta", type=float, default=1e-5, help="δ of its accounting (1e-5)")
    add.add_argument("--replicas", type=int, default=1, help="nodes that hold the ciphertext")
    _owner_options(add)
    add.set_defaults(run=_run_add)

    grant_ = verbs.add_parser("grant", help="let a provider open the dataset")
    grant_.add_argument("dataset", type=int)
    grant_.add_argument("--to", required=True, help="the provider's address")
    scope = grant_.add_mutually_exclusive_group(required=True)
    scope.add_argument("--task", type=int, default=0, help="for this task only")
    scope.add_argument("--until", type=int, default=0, help="until this height")
    _owner_options(grant_)
    grant_.set_defaults(run=_run_grant)

    revoke_ = verbs.add_parser("revoke", help="end a grant, or every grant and the dataset")
    revoke_.add_argument("dataset", type=int)
    revoke_.add_argument("--grantee", default="", help="one provider (default: all, for good)")
    _owner_options(revoke_)
    revoke_.set_defaults(run=_run_revoke)

    rotate_ = verbs.add_parser("rotate", help="seal the data anew under a new key")
    rotate_.add_argument("dataset", type=int)
    rotate_.add_argument("file", type=Path)
    rotate_.add_argument("--replicas", type=int, default=1)
    _owner_options(rotate_)
    rotate_.set_defaults(run=_run_rotate)

    readers = (
        ("show", "the dataset, its grants and its audit trail"),
        ("budget", "the ε its DP tasks have spent and have left"),
    )
    for name, help_ in readers:
        reader = verbs.add_parser(name, help=help_)
        reader.add_argument("dataset", type=int)
        reader.add_argument("--node", default=DEFAULT_NODE, help=NODE_HELP)
        reader.set_defaults(run=_run_show if name == "show" else _run_budget)


def _owner_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="key_file", required=True, help="the owner's key file")
    parser.add_argument("--node", default=DEFAULT_NODE, help=NODE_HELP)
    parser.add_argument(
        "--keystore", type=Path, default=DEFAULT_STORE, help=f"data keys ({DEFAULT_STORE})"
    )


def _run(work: Callable[[Client], Awaitable[int]], node: str) -> int:
    try:
        return asyncio.run(work(Client(node)))
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except RPCClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _key(args: argparse.Namespace) -> Any:
    try:
        return read_key_file(args.key_file)
    except (OSError, KeyFileError, ValueError) as exc:
        raise DatasetError(f"--from {args.key_file}: {exc}") from None


def _run_add(args: argparse.Namespace) -> int:
    if not args.encrypt:
        print(
            "error: a dataset recorded here is sealed: add --encrypt (for a file anyone "
            "with its CID may read, use `cloudchain blob put`)",
            file=sys.stderr,
        )
        return 2

    async def work(client: Client) -> int:
        dataset, cid = await add_dataset(
            client,
            _key(args),
            args.file,
            epsilon=args.epsilon,
            delta=args.delta,
            store=DataKeyStore(args.keystore),
            replicas=args.replicas,
        )
        print(f"ok: dataset {dataset} sealed as {cid}")
        kept = DataKeyStore(args.keystore).path(dataset)
        print(format_fields([("budget", f"ε {args.epsilon}, δ {args.delta}"), ("data key", kept)]))
        return 0

    return _run(work, args.node)


def _run_grant(args: argparse.Namespace) -> int:
    if not is_address(args.to):
        print(f"error: --to {args.to!r} is not an address", file=sys.stderr)
        return 2

    async def work(client: Client) -> int:
        scope = await grant(
            client,
            _key(args),
            args.dataset,
            args.to,
            task=args.task,
            until=args.until,
            store=DataKeyStore(args.keystore),
        )
        print(f"ok: {args.to} may open dataset {args.dataset} ({scope})")
        return 0

    return _run(work, args.node)


def _run_revoke(args: argparse.Namespace) -> int:
    async def work(client: Client) -> int:
        await revoke(client, _key(args), args.dataset, args.grantee)
        whom = args.grantee or "every grantee; the dataset takes no new grants or tasks"
        print(f"ok: dataset {args.dataset} revoked for {whom}")
        print("note: a provider that already decrypted it cannot be made to forget it")
        return 0

    return _run(work, args.node)


def _run_rotate(args: argparse.Namespace) -> int:
    async def work(client: Client) -> int:
        cid = await rotate(
            client,
            _key(args),
            args.dataset,
            args.file,
            store=DataKeyStore(args.keystore),
            replicas=args.replicas,
        )
        print(f"ok: dataset {args.dataset} sealed anew as {cid}; every earlier grant is void")
        return 0

    return _run(work, args.node)


def _run_show(args: argparse.Namespace) -> int:
    async def work(client: Client) -> int:
        record = await client.query("/access/dataset", str(args.dataset).encode())
        grants = await client.query("/access/grants", f"dataset={args.dataset}".encode())
        audit = await client.query("/access/audit", str(args.dataset).encode())
        fields: list[tuple[str, object]] = [
            (name, record[name]) for name in ("owner", "cid", "size", "status", "key_version")
        ]
        fields += [("grant", f"{g['grantee']} ({_scope(g)})") for g in grants["grants"]]
        fields += [
            ("opened", f"by {o['grantee']} for task {o['task']} at height {o['height']}")
            for o in audit["openings"]
        ]
        print(format_fields(fields))
        return 0

    return _run(work, args.node)


def _scope(grant_record: dict[str, Any]) -> str:
    task = grant_record["task"]
    return f"task {task}" if task else f"until height {grant_record['until']}"


def _run_budget(args: argparse.Namespace) -> int:
    async def work(client: Client) -> int:
        record = await client.query("/access/dataset", str(args.dataset).encode())
        spent, left = record["spent_micro_eps"], record["remaining_micro_eps"]
        print(
            format_fields(
                [
                    ("budget", f"ε {record['budget_micro_eps'] / MICRO_EPS:g}"),
                    ("spent", f"ε {spent / MICRO_EPS:g}"),
                    ("remaining", f"ε {left / MICRO_EPS:g}"),
                    ("delta", f"{record['delta_e12'] / 10**12:g}"),
                ]
            )
        )
        return 0

    return _run(work, args.node)
