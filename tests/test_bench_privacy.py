"""`cloudchain bench privacy` on a small configuration: every output written, and what it
reports consistent with what it measured (the figures themselves are for
docs/BENCHMARKS.md, not for a unit test)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from cloudchain.bench.privacy import PLAIN, PrivacyBenchConfig, calibrate, run_privacy_bench
from cloudchain.bench.privacy_report import format_table, write_outputs
from cloudchain.cli.main import main
from cloudchain.privacy.accountant import DPSGD, epsilon_spent


def test_a_small_privacy_bench_writes_every_output_and_spends_within_its_targets(
    tmp_path: Path,
) -> None:
    config = PrivacyBenchConfig(epsilons=(2.0,), runs=1, epochs=1, seal_mb=2, rss_mb=16)
    result = run_privacy_bench(config)
    assert {(t.stage, t.name) for t in result.trainings} == {
        ("train", PLAIN),
        ("train", "dp eps=2"),
        ("job", PLAIN),
        ("job", "dp eps=2"),
    }
    for training in result.trainings:
        assert training.seconds > 0 and 0 <= training.accuracy <= 1
        if training.name != PLAIN:
            # the accountant's ε of the run, within the target, and close under it
            assert training.epsilon is not None and 1.9 < training.epsilon <= 2.0
    assert result.overhead("train", PLAIN) == 1.0
    assert result.memory is not None and result.memory.roundtrip_ok
    assert 0 < result.memory.peak_rss_mib < 100
    assert {s.operation for s in result.seals} == {"seal", "open", "sha256"}
    paths = write_outputs(result, tmp_path / "out")
    assert [p.name for p in paths] == ["privacy.json", "privacy.csv", "privacy.png"]
    report = json.loads(paths[0].read_text())
    assert [row["name"] for row in report["summary"]] == [PLAIN, "dp eps=2"] * 2
    rows = list(csv.DictReader(paths[1].open()))
    assert len(rows) == len(result.trainings)
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = format_table(result)
    assert "dp eps=2" in table and "the paper's Fig. 6" in table and "target < 100 MiB" in table


def test_calibration_finds_the_least_noise_within_the_target() -> None:
    sigma = calibrate(1.0, 0.05, 200, 1e-5)
    assert epsilon_spent(DPSGD(sigma, 0.05, 200, 1e-5)) <= 1.0
    assert epsilon_spent(DPSGD(sigma / 1.002, 0.05, 200, 1e-5)) > 1.0


def test_bad_options_exit_2_naming_them(capsys) -> None:
    assert main(["bench", "privacy", "--epsilons", "1,x"]) == 2
    assert "--epsilons" in capsys.readouterr().err
    assert main(["bench", "privacy", "--runs", "0"]) == 2
    assert "--runs 0" in capsys.readouterr().err
