"""The soak of `cloudchain bench consensus --soak SECONDS`: memory of each node over a
long run at one offered rate (issue 15, point 4: a node's RSS grows by less than 500
MiB over 10 minutes at the peak).

What it owns: reading a process's resident set size (Linux's /proc/PID/status, VmRSS)
and CPU time (/proc/PID/stat, which every step reports too), and summing a run's
samples up; which keys send what, and when (`soak_slot`). It knows nothing of the
network or of the load generator, which samples and sends.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cloudchain.bench.consensus_stats import Latency

RSS_SAMPLE_S = 5.0  # how often every node's RSS is read
KEY_PERIOD_S = 20.0  # each soak key sends one transfer this often, nonces 0, 1, 2, ...
RSS_GROWTH_TARGET_MIB = 500  # the bound over a 10-minute run
PROC = Path("/proc")


def read_rss_mib(pid: int, proc: Path = PROC) -> float | None:
    """The process's resident set size in MiB, or None when it is gone (or not Linux)."""
    try:
        text = (proc / str(pid) / "status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            kib = int(line.split()[1])  # "VmRSS:   123456 kB"
            return kib / 1024
    return None


def read_cpu_s(pid: int, proc: Path = PROC) -> float | None:
    """The CPU time (user and system) the process has used, in seconds, or None when it
    is gone (or not Linux): /proc/PID/stat's utime and stime, in clock ticks."""
    try:
        text = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) ": state is first
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def soak_keys(rate: int, nodes: int) -> int:
    """How many keys a soak at `rate` needs so that each sends every KEY_PERIOD_S: a
    multiple of the nodes, so that one key's transfers always go to the same node (its
    next nonce waits there, gapped, if it arrives before the one before it commits)."""
    wanted = max(1, round(rate * KEY_PERIOD_S))
    return -(-wanted // nodes) * nodes


def soak_slot(index: int, keys: int) -> tuple[int, int]:
    """The key and nonce of the soak's `index`-th transfer: key after key, round after
    round."""
    return index % keys, index // keys


class SoakNonces:
    """The nonce each soak key sends in its slots, with refusals sent again.

    Slot by slot a key's nonces are 0, 1, 2, ... (`soak_slot`). A transfer the node
    refused (a full mempool) is sent again in its key's next slot, and the key's later
    nonces follow on from it: without this, one refusal left every later transfer of
    that key gapped, waiting for a nonce never sent again, for the rest of the soak."""

    def __init__(self, keys: int) -> None:
        self._behind = [0] * keys  # how many nonces each key is behind its slots
        self._resend: dict[int, int] = {}  # key -> the lowest refused nonce

    def nonce_for(self, key: int, slot_nonce: int) -> int:
        """The nonce `key` sends in the slot of `slot_nonce`."""
        nonce = self._resend.pop(key, None)
        if nonce is None:
            nonce = slot_nonce - self._behind[key]
        self._behind[key] = slot_nonce - nonce
        return nonce

    def refused(self, key: int, nonce: int) -> None:
        """The transfer of `key` with `nonce` was refused: send it again next."""
        self._resend[key] = min(self._resend.get(key, nonce), nonce)


@dataclass(frozen=True)
class RssSeries:
    """One node's RSS over the soak: samples as (seconds since the soak began, MiB)."""

    node: int
    samples: tuple[tuple[float, float], ...]

    def at_or_after(self, t: float) -> float | None:
        return next((mib for s, mib in self.samples if s >= t), None)

    @property
    def last(self) -> float | None:
        return self.samples[-1][1] if self.samples else None

    @property
    def peak(self) -> float | None:
        return max((mib for _, mib in self.samples), default=None)

    def growth(self, warmup_s: float) -> float | None:
        """The RSS at the end less the RSS once the warm-up was over."""
        start, end = self.at_or_after(warmup_s), self.last
        return None if start is None or end is None else end - start


@dataclass(frozen=True)
class SoakResult:
    rate: int  # offered tx/s
    duration_s: float  # measured, after the warm-up
    warmup_s: float
    sent: int
    committed_tx_s: float
    latency: Latency
    refusals: dict[str, int]
    errors: int
    rss: tuple[RssSeries, ...]

    @property
    def worst_growth_mib(self) -> float | None:
        growths = [g for s in self.rss if (g := s.growth(self.warmup_s)) is not None]
        return max(growths, default=None)


def series(samples: Sequence[tuple[float, Sequence[float | None]]], nodes: int) -> list[RssSeries]:
    """Per node, the samples that read a value (a node that exited reads none)."""
    return [
        RssSeries(n, tuple((t, row[n]) for t, row in samples if row[n] is not None))
        for n in range(nodes)
    ]
