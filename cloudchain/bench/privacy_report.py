"""The privacy benchmark's results: a table, JSON, CSV and a chart in the manner of the
paper's Fig. 6 (execution time with and without DP), beside its claim of +15-20%."""

from __future__ import annotations

import csv
import json
import statistics
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cloudchain.bench.privacy import PLAIN, PrivacyBenchResult

PAPER_OVERHEAD = (1.15, 1.20)  # the paper's Fig. 6: DP adds about 15-20% to a task's time
MEMORY_TARGET_MIB = 100  # the issue's: 1 GB sealed in under 100 MiB


def _summary(result: PrivacyBenchResult, stage: str, name: str) -> dict[str, Any]:
    runs = result.of(stage, name)
    first = runs[0]
    epsilons = [t.epsilon for t in runs if t.epsilon is not None]
    return {
        "stage": stage,
        "name": name,
        "target_epsilon": first.target_epsilon,
        "noise_multiplier": first.noise_multiplier,
        "epsilon_spent": max(epsilons) if epsilons else None,
        "median_s": result.median_seconds(stage, name),
        "overhead": result.overhead(stage, name),
        "accuracy": statistics.median(t.accuracy for t in runs),
        "runs": len(runs),
    }


def summaries(result: PrivacyBenchResult) -> list[dict[str, Any]]:
    return [_summary(result, s, n) for s in result.stages() for n in result.names()]


def seal_medians(result: PrivacyBenchResult) -> dict[str, float]:
    """Operation -> median MB/s."""
    operations = dict.fromkeys(s.operation for s in result.seals)
    return {
        op: statistics.median(s.mb_s for s in result.seals if s.operation == op)
        for op in operations
    }


def format_table(result: PrivacyBenchResult) -> str:
    config = result.config
    lines = [
        f"digits: {result.rows} rows trained on, {result.scored} scored; MLP 64-128-10, "
        f"{config.epochs} epochs, batches of {config.batch_size}, C {config.clip_norm:g}, "
        f"δ {config.delta:g}; medians of {config.runs} interleaved run(s)",
        f"{'stage':<6} {'config':<12} {'sigma':>7} {'ε spent':>8} {'median s':>9} "
        f"{'overhead':>9} {'accuracy':>9}",
    ]
    for row in summaries(result):
        sigma = "-" if row["noise_multiplier"] is None else f"{row['noise_multiplier']:.3f}"
        spent = "-" if row["epsilon_spent"] is None else f"{row['epsilon_spent']:.3f}"
        lines.append(
            f"{row['stage']:<6} {row['name']:<12} {sigma:>7} {spent:>8} {row['median_s']:>9.3f} "
            f"{row['overhead']:>8.2f}x {row['accuracy']:>9.3f}"
        )
    low, high = PAPER_OVERHEAD
    lines.append(f"the paper's Fig. 6: DP adds {low - 1:.0%}-{high - 1:.0%} to a task's time")
    medians = seal_medians(result)
    if medians:
        hashing = medians.get("sha256")
        cells = ", ".join(
            f"{op} {mb_s:.0f} MB/s"
            + (f" ({mb_s / hashing:.2f}x sha256)" if hashing and op != "sha256" else "")
            for op, mb_s in medians.items()
        )
        lines.append(f"{config.seal_mb} MB sealed: {cells}")
    memory = result.memory
    if memory is not None:
        verdict = (
            "met"
            if memory.peak_rss_mib < MEMORY_TARGET_MIB and memory.roundtrip_ok
            else ("NOT met")
        )
        lines.append(
            f"{memory.sealed_mb} MB sealed and opened in one process: peak RSS "
            f"{memory.peak_rss_mib:.1f} MiB (target < {MEMORY_TARGET_MIB} MiB: {verdict}), "
            f"round trip {'intact' if memory.roundtrip_ok else 'WRONG'}"
        )
    return "\n".join(lines)


def to_json(result: PrivacyBenchResult) -> dict[str, Any]:
    return {
        "config": asdict(result.config),
        "rows": result.rows,
        "scored": result.scored,
        "summary": summaries(result),
        "trainings": [asdict(t) for t in result.trainings],
        "sealing": {
            "samples": [{**asdict(s), "mb_s": s.mb_s} for s in result.seals],
            "median_mb_s": seal_medians(result),
        },
        "memory": None if result.memory is None else asdict(result.memory),
        "paper_overhead": list(PAPER_OVERHEAD),
    }


def write_outputs(result: PrivacyBenchResult, out_dir: Path) -> list[Path]:
    """privacy.json, privacy.csv (one row per training) and privacy.png in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, csv_path, png_path = (out_dir / f"privacy.{ext}" for ext in ("json", "csv", "png"))
    json_path.write_text(json.dumps(to_json(result), indent=2) + "\n")
    with open(csv_path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(
            ["stage", "config", "run", "noise_multiplier", "epsilon", "seconds", "accuracy"]
        )
        for t in result.trainings:
            writer.writerow(
                [
                    t.stage,
                    t.name,
                    t.run + 1,
                    "" if t.noise_multiplier is None else f"{t.noise_multiplier:.6f}",
                    "" if t.epsilon is None else f"{t.epsilon:.6f}",
                    f"{t.seconds:.6f}",
                    f"{t.accuracy:.6f}",
                ]
            )
    plot(result, png_path)
    return [json_path, csv_path, png_path]


def plot(result: PrivacyBenchResult, path: Path) -> None:
    """Left: median time of each configuration, by stage, over the plain one's (the
    paper's band shaded). Right: accuracy against the ε spent."""
    import matplotlib

    matplotlib.use("Agg")  # no screen: render to a file
    import matplotlib.pyplot as plt

    names = result.names()
    stages = result.stages()
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=120)
    width = 0.8 / len(stages)
    for i, stage in enumerate(stages):
        xs = [j + (i - (len(stages) - 1) / 2) * width for j in range(len(names))]
        ys = [result.overhead(stage, name) for name in names]
        bars = left.bar(xs, ys, width, label="training alone" if stage == "train" else "whole job")
        left.bar_label(bars, labels=[f"{y:.2f}x" for y in ys], fontsize=7, padding=1)
    low, high = PAPER_OVERHEAD
    left.axhspan(low, high, color="grey", alpha=0.25, label="paper's Fig. 6: +15-20%")
    left.axhline(1.0, color="black", linewidth=0.8)
    left.set_xticks(range(len(names)), [n.replace("dp ", "") for n in names], fontsize=8)
    left.set_ylabel("median time / without DP")
    left.set_title("Execution time with DP-SGD (Opacus)", fontsize=10)
    left.legend(fontsize=8)
    for stage in stages:
        rows = [r for r in summaries(result) if r["stage"] == stage and r["name"] != PLAIN]
        right.plot(
            [r["epsilon_spent"] for r in rows],
            [r["accuracy"] for r in rows],
            marker="o",
            label="training alone" if stage == "train" else "whole job",
        )
        plain = result.of(stage, PLAIN)
        right.axhline(statistics.median(t.accuracy for t in plain), linestyle=":", linewidth=1)
    right.set_xscale("log")
    right.set_xlabel(f"ε spent (δ = {result.config.delta:g})")
    right.set_ylabel("accuracy (dotted: without DP)")
    right.set_title("Accuracy against the privacy spent", fontsize=10)
    right.legend(fontsize=8)
    right.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
