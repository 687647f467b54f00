"""Jobs run in a real child process under their limits: outputs, their bytes, the
metric they report, and each way a job can end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io

from cloudchain.agents.workload import sklearn_runner, torch_runner
from cloudchain.agents.workload.datasets import holdout_rows, load_dataset
from cloudchain.agents.workload.sandbox import (
    CPU_LIMIT,
    DEADLINE,
    MEMORY_LIMIT,
    REFUSED,
    ChildResult,
    prepare_job,
    run_child,
)
from cloudchain.workload.algorithms import ESTIMATORS, STEPS
from cloudchain.workload.manifest import (
    ManifestError,
    SklearnModel,
    Step,
    canonical_bytes,
    parse_manifest,
)
from cloudchain.workload.metering import compute_units
from tests.helpers.workloads import MLP, cid_of, classification_csv, limits, train_manifest

DATA = classification_csv()


def run(
    tmp_path: Path,
    name: str,
    manifest: dict[str, Any],
    inputs: dict[str, bytes],
    noise_seed: int | None = None,
) -> ChildResult:
    parsed = parse_manifest(manifest)
    prepare_job(tmp_path / name, canonical_bytes(parsed), inputs, noise_seed)
    return run_child(tmp_path / name, parsed.limits)


def out(tmp_path: Path, name: str, file: str) -> bytes:
    return (tmp_path / name / "out" / file).read_bytes()


def holdout_accuracy(predict: Any) -> float:
    manifest = parse_manifest(train_manifest(DATA))
    table = _table(manifest)
    _, held = holdout_rows(table.rows, 0.25, manifest.seed)
    part = table.take(held)
    return float(np.mean(predict(part.X) == part.y))


def _table(manifest: Any) -> Any:
    import tempfile

    with tempfile.NamedTemporaryFile() as file:
        file.write(DATA)
        file.flush()
        return load_dataset(Path(file.name), manifest.data["train"], "train", "classify")


def test_a_forest_trains_in_a_child_the_same_bytes_twice_and_its_model_reproduces_the_metric(
    tmp_path: Path,
) -> None:
    manifest = train_manifest(DATA)
    first = run(tmp_path, "a", manifest, {"train": DATA})
    second = run(tmp_path, "b", manifest, {"train": DATA})
    assert first.ok and second.ok, (first, (tmp_path / "a" / "job.log").read_text())
    assert first.cpu_ms > 0 and compute_units(first.cpu_ms, 100) >= 1
    assert out(tmp_path, "a", "model.skops") == out(tmp_path, "b", "model.skops")
    assert out(tmp_path, "a", "metrics.json") == out(tmp_path, "b", "metrics.json")
    metrics = json.loads(out(tmp_path, "a", "metrics.json"))
    assert metrics["metric"] == "accuracy" and metrics["split"] == "holdout"
    assert metrics["rows"] == {"fitted": 180, "scored": 60}
    model = sklearn_runner.load(out(tmp_path, "a", "model.skops"))
    assert holdout_accuracy(model.predict) == metrics["value"]
    assert metrics["value"] > 0.8  # two blobs 1.5 apart in 6 dimensions: easy
    assert "accuracy on holdout" in (tmp_path / "a" / "job.log").read_text()


def test_a_network_trains_the_same_weights_twice_and_reloads_from_its_spec(tmp_path: Path) -> None:
    manifest = train_manifest(DATA, model=json.loads(json.dumps(MLP)))
    first = run(tmp_path, "a", manifest, {"train": DATA})
    second = run(tmp_path, "b", manifest, {"train": DATA})
    assert first.ok and second.ok, (tmp_path / "a" / "job.log").read_text()
    weights = out(tmp_path, "a", "model.safetensors")
    assert weights == out(tmp_path, "b", "model.safetensors")
    network = torch_runner.load(tmp_path / "a" / "out" / "model.safetensors")
    assert network.classes == ("a", "b")
    metrics = json.loads(out(tmp_path, "a", "metrics.json"))
    assert holdout_accuracy(lambda X: torch_runner.predict(network, X)) == metrics["value"]
    assert "epoch 5/5" in (tmp_path / "a" / "job.log").read_text()


def test_infer_runs_a_trained_model_and_preprocess_transforms(tmp_path: Path) -> None:
    trained = run(tmp_path, "train", train_manifest(DATA), {"train": DATA})
    assert trained.ok
    model = out(tmp_path, "train", "model.skops")
    dataset = {"cid": cid_of(DATA), "format": "csv", "bytes": len(DATA), "target": "label"}
    infer = {
        "version": 1,
        "kind": "infer",
        "seed": 0,
        "data": {"input": dataset},
        "model": {"library": "sklearn", "cid": cid_of(model), "bytes": len(model)},
        "evaluate": {"metric": "f1", "split": "input"},
        "limits": limits(),
    }
    result = run(tmp_path, "infer", infer, {"input": DATA, "model": model})
    assert result.ok, (tmp_path / "infer" / "job.log").read_text()
    with np.load(tmp_path / "infer" / "out" / "predictions.npz", allow_pickle=False) as saved:
        assert saved["predictions"].shape == (240,)
        assert set(saved["predictions"]) <= {"a", "b"}
    assert json.loads(out(tmp_path, "infer", "metrics.json"))["value"] > 0.8
    preprocess = {
        "version": 1,
        "kind": "preprocess",
        "seed": 0,
        "data": {"input": dataset},
        "steps": [{"step": "standardise"}, {"step": "pca", "params": {"n_components": 3}}],
        "limits": limits(),
    }
    result = run(tmp_path, "pre", preprocess, {"input": DATA})
    assert result.ok, (tmp_path / "pre" / "job.log").read_text()
    with np.load(tmp_path / "pre" / "out" / "transformed.npz", allow_pickle=False) as saved:
        assert saved["X"].shape == (240, 3)
        assert list(saved["y"][:3]) == [
            line.split(",")[-1] for line in DATA.decode().split("\n")[1:4]
        ]
    assert sklearn_runner.load(out(tmp_path, "pre", "pipeline.skops")).transform(
        np.zeros((1, 6))
    ).shape == (1, 3)


def test_a_job_past_its_cpu_seconds_is_stopped_and_says_so(tmp_path: Path) -> None:
    big = classification_csv(rows=3000, features=20)
    manifest = train_manifest(
        big,
        model={
            "library": "sklearn",
            "estimator": "gradient_boosting_classifier",
            "params": {"n_estimators": 1000, "max_depth": 8},
        },
        limits=limits(cpu_seconds=2),
    )
    result = run(tmp_path, "cpu", manifest, {"train": big})
    assert result.status == CPU_LIMIT, result
    assert result.cpu_ms >= 2000
    assert "2 CPU seconds" in result.message
    assert not (tmp_path / "cpu" / "out" / "metrics.json").exists()


def test_a_job_past_its_deadline_or_its_memory_is_killed(tmp_path: Path) -> None:
    big = classification_csv(rows=3000, features=20)
    slow = {
        "library": "sklearn",
        "estimator": "gradient_boosting_classifier",
        "params": {"n_estimators": 1000, "max_depth": 8},
    }
    result = run(
        tmp_path,
        "late",
        train_manifest(big, model=slow, limits=limits(deadline_s=1)),
        {"train": big},
    )
    assert result.status == DEADLINE, result
    assert 1000 <= result.wall_ms < 10_000
    # PyTorch alone is more resident memory than 64 MiB
    hungry = train_manifest(DATA, model=json.loads(json.dumps(MLP)), limits=limits(memory_mb=64))
    result = run(tmp_path, "memory", hungry, {"train": DATA})
    assert result.status == MEMORY_LIMIT, result
    assert "64 MiB" in result.message


def test_inputs_that_do_not_fit_the_manifest_are_refused_with_the_reason(tmp_path: Path) -> None:
    result = run(tmp_path, "size", train_manifest(DATA), {"train": DATA + b"\n"})
    assert result.status == REFUSED
    assert f"{len(DATA) + 1} bytes, the manifest says {len(DATA)}" in result.message
    bad = DATA.replace(b"\n", b"\nnot,a,number,at,all,here,a\n", 1)
    result = run(tmp_path, "cells", train_manifest(bad), {"train": bad})
    assert result.status == REFUSED and "line 2, f0: 'not' is not a number" in result.message


def test_a_model_file_with_a_type_outside_the_allow_list_is_refused(tmp_path: Path) -> None:
    from sklearn.svm import SVC

    X, y = np.random.default_rng(0).normal(size=(20, 2)), np.arange(20) % 2
    foreign = skops.io.dumps(SVC().fit(X, y))
    with pytest.raises(sklearn_runner.ModelFileError, match=r"sklearn\.svm"):
        sklearn_runner.load(foreign)
    with pytest.raises(sklearn_runner.ModelFileError, match="not a skops model file"):
        sklearn_runner.load(b"PK\x03\x04 not really a zip")
    dataset = {"cid": cid_of(DATA), "format": "csv", "bytes": len(DATA)}
    infer = {
        "version": 1,
        "kind": "infer",
        "seed": 0,
        "data": {"input": dataset},
        "model": {"library": "sklearn", "cid": cid_of(foreign), "bytes": len(foreign)},
        "limits": limits(),
    }
    result = run(tmp_path, "foreign", infer, {"input": DATA, "model": foreign})
    assert result.status == REFUSED and "outside the allow-list" in result.message


def test_every_type_an_allowed_model_holds_is_trusted_and_its_bytes_are_canonical() -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(90, 6))
    targets = {
        "classify": [np.arange(90) % 2, np.arange(90) % 3, (np.arange(90) % 3).astype(str)],
        "regress": [X[:, 0] * 2],
        "cluster": [None],
    }
    all_steps = [
        Step(name, {k: p.default for k, p in table.items()}) for name, table in STEPS.items()
    ]
    for name, estimator in ESTIMATORS.items():
        for y in targets[estimator.problem]:
            model = SklearnModel(name, {k: p.default for k, p in estimator.params.items()})
            fitted = sklearn_runner.build_pipeline(model, all_steps, 5).fit(X, y)
            data = sklearn_runner.canonical_skops(skops.io.dumps(fitted))
            again = sklearn_runner.canonical_skops(
                skops.io.dumps(sklearn_runner.build_pipeline(model, all_steps, 5).fit(X, y))
            )
            assert data == again, name
            loaded = sklearn_runner.load(data)  # raises on an untrusted type
            if y is not None:
                assert (loaded.predict(X) == fitted.predict(X)).all(), name


def test_metering_is_a_cpu_second_a_unit_rounded_up_and_never_more_than_bought() -> None:
    assert compute_units(0, 10) == 1
    assert compute_units(1, 10) == 1
    assert compute_units(1000, 10) == 1
    assert compute_units(1001, 10) == 2
    assert compute_units(9_500, 10) == 10
    assert compute_units(60_000, 10) == 10
    with pytest.raises(ValueError):
        compute_units(-1, 10)


def test_a_network_that_may_use_a_gpu_has_no_address_space_limit_only_its_memory_watch(
    tmp_path: Path,
) -> None:
    from cloudchain.agents.workload.child import may_use_gpu

    gpu = {**json.loads(json.dumps(MLP)), "device": "gpu_if_available"}
    evaluate = {
        "metric": "accuracy",
        "split": "holdout",
        "holdout_fraction": 0.25,
        "tolerance": 0.05,
    }
    manifest = train_manifest(DATA, model=gpu, evaluate=evaluate)
    assert may_use_gpu(canonical_bytes(parse_manifest(manifest)))
    assert not may_use_gpu(canonical_bytes(parse_manifest(train_manifest(DATA))))
    # On this CPU-only machine it runs on the CPU, to the same metric as a CPU manifest.
    result = run(tmp_path, "gpu", manifest, {"train": DATA})
    assert result.ok, (tmp_path / "gpu" / "job.log").read_text()
    cpu = run(
        tmp_path, "cpu", train_manifest(DATA, model=json.loads(json.dumps(MLP))), {"train": DATA}
    )
    assert (
        json.loads(out(tmp_path, "gpu", "metrics.json"))["value"]
        == json.loads(out(tmp_path, "cpu", "metrics.json"))["value"]
        and cpu.ok
    )


# 180 rows fitted (DATA less its holdout)
DP = {
    "clip_norm": 1.0,
    "noise_multiplier": 1.1,
    "delta": 1e-5,
    "target_epsilon": 50.0,
    "rows": 180,
}


def test_dp_sgd_trains_the_same_weights_twice_and_reports_the_epsilon_spent(
    tmp_path: Path,
) -> None:
    from cloudchain.privacy.accountant import DPSGD, epsilon_spent

    manifest = train_manifest(DATA, model=json.loads(json.dumps(MLP)), dp=DP)
    first = run(tmp_path, "a", manifest, {"train": DATA})
    second = run(tmp_path, "b", manifest, {"train": DATA})
    assert first.ok and second.ok, (tmp_path / "a" / "job.log").read_text()
    assert out(tmp_path, "a", "model.safetensors") == out(tmp_path, "b", "model.safetensors")
    metrics = json.loads(out(tmp_path, "a", "metrics.json"))
    # 180 rows fitted in batches of 32: q = 1/6, 6 steps an epoch, 5 epochs
    expected = epsilon_spent(DPSGD(1.1, 1 / 6, 30, 1e-5))
    assert metrics["privacy"] == {"epsilon": expected, "delta": 1e-5}
    assert "Opacus:" in (tmp_path / "a" / "job.log").read_text()


def test_dp_noise_comes_from_the_data_key_and_not_from_the_manifest(tmp_path: Path) -> None:
    from cloudchain.privacy.sealed import dp_noise_seed, new_data_key

    manifest = train_manifest(DATA, model=json.loads(json.dumps(MLP)), dp=DP)
    key, other = new_data_key(), new_data_key()
    seed = dp_noise_seed(key, "bafkmanifest")
    assert seed == dp_noise_seed(key, "bafkmanifest") != dp_noise_seed(key, "bafkother")
    assert 0 <= seed < 2**63
    runs = {
        "key": run(tmp_path, "key", manifest, {"train": DATA}, seed),
        "again": run(tmp_path, "again", manifest, {"train": DATA}, seed),
        "other": run(tmp_path, "other", manifest, {"train": DATA}, dp_noise_seed(other, "x")),
        "public": run(tmp_path, "public", manifest, {"train": DATA}),
    }
    assert all(result.ok for result in runs.values())
    weights = {name: out(tmp_path, name, "model.safetensors") for name in runs}
    # one who knows the manifest (and so its seed) cannot rebuild the noise of a keyed run
    assert weights["key"] == weights["again"]
    assert len({weights["key"], weights["other"], weights["public"]}) == 3
    assert "protects nothing" in (tmp_path / "public" / "job.log").read_text()
    assert "protects nothing" not in (tmp_path / "key" / "job.log").read_text()


def test_a_dp_job_on_other_rows_than_its_manifest_says_is_refused(tmp_path: Path) -> None:
    manifest = train_manifest(DATA, model=json.loads(json.dumps(MLP)), dp={**DP, "rows": 179})
    result = run(tmp_path, "rows", manifest, {"train": DATA})
    assert result.status == REFUSED and "dp.rows is 179, the job trains on 180" in result.message


def test_a_dp_job_over_its_target_is_refused_before_any_step_naming_both_numbers(
    tmp_path: Path,
) -> None:
    manifest = train_manifest(
        DATA, model=json.loads(json.dumps(MLP)), dp={**DP, "target_epsilon": 0.5}
    )
    result = run(tmp_path, "over", manifest, {"train": DATA})
    assert result.status == REFUSED
    assert "target ε = 0.5" in result.message and "would spend ε = " in result.message
    assert "epoch 1/" not in (tmp_path / "over" / "job.log").read_text()


def test_dp_goes_only_with_a_network_and_every_field_is_checked() -> None:
    with pytest.raises(ManifestError, match=r"manifest\.dp: DP-SGD trains a PyTorch network"):
        parse_manifest(train_manifest(DATA, dp=DP))
    for field, bad in (("clip_norm", 0), ("noise_multiplier", -1), ("delta", 0.5)):
        with pytest.raises(ManifestError, match=rf"manifest\.dp\.{field}"):
            parse_manifest(
                train_manifest(DATA, model=json.loads(json.dumps(MLP)), dp={**DP, field: bad})
            )


def _dp_step(inputs: Any, dp: dict[str, float], features: int) -> Any:
    """One DP-SGD step, as the trainer sets it up, of a bias-free linear model from zero
    weights with lr 1 on `inputs` (all of them one batch): the weights' change."""
    import torch

    from cloudchain.agents.workload.torch_runner import make_private
    from cloudchain.workload.manifest import DPConfig

    network = torch.nn.Linear(features, 1, bias=False)
    torch.nn.init.zeros_(network.weight)
    optimiser = torch.optim.SGD(network.parameters(), lr=1.0)
    data = torch.utils.data.TensorDataset(torch.zeros(8, features), torch.zeros(8, 1))
    loader = torch.utils.data.DataLoader(data, batch_size=4)  # expected batch size 4
    _, private, optimiser, _ = make_private(network, optimiser, loader, DPConfig(**dp), seed=3)
    optimiser.zero_grad()
    private(inputs).sum().backward()
    optimiser.step()
    return -network.weight.detach().flatten()


def test_one_examples_influence_on_a_dp_step_is_bounded_by_the_clip_norm() -> None:
    import torch

    dp = {**DP, "noise_multiplier": 1e-9, "clip_norm": 0.5}
    ordinary = torch.ones(3, 4)
    outlier = torch.full((1, 4), 1e6)  # its raw gradient's norm is 2e6
    with_it = _dp_step(torch.cat([ordinary, outlier]), dp, 4)
    without = _dp_step(ordinary, dp, 4)
    influence = float(torch.linalg.vector_norm(with_it - without))
    # its clipped gradient, over the expected batch size (4): at most C / 4
    assert influence == pytest.approx(0.5 / 4, rel=1e-4)


def test_the_noise_a_dp_step_adds_has_the_stated_scale() -> None:
    import torch

    dp = {**DP, "noise_multiplier": 2.0, "clip_norm": 0.5}
    features = 20_000
    update = _dp_step(torch.zeros(4, features), dp, features)  # no gradient: only noise
    # N(0, sigma^2 C^2) on the sum, over the expected batch size 4: std 2.0 x 0.5 / 4
    assert float(update.std()) == pytest.approx(0.25, rel=0.03)
    assert abs(float(update.mean())) < 0.01
