"""The market's verbs: `cloudchain tx market METHOD ...` and `cloudchain query market WHAT`.

Transactions. Each verb is a row of TX_VERBS: its options, the `market.<method>`
argument each gives, and what its events are worth printing after "ok: HASH at
height H" (the new task's id, the outcome an attestation decided...). Option
syntax (offers, durations, percentages) is read by argparse `type` functions, and
the whole argument map is then checked by the chaincode's own argument checkers, so
that a malformed transaction is refused here (exit 2) before anything is signed;
refusals that need state (wrong party, wrong state, deadline passed) come from the
node (exit 1, with its code and log). Signing and sending is common.send_tx.

Queries. Each /market/ query path is a verb printing tables and fields for people,
or with --json the query's decoded value as JSON for scripts. Ratios in state are
basis points; the tables show them as percentages.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cloudchain.chaincode.market.module import KINDS, MARKET, TIERS
from cloudchain.chaincode.module import ArgError
from cloudchain.cli.common import event_value, node_options, send_tx, show_query, tx_options
from cloudchain.cli.table import format_fields, format_table
from cloudchain.client.results import Event
from cloudchain.timefmt import format_rfc3339_ns

BPS = 10_000  # basis points in one
OFFER_SYNTAX = "CLASS:GPU:GPUS:MEMORY_GB:UNITS:PRICE"
DURATION_UNITS_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}


# --- option syntax (argparse `type` functions: a ValueError is a usage error, exit 2) ---


def parse_offer(text: str) -> tuple[str, dict[str, Any]]:
    """`gpu-a100:A100:8:80:1000:5` -> ("gpu-a100", {gpu, gpus, memory_gb, units, price})."""
    parts = text.split(":")
    if len(parts) != 6:
        raise argparse.ArgumentTypeError(f"{text!r} is not {OFFER_SYNTAX}")
    name, gpu, *numbers = parts
    if not all(n.isdigit() for n in numbers):
        raise argparse.ArgumentTypeError(
            f"{text!r}: GPUS, MEMORY_GB, UNITS and PRICE must be whole numbers"
        )
    gpus, memory_gb, units, price = (int(n) for n in numbers)
    return name, {"gpu": gpu, "gpus": gpus, "memory_gb": memory_gb, "units": units, "price": price}


def parse_duration_s(text: str) -> int:
    """`90`, `90s`, `10m`, `2h` or `1d` -> seconds."""
    match = re.fullmatch(r"(\d{1,12})([smhd]?)", text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration such as 90s, 10m, 2h, 1d or a number of seconds"
        )
    return int(match.group(1)) * DURATION_UNITS_S[match.group(2)]


def parse_ratio_bps(text: str) -> int:
    """`99.5%` or `9950bps` -> 9950. A bare number is refused: 99 could be either."""
    percent = re.fullmatch(r"(\d{1,3})(?:\.(\d{1,2}))?%", text.strip())
    bps = re.fullmatch(r"(\d{1,5})bps", text.strip())
    if percent is not None:
        value = int(percent.group(1)) * 100 + int((percent.group(2) or "0").ljust(2, "0"))
    elif bps is not None:
        value = int(bps.group(1))
    else:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a percentage (99.5%) or basis points (9950bps)"
        )
    if value > BPS:
        raise argparse.ArgumentTypeError(f"{text!r} is more than 100%")
    return value


class UsageError(ValueError):
    """The options, read together, do not make a valid transaction (exit 2)."""


def offers_map(offers: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for name, offer in offers:
        if name in merged:
            raise UsageError(f"--offer: resource class {name!r} is offered twice")
        merged[name] = offer
    return merged


# --- transactions ----------------------------------------------------------------------


@dataclass(frozen=True)
class Opt:
    """One command-line option (or positional, if `flag` has no dashes) giving the
    transaction argument `arg`; `finish` turns the parsed value into the argument."""

    flag: str
    arg: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    finish: Callable[[Any], Any] = lambda value: value

    @property
    def dest(self) -> str:
        return f"market_{self.arg}"


@dataclass(frozen=True)
class Switch:
    """Two flags, exactly one of them required, giving a boolean argument."""

    arg: str
    true_flag: str
    false_flag: str
    true_help: str
    false_help: str

    @property
    def flag(self) -> str:
        return f"{self.true_flag}/{self.false_flag}"

    @property
    def dest(self) -> str:
        return f"market_{self.arg}"


Shown = tuple[str, str, str]  # (label, event type, attribute) printed after "ok: ..."


@dataclass(frozen=True)
class TxVerb:
    name: str  # on the command line
    method: str  # market.<method>
    help: str
    example: str
    options: tuple[Opt | Switch, ...] = ()
    shows: tuple[Shown, ...] = ()


def _task(help_: str = "the task's id") -> Opt:
    return Opt("task", "task", {"type": int, "metavar": "TASK", "help": help_})


def _offers(help_: str) -> Opt:
    return Opt(
        "--offer",
        "offers",
        {
            "type": parse_offer,
            "action": "append",
            "required": True,
            "metavar": OFFER_SYNTAX,
            "help": help_,
        },
        finish=offers_map,
    )


_OFFER_HELP = (
    "a resource class it sells: GPU model, GPUs, memory in GB, compute units it "
    "can run at once, price per compute unit; repeat for each class"
)
_UPTIME = {
    "type": parse_ratio_bps,
    "required": True,
    "metavar": "RATIO",
    "help": "uptime observed, as 99.5%% or 9950bps",
}
_LATENCY = {"type": int, "required": True, "metavar": "MS", "help": "latency observed, in ms"}

TX_VERBS: tuple[TxVerb, ...] = (
    TxVerb(
        "register",
        "register",
        "join the market as a provider, with offers and a stake",
        "--name 'Acme GPU' --tier community --offer gpu-a100:A100:8:80:1000:5 --stake 5000",
        (
            Opt("--name", "name", {"required": True, "help": "a name for people"}),
            Opt("--tier", "tier", {"required": True, "choices": TIERS}),
            _offers(_OFFER_HELP),
            Opt(
                "--stake",
                "stake",
                {
                    "type": int,
                    "required": True,
                    "help": "tokens locked, slashable (at least min_stake)",
                },
            ),
        ),
        (("provider", "market_register", "provider"), ("stake", "market_register", "stake")),
    ),
    TxVerb(
        "update",
        "update",
        "replace the provider's offers",
        "--offer gpu-a100:A100:8:80:2000:4",
        (_offers(_OFFER_HELP),),
    ),
    TxVerb(
        "add-stake",
        "add_stake",
        "add to the provider's stake",
        "--amount 1000",
        (Opt("--amount", "amount", {"type": int, "required": True}),),
        (("stake", "market_stake", "stake"),),
    ),
    TxVerb(
        "leave",
        "leave",
        "start unbonding: no new tasks; the stake returns after "
        "unbonding_blocks, once nothing is in flight",
        "",
        shows=(("unbond at height", "market_leave", "unbond_at"),),
    ),
    TxVerb(
        "add-oracle",
        "add_oracle",
        "admit an oracle (the authority only)",
        "--oracle ADDRESS",
        (Opt("--oracle", "oracle", {"required": True, "metavar": "ADDRESS"}),),
    ),
    TxVerb(
        "remove-oracle",
        "remove_oracle",
        "remove an oracle (the authority only)",
        "--oracle ADDRESS",
        (Opt("--oracle", "oracle", {"required": True, "metavar": "ADDRESS"}),),
    ),
    TxVerb(
        "submit",
        "submit",
        "submit a task; max-price x units is locked in escrow",
        "--kind inference --input CID --class gpu-a100 --units 10 --max-price 6 "
        "--deadline 10m --min-uptime 99% --max-latency-ms 200 --penalty 10",
        (
            Opt("--kind", "kind", {"required": True, "choices": KINDS}),
            Opt(
                "--input",
                "inputs",
                {
                    "action": "append",
                    "default": [],
                    "metavar": "CID",
                    "help": "an input blob's CID; repeat for several",
                },
            ),
            Opt(
                "--class",
                "resource_class",
                {"required": True, "metavar": "CLASS", "help": "the resource class to run on"},
            ),
            Opt("--units", "units", {"type": int, "required": True, "help": "compute units"}),
            Opt(
                "--max-price",
                "max_price",
                {"type": int, "required": True, "help": "the most it pays per compute unit"},
            ),
            Opt(
                "--deadline",
                "deadline_s",
                {
                    "type": parse_duration_s,
                    "required": True,
                    "metavar": "DURATION",
                    "help": "from now: 90s, 10m, 2h, 1d or seconds",
                },
            ),
            Opt(
                "--min-uptime",
                "min_uptime_bps",
                {
                    "type": parse_ratio_bps,
                    "required": True,
                    "metavar": "RATIO",
                    "help": "SLA: 99.5%% or 9950bps",
                },
            ),
            Opt(
                "--max-latency-ms",
                "max_latency_ms",
                {"type": int, "required": True, "metavar": "MS", "help": "SLA"},
            ),
            Opt(
                "--penalty",
                "penalty",
                {
                    "type": int,
                    "default": 0,
                    "help": "what the provider owes per SLA term broken (0)",
                },
            ),
            Opt(
                "--provider",
                "provider",
                {"default": "", "metavar": "ADDRESS", "help": "only this provider may take it"},
            ),
            Opt(
                "--dataset",
                "dataset",
                {
                    "type": int,
                    "default": 0,
                    "metavar": "ID",
                    "help": "the sealed dataset it reads (its ciphertext among the inputs)",
                },
            ),
            Opt(
                "--dp-micro-eps",
                "dp_micro_eps",
                {
                    "type": int,
                    "default": 0,
                    "metavar": "N",
                    "help": "a DP task: the epsilon it spends of the dataset's budget, "
                    "in micro-epsilon",
                },
            ),
        ),
        (("task", "market_submit", "task"), ("deposit", "market_submit", "deposit")),
    ),
    TxVerb(
        "cancel",
        "cancel",
        "cancel an open task; the deposit returns",
        "7",
        (_task(),),
        (("refunded", "market_refund", "amount"),),
    ),
    TxVerb("start", "start", "mark an assigned task as running (its provider)", "7", (_task(),)),
    TxVerb(
        "complete",
        "complete",
        "report a task done (its provider), before the deadline",
        "7 --units-used 8 --output CID",
        (
            _task(),
            Opt("--units-used", "units_used", {"type": int, "required": True, "metavar": "N"}),
            Opt(
                "--output",
                "output",
                {
                    "action": "append",
                    "default": [],
                    "metavar": "CID",
                    "help": "an output blob's CID; repeat for several",
                },
            ),
        ),
    ),
    TxVerb(
        "attest",
        "attest",
        "an oracle's report on a completed task",
        "7 --completed --units 8 --uptime 99.9% --latency-ms 120",
        (
            _task(),
            Switch(
                "completed", "--completed", "--failed", "the task was done", "the task was not done"
            ),
            Opt(
                "--units",
                "units",
                {"type": int, "required": True, "help": "compute units verified"},
            ),
            Opt("--uptime", "uptime_bps", _UPTIME),
            Opt("--latency-ms", "latency_ms", _LATENCY),
        ),
        (
            ("verified", "market_verified", "task"),
            ("violations", "market_verified", "violations"),
            ("payment", "market_verified", "payment"),
            ("penalty", "market_verified", "penalty"),
        ),
    ),
    TxVerb(
        "attest-provider",
        "attest_provider",
        "an oracle's report on a provider's service",
        "ADDRESS --uptime 99.9% --latency-ms 80",
        (
            Opt("provider", "provider", {"metavar": "ADDRESS"}),
            Opt("--uptime", "uptime_bps", _UPTIME),
            Opt("--latency-ms", "latency_ms", _LATENCY),
        ),
        (("reputation bps", "market_sla", "reputation"),),
    ),
    TxVerb(
        "dispute",
        "dispute",
        "contest a task's outcome (its requester or provider)",
        "7 --reason 'the output is empty'",
        (_task(), Opt("--reason", "reason", {"required": True, "metavar": "TEXT"})),
        (("disputed by", "market_dispute", "by"),),
    ),
    TxVerb(
        "vote",
        "vote",
        "an oracle's vote on a dispute",
        "7 --uphold",
        (
            _task(),
            Switch(
                "uphold",
                "--uphold",
                "--overturn",
                "the outcome stands",
                "the outcome is overturned",
            ),
        ),
        (
            ("resolved, upheld", "market_resolved", "upheld"),
            ("provider paid", "market_resolved", "provider"),
            ("requester refunded", "market_resolved", "requester"),
        ),
    ),
)


def add_market_tx_commands(tx_modules: Any) -> None:
    """Register `tx market METHOD` on the `tx` command's module subparsers."""
    market = tx_modules.add_parser(
        "market",
        prog="cloudchain tx market",
        help="market transactions: providers, tasks, attestations, disputes",
        description="Each method signs with --from KEYFILE and waits until the transaction "
        "is in a block (--no-wait: only the mempool's check). Example: cloudchain tx market "
        "submit --from alice.json --kind inference --class gpu-a100 --units 10 --max-price 6 "
        "--deadline 10m --min-uptime 99% --max-latency-ms 200",
    )
    methods = market.add_subparsers(title="methods", metavar="METHOD", prog="cloudchain tx market")
    for verb in TX_VERBS:
        parser = methods.add_parser(
            verb.name,
            help=verb.help,
            description=f"{verb.help}. "
            f"Example: cloudchain tx market {verb.name} --from "
            f"KEYFILE {verb.example}".rstrip(),
        )
        for option in verb.options:
            if isinstance(option, Switch):
                group = parser.add_mutually_exclusive_group(required=True)
                group.add_argument(
                    option.true_flag,
                    dest=option.dest,
                    action="store_const",
                    const=True,
                    help=option.true_help,
                )
                group.add_argument(
                    option.false_flag,
                    dest=option.dest,
                    action="store_const",
                    const=False,
                    help=option.false_help,
                )
            elif option.flag.startswith("-"):
                metavar = option.flag.lstrip("-").upper().replace("-", "_")
                kwargs = {"metavar": metavar} if "choices" not in option.kwargs else {}
                parser.add_argument(option.flag, dest=option.dest, **(kwargs | option.kwargs))
            else:
                parser.add_argument(option.dest, **option.kwargs)
        tx_options(parser)
        parser.set_defaults(run=lambda args, verb=verb: _run_tx(verb, args))


def tx_arguments(verb: TxVerb, args: argparse.Namespace) -> dict[str, Any]:
    """The `market.<method>` arguments the options give, checked as the chaincode checks
    them; UsageError names the option at fault."""
    values = {}
    for option in verb.options:
        value = getattr(args, option.dest)
        values[option.arg] = option.finish(value) if isinstance(option, Opt) else value
    checkers = MARKET.methods[verb.method].args
    assert set(checkers) == set(values), f"market.{verb.method}: options and arguments differ"
    for option in verb.options:
        try:
            checkers[option.arg](values[option.arg])
        except ArgError as exc:
            raise UsageError(f"{option.flag}: {exc}") from None
    return values


def _run_tx(verb: TxVerb, args: argparse.Namespace) -> int:
    try:
        tx_args = tx_arguments(verb, args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return send_tx(args, "market", verb.method, tx_args, lambda events: _shown(verb.shows, events))


def _shown(shows: Sequence[Shown], events: Sequence[Event]) -> list[tuple[str, object]]:
    found = [(label, event_value(events, type_, key)) for label, type_, key in shows]
    return [(label, value) for label, value in found if value is not None]


# --- queries ---------------------------------------------------------------------------


def add_market_queries(queries: Any) -> None:
    """Register `query market WHAT` on the `query` command's subparsers."""
    market = queries.add_parser(
        "market",
        prog="cloudchain query market",
        help="the market: providers, oracles, tasks, prices, accounts, statistics",
        description="Tables for people; --json prints the query's decoded value. Example: "
        "cloudchain query market tasks --requester ADDRESS --state open",
    )
    whats = market.add_subparsers(title="queries", metavar="WHAT", prog="cloudchain query market")
    for name, help_, positional in (
        ("provider", "a provider: stake, reputation, offers", "ADDRESS"),
        ("providers", "every provider, in address order (a page)", None),
        ("oracles", "the oracles and the quorum that decides", None),
        ("task", "a task: its terms, state, attestations, outcome and payout", "ID"),
        ("tasks", "tasks in id order (a page), filtered", None),
        ("prices", "reference price, capacity and utilisation by resource class", None),
        ("account", "what an account earned and paid: profit Π_p and utility U_r", "ADDRESS"),
        ("stats", "utilisation, SLA compliance, tokens earned, Jain's fairness index", None),
        ("params", "the market's parameters (from genesis)", None),
    ):
        example = f"cloudchain query market {name} {positional or ''}".rstrip()
        parser = whats.add_parser(name, help=help_, description=f"{help_}. Example: {example}")
        if positional:
            parser.add_argument("key", metavar=positional)
        if name == "providers":
            parser.add_argument("--after", metavar="ADDRESS", help="the page after this one")
        if name == "tasks":
            parser.add_argument("--requester", metavar="ADDRESS")
            parser.add_argument("--provider", metavar="ADDRESS")
            parser.add_argument("--state", help="open, assigned, running, completed, ...")
            parser.add_argument("--after", metavar="ID", help="the page after this task id")
        parser.add_argument("--height", type=int, default=0, help="at this height (0: latest)")
        node_options(parser)
        parser.set_defaults(run=lambda args, name=name: _run_query(name, args))


def _query_data(args: argparse.Namespace) -> bytes:
    """The query's data: its positional (an address, a task id) or key=value&... filters."""
    if hasattr(args, "key"):
        return args.key.encode()
    filters = [(f, getattr(args, f, None)) for f in ("requester", "provider", "state", "after")]
    return "&".join(f"{f}={value}" for f, value in filters if value is not None).encode()


def _run_query(what: str, args: argparse.Namespace) -> int:
    return show_query(args, f"/market/{what}", _query_data(args), SHOW[what])


def _pct(bps: int) -> str:
    return f"{bps // 100}.{bps % 100:02d}%"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _show_params(params: dict[str, Any]) -> str:
    return format_fields(
        [
            (name, f"{value}  ({_pct(value)})" if name.endswith("_bps") else value)
            for name, value in params.items()
        ]
    )


def _show_provider(provider: dict[str, Any]) -> str:
    status = provider["status"]
    if status == "unbonding":
        status += f" until height {provider['unbond_at']}"
    fields = format_fields(
        [
            ("address", provider["address"]),
            ("name", provider["name"]),
            ("tier", provider["tier"]),
            ("status", status),
            ("stake", provider["stake"]),
            ("reputation", _pct(provider["reputation"])),
            ("joined at", provider["joined_at"]),
        ]
    )
    rows = [
        (
            name,
            o["gpu"],
            o["gpus"],
            o["memory_gb"],
            o["units"],
            provider["in_flight"].get(name, 0),
            o["price"],
        )
        for name, o in sorted(provider["offers"].items())
    ]
    if not rows:
        return fields
    table = format_table(
        ("CLASS", "GPU", "GPUS", "MEMORY GB", "UNITS", "IN FLIGHT", "PRICE"),
        rows,
        right=(2, 3, 4, 5, 6),
    )
    return f"{fields}\n\n{table}"


def _show_providers(answer: dict[str, Any]) -> str:
    rows = [
        (
            p["address"],
            p["name"],
            p["tier"],
            p["status"],
            p["stake"],
            _pct(p["reputation"]),
            ",".join(sorted(p["offers"])) or "-",
        )
        for p in answer["providers"]
    ]
    lines = (
        [
            format_table(
                ("ADDRESS", "NAME", "TIER", "STATUS", "STAKE", "REPUTATION", "CLASSES"),
                rows,
                right=(4, 5),
            )
        ]
        if rows
        else []
    )
    return "\n".join([*lines, _plural(len(rows), "provider")])


def _show_oracles(answer: dict[str, Any]) -> str:
    count = len(answer["oracles"])
    return "\n".join([*answer["oracles"], f"{_plural(count, 'oracle')}, quorum {answer['quorum']}"])


def _show_task(task: dict[str, Any]) -> str:
    fields: list[tuple[str, object]] = [
        ("task", task["id"]),
        ("state", task["state"]),
        ("kind", task["kind"]),
        ("requester", task["requester"]),
        ("provider", task["provider"] or "-"),
        ("class", task["resource_class"]),
        ("units", task["units"]),
        ("max price", task["max_price"]),
        ("price", task["price"] or "-"),
        ("deposit", task["deposit"]),
        ("deadline", format_rfc3339_ns(task["deadline_ns"])),
        (
            "sla",
            f"uptime >= {_pct(task['min_uptime_bps'])}, latency <= "
            f"{task['max_latency_ms']} ms, penalty {task['penalty']} per term broken",
        ),
        ("inputs", " ".join(task["inputs"]) or "-"),
    ]
    if task["named_provider"]:
        fields.append(("named provider", task["named_provider"]))
    if task["completed_at"]:
        fields += [("units used", task["units_used"]), ("output", " ".join(task["output"]) or "-")]
    outcome = task["outcome"]
    if outcome is not None:
        fields.append(
            (
                "outcome",
                f"{'completed' if outcome['completed'] else 'not completed'}"
                f", {outcome['units']} units, uptime {_pct(outcome['uptime_bps'])}, "
                f"latency {outcome['latency_ms']} ms, {outcome['violations']} "
                f"violation(s), payment {outcome['payment']}, penalty "
                f"{outcome['penalty']}",
            )
        )
    dispute = task["dispute"]
    if dispute is not None:
        result = {True: "upheld", False: "overturned"}.get(dispute.get("upheld"), "open")
        votes = len(dispute["votes"])
        fields.append(
            (
                "dispute",
                f"by the {dispute['by']} at height {dispute['at']}: "
                f"{dispute['reason']!r}, {votes} vote(s), {result}",
            )
        )
    payout = task["payout"]
    if payout is not None:
        fields.append(
            (
                "payout",
                f"provider {payout['provider']}, requester "
                f"{payout['requester']}, slashed {payout['slashed']} at height "
                f"{payout['at']}",
            )
        )
    fields.append(("history", " ".join(f"{s}@{h}" for s, h in task["history"])))
    text = format_fields(fields)
    rows = [
        (
            oracle,
            "yes" if a["completed"] else "no",
            a["units"],
            _pct(a["uptime_bps"]),
            a["latency_ms"],
            a["at"],
        )
        for oracle, a in sorted(task["attestations"].items())
    ]
    if rows:
        text += "\n\n" + format_table(
            ("ORACLE", "COMPLETED", "UNITS", "UPTIME", "LATENCY MS", "AT"), rows, right=(2, 3, 4, 5)
        )
    return text


def _show_tasks(answer: dict[str, Any]) -> str:
    rows = [
        (
            t["id"],
            t["state"],
            t["kind"],
            t["resource_class"],
            t["units"],
            t["price"] or "-",
            t["deposit"],
            t["requester"],
            t["provider"] or "-",
        )
        for t in answer["tasks"]
    ]
    headers = ("ID", "STATE", "KIND", "CLASS", "UNITS", "PRICE", "DEPOSIT", "REQUESTER", "PROVIDER")
    lines = [format_table(headers, rows, right=(0, 4, 5, 6))] if rows else []
    return "\n".join([*lines, _plural(len(rows), "task")])


def _show_prices(answer: dict[str, Any]) -> str:
    rows = [
        (
            c["resource_class"],
            c.get("price", "-"),
            c["capacity"],
            c["in_flight"],
            _pct(c.get("utilisation_bps", 0)),
            c.get("updated_at", "-"),
        )
        for c in answer["classes"]
    ]
    if not rows:
        return "no resource classes"
    return format_table(
        ("CLASS", "PRICE", "CAPACITY", "IN FLIGHT", "UTILISATION", "UPDATED AT"),
        rows,
        right=(1, 2, 3, 4, 5),
    )


def _show_account(answer: dict[str, Any]) -> str:
    text = format_fields(
        [
            ("address", answer["address"]),
            ("profit", f"{answer['profit']}  (as a provider: Π_p = Σ(P_i·C_i - λ_i·R_i))"),
            ("utility", f"{answer['utility']}  (as a requester: U_r = Σ(Q_i - P_i))"),
        ]
    )
    rows = [
        (role, name, value)
        for role in ("provider", "requester", "oracle")
        for name, value in sorted(answer[role].items())
    ]
    if rows:
        text += "\n\n" + format_table(("ROLE", "STAT", "VALUE"), rows, right=(2,))
    return text


def _show_stats(stats: dict[str, Any]) -> str:
    text = format_fields(
        [
            ("tasks settled", stats["tasks_settled"]),
            ("sla compliance", _pct(stats["sla_compliance_bps"])),
            (
                "fairness, providers",
                f"{_pct(stats['fairness_providers_bps'])}  (Jain's index of "
                "rewards per unit of capacity)",
            ),
            (
                "fairness, requesters",
                f"{_pct(stats['fairness_requesters_bps'])}  (Jain's index of demand served)",
            ),
        ]
    )
    classes = [(name, _pct(bps)) for name, bps in sorted(stats["utilisation_bps"].items())]
    if classes:
        text += "\n\n" + format_table(("CLASS", "UTILISATION"), classes, right=(1,))
    providers = [
        (p["address"], p["name"], p["tier"], p["capacity"], p["earned"], p["rewarded"], p["tokens"])
        for p in stats["providers"]
    ]
    if providers:
        text += "\n\n" + format_table(
            ("PROVIDER", "NAME", "TIER", "CAPACITY", "EARNED", "REWARDED", "TOKENS"),
            providers,
            right=(3, 4, 5, 6),
        )
    return text


SHOW: dict[str, Callable[[Any], str]] = {
    "params": _show_params,
    "provider": _show_provider,
    "providers": _show_providers,
    "oracles": _show_oracles,
    "task": _show_task,
    "tasks": _show_tasks,
    "prices": _show_prices,
    "account": _show_account,
    "stats": _show_stats,
}
