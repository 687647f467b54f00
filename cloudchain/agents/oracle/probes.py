"""What an oracle measures of a provider's service: its `/health`, probed on a schedule.

Each provider keeps a window of the last `size` probes. Its uptime is the share of them
answered (HTTP 200 with {"status": "ok"}) within the probe timeout, in basis points;
its latency is the median round trip of those answered, or the timeout when none was
(a provider that never answers is as slow as the oracle waits). Integers only: these
are what the oracle attests on chain.
"""

from __future__ import annotations

import ipaddress
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

BPS = 10_000


@dataclass(frozen=True)
class Probe:
    ok: bool
    latency_ms: int


class ProbeWindow:
    def __init__(self, size: int, timeout_ms: int) -> None:
        self._probes: deque[Probe] = deque(maxlen=size)
        self.timeout_ms = timeout_ms

    def add(self, probe: Probe) -> None:
        self._probes.append(probe)

    def __len__(self) -> int:
        return len(self._probes)

    @property
    def uptime_bps(self) -> int:
        if not self._probes:
            return 0
        return sum(p.ok for p in self._probes) * BPS // len(self._probes)

    @property
    def latency_ms(self) -> int:
        answered = sorted(p.latency_ms for p in self._probes if p.ok)
        if not answered:
            return self.timeout_ms
        return answered[(len(answered) - 1) // 2]


def refused_endpoint(endpoint: str) -> str | None:
    """Why an oracle will not GET this advertised endpoint (None: it will). A provider
    names the URL, so it could point the oracles at what only they can reach: a cloud's
    metadata service (link-local 169.254.0.0/16, fe80::/10), or no host at all.
    Loopback and private ranges stay allowed: local and permissioned networks use them."""
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname
    except ValueError:
        return "not a URL"
    if parts.scheme not in ("http", "https") or not host:
        return "not an http(s) URL with a host"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None if host != "metadata.google.internal" else "a cloud metadata host"
    if address.is_link_local or address.is_multicast or address.is_unspecified:
        return f"{address} is link-local, multicast or unspecified"
    return None


async def probe(session: aiohttp.ClientSession, endpoint: str, timeout_ms: int) -> Probe:
    """One GET of `endpoint`/health."""
    started = time.monotonic()
    try:
        async with session.get(
            endpoint.rstrip("/") + "/health",
            timeout=aiohttp.ClientTimeout(total=timeout_ms / 1000),
        ) as response:
            body = await response.json(content_type=None) if response.status == 200 else None
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return Probe(False, timeout_ms)
    latency_ms = int((time.monotonic() - started) * 1000)
    ok = isinstance(body, dict) and body.get("status") == "ok"
    return Probe(ok, latency_ms if ok else timeout_ms)
