"""An oracle daemon's configuration, checked before anything starts (ConfigError names
the option; `cloudchain oracle run` prints it and exits 2)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cloudchain.agents.provider.config import ConfigError
from cloudchain.crypto import PrivateKey, read_key_file

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

    def check(self) -> None:
        if not self.node.startswith(("http://", "https://")):
            raise ConfigError(f"--node {self.node!r}: expected an http:// or https:// URL")
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
        if self.home.exists() and not self.home.is_dir():
            raise ConfigError(f"--home {self.home}: not a directory")

    def read_key(self) -> PrivateKey:
        try:
            return read_key_file(self.key_file)
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"--key {self.key_file}: not a key file ({exc})") from None

    def prepare_home(self) -> None:
        try:
            (self.home / "checks").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"--home {self.home}: {exc.strerror}") from None
        if not os.access(self.home, os.W_OK):
            raise ConfigError(f"--home {self.home}: not writable")
