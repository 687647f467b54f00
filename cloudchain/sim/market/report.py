"""What a market simulation measured: fairness, latency, throughput, SLA compliance and
utilisation, as CSV and JSON per group size, and the paper's Figs. 4 and 5 as PNG.

Fairness is Jain's index, J(x) = (sum x)^2 / (n sum x^2), over the providers' rewards
(what the chain paid them for tasks and minted for them at epochs): raw, and normalised
by the capacity each offered (tokens per unit offered), which is the paper's sense of a
fair share: a provider offering ten times the capacity is expected to earn ten times as
much. 1 is perfectly even; 1/n is one provider taking everything.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cloudchain.sim.market.bound import (
    FairnessPrice,
    Lot,
    Work,
    best_fairness,
    price_of_fairness,
)
from cloudchain.sim.market.scenario import ProviderSpec
from cloudchain.sim.market.world import MIX, UNITS_PER_BLOCK, ProviderDay, SimResult

FAIRNESS_CLAIM = 0.89  # the paper's Fig. 5: at least this at every group size


def jain(values: Sequence[float]) -> float:
    """Jain's fairness index of `values` (1.0 when all are zero: nothing to share)."""
    total = sum(values)
    squares = sum(v * v for v in values)
    return 1.0 if squares == 0 else total * total / (len(values) * squares)


def requester_shares(result: SimResult) -> list[float]:
    """Of each requester's units submitted, the share paid for (settled, or upheld in a
    dispute): the paper's own sense of Fig. 5 ("the distribution of compute tasks among
    the requesters")."""
    asked: Counter[str] = Counter()
    served: Counter[str] = Counter()
    for record in result.tasks.values():
        asked[record.requester] += record.units
        if record.served:
            served[record.requester] += record.units
    return [served[r] / asked[r] for r in sorted(asked) if asked[r]]


def rewards(rows: Sequence[ProviderDay]) -> list[int]:
    return [row.earned + row.rewarded for row in rows]


def summary(result: SimResult) -> dict[str, Any]:
    config = result.config
    final = result.final
    specs = config.providers  # in the order of `final`
    tokens = rewards(final)
    normalised = [t / spec.capacity for t, spec in zip(tokens, specs, strict=True)]
    settled = [t for t in result.tasks.values() if t.outcome == "settle"]
    latency = sorted(t.ended_at - t.submitted_at for t in settled)
    last = result.days[-1] if result.days else {}
    days = len(result.days)
    blocks_per_day = config.blocks_per_day
    busy = sum(row.busy_unit_blocks for row in result.provider_days)
    offered = sum(spec.capacity for spec in specs) * blocks_per_day * days
    outcomes = Counter(record.outcome or "unfinished" for record in result.tasks.values())
    earned, units = sum(r.earned for r in final), sum(r.units for r in final)
    return {
        "policy": config.policy_name,
        "label": config.label,
        "fair_slack_bps": config.fair_slack_bps,
        "capacity_reward_bps": config.capacity_reward_bps,
        "epoch_reward": config.epoch_reward,
        "requesters": config.requesters,
        "days": config.days,
        "block_s": config.block_s,
        "seed": config.seed,
        "providers": len(final),
        "tasks": len(result.tasks),
        "outcomes": dict(sorted(outcomes.items())),
        "jain_raw": jain(tokens),
        "jain_normalised": jain(normalised),
        "jain_requesters": jain(requester_shares(result)),
        "tokens_enterprise": _tier_sum(tokens, specs, "enterprise"),
        "tokens_community": _tier_sum(tokens, specs, "community"),
        "latency_blocks_median": statistics.median(latency) if latency else None,
        "latency_blocks_p90": latency[int(0.9 * (len(latency) - 1))] if latency else None,
        "latency_s_median": statistics.median(latency) * config.block_s if latency else None,
        "settled_per_day": len(settled) / max(config.days, 1e-9),
        "sla_compliance_bps": last.get("sla_compliance_bps"),
        "utilisation_bps": busy * 10_000 // offered if offered else 0,
        "slashed": sum(row.slashed for row in final),
        "disputes": result.disputes,
        "disputes_overturned": result.overturned,
        "paid_per_unit": earned / units if units else None,
        "minted": result.minted_final,
        "burnt": result.burnt,
        "supply_conserved": result.final_supply
        == result.genesis_supply + result.minted_final - result.burnt,
        "drained_blocks": result.drained,
        "height": result.height,
        "app_hash": result.app_hash,
    }  # fmt: skip


def _tier_sum(tokens: Sequence[int], specs: Sequence[ProviderSpec], tier: str) -> int:
    return sum(t for t, spec in zip(tokens, specs, strict=True) if spec.tier == tier)


def write_run(result: SimResult, out: Path) -> list[Path]:
    """days-R<n>.csv, providers-R<n>.csv (per provider per day) and providers-R<n>.json
    (every provider's totals) of one group size."""
    out.mkdir(parents=True, exist_ok=True)
    n = f"{result.config.requesters}-{result.config.label}"
    days_path = out / f"days-R{n}.csv"
    with open(days_path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(
            ["day", "height", "tasks_settled", "settled_that_day", "sla_compliance_bps",
             "fairness_providers_bps", "supply", "minted", "burnt"]
        )  # fmt: skip
        previous = 0
        for row, (_, supply, minted, burnt) in zip(result.days, result.supply_by_day, strict=True):
            settled = row.get("tasks_settled", 0)
            writer.writerow(
                [row["day"], row["height"], settled, settled - previous,
                 row.get("sla_compliance_bps", ""), row.get("fairness_providers_bps", ""),
                 supply, minted, burnt]
            )  # fmt: skip
            previous = settled
    specs = {spec.name: spec for spec in result.config.providers}
    blocks_per_day = result.config.blocks_per_day
    providers_path = out / f"providers-R{n}.csv"
    with open(providers_path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(
            ["day", "provider", "tier", "capacity", "earned", "rewarded", "rewarded_capacity",
             "units", "tasks", "violated", "slashed", "utilisation_bps"]
        )  # fmt: skip
        for row in result.provider_days:
            spec = specs[result.names[row.provider]]
            utilisation = row.busy_unit_blocks * 10_000 // (spec.capacity * blocks_per_day)
            writer.writerow(
                [row.day, spec.name, spec.tier, spec.capacity, row.earned, row.rewarded,
                 row.rewarded_capacity, row.units, row.tasks, row.violated, row.slashed,
                 utilisation]
            )  # fmt: skip
    totals_path = out / f"providers-R{n}.json"
    totals = [
        {
            "provider": specs[result.names[row.provider]].name,
            "address": row.provider,
            "tier": specs[result.names[row.provider]].tier,
            "capacity": specs[result.names[row.provider]].capacity,
            "tokens": row.earned + row.rewarded,
            "earned": row.earned,
            "rewarded": row.rewarded,
            "rewarded_capacity": row.rewarded_capacity,
            "units": row.units,
            "tasks": row.tasks,
            "violated": row.violated,
            "slashed": row.slashed,
        }
        for row in result.final
    ]
    totals_path.write_text(json.dumps(totals, indent=2) + "\n")
    return [days_path, providers_path, totals_path]


COST_BOUND = 1.10  # the issue's: at most 10% more than the cheapest-bid policy pays


LOTS_PER_CLASS = 4  # of task sizes, each a quarter of the class's settled tasks


def settled_work(result: SimResult) -> Work:
    """The settled work in lots: each class's tasks by size, in quarters."""
    classes = {kind.name: kind.resource_class for kind in MIX}
    sizes: dict[str, list[int]] = {}
    for record in result.tasks.values():
        if record.served:
            sizes.setdefault(classes[record.kind], []).append(record.units)
    lots = []
    for name, units in sorted(sizes.items()):
        units.sort()
        step = math.ceil(len(units) / LOTS_PER_CLASS)
        for part in (units[i : i + step] for i in range(0, len(units), step)):
            total = sum(part)
            # from assignment to its completion: the start's block and the work's
            held = sum(u * (math.ceil(u / UNITS_PER_BLOCK) + 1) for u in part)
            lots.append(Lot(name, total, part[0], held / total))
    return Work(tuple(lots), result.height)


def minted_per_unit(result: SimResult) -> float:
    """The epoch rewards minted for verified work, per verified unit."""
    units = sum(row.units for row in result.final)
    minted = sum(row.rewarded - row.rewarded_capacity for row in result.final)
    return minted / units if units else 0.0


def capacity_rewards(result: SimResult) -> list[float]:
    """What each provider, in the scenario's order, was minted for its capacity: a
    reward no split of the work changes."""
    by_name = {result.names[row.provider]: row.rewarded_capacity for row in result.final}
    return [float(by_name.get(spec.name, 0)) for spec in result.config.providers]


def fairness_cost(result: SimResult, target: float = FAIRNESS_CLAIM) -> FairnessPrice:
    """The least that the run's settled work could cost at J >= `target` (bound.py)."""
    providers = result.config.providers
    return price_of_fairness(
        providers, settled_work(result), minted_per_unit(result), target, capacity_rewards(result)
    )


def summaries(results: Sequence[SimResult]) -> list[dict[str, Any]]:
    """`summary` of each run, with the price of fairness in its market."""
    rows = []
    for result in results:
        bound = fairness_cost(result)
        work, minted = settled_work(result), minted_per_unit(result)
        best = best_fairness(
            result.config.providers, work, minted, COST_BOUND, fixed=capacity_rewards(result)
        )
        rows.append(
            {
                **summary(result),
                "settled_units": {
                    name: sum(lot.units for lot in work.lots if lot.resource_class == name)
                    for name in sorted({lot.resource_class for lot in work.lots})
                },
                "minted_per_unit": minted,
                # estimates (bound.py); None: no split of the work reaches the target
                "fair_cost_ratio_estimate": _finite(bound.ratio),
                "fair_cost_estimate": {"target": bound.target, "cheapest": bound.cheapest,
                                       "fair": _finite(bound.fair), "jain": bound.jain},
                "jain_normalised_best_within_cost_bound": best,
            }
        )  # fmt: skip
    return rows


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def write_summary(
    results: Sequence[SimResult], rows: Sequence[dict[str, Any]], out: Path
) -> list[Path]:
    """summary.json (`rows`: `summaries(results)`), and the figures: fig4-tokens.png (of
    the largest group) and fig5-fairness.png (every group)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "summary.json"
    document = {"runs": rows, "fairness_claim": FAIRNESS_CLAIM}
    path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
    fig4, fig5 = out / "fig4-tokens.png", out / "fig5-fairness.png"
    largest = max(r.config.requesters for r in results)
    plot_tokens([r for r in results if r.config.requesters == largest], fig4)
    plot_fairness(rows, fig5)
    return [path, fig4, fig5]


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        f"{'policy':>15} {'requesters':>10} {'tasks':>7} {'settled/d':>9} {'J raw':>6} "
        f"{'J norm':>6} {'SLA %':>6} {'util %':>6} {'latency':>8} {'per unit':>8} "
        f"{'enterprise':>11} {'community':>10} {'J req':>6} {'fair cost':>9} {'J max':>6}"
    ]
    for row in rows:
        latency = row["latency_s_median"]
        per_unit = row["paid_per_unit"]
        lines.append(
            f"{row['label']:>15} {row['requesters']:>10} {row['tasks']:>7} "
            f"{row['settled_per_day']:>9.1f} "
            f"{row['jain_raw']:>6.3f} {row['jain_normalised']:>6.3f} "
            f"{(row['sla_compliance_bps'] or 0) / 100:>6.2f} {row['utilisation_bps'] / 100:>6.2f} "
            f"{'-' if latency is None else f'{latency / 60:.0f} min':>8} "
            f"{'-' if per_unit is None else f'{per_unit:.1f}':>8} "
            f"{row['tokens_enterprise']:>11} {row['tokens_community']:>10} "
            f"{row['jain_requesters']:>6.3f} {_ratio(row['fair_cost_ratio_estimate']):>9} "
            f"{row['jain_normalised_best_within_cost_bound']:>6.3f}"
        )
    lines.append(
        f"the paper's Fig. 5: Jain's index at least {FAIRNESS_CLAIM} at every group size; "
        "latency is the median from submit to settlement; J req: Jain's index over the "
        "requesters' shares served; fair cost: an estimate of the least any split of the "
        f"work paid for could cost at J norm >= {FAIRNESS_CLAIM}, over its cheapest (none: no "
        "split reaches it); J max: the highest J norm a split of it reaches within "
        f"{COST_BOUND:.2f}x (sim/market/bound.py)"
    )
    return "\n".join(lines)


def _ratio(value: float | None) -> str:
    return "none" if value is None else f"{value:.2f}x"


def plot_tokens(results: Sequence[SimResult], path: Path) -> None:
    """Fig. 4: each provider's tokens over the run, enterprise and community apart (one
    row of bars per policy), and each tier's cumulative tokens by day."""
    import matplotlib

    matplotlib.use("Agg")  # no screen: render to a file
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(
        len(results), 2, figsize=(13, 4.2 * len(results)), dpi=110, squeeze=False
    )
    for (left, right), result in zip(axes, results, strict=True):
        specs = {spec.name: spec for spec in result.config.providers}
        rows = sorted(result.final, key=lambda r: -(r.earned + r.rewarded))
        names = [result.names[row.provider] for row in rows]
        colours = ["tab:blue" if specs[n].tier == "enterprise" else "tab:orange" for n in names]
        left.bar(range(len(names)), rewards(rows), color=colours)
        left.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        left.set_ylabel("tokens (tasks + epoch rewards)")
        left.set_title(
            f"{result.config.label}: tokens per provider over {result.config.days:g} "
            f"days, {result.config.requesters} requesters (blue: enterprise, orange: community)",
            fontsize=9,
        )
        by_day: dict[int, dict[str, int]] = {}
        for row in result.provider_days:
            tier = specs[result.names[row.provider]].tier
            day = by_day.setdefault(row.day, {"enterprise": 0, "community": 0})
            day[tier] += row.earned + row.rewarded
        days = sorted(by_day)
        for tier, colour in (("enterprise", "tab:blue"), ("community", "tab:orange")):
            right.plot(days, [by_day[d][tier] for d in days], color=colour, label=tier, marker=".")
        right.set_xlabel("day")
        right.set_ylabel("tokens so far")
        right.set_title(f"{result.config.label}: cumulative tokens by tier", fontsize=9)
        right.legend(fontsize=8)
        right.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def plot_fairness(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Fig. 5: Jain's index against the requester group size, raw and normalised by
    capacity, with the paper's claim."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    labels = list(dict.fromkeys(row["label"] for row in rows))  # in the order run
    for index, label in enumerate(labels):
        colour = f"C{index}"
        mine = sorted((r for r in rows if r["label"] == label), key=lambda r: r["requesters"])
        sizes = [r["requesters"] for r in mine]
        axes.plot(sizes, [r["jain_normalised"] for r in mine], marker="o", color=colour,
                  label=f"{label}: providers, normalised by capacity")  # fmt: skip
        axes.plot(sizes, [r["jain_raw"] for r in mine], marker="s", color=colour,
                  linestyle=":", label=f"{label}: providers, raw")  # fmt: skip
        axes.plot(sizes, [r["jain_requesters"] for r in mine], marker="^", color=colour,
                  linestyle="--", label=f"{label}: requesters' shares served")  # fmt: skip
    axes.axhline(FAIRNESS_CLAIM, color="grey", linestyle="--", label=f"paper: >= {FAIRNESS_CLAIM}")
    axes.set_ylim(0, 1.05)
    axes.set_xlabel("requesters")
    axes.set_ylabel("Jain's fairness index")
    axes.set_title("Fairness against requester group size", fontsize=10)
    axes.legend(fontsize=6.5, loc="lower right")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
