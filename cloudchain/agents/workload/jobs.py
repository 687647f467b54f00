"""One job, as the child process runs it: read the inputs, fit or apply the model,
score it, and write the outputs.

    train       model.skops (scikit-learn) or model.safetensors (PyTorch), metrics.json
    infer       predictions.npz (array `predictions`), metrics.json
    preprocess  transformed.npz (arrays X, and y if the input had a target),
                pipeline.skops (the fitted steps), metrics.json

metrics.json (canonical JSON) names the manifest's metric and its value on the split
the manifest names, the rows fitted and scored, and the SHA-256 of every other output,
so that an oracle can compare a re-run file by file. Every output is written so that
the same job gives the same bytes (sklearn_runner.dump, torch_runner.dump, write_npz).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cloudchain.agents.workload import sklearn_runner
from cloudchain.agents.workload.datasets import (
    PASSTHROUGH,
    Table,
    holdout_rows,
    load_dataset,
    write_npz,
)
from cloudchain.workload.algorithms import CLUSTER, METRICS
from cloudchain.workload.manifest import (
    HOLDOUT,
    Manifest,
    SklearnModel,
    TorchModel,
    TrainedModel,
    canonical_json,
)

METRICS_FILE = "metrics.json"
MODEL_FILES = {"sklearn": "model.skops", "torch": "model.safetensors"}

Log = Callable[[str], None]


def run_job(
    manifest: Manifest,
    inputs: Mapping[str, Path],
    out: Path,
    log: Log,
    noise_seed: int | None = None,
) -> dict[str, Any]:
    """Run `manifest` on `inputs` (by dataset name, and "model" for infer), writing the
    outputs into `out`; the metrics written."""
    if manifest.kind == "train":
        metrics = _train(manifest, inputs, out, log, noise_seed)
    elif manifest.kind == "infer":
        metrics = _infer(manifest, inputs, out, log)
    else:
        metrics = _preprocess(manifest, inputs, out, log)
    metrics["kind"] = manifest.kind
    metrics["outputs"] = {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(out.iterdir())
        if path.name != METRICS_FILE
    }
    (out / METRICS_FILE).write_bytes(canonical_json(metrics))
    log(f"wrote {', '.join(sorted(metrics['outputs']))} and {METRICS_FILE}")
    return metrics


def _read(manifest: Manifest, inputs: Mapping[str, Path], name: str, problem: str | None) -> Table:
    table = load_dataset(inputs[name], manifest.data[name], name, problem)
    return table


def _train(
    manifest: Manifest, inputs: Mapping[str, Path], out: Path, log: Log, noise_seed: int | None
) -> dict[str, Any]:
    model, evaluate = manifest.model, manifest.evaluate
    assert isinstance(model, SklearnModel | TorchModel) and evaluate is not None
    problem = None if model.problem == CLUSTER else model.problem
    train = _read(manifest, inputs, "train", problem)
    if evaluate.split == HOLDOUT:
        assert evaluate.holdout_fraction is not None
        fit_rows, held_rows = holdout_rows(train.rows, evaluate.holdout_fraction, manifest.seed)
        fit, scored = train.take(fit_rows), train.take(held_rows)
    else:
        fit, scored = train, _read(manifest, inputs, evaluate.split, problem)
    log(f"fitting {_describe(model)} on {fit.rows} rows of {fit.X.shape[1:]} features")
    if isinstance(model, SklearnModel):
        pipeline = sklearn_runner.build_pipeline(model, manifest.steps, manifest.seed)
        if problem is None:
            pipeline.fit(fit.X)
        else:
            pipeline.fit(fit.X, fit.y)
        value = sklearn_runner.score(evaluate.metric, pipeline, scored.X, scored.y)
        sklearn_runner.dump(pipeline, out / MODEL_FILES["sklearn"])
    else:
        from cloudchain.agents.workload import torch_runner

        assert fit.y is not None
        network = torch_runner.train(
            model, fit.X, fit.y, manifest.seed, log, manifest.dp, noise_seed
        )
        value = _score_predictions(evaluate.metric, scored, torch_runner.predict(network, scored.X))
        torch_runner.dump(network, out / MODEL_FILES["torch"])
    log(f"{evaluate.metric} on {evaluate.split} ({scored.rows} rows): {value:.6f}")
    metrics = _metrics(evaluate.metric, value, evaluate.split, fit.rows, scored.rows)
    if manifest.dp is not None and isinstance(model, TorchModel):
        metrics["privacy"] = {"epsilon": network.epsilon, "delta": manifest.dp.delta}
    return metrics


def _describe(model: SklearnModel | TorchModel) -> str:
    if isinstance(model, SklearnModel):
        return model.estimator
    return f"a network of {len(model.layers)} layers"


def _score_predictions(metric: str, table: Table, predicted: np.ndarray) -> float:
    from sklearn import metrics

    assert table.y is not None
    y = table.y.astype(np.str_) if METRICS[metric] == "classify" else table.y
    return sklearn_runner.score_predictions(metric, y, predicted, metrics)


def _metrics(metric: str, value: float, split: str, fitted: int, scored: int) -> dict[str, Any]:
    return {
        "metric": metric,
        "value": value,
        "split": split,
        "rows": {"fitted": fitted, "scored": scored},
    }


def _infer(manifest: Manifest, inputs: Mapping[str, Path], out: Path, log: Log) -> dict[str, Any]:
    model, evaluate = manifest.model, manifest.evaluate
    assert isinstance(model, TrainedModel)
    size = inputs["model"].stat().st_size
    if size != model.bytes:
        raise sklearn_runner.ModelFileError(f"model: {size} bytes, the manifest says {model.bytes}")
    if model.library == "sklearn":
        pipeline = sklearn_runner.load(inputs["model"].read_bytes())
        predict = pipeline.predict
    else:
        from cloudchain.agents.workload import torch_runner

        network = torch_runner.load(inputs["model"])
        pipeline = None

        def predict(X: np.ndarray) -> np.ndarray:
            return torch_runner.predict(network, X)

    scoring = evaluate is not None and evaluate.split == "input"
    problem = METRICS[evaluate.metric] if evaluate is not None else None
    table = _read(manifest, inputs, "input", problem if scoring else None)
    predictions = predict(table.X)
    log(f"predicted {len(predictions)} rows of input")
    write_npz(out / "predictions.npz", predictions=predictions)
    if evaluate is None:
        return {"rows": {"predicted": table.rows}}
    scored = table if scoring else _read(manifest, inputs, evaluate.split, problem)
    if evaluate.metric == "inertia":
        if pipeline is None:
            raise sklearn_runner.ModelFileError("inertia scores a clustering model, not a network")
        value = sklearn_runner.score("inertia", pipeline, scored.X, None)
    else:
        value = _score_predictions(evaluate.metric, scored, predict(scored.X))
    log(f"{evaluate.metric} on {evaluate.split} ({scored.rows} rows): {value:.6f}")
    metrics = _metrics(evaluate.metric, value, evaluate.split, 0, scored.rows)
    metrics["rows"]["predicted"] = table.rows
    return metrics


def _preprocess(
    manifest: Manifest, inputs: Mapping[str, Path], out: Path, log: Log
) -> dict[str, Any]:
    dataset = manifest.data["input"]
    table = _read(manifest, inputs, "input", PASSTHROUGH if dataset.target else None)
    pipeline = sklearn_runner.build_pipeline(None, manifest.steps, manifest.seed)
    transformed = pipeline.fit_transform(table.X)
    arrays = {"X": np.asarray(transformed, dtype=np.float64)}
    if table.y is not None:
        arrays["y"] = table.y
    write_npz(out / "transformed.npz", **arrays)
    sklearn_runner.dump(pipeline, out / "pipeline.skops")
    log(f"transformed {table.rows} rows into {arrays['X'].shape[1]} columns")
    return {"rows": {"fitted": table.rows, "columns": int(arrays["X"].shape[1])}}
