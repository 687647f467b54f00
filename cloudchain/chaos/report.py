"""A run's report: the faults injected, the operations, the violations, the recovery.

The runner gives `build_report` the fault records it kept (`Fault`), the history, the
checker's result and the recoveries; `render_table` is for a terminal, `to_json` for a
file or a script. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cloudchain.chaos.checker import CheckResult
from cloudchain.chaos.history import History, Transfer
from cloudchain.chaos.observe import Recovery


@dataclass(frozen=True)
class Fault:
    """One fault the nemesis injected: `kind` ("kill", "pause", "partition", ...), the
    nodes it hit, when it started and ended (monotonic ns; end 0 if never healed), and
    anything else worth saying (the partition's sides, the latency added)."""

    kind: str
    targets: tuple[int, ...]
    start_ns: int
    end_ns: int = 0
    detail: str = ""


@dataclass(frozen=True)
class Report:
    seed: int
    validators: int
    faults: tuple[Fault, ...]
    operations: tuple[tuple[str, str, int], ...]  # (kind, outcome, count), sorted
    result: CheckResult
    recoveries: tuple[Recovery, ...]
    heal_ns: int | None
    start_ns: int  # the run's zero, for relative times

    @property
    def ok(self) -> bool:
        return self.result.ok

    def recovery_s(self) -> tuple[tuple[int, float | None], ...]:
        """(node, seconds from the heal to its next new block, None if it had none)."""
        if self.heal_ns is None:
            return ()
        return tuple(
            (r.node, None if r.new_block_ns is None else (r.new_block_ns - self.heal_ns) / 1e9)
            for r in sorted(self.recoveries, key=lambda r: r.node)
        )


def build_report(
    seed: int,
    validators: int,
    faults: Sequence[Fault],
    history: History,
    result: CheckResult,
    recoveries: Sequence[Recovery] = (),
    heal_ns: int | None = None,
    start_ns: int = 0,
) -> Report:
    counts: Counter[tuple[str, str]] = Counter()
    for op in history.ops:
        kind = "transfer" if isinstance(op, Transfer) else "read"
        counts[(kind, op.outcome.value)] += 1
    return Report(
        seed=seed,
        validators=validators,
        faults=tuple(sorted(faults, key=lambda f: (f.start_ns, f.kind, f.targets))),
        operations=tuple((k, o, n) for (k, o), n in sorted(counts.items())),
        result=result,
        recoveries=tuple(recoveries),
        heal_ns=heal_ns,
        start_ns=start_ns,
    )


def _s(ns: int, start_ns: int) -> str:
    return f"{(ns - start_ns) / 1e9:.1f}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def render_table(report: Report) -> str:
    """The report for a terminal: four tables and a verdict."""
    start = report.start_ns
    lines = [f"chaos: {report.validators} validators, seed {report.seed}", "", "faults"]
    lines.append(
        _table(
            ("kind", "nodes", "start s", "end s", "detail"),
            [
                (
                    f.kind,
                    ",".join(map(str, f.targets)) or "-",
                    _s(f.start_ns, start),
                    _s(f.end_ns, start) if f.end_ns else "-",
                    f.detail,
                )
                for f in report.faults
            ],
        )
        if report.faults
        else "(none)"
    )
    lines += ["", "operations", _table(("kind", "outcome", "count"), report.operations)]
    result = report.result
    heights = ", ".join(f"node{n}={h}" for n, h in result.heights)
    lines += [
        "",
        f"heights: {heights}; balances compared at {result.state_height}; "
        f"{result.committed_txs} txs committed, {result.fees_paid} in fees burnt, "
        f"{result.evidence} double votes committed as evidence",
    ]
    recovery = report.recovery_s()
    if recovery:
        lines += [
            "",
            "recovery (heal to the next new block)",
            _table(
                ("node", "seconds"),
                [(f"node{n}", "none" if s is None else f"{s:.2f}") for n, s in recovery],
            ),
        ]
    lines += ["", f"violations: {sum(result.counts.values())}"]
    if result.violations:
        lines.append(_table(("kind", "what"), [(v.kind, v.describe()) for v in result.violations]))
    lines += ["", "OK: no violations" if report.ok else "FAILED: violations found"]
    return "\n".join(lines)


def to_json(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data (times in seconds from the run's start)."""
    start = report.start_ns
    result = report.result
    return {
        "seed": report.seed,
        "validators": report.validators,
        "ok": report.ok,
        "faults": [
            {
                "kind": f.kind,
                "targets": list(f.targets),
                "start_s": (f.start_ns - start) / 1e9,
                "end_s": (f.end_ns - start) / 1e9 if f.end_ns else None,
                "detail": f.detail,
            }
            for f in report.faults
        ],
        "operations": [{"kind": k, "outcome": o, "count": n} for k, o, n in report.operations],
        "heights": {f"node{n}": h for n, h in result.heights},
        "state_height": result.state_height,
        "committed_txs": result.committed_txs,
        "evidence": result.evidence,
        "fees_burnt": result.fees_paid,
        "recovery_s": {f"node{n}": s for n, s in report.recovery_s()},
        "violation_counts": dict(result.counts),
        "violations": [{"kind": v.kind, "what": v.describe()} for v in result.violations],
    }
