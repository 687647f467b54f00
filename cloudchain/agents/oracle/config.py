"""An oracle daemon's configuration, checked before anything starts (ConfigError names
the option; `cloudchain oracle run` prints it and exits 2)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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

BPS = 10_000


@dataclass(frozen=True)
class OracleConfig:
    node: str
    key_file: Path
    home: Path  # re-runs' job directories
    host: str = "127.0.0.1"
    port: int = 0
    probe_s: float = 2.0  # every provider's /health is probed this often
    probe_window: int = 30  # the probes uptime and latency are measured over
    probe_timeout_ms: int = 5_000
    attest_s: float = 30.0  # attest_provider for every provider this often
    sample_bps: int = BPS  # of completed tasks re-run (always: failures, disputes)
    workers: int = 1  # re-runs at once
    reconcile_s: float = 2.0
    encryption_key: Path | None = None  # the X25519 key grants wrap to; default in home

    def check(self) -> None:
        check_node_url(self.node)
        if not self.key_file.is_file():
            raise ConfigError(f"--key {self.key_file}: no such file")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port {self.port}: expected 0 to 65535")
        if not 0 <= self.sample_bps <= BPS:
            raise ConfigError(f"--sample-bps {self.sample_bps}: expected 0 to {BPS}")
        for option, value in (
            ("--probe-seconds", self.probe_s),
            ("--attest-seconds", self.attest_s),
            ("--reconcile-seconds", self.reconcile_s),
        ):
            if value <= 0:
                raise ConfigError(f"{option} {value}: expected more than 0")
        if self.probe_window < 1 or self.probe_timeout_ms < 1 or self.workers < 1:
            raise ConfigError("--probe-window, --probe-timeout-ms and --workers must be >= 1")
        check_home(self.home)

    def read_key(self) -> PrivateKey:
        return read_agent_key(self.key_file)

    def prepare_home(self) -> None:
        prepare_home(self.home, "checks")
        prepare_encryption_key(self.encryption_key, self.home)

    @property
    def encryption_key_file(self) -> Path:
        return self.encryption_key or self.home / ENCRYPTION_KEY_FILE
