"""A provider daemon's configuration, checked before anything starts.

Everything comes from the command line (`cloudchain provider run -h`); a value that
cannot work is a ConfigError naming the option, which the command prints and exits 2
on, before it touches the chain or the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cloudchain.agents.provider.pricing import PricingError, PricingPolicy
from cloudchain.agents.setup import (
    ENCRYPTION_KEY_FILE,
    ConfigError,
    check_home,
    check_node_url,
    prepare_encryption_key,
    prepare_home,
    read_agent_key,
)
from cloudchain.crypto import PrivateKey

FAULTS = ("none", "wrong-output", "crash-mid-task", "slow", "offline", "ignore-privacy")
EXECUTORS = ("local", "ray")
TIERS = ("enterprise", "community")


@dataclass(frozen=True)
class ProviderConfig:
    node: str  # the RPC URL of the node the daemon talks to
    key_file: Path
    home: Path  # jobs/, report files; kept across restarts
    name: str
    tier: str
    resource_class: str
    units: int  # compute units (CPU seconds) it takes on at once
    stake: int
    pricing: PricingPolicy
    executor: str = "local"
    workers: int = 1
    ray_address: str | None = None
    host: str = "127.0.0.1"
    port: int = 0  # of /health and /metrics; 0: one the system chooses
    advertise: str | None = None  # the URL oracles probe; default http://host:port
    fault: str = "none"
    slow_s: float = 2.0  # --fault slow: each /health answer and each report waits this long
    reconcile_s: float = 2.0  # tasks are listed at least this often, besides on each block
    encryption_key: Path | None = None  # the X25519 key grants wrap to; default in home

    def check(self) -> None:
        check_node_url(self.node)
        if not self.key_file.is_file():
            raise ConfigError(f"--key {self.key_file}: no such file")
        if self.tier not in TIERS:
            raise ConfigError(f"--tier {self.tier!r}: expected one of {', '.join(TIERS)}")
        if self.executor not in EXECUTORS:
            raise ConfigError(f"--executor {self.executor!r}: expected local or ray")
        if self.ray_address is not None and self.executor != "ray":
            raise ConfigError("--ray-address needs --executor ray")
        if self.fault not in FAULTS:
            raise ConfigError(f"--fault {self.fault!r}: expected one of {', '.join(FAULTS[1:])}")
        for option, value, low in (
            ("--units", self.units, 1),
            ("--stake", self.stake, 0),
            ("--workers", self.workers, 1),
        ):
            if value < low:
                raise ConfigError(f"{option} {value}: expected at least {low}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port {self.port}: expected 0 to 65535")
        check_home(self.home)
        if self.slow_s < 0 or self.reconcile_s <= 0:
            raise ConfigError("--slow-seconds must be >= 0 and --reconcile-seconds > 0")
        if self.advertise is not None and not self.advertise.startswith(("http://", "https://")):
            raise ConfigError(f"--advertise {self.advertise!r}: expected an http(s) URL")

    def read_key(self) -> PrivateKey:
        return read_agent_key(self.key_file)

    def prepare_home(self) -> None:
        prepare_home(self.home, "jobs")
        prepare_encryption_key(self.encryption_key, self.home)

    @property
    def encryption_key_file(self) -> Path:
        return self.encryption_key or self.home / ENCRYPTION_KEY_FILE


def pricing_policy(kind: str, base: int, markup_bps: int) -> PricingPolicy:
    try:
        return PricingPolicy(kind, base, markup_bps)
    except PricingError as exc:
        raise ConfigError(f"--pricing: {exc}") from None
