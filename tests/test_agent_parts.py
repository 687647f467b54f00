"""The daemons' small parts: pricing policies, the probe window and a real probe, the
reconnection backoff, the provider's report file, and configurations refused."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from cloudchain.agents.executor import LocalExecutor
from cloudchain.agents.follow import backoff_delays
from cloudchain.agents.oracle.config import OracleConfig
from cloudchain.agents.oracle.probes import Probe, ProbeWindow, probe, refused_endpoint
from cloudchain.agents.provider.config import ConfigError, ProviderConfig
from cloudchain.agents.provider.daemon import Report
from cloudchain.agents.provider.pricing import PricingError, PricingPolicy
from cloudchain.agents.server import AgentServer
from cloudchain.agents.workload.sandbox import ChildResult, prepare_job, running_jobs
from cloudchain.crypto import PrivateKey, write_key_file
from cloudchain.workload.manifest import canonical_bytes, parse_manifest
from tests.helpers.waiting import wait_until
from tests.helpers.workloads import classification_csv, train_manifest


def test_fixed_pricing_is_its_base_whatever_the_market_does() -> None:
    policy = PricingPolicy("fixed", 12)
    assert policy.price(None, 0, 10) == policy.price(500, 10, 10) == 12


def test_reference_pricing_follows_the_chains_price_with_its_markup() -> None:
    policy = PricingPolicy("reference", 10, markup_bps=2_500, floor=3)
    assert policy.price(None, 0, 8) == 12  # no reference yet: its base, marked up
    assert policy.price(40, 0, 8) == 50
    assert policy.price(1, 0, 8) == 3  # never below the floor


def test_load_pricing_rises_with_the_share_of_capacity_in_flight() -> None:
    policy = PricingPolicy("load", 100, markup_bps=10_000)  # double at full load
    prices = [policy.price(None, in_flight, 8) for in_flight in range(9)]
    assert prices[0] == 100 and prices[4] == 150 and prices[8] == 200
    assert prices == sorted(prices)


@pytest.mark.parametrize(
    ("kind", "base", "markup", "said"),
    [("auction", 1, 0, "auction"), ("fixed", 0, 0, "at least 1"), ("load", 5, -1, "markup")],
)
def test_a_policy_that_cannot_price_is_refused(
    kind: str, base: int, markup: int, said: str
) -> None:
    with pytest.raises(PricingError, match=said):
        PricingPolicy(kind, base, markup)


def test_the_probe_window_measures_uptime_and_the_median_latency_in_integers() -> None:
    window = ProbeWindow(size=4, timeout_ms=5_000)
    assert window.uptime_bps == 0 and window.latency_ms == 5_000  # nothing heard yet
    for probe_ in [Probe(True, 30), Probe(False, 5_000), Probe(True, 10), Probe(True, 20)]:
        window.add(probe_)
    assert window.uptime_bps == 7_500 and window.latency_ms == 20
    for _ in range(4):  # the window slides: only the last four count
        window.add(Probe(False, 5_000))
    assert window.uptime_bps == 0 and window.latency_ms == 5_000


async def test_a_probe_measures_a_real_health_endpoint_slow_or_down() -> None:
    healthy = AgentServer("127.0.0.1", 0, CollectorRegistry(), lambda: {"status": "ok"})
    slow = AgentServer("127.0.0.1", 0, CollectorRegistry(), lambda: {"status": "ok"}, 0.3)
    await healthy.start()
    await slow.start()
    try:
        async with aiohttp.ClientSession() as session:
            fast_probe = await probe(session, healthy.url, 2_000)
            slow_probe = await probe(session, slow.url, 2_000)
            timed_out = await probe(session, slow.url, 100)
            await healthy.stop()
            down = await probe(session, healthy.url, 2_000)
            metrics = await (await session.get(slow.url + "/metrics")).text()
    finally:
        await healthy.stop()
        await slow.stop()
    assert fast_probe.ok and fast_probe.latency_ms < slow_probe.latency_ms
    assert slow_probe.ok and slow_probe.latency_ms >= 300
    assert timed_out == Probe(False, 100) and down == Probe(False, 2_000)
    assert isinstance(metrics, str)


def test_reconnection_backs_off_from_one_second_doubling_to_thirty() -> None:
    assert backoff_delays() == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0]


def test_a_report_reads_back_as_written_and_a_torn_one_reads_as_none(tmp_path: Path) -> None:
    report = Report(3, 5, ("Qmindex", "Qmfile", "Qmlog"), (("Qmfile", 10, ("node0",)),))
    path = tmp_path / "report.json"
    path.write_bytes(report.to_bytes())
    assert Report.read(path) == report
    assert [call[1] for call in report.transactions()] == ["anchor", "complete"]
    assert report.transactions()[-1][2] == {
        "task": 3,
        "units_used": 5,
        "output": ["Qmindex", "Qmfile", "Qmlog"],
    }
    path.write_bytes(report.to_bytes()[:20])
    assert Report.read(path) is None
    assert Report.read(tmp_path / "absent.json") is None


def _provider_config(tmp_path: Path, **changes: object) -> ProviderConfig:
    key = tmp_path / "key.json"
    if not key.exists():
        write_key_file(key, PrivateKey.generate())
    values: dict[str, object] = {
        "node": "http://127.0.0.1:26657",
        "key_file": key,
        "home": tmp_path / "home",
        "name": "p",
        "tier": "community",
        "resource_class": "cpu-small",
        "units": 8,
        "stake": 10,
        "pricing": PricingPolicy("fixed", 10),
    }
    return ProviderConfig(**{**values, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "option"),
    [
        ({"node": "127.0.0.1:26657"}, "--node"),
        ({"key_file": Path("/no/such/key.json")}, "--key"),
        ({"tier": "gold"}, "--tier"),
        ({"executor": "slurm"}, "--executor"),
        ({"ray_address": "ray://x:1"}, "--ray-address"),
        ({"fault": "lazy"}, "--fault"),
        ({"units": 0}, "--units"),
        ({"port": 70_000}, "--port"),
        ({"advertise": "ftp://x"}, "--advertise"),
    ],
)
def test_a_provider_configuration_that_cannot_work_names_the_option(
    tmp_path: Path, change: dict[str, object], option: str
) -> None:
    with pytest.raises(ConfigError, match=option):
        _provider_config(tmp_path, **change).check()


def test_a_key_file_that_is_not_a_key_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"hello": 1}))
    config = _provider_config(tmp_path, key_file=bad)
    config.check()
    with pytest.raises(ConfigError, match="not a key file"):
        config.read_key()
    oracle = OracleConfig("http://127.0.0.1:1", bad, tmp_path / "o", sample_bps=20_000)
    with pytest.raises(ConfigError, match="--sample-bps"):
        oracle.check()


def test_the_cli_exits_2_naming_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cloudchain.cli.main import main

    assert main(["provider", "run", "--key", str(tmp_path / "none.json")]) == 2
    assert "--key" in capsys.readouterr().err
    key = tmp_path / "k.json"
    write_key_file(key, PrivateKey.generate())
    argv = ["oracle", "run", "--key", str(key), "--home", str(tmp_path), "--probe-seconds", "0"]
    assert main(argv) == 2
    assert "--probe-seconds" in capsys.readouterr().err


def test_closing_the_local_executor_kills_its_running_job(tmp_path: Path) -> None:
    """A daemon told to stop does not wait for its jobs (they would hold it until their
    deadline): its executor kills them."""
    model = {
        "library": "sklearn",
        "estimator": "random_forest_classifier",
        "params": {"n_estimators": 1_000},
    }
    manifest = parse_manifest(train_manifest(classification_csv(), model=model))
    prepare_job(tmp_path / "job", canonical_bytes(manifest), {"train": classification_csv()})
    executor = LocalExecutor(1)

    async def scenario() -> ChildResult:
        job = asyncio.ensure_future(executor.run(tmp_path / "job", manifest.limits))
        await wait_until(running_jobs, what="the job's child started")
        executor.close()
        return await job

    result = asyncio.run(scenario())
    assert not result.ok and result.exit_code == -signal.SIGKILL
    assert running_jobs() == 0


@pytest.mark.parametrize(
    ("endpoint", "refused"),
    [
        ("http://127.0.0.1:9100", False),
        ("http://10.0.0.5:9100/agent", False),
        ("https://provider.example.com", False),
        ("http://169.254.169.254/latest/meta-data", True),
        ("http://[fe80::1]:80", True),
        ("http://0.0.0.0:80", True),
        ("http://metadata.google.internal", True),
        ("ftp://127.0.0.1", True),
    ],
)
def test_an_oracle_does_not_probe_what_only_it_could_reach(endpoint: str, refused: bool) -> None:
    assert (refused_endpoint(endpoint) is not None) == refused
