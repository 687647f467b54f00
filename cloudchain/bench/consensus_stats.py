"""The consensus benchmark's arithmetic, pure: pacing, percentiles, block intervals,
the signature ceiling, and the argument lists of `cloudchain bench consensus`.

Nothing here waits, reads a clock or talks to a node; `bench/consensus.py` does, and
hands its records to these functions.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MAX_RATE_TX_S = 100_000  # an offered rate beyond this is a typo, not a plan
MAX_REQUESTERS = 5_000  # each is an account in genesis and a task in the bench
MIN_DURATION_S = 1.0
MAX_DURATION_S = 3_600.0
MAX_VALIDATORS = 16


class ArgumentError(ValueError):
    """An option of `bench consensus` that cannot be run; the message names it."""


# --- pacing ---------------------------------------------------------------------------


def send_offsets_s(rate_tx_s: float, count: int) -> list[float]:
    """When each of `count` transactions is due, in seconds from the start, at a fixed
    offered rate: transaction i at i / rate (open loop: never waits for a reply)."""
    assert rate_tx_s > 0 and count >= 0
    return [i / rate_tx_s for i in range(count)]


def due_count(rate_tx_s: float, elapsed_s: float, count: int) -> int:
    """How many of `count` transactions are due `elapsed_s` after the start: those whose
    offset i / rate is at most elapsed (the first is due at once)."""
    if elapsed_s < 0:
        return 0
    # A little tolerance so that i / rate computed in floats is due at exactly its time.
    return min(count, math.floor(elapsed_s * rate_tx_s + 1e-9) + 1)


def batches(indices: Sequence[int], nodes: int, batch_max: int) -> list[tuple[int, list[int]]]:
    """Transactions `indices` as (node, batch) pairs: transaction i goes to node i % nodes
    (round robin), each node's in order, at most `batch_max` a batch (JSON-RPC batches)."""
    assert nodes >= 1 and batch_max >= 1
    by_node: dict[int, list[int]] = {}
    for i in indices:
        by_node.setdefault(i % nodes, []).append(i)
    return [
        (node, group[start : start + batch_max])
        for node, group in sorted(by_node.items())
        for start in range(0, len(group), batch_max)
    ]


# --- statistics -----------------------------------------------------------------------


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation between closest ranks (as
    numpy's default); None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    assert 0 <= q <= 100
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Latency:
    """Submit-to-commit latency of the committed transactions of a step, seconds."""

    count: int
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    max_s: float | None


def latency_summary(latencies_s: Sequence[float]) -> Latency:
    return Latency(
        len(latencies_s),
        percentile(latencies_s, 50),
        percentile(latencies_s, 95),
        percentile(latencies_s, 99),
        max(latencies_s) if latencies_s else None,
    )


@dataclass(frozen=True)
class Intervals:
    """Block intervals from the blocks' header times (BFT time), seconds."""

    blocks: int
    mean_s: float | None
    median_s: float | None
    # Of the heights before these blocks (each block's last commit says in which round
    # its previous height was decided): how many took more than one round, and the most.
    late_heights: int = 0
    max_rounds: int = 1


def block_intervals(header_times_ns: Sequence[int], commit_rounds: Sequence[int] = ()) -> Intervals:
    """The intervals between consecutive blocks (in height order) of a step, and the
    rounds of the heights their last commits decided (`commit_rounds`, from 0)."""
    late = sum(1 for r in commit_rounds if r > 0)
    most = 1 + max(commit_rounds, default=0)
    gaps = [(b - a) / 1e9 for a, b in itertools.pairwise(header_times_ns)]
    if not gaps:
        return Intervals(len(header_times_ns), None, None, late, most)
    return Intervals(
        len(header_times_ns), statistics.mean(gaps), statistics.median(gaps), late, most
    )


def rate_per_s(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


# --- the signature ceiling ------------------------------------------------------------


@dataclass(frozen=True)
class Ceiling:
    """What the machine's cores could commit if each node verified each transaction's
    signature once and did nothing else: verifications/s of one core x cores / nodes.

    Measured with the nodes' verifier (libsodium) and, for comparison with the figures
    from before it (issue 15's ceiling), with OpenSSL's."""

    verifications_per_s_one_core: float
    cores: int
    validators: int
    openssl_verifications_per_s_one_core: float = 0.0

    @property
    def tx_per_s(self) -> float:
        return self.verifications_per_s_one_core * self.cores / self.validators

    @property
    def openssl_tx_per_s(self) -> float:
        return self.openssl_verifications_per_s_one_core * self.cores / self.validators

    def ratio(self, committed_tx_s: float) -> float:
        return committed_tx_s / self.tx_per_s if self.tx_per_s > 0 else 0.0


# --- the command's lists --------------------------------------------------------------


def parse_rates(text: str) -> tuple[int, ...]:
    """'250,500,1000' -> offered rates in tx/s: positive integers, each once."""
    return _positive_list(text, "--rates", "tx/s", MAX_RATE_TX_S)


def parse_requesters(text: str) -> tuple[int, ...]:
    """'10,50,100' -> requester counts: positive integers, each once."""
    return _positive_list(text, "--requesters", "requesters", MAX_REQUESTERS)


def _positive_list(text: str, option: str, unit: str, most: int) -> tuple[int, ...]:
    if text.strip() == "":
        return ()  # the sweep is skipped
    values = []
    for item in text.split(","):
        try:
            value = int(item)
        except ValueError:
            raise ArgumentError(f"{option}: {item.strip()!r} is not a whole number") from None
        if not 1 <= value <= most:
            raise ArgumentError(f"{option}: {value} {unit} is not from 1 to {most}")
        values.append(value)
    if len(set(values)) != len(values):
        raise ArgumentError(f"{option}: {text} names a value twice")
    return tuple(values)


def check_run(
    validators: int,
    duration_s: float,
    warmup_s: float,
    rates: Sequence[int],
    requesters: Sequence[int],
) -> None:
    """Refuse a run that cannot be made, before anything starts."""
    if not 1 <= validators <= MAX_VALIDATORS:
        raise ArgumentError(f"--validators must be from 1 to {MAX_VALIDATORS}")
    if not MIN_DURATION_S <= duration_s <= MAX_DURATION_S:
        raise ArgumentError(
            f"--duration must be from {MIN_DURATION_S:g} to {MAX_DURATION_S:g} seconds"
        )
    if not 0 <= warmup_s <= MAX_DURATION_S:
        raise ArgumentError(f"--warmup must be from 0 to {MAX_DURATION_S:g} seconds")
    if not rates and not requesters:
        raise ArgumentError("--rates and --requesters are both empty: nothing to measure")


MAX_SOAK_S = 3_600.0
MAX_SOAK_RATE = 100_000


def check_soak(soak_s: float, soak_rate: int, rates: Sequence[int]) -> None:
    """Refuse a soak that cannot be made: its length, its rate, and a rate to take."""
    if not 0 <= soak_s <= MAX_SOAK_S:
        raise ArgumentError(f"--soak must be from 0 to {MAX_SOAK_S:g} seconds")
    if not 0 <= soak_rate <= MAX_SOAK_RATE:
        raise ArgumentError(f"--soak-rate must be from 0 to {MAX_SOAK_RATE} tx/s")
    if soak_s and not soak_rate and not rates:
        raise ArgumentError(
            "--soak runs at --soak-rate, or at the rate sweep's peak: give one of them"
        )
