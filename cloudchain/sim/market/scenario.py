"""The providers a market simulation runs with: the paper's by default, or a file's.

The paper simulates 28 providers: AWS, Google Cloud, Azure, Hetzner and Lambda Labs with
enterprise capacity, and 23 community nodes. A compute unit here is one GPU-minute
(class `gpu`) or one vCPU-minute x 8 (class `cpu`), and a token unit is $0.0001, so a
price is list price per GPU-hour / 60 / 0.0001. The clouds' prices are on-demand list
prices for one A100 (40 GB) GPU, or the smallest GPU offer of the provider, per hour,
as the providers' public price pages gave them (docs/PAPER.md says which, and when);
their uptime is the single-instance figure of their compute SLA where one is published.
Community nodes are drawn from the scenario's seed: small, cheaper, less reliable.

A scenario file (JSON, or TOML with a [[providers]] table per provider) lists providers
with the fields of ProviderSpec; `load_scenario` checks each and names the bad field.
"""

from __future__ import annotations

import json
import random
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GPU, CPU = "gpu", "cpu"
CLASSES = (GPU, CPU)
BPS = 10_000
TIERS = ("enterprise", "community")
POLICIES = ("fixed", "reference", "load")


class ScenarioError(ValueError):
    """A scenario that cannot run: the message names the provider and the field."""


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    tier: str  # enterprise or community
    offers: Mapping[str, tuple[int, int]]  # class -> (units in flight at most, price)
    uptime_bps: int  # the service uptime oracles measure, on average
    latency_ms: int  # the median latency oracles measure
    reliability_bps: int  # of tasks taken, the share it completes in time
    pricing: str = "fixed"  # its pricing policy (agents/provider/pricing.py)
    markup_bps: int = 0
    stake: int = 0  # 0: ten times its largest offer's value per unit x units
    wrong_bps: int = 0  # of its completed tasks, the share whose output is wrong

    @property
    def capacity(self) -> int:
        """Units offered in all: what its rewards are normalised by."""
        return sum(units for units, _ in self.offers.values())

    def stake_or_default(self) -> int:
        if self.stake:
            return self.stake
        return 10 * max(units * price for units, price in self.offers.values()) + 10_000


# The paper's five clouds. Price: $/GPU-hour on demand / 60 / $0.0001 (see the docstring).
CLOUDS: tuple[ProviderSpec, ...] = (
    # AWS p4d.24xlarge, 8 x A100 40 GB, $32.77/h in us-east-1: $4.10 a GPU-hour;
    # EC2's SLA: 99.5% for a single instance
    ProviderSpec("aws", "enterprise", {GPU: (4_000, 683), CPU: (2_000, 120)}, 9_950, 40, 9_950),
    # Google Cloud a2-highgpu-1g, 1 x A100 40 GB, $3.67/h; Compute Engine: 99.5% single VM
    ProviderSpec("gcp", "enterprise", {GPU: (3_000, 612), CPU: (2_000, 110)}, 9_950, 45, 9_950),
    # Azure ND96asr v4, 8 x A100 40 GB, $27.20/h: $3.40 a GPU-hour; VMs: 99.9% single
    # instance on premium storage
    ProviderSpec("azure", "enterprise", {GPU: (3_000, 567), CPU: (2_000, 105)}, 9_990, 50, 9_950),
    # Lambda Labs 1 x A100 40 GB, $1.29/h; no published SLA (taken as 99%)
    ProviderSpec("lambda", "enterprise", {GPU: (1_500, 215)}, 9_900, 60, 9_900),
    # Hetzner GEX44 (RTX 4000 SFF Ada), EUR 184/month: about $0.27/h; no compute SLA
    # (its network: 99.9%)
    ProviderSpec("hetzner", "enterprise", {GPU: (400, 45), CPU: (1_000, 30)}, 9_900, 70, 9_900),
)
COMMUNITY_NODES = 23


def community_nodes(count: int, seed: int) -> tuple[ProviderSpec, ...]:
    """`count` community nodes drawn from `seed`: one consumer GPU or a few CPUs each,
    $0.15-0.60 a GPU-hour, 95-99.8% uptime, 90-99.5% of tasks completed in time, and
    up to 2% of outputs wrong (which their requesters dispute)."""
    rng = random.Random(f"community:{seed}")
    nodes = []
    for i in range(count):
        offers: dict[str, tuple[int, int]] = {}
        if rng.random() < 0.7:
            offers[GPU] = (rng.choice((20, 30, 40, 60, 80, 120)), rng.randint(25, 100))
        if not offers or rng.random() < 0.4:
            offers[CPU] = (rng.choice((20, 40, 80, 160)), rng.randint(8, 25))
        nodes.append(
            ProviderSpec(
                name=f"community-{i + 1:02d}",
                tier="community",
                offers=offers,
                uptime_bps=rng.randint(9_500, 9_980),
                latency_ms=rng.randint(60, 400),
                reliability_bps=rng.randint(9_000, 9_950),
                pricing=rng.choice(POLICIES),
                markup_bps=rng.choice((0, 500, 1_000, 2_000)),
                wrong_bps=rng.choice((0, 50, 100, 200)),
            )
        )
    return tuple(nodes)


def paper_scenario(seed: int) -> tuple[ProviderSpec, ...]:
    """The five clouds and 23 community nodes: 28 providers."""
    return CLOUDS + community_nodes(COMMUNITY_NODES, seed)


def load_scenario(path: Path) -> tuple[ProviderSpec, ...]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScenarioError(f"--providers {path}: {exc.strerror}") from None
    try:
        document = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"--providers {path}: not {path.suffix[1:] or 'JSON'}: {exc}") from None
    rows = document.get("providers") if isinstance(document, Mapping) else None
    if not isinstance(rows, list) or not rows:
        raise ScenarioError(f"--providers {path}: expected a list `providers` of providers")
    specs = tuple(_spec(row, i) for i, row in enumerate(rows))
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ScenarioError(f"--providers {path}: a provider's name is given twice")
    return specs


def _spec(row: Any, index: int) -> ProviderSpec:
    where = f"providers[{index}]"
    if not isinstance(row, Mapping):
        raise ScenarioError(f"{where}: expected a table")
    known = set(ProviderSpec.__dataclass_fields__)
    for name in sorted(set(row) - known):
        raise ScenarioError(f"{where}.{name}: unknown field")
    for name in ("name", "tier", "offers", "uptime_bps", "latency_ms", "reliability_bps"):
        if name not in row:
            raise ScenarioError(f"{where}.{name}: missing")
    if not isinstance(row["name"], str) or not 0 < len(row["name"]) <= 40:
        raise ScenarioError(f"{where}.name: a string of 1 to 40 characters")
    if row["tier"] not in TIERS:
        raise ScenarioError(f"{where}.tier: expected enterprise or community")
    if row.get("pricing", "fixed") not in POLICIES:
        raise ScenarioError(f"{where}.pricing: expected one of {', '.join(POLICIES)}")
    offers = row["offers"]
    if not isinstance(offers, Mapping) or not offers or set(offers) - set(CLASSES):
        raise ScenarioError(f"{where}.offers: a table of gpu and/or cpu = [units, price]")
    checked: dict[str, tuple[int, int]] = {}
    for name, value in offers.items():
        if not (_ints(value, 2) and value[0] >= 1 and value[1] >= 1):
            raise ScenarioError(f"{where}.offers.{name}: expected [units >= 1, price >= 1]")
        checked[name] = (value[0], value[1])
    for name, low, high in (
        ("uptime_bps", 0, BPS),
        ("reliability_bps", 0, BPS),
        ("latency_ms", 1, 60_000),
        ("markup_bps", 0, 10 * BPS),
        ("stake", 0, 10**15),
        ("wrong_bps", 0, BPS),
    ):
        value = row.get(name, 0)
        if not _ints([value], 1) or not low <= value <= high:
            raise ScenarioError(f"{where}.{name}: expected an integer in [{low}, {high}]")
    return ProviderSpec(
        name=row["name"],
        tier=row["tier"],
        offers=checked,
        uptime_bps=row["uptime_bps"],
        latency_ms=row["latency_ms"],
        reliability_bps=row["reliability_bps"],
        pricing=row.get("pricing", "fixed"),
        markup_bps=row.get("markup_bps", 0),
        stake=row.get("stake", 0),
        wrong_bps=row.get("wrong_bps", 0),
    )


def _ints(value: Any, length: int) -> bool:
    return (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == length
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    )
