"""The consensus benchmark's results: a table, JSON, CSV and a chart.

consensus.json holds everything (the config, the machine, the ceiling, every step with
its latencies, refusals and generator figures, the profile's top lines, the soak);
consensus.csv one row per step; consensus-rss.csv, after a soak, each node's RSS over
it; consensus.png committed tx/s against offered rate and against requesters, with p50
and p99 latency on a second axis, in the storage bench's manner.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cloudchain.bench.consensus import ConsensusBenchResult, Step
from cloudchain.bench.profiling import format_top
from cloudchain.bench.soak import RSS_GROWTH_TARGET_MIB, SoakResult

CSV_FIELDS = (
    "sweep",
    "load",
    "duration_s",
    "sent",
    "admitted",
    "committed",
    "committed_tx_s",
    "requester_tx_s",
    "p50_s",
    "p95_s",
    "p99_s",
    "block_interval_mean_s",
    "block_interval_median_s",
    "blocks",
    "late_heights",
    "max_rounds",
    "nodes_cpu_cores",
    "refused",
    "refusals",
    "errors",
    "timeouts",
    "send_tx_s",
    "send_lag_p99_s",
    "client_cpu_fraction",
    "client_saturated",
)


def _f(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def step_row(step: Step) -> dict[str, str]:
    """A step as one CSV row, every cell a string (empty where there is no value)."""
    return {
        "sweep": step.sweep,
        "load": str(step.load),
        "duration_s": _f(step.duration_s, 2),
        "sent": str(step.sent),
        "admitted": str(step.admitted),
        "committed": str(step.committed),
        "committed_tx_s": _f(step.committed_tx_s, 1),
        "requester_tx_s": _f(step.requester_tx_s, 1) if step.sweep == "requesters" else "",
        "p50_s": _f(step.latency.p50_s),
        "p95_s": _f(step.latency.p95_s),
        "p99_s": _f(step.latency.p99_s),
        "block_interval_mean_s": _f(step.intervals.mean_s),
        "block_interval_median_s": _f(step.intervals.median_s),
        "blocks": str(step.intervals.blocks),
        "late_heights": str(step.intervals.late_heights),
        "max_rounds": str(step.intervals.max_rounds),
        "nodes_cpu_cores": "" if step.nodes_cpu_cores is None else _f(step.nodes_cpu_cores, 2),
        "refused": str(sum(step.refusals.values())),
        "refusals": "; ".join(f"{code}: {n}" for code, n in step.refusals.items()),
        "errors": str(step.errors),
        "timeouts": str(step.timeouts),
        "send_tx_s": _f(step.generator.send_tx_s, 1),
        "send_lag_p99_s": _f(step.generator.lag_p99_s),
        "client_cpu_fraction": _f(step.generator.cpu_fraction, 2),
        "client_saturated": "yes" if step.generator.saturated else "no",
    }


def _cell(value: float | None, unit: str = " s", digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def format_table(result: ConsensusBenchResult) -> str:
    config = result.config
    lines = [
        f"{config.validators} validators (node start processes, default consensus config) on "
        f"{result.machine['cores']} cores; each step {config.duration_s:g} s after "
        f"{config.warmup_s:g} s of warm-up",
    ]
    rates = result.sweep("rate")
    if rates:
        lines += [
            "",
            "(a) token transfers offered open loop at a fixed rate, round robin over the nodes",
            _row(
                "offered",
                "committed",
                "p50",
                "p95",
                "p99",
                "interval",
                "median",
                "refused",
                "errors",
                "timeouts",
                "sent",
                "client",
            ),
        ]
        for s in rates:
            lines.append(
                _row(
                    f"{s.load} tx/s",
                    f"{s.committed_tx_s:.0f} tx/s",
                    _cell(s.latency.p50_s),
                    _cell(s.latency.p95_s),
                    _cell(s.latency.p99_s),
                    _cell(s.intervals.mean_s),
                    _cell(s.intervals.median_s),
                    str(sum(s.refusals.values())),
                    str(s.errors),
                    str(s.timeouts),
                    f"{s.generator.send_tx_s:.0f} tx/s",
                    f"{s.generator.cpu_fraction:.0%} cpu",
                )
            )
    requesters = result.sweep("requesters")
    if requesters:
        lines += [
            "",
            "(b) closed-loop requesters (the paper's Fig. 3): market.submit and transfers, "
            "providers and oracles answering",
            _row(
                "requesters",
                "committed",
                "theirs",
                "p50",
                "p95",
                "p99",
                "interval",
                "refused",
                "errors",
                "timeouts",
                "settled",
                "client",
            ),
        ]
        for s in requesters:
            lines.append(
                _row(
                    str(s.load),
                    f"{s.committed_tx_s:.0f} tx/s",
                    f"{s.requester_tx_s:.0f} tx/s",
                    _cell(s.latency.p50_s),
                    _cell(s.latency.p95_s),
                    _cell(s.latency.p99_s),
                    _cell(s.intervals.mean_s),
                    str(sum(s.refusals.values())),
                    str(s.errors),
                    str(s.timeouts),
                    str(s.market.get("settle", 0)),
                    f"{s.generator.cpu_fraction:.0%} cpu",
                )
            )
    refusals = {f"{s.sweep} {s.load}": s.refusals for s in result.steps if s.refusals}
    if refusals:
        lines.append("")
        lines.append("refusals by code (codespace):")
        for step, codes in refusals.items():
            lines.append(f"  {step}: " + ", ".join(f"{c} x{n}" for c, n in codes.items()))
    notes = [f"{s.sweep} {s.load}: {s.generator.note}" for s in result.steps if s.generator.note]
    if notes:
        lines.append("")
        lines.append("load generator:")
        lines += [f"  {note}" for note in notes]
    ceiling = result.ceiling
    lines += [
        "",
        f"signature ceiling: {ceiling.verifications_per_s_one_core:,.0f} Ed25519 verifications/s "
        f"on one core x {ceiling.cores} cores / {ceiling.validators} validators = "
        f"{ceiling.tx_per_s:,.0f} tx/s",
        f"committed peak {result.peak_tx_s:,.0f} tx/s = {ceiling.ratio(result.peak_tx_s):.1%} "
        "of the ceiling",
    ]
    if ceiling.openssl_tx_per_s > 0:
        lines.append(
            f"with OpenSSL's verifier (the ceiling before libsodium): "
            f"{ceiling.openssl_verifications_per_s_one_core:,.0f}/s = "
            f"{ceiling.openssl_tx_per_s:,.0f} tx/s; the peak is "
            f"{result.peak_tx_s / ceiling.openssl_tx_per_s:.1%} of it"
        )
    if result.soak is not None:
        lines += format_soak(result.soak)
    if result.profiles:
        lines += ["", f"profile ({result.profiled_step}, py-spy, every node):"]
        for profile in result.profiles:
            lines += format_top(profile)[: 1 + 8]
    return "\n".join(lines)


def _row(*cells: str) -> str:
    widths = (11, 11, 10, 8, 8, 8, 9, 8, 7, 9, 10, 9)
    return " ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=False))


def to_json(result: ConsensusBenchResult) -> dict[str, Any]:
    ceiling = result.ceiling
    return {
        "config": asdict(result.config),
        "machine": result.machine,
        "ceiling": {
            **asdict(ceiling),
            "tx_per_s": ceiling.tx_per_s,
            "openssl_tx_per_s": ceiling.openssl_tx_per_s,
            "peak_committed_tx_s": result.peak_tx_s,
            "peak_over_ceiling": ceiling.ratio(result.peak_tx_s),
        },
        "steps": [asdict(s) for s in result.steps],
        "profiled_step": result.profiled_step,
        "profiles": [asdict(p) for p in result.profiles],
        "soak": None if result.soak is None else _soak_json(result.soak),
    }


def _soak_json(soak: SoakResult) -> dict[str, Any]:
    return {
        **asdict(soak),
        "rss_growth_mib": [s.growth(soak.warmup_s) for s in soak.rss],
        "rss_peak_mib": [s.peak for s in soak.rss],
        "worst_growth_mib": soak.worst_growth_mib,
        "growth_target_mib": RSS_GROWTH_TARGET_MIB,
    }


def format_soak(soak: SoakResult) -> list[str]:
    """The soak's lines of the table: throughput, latency, and each node's RSS."""
    lines = [
        "",
        f"soak: {soak.rate} tx/s offered for {soak.duration_s:g} s (after {soak.warmup_s:g} s): "
        f"committed {soak.committed_tx_s:,.0f} tx/s, p50 {_cell(soak.latency.p50_s)}, "
        f"p99 {_cell(soak.latency.p99_s)}, refused {sum(soak.refusals.values())}, "
        f"errors {soak.errors}",
    ]
    for node in soak.rss:
        start = node.at_or_after(soak.warmup_s)
        growth = node.growth(soak.warmup_s)
        lines.append(
            f"  node{node.node} RSS: {_cell(start, ' MiB', 0)} after the warm-up, "
            f"{_cell(node.last, ' MiB', 0)} at the end, peak {_cell(node.peak, ' MiB', 0)}; "
            f"growth {_cell(growth, ' MiB', 0)}"
        )
    worst = soak.worst_growth_mib
    if worst is not None:
        verdict = "within" if worst < RSS_GROWTH_TARGET_MIB else "OVER"
        lines.append(f"  worst growth {worst:,.0f} MiB: {verdict} {RSS_GROWTH_TARGET_MIB} MiB")
    return lines


def write_rss_csv(soak: SoakResult, path: Path) -> None:
    """One row per sample: seconds since the soak began, then each node's RSS (MiB)."""
    times = sorted({t for node in soak.rss for t, _ in node.samples})
    by_node = [dict(node.samples) for node in soak.rss]
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["t_s", *(f"node{node.node}_rss_mib" for node in soak.rss)])
        for t in times:
            cells = [f"{m:.1f}" if (m := n.get(t)) is not None else "" for n in by_node]
            writer.writerow([f"{t:.1f}", *cells])


def write_outputs(result: ConsensusBenchResult, out_dir: Path) -> list[Path]:
    """consensus.json, consensus.csv (one row per step) and consensus.png in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, csv_path, png_path = (out_dir / f"consensus.{ext}" for ext in ("json", "csv", "png"))
    json_path.write_text(json.dumps(to_json(result), indent=2) + "\n")
    with open(csv_path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for step in result.steps:
            writer.writerow(step_row(step))
    plot(result, png_path)
    paths = [json_path, csv_path, png_path]
    if result.soak is not None:
        rss_path = out_dir / "consensus-rss.csv"
        write_rss_csv(result.soak, rss_path)
        paths.append(rss_path)
    return paths


def plot(result: ConsensusBenchResult, path: Path) -> None:
    """Committed tx/s against the offered rate (left) and against the requesters (right,
    as the paper's Fig. 3), p50 and p99 latency on each panel's second axis."""
    import matplotlib

    matplotlib.use("Agg")  # no screen: render to a file
    import matplotlib.pyplot as plt

    panels = [
        (name, steps)
        for name, steps in (
            ("rate", result.sweep("rate")),
            ("requesters", result.sweep("requesters")),
        )
        if steps
    ]
    figure, axes_list = plt.subplots(
        1, max(len(panels), 1), figsize=(6 * max(len(panels), 1), 4.5), dpi=120, squeeze=False
    )
    config = result.config
    for axes, (name, steps) in zip(axes_list[0], panels, strict=False):
        xs = [s.load for s in steps]
        axes.plot(xs, [s.committed_tx_s for s in steps], "o-", color="C0", label="committed tx/s")
        if name == "rate":
            axes.plot(xs, xs, ":", color="grey", label="offered tx/s")
            axes.set_xlabel("offered rate (tx/s, token transfers, open loop)")
        else:
            axes.plot(
                xs,
                [s.requester_tx_s for s in steps],
                "s--",
                color="C2",
                label="requesters' own tx/s",
            )
            axes.set_xlabel("concurrent requesters (closed loop: market tasks and transfers)")
        axes.set_ylabel("committed tx/s")
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3)
        latency = axes.twinx()
        for attr, style, color in (("p50_s", "^-", "C1"), ("p99_s", "v-", "C3")):
            ys = [getattr(s.latency, attr) for s in steps]
            latency.plot(
                xs,
                [float("nan") if y is None else y for y in ys],
                style,
                color=color,
                alpha=0.7,
                label=f"{attr.removesuffix('_s')} submit→commit (s)",
            )
        latency.set_ylabel("latency (s)")
        latency.set_ylim(bottom=0)
        handles = axes.get_legend_handles_labels()
        extra = latency.get_legend_handles_labels()
        axes.legend(handles[0] + extra[0], handles[1] + extra[1], fontsize=7, loc="upper left")
        axes.set_title(
            f"{'Offered rate' if name == 'rate' else 'Requesters (Fig. 3)'}: "
            f"{config.validators} validators, ceiling {result.ceiling.tx_per_s:,.0f} tx/s",
            fontsize=9,
        )
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
