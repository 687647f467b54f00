"""The storage benchmark's results: the paper's model fitted, a table, JSON, CSV and a chart.

The model (the paper's eq. 1) is `T_r = S/B_r` for a read and `T_w = S/B_w + T_c`
for a write, S the size, B the bandwidths and T_c the fixed overhead that
consensus adds. For each system the fit is least squares over every run:
through the origin for reads (B_r = ΣS² / ΣS·T), with an intercept for writes
(1/B_w the slope, T_c the intercept). With a single size the write's slope and
intercept cannot be told apart, and T_c is reported as 0 with B_w = S/T.
"""

from __future__ import annotations

import csv
import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cloudchain.bench.storage import MB, StorageBenchResult, iter_operations

TARGET_RATIO = 3.0  # the target: a p2p write within 3x of the baseline


@dataclass(frozen=True)
class ModelFit:
    system: str  # "p2p" or "consensus"
    read_mb_s: float | None  # B_r, MB/s (None: no reads measured)
    write_mb_s: float | None  # B_w, MB/s
    overhead_s: float | None  # T_c, seconds


def fit_model(result: StorageBenchResult, system: str) -> ModelFit:
    reads = [
        (s.size_bytes / MB, s.seconds) for s in result.samples if s.operation == f"{system} read"
    ]
    writes = [
        (s.size_bytes / MB, s.seconds) for s in result.samples if s.operation == f"{system} write"
    ]
    read_mb_s = None
    if reads:
        read_mb_s = sum(x * x for x, _ in reads) / sum(x * t for x, t in reads)
    write_mb_s = overhead_s = None
    if writes:
        slope, overhead_s = _line(writes)
        write_mb_s = 1 / slope if slope > 0 else None  # no bandwidth explains a flat line
    return ModelFit(system, read_mb_s, write_mb_s, overhead_s)


def _line(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares slope and intercept of t = a·x + b."""
    xs = [x for x, _ in points]
    if len(set(xs)) < 2:
        x = statistics.mean(xs)
        return statistics.mean(t for _, t in points) / x, 0.0
    fit = statistics.linear_regression(xs, [t for _, t in points])
    return fit.slope, fit.intercept


def fits(result: StorageBenchResult) -> list[ModelFit]:
    return [
        fit_model(result, system)
        for system in ("p2p", "consensus")
        if system in result.config.systems
    ]


def target_met(result: StorageBenchResult) -> dict[int, float]:
    """Size -> p2p write median over baseline median, where both were measured."""
    medians = result.medians()
    return {
        size: medians[("p2p write", size)] / medians[("baseline", size)]
        for size in result.config.sizes_bytes
        if ("p2p write", size) in medians and ("baseline", size) in medians
    }


def format_table(result: StorageBenchResult) -> str:
    medians = result.medians()
    operations = list(iter_operations(result.config.systems))
    config = result.config
    lines = [
        f"median seconds over {config.runs} run(s); {config.validators} validators, "
        f"{config.replicas} replicas; blocks of at most {result.block_max_bytes // 2**20} MiB, "
        f"parts of {result.part_bytes // 1024} KiB",
        "size MB  " + "  ".join(f"{op:>15}" for op in operations),
    ]
    for size in config.sizes_bytes:
        cells = [
            f"{medians[(op, size)]:>15.3f}" if (op, size) in medians else f"{'-':>15}"
            for op in operations
        ]
        lines.append(f"{size / MB:>7g}  " + "  ".join(cells))
    ratios = target_met(result)
    for size, ratio in ratios.items():
        verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
        lines.append(
            f"{size / MB:g} MB: p2p write / baseline = {ratio:.2f}x "
            f"(target <= {TARGET_RATIO:g}x: {verdict})"
        )
    for size in config.sizes_bytes:
        if ("consensus write", size) in medians and ("p2p write", size) in medians:
            ratio = medians[("consensus write", size)] / medians[("p2p write", size)]
            lines.append(f"{size / MB:g} MB: consensus write / p2p write = {ratio:.1f}x")
    for fit in fits(result):
        lines.append(
            f"model, {fit.system}: B_r = {_mb_s(fit.read_mb_s)}, "
            f"B_w = {_mb_s(fit.write_mb_s)}, T_c = {_s(fit.overhead_s)}"
        )
    growth: dict[int, int] = {}
    for memory in result.memory:
        growth[memory.size_bytes] = max(growth.get(memory.size_bytes, 0), memory.growth_bytes)
    for size, grown in growth.items():
        lines.append(
            f"{size / MB:g} MB: largest node memory growth (peak RSS) {grown / 2**20:.1f} MiB"
        )
    return "\n".join(lines)


def _mb_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} MB/s"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def to_json(result: StorageBenchResult) -> dict[str, Any]:
    medians = result.medians()
    sizes_mb = [s / MB for s in result.config.sizes_bytes]
    return {
        "config": {**asdict(result.config), "sizes_mb": sizes_mb},
        "block_max_bytes": result.block_max_bytes,
        "part_bytes": result.part_bytes,
        "samples": [asdict(s) for s in result.samples],
        "medians": [
            {"operation": op, "size_bytes": size, "seconds": seconds}
            for (op, size), seconds in sorted(medians.items())
        ],
        "model": [asdict(f) for f in fits(result)],
        "p2p_write_over_baseline": {str(k): v for k, v in target_met(result).items()},
        "memory": [{**asdict(m), "growth_bytes": m.growth_bytes} for m in result.memory],
    }


def write_outputs(result: StorageBenchResult, out_dir: Path) -> list[Path]:
    """storage.json, storage.csv (one row per run) and storage.png in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, csv_path, png_path = (out_dir / f"storage.{ext}" for ext in ("json", "csv", "png"))
    json_path.write_text(json.dumps(to_json(result), indent=2) + "\n")
    with open(csv_path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["operation", "size_mb", "run", "seconds", "mb_per_s"])
        for s in result.samples:
            writer.writerow(
                [
                    s.operation,
                    s.size_bytes / MB,
                    s.run + 1,
                    f"{s.seconds:.6f}",
                    f"{s.size_bytes / MB / s.seconds:.3f}",
                ]
            )
    plot_latency(result, png_path)
    return [json_path, csv_path, png_path]


def plot_latency(result: StorageBenchResult, path: Path) -> None:
    """Grouped bars of median latency by size and operation, in the manner of the
    paper's Fig. 2 ("Storage Latency Comparison"), on a log scale: consensus and
    peer-to-peer differ by orders of magnitude."""
    import matplotlib

    matplotlib.use("Agg")  # no screen: render to a file
    import matplotlib.pyplot as plt

    medians = result.medians()
    operations = list(iter_operations(result.config.systems))
    sizes = result.config.sizes_bytes
    width = 0.8 / len(operations)
    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=120)
    for i, operation in enumerate(operations):
        xs = [j + (i - (len(operations) - 1) / 2) * width for j in range(len(sizes))]
        ys = [medians.get((operation, size), float("nan")) for size in sizes]  # nan: no bar
        bars = axes.bar(xs, ys, width, label=operation)
        axes.bar_label(bars, labels=[f"{y:.2g}" for y in ys], fontsize=7, padding=1)
    axes.set_xticks(range(len(sizes)), [f"{s / MB:g} MB" for s in sizes])
    axes.set_yscale("log")
    axes.set_ylabel("latency (s, median, log scale)")
    axes.set_xlabel("model size")
    config = result.config
    axes.set_title(
        f"Storage latency: peer-to-peer blob store vs consensus "
        f"({config.validators} validators, {config.replicas} replicas)",
        fontsize=10,
    )
    axes.legend(fontsize=8)
    axes.grid(axis="y", which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
