"""The requester's verbs: `cloudchain task submit | wait | result | logs`.

    cloudchain task submit --from KEY --manifest m.json --data train.csv [--budget N]
    cloudchain task wait ID [--timeout S]
    cloudchain task result ID --out DIR
    cloudchain task logs ID

Each is a thin shell over the client's task calls (cloudchain/client/tasks.py): the
options become their arguments, what they return is printed for people (or as JSON with
--json), a warning goes to stderr. Errors are one line on stderr: exit 2 for options
that cannot make a task (found before anything is sent), 1 for everything else (a bad
manifest, named by its field; a refusal by the chain, with its code and log; a task
without an output; a wait that timed out; a job that did not end "done").
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from cloudchain.cli.common import node_options
from cloudchain.cli.table import format_fields
from cloudchain.client import SyncClient
from cloudchain.client.task_terms import FINAL_STATES, TaskRecord, TaskUsageError, parse_data_arg
from cloudchain.client.tasks import (
    DEFAULT_MAX_LATENCY_MS,
    DEFAULT_MIN_UPTIME_BPS,
    DEFAULT_WAIT_S,
    FetchedResult,
    SubmittedTask,
    TaskError,
)
from cloudchain.crypto import read_key_file
from cloudchain.workload.manifest import ManifestError

STATES = (
    "open",
    "assigned",
    "running",
    "completed",
    "verified",
    "disputed",
    "expired",
    *FINAL_STATES,
)


def add_task_commands(commands: Any) -> None:
    """Register `task` and its verbs on the `cloudchain` command's subparsers."""
    task = commands.add_parser(
        "task",
        help="a requester's tasks: submit a manifest and data, wait, fetch the result",
        description="Example: cloudchain task submit --from alice.json --manifest m.json "
        "--data train.csv --budget 600, then task wait ID, task result ID --out DIR, "
        "task logs ID. A network needs provider and oracle daemons to run tasks "
        "(cloudchain provider run, cloudchain oracle run).",
    )
    verbs = task.add_subparsers(title="task commands", metavar="COMMAND")
    _add_submit(verbs)

    wait = verbs.add_parser(
        "wait",
        help="wait until the task is final (or in --state); print its payment or refund",
        description="Example: cloudchain task wait 7 --timeout 600",
    )
    wait.add_argument("task_id", type=_positive, metavar="ID")
    wait.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_WAIT_S,
        metavar="S",
        help=f"give up after S seconds ({DEFAULT_WAIT_S:g})",
    )
    wait.add_argument(
        "--state",
        action="append",
        choices=STATES,
        help="a state to wait for; repeat for several (default: settled, refunded, resolved)",
    )
    node_options(wait)
    wait.set_defaults(run=lambda args: _guarded(_run_wait, args))

    result = verbs.add_parser(
        "result",
        help="fetch a completed task's files (model, metrics) into a directory",
        description="Example: cloudchain task result 7 --out ./result",
    )
    result.add_argument("task_id", type=_positive, metavar="ID")
    result.add_argument("--out", required=True, metavar="DIR", help="where the files go")
    node_options(result)
    result.set_defaults(run=lambda args: _guarded(_run_result, args))

    logs = verbs.add_parser(
        "logs",
        help="write a completed task's job log to stdout",
        description="Example: cloudchain task logs 7 > job.log",
    )
    logs.add_argument("task_id", type=_positive, metavar="ID")
    node_options(logs, with_json=False)
    logs.set_defaults(run=lambda args: _guarded(_run_logs, args))


def _add_submit(verbs: Any) -> None:
    submit = verbs.add_parser(
        "submit",
        help="upload a manifest and its data, submit the task, print its id",
        description="Uploads each dataset and the manifest (its CIDs and sizes filled in), "
        "anchors them, and submits the task; units default to the manifest's "
        "limits.cpu_seconds (one unit is one CPU-second). Example: cloudchain task submit "
        "--from alice.json --manifest m.json --data train=train.csv --budget 600",
    )
    submit.add_argument("--from", dest="key_file", required=True, help="the requester's key file")
    submit.add_argument("--manifest", required=True, metavar="FILE", help="the manifest (JSON)")
    submit.add_argument(
        "--data",
        action="append",
        default=[],
        type=_data_arg,
        metavar="[NAME=]PATH",
        help="a local file for the manifest's dataset NAME (NAME= may be left out when "
        "the manifest names one dataset); repeat for several",
    )
    price = submit.add_mutually_exclusive_group()
    price.add_argument(
        "--budget", type=_positive, metavar="N", help="the most the task pays in all"
    )
    price.add_argument(
        "--max-price",
        type=_positive,
        metavar="N",
        help="the most it pays per unit (default: twice the class's reference price)",
    )
    submit.add_argument(
        "--resource-class",
        metavar="CLASS",
        help="the class to run on (default: the market's only one)",
    )
    submit.add_argument(
        "--units", type=_positive, metavar="N", help="compute units to buy (the CPU limit)"
    )
    submit.add_argument(
        "--deadline-s",
        type=_positive,
        metavar="S",
        help="seconds from now to complete it (default: the manifest's deadline + 600)",
    )
    submit.add_argument(
        "--min-uptime-bps",
        type=int,
        default=DEFAULT_MIN_UPTIME_BPS,
        metavar="BPS",
        help=f"SLA: uptime in basis points ({DEFAULT_MIN_UPTIME_BPS})",
    )
    submit.add_argument(
        "--max-latency-ms",
        type=int,
        default=DEFAULT_MAX_LATENCY_MS,
        metavar="MS",
        help=f"SLA: latency ({DEFAULT_MAX_LATENCY_MS})",
    )
    submit.add_argument(
        "--penalty", type=int, default=0, metavar="N", help="owed per SLA term broken (0)"
    )
    submit.add_argument(
        "--provider", default="", metavar="ADDRESS", help="only this provider may take it"
    )
    submit.add_argument(
        "--replicas",
        type=_positive,
        default=2,
        help="nodes that must hold each upload before the task is submitted (2)",
    )
    submit.add_argument(
        "--no-anchor",
        action="store_true",
        help="do not anchor the uploads (they are then dropped after the lease's grace)",
    )
    submit.add_argument("-q", "--quiet", action="store_true", help="print only the task's id")
    node_options(submit)
    submit.set_defaults(run=lambda args: _guarded(_run_submit, args))


def _positive(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number above 0")
    return int(text)


def _data_arg(text: str) -> tuple[str | None, Any]:
    try:
        return parse_data_arg(text)
    except TaskUsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _guarded(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """`run(args)`, its task errors printed on one line (RPCClientError and KeyFileError
    are main's)."""
    try:
        return run(args)
    except TaskUsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ManifestError, TaskError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 1


def _run_submit(args: argparse.Namespace) -> int:
    key = read_key_file(args.key_file)
    submitted: SubmittedTask = SyncClient(args.node).submit_task(
        key,
        args.manifest,
        args.data,
        resource_class=args.resource_class,
        units=args.units,
        budget=args.budget,
        max_price=args.max_price,
        deadline_s=args.deadline_s,
        min_uptime_bps=args.min_uptime_bps,
        max_latency_ms=args.max_latency_ms,
        penalty=args.penalty,
        provider=args.provider,
        replicas=args.replicas,
        anchor=not args.no_anchor,
    )
    for warning in submitted.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps(_submitted_obj(submitted), indent=2))
    elif args.quiet:
        print(submitted.task_id)
    else:
        print(f"ok: task {submitted.task_id} submitted at height {submitted.height}")
        print(
            format_fields(
                [
                    ("manifest", submitted.manifest_cid),
                    ("inputs", " ".join(submitted.inputs)),
                    ("units", submitted.units),
                    ("max price", f"{submitted.max_price} a unit"),
                    ("deposit", f"{submitted.deposit} in escrow"),
                    *_privacy_fields(submitted),
                ]
            )
        )
    return 0


def _privacy_fields(submitted: SubmittedTask) -> list[tuple[str, object]]:
    fields: list[tuple[str, object]] = []
    if submitted.dataset is not None:
        fields.append(("dataset", f"{submitted.dataset} (sealed)"))
    if submitted.dp_micro_eps is not None:
        epsilon = submitted.dp_micro_eps / 10**6
        fields.append(("epsilon", f"{epsilon:g} of its budget, spent when it is assigned"))
    return fields


def _submitted_obj(submitted: SubmittedTask) -> dict[str, Any]:
    return {
        "task": submitted.task_id,
        "manifest": submitted.manifest_cid,
        "inputs": list(submitted.inputs),
        "units": submitted.units,
        "max_price": submitted.max_price,
        "deposit": submitted.deposit,
        "height": submitted.height,
        "tx_hash": submitted.tx_hash.hex().upper(),
        "warnings": list(submitted.warnings),
        "dataset": submitted.dataset,
        "dp_micro_eps": submitted.dp_micro_eps,
    }


def _run_wait(args: argparse.Namespace) -> int:
    states = tuple(args.state or FINAL_STATES)
    record: TaskRecord = SyncClient(args.node).wait_task(args.task_id, states, args.timeout)
    if args.json:
        print(json.dumps(dict(record.raw), indent=2))
        return 0
    height = record.history[-1][1] if record.history else 0
    print(f"task {record.id} {record.state} at height {height}")
    fields: list[tuple[str, object]] = []
    if record.provider:
        fields.append(("provider", record.provider))
    if record.units_used:
        fields.append(("units used", f"{record.units_used} of {record.units}"))
    if record.payout is not None:
        fields.append(("paid", f"{record.paid} to the provider"))
        fields.append(("refunded", f"{record.refunded} to the requester"))
    else:
        fields.append(("deposit", f"{record.deposit} in escrow"))
    print(format_fields(fields))
    return 0


def _run_result(args: argparse.Namespace) -> int:
    fetched: FetchedResult = SyncClient(args.node).fetch_result(args.task_id, args.out)
    index = fetched.index
    if args.json:
        print(
            json.dumps(
                {
                    "task": index.task,
                    "status": index.status,
                    "message": index.message,
                    "files": {name: str(path) for name, path in fetched.files.items()},
                    "index": str(fetched.index_path),
                    "metrics": fetched.metrics,
                    "verified": fetched.verified,
                },
                indent=2,
            )
        )
    else:
        print(f"ok: task {index.task}'s result in {args.out} (status {index.status})")
        fields: list[tuple[str, object]] = [("file", path) for path in fetched.files.values()]
        fields.append(("index", fetched.index_path))
        fields.append(("units", f"{index.units} ({index.cpu_ms} ms of CPU)"))
        metric, value = fetched.metrics.get("metric"), fetched.metrics.get("value")
        if isinstance(metric, str) and value is not None:
            split = fetched.metrics.get("split")
            fields.append((metric, f"{value}{f' on {split}' if split else ''}"))
        print(format_fields(fields))
    if fetched.verified is False:
        print(
            f"error: the oracles refused task {index.task}'s result (their re-runs do not "
            "agree with it): it is not the work the manifest asked for",
            file=sys.stderr,
        )
        return 1
    if not fetched.ok:
        message = f": {index.message}" if index.message else ""
        print(
            f"error: task {index.task}'s job ended {index.status}{message} "
            f"(its log: cloudchain task logs {index.task})",
            file=sys.stderr,
        )
        return 1
    return 0


def _run_logs(args: argparse.Namespace) -> int:
    log: bytes = SyncClient(args.node).fetch_logs(args.task_id)
    out = sys.stdout
    out.flush()
    binary = getattr(out, "buffer", None)
    if binary is not None:
        binary.write(log)
        binary.flush()
    else:  # a text stream (a test's capture): the log's text
        out.write(log.decode("utf-8", "replace"))
    return 0
