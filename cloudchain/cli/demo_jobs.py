"""The demo's workloads: real jobs on data scikit-learn ships (nothing is downloaded).

    breast cancer (569 x 30, two classes)   logistic regression on standardised features;
                                            then inference with the model it returned
    wine (178 x 13, three classes)          gradient boosting; a standardise + PCA
                                            preprocessing job
    digits (1797 x 64, ten classes)         a PyTorch MLP, and a random forest

Each job is a manifest (cloudchain/workload/manifest.py) and the CSV files it names; the
requester's client fills in their CIDs when it uploads them. An inference job names the
training job whose model it runs: the demo submits it once that one has settled.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LIMITS = {"cpu_seconds": 60, "memory_mb": 1536, "deadline_s": 120, "output_bytes": 50_000_000}
HOLDOUT = {"metric": "accuracy", "split": "holdout", "holdout_fraction": 0.25}


@dataclass(frozen=True)
class DemoJob:
    name: str
    manifest: dict[str, Any]
    data: dict[str, Path]
    model_of: str | None = None  # infer: the job whose model.skops it runs
    units: int = 10
    notes: dict[str, str] = field(default_factory=dict)


def write_csv(path: Path, loader: str) -> Path:
    """One of sklearn.datasets' bundled sets as a CSV with a `label` column."""
    from sklearn import datasets

    bunch = getattr(datasets, loader)()
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([f"f{i}" for i in range(bunch.data.shape[1])] + ["label"])
        for row, label in zip(bunch.data, bunch.target, strict=True):
            writer.writerow([repr(float(v)) for v in row] + [f"c{int(label)}"])
    return path


def _dataset(target: str | None = "label") -> dict[str, Any]:
    # cid and bytes are placeholders: the client fills them in from the uploaded file
    entry: dict[str, Any] = {"cid": "", "format": "csv", "bytes": 0}
    if target:
        entry["target"] = target
    return entry


def _train(seed: int, model: dict[str, Any], steps: list[dict[str, Any]] | None = None) -> dict:
    manifest: dict[str, Any] = {
        "version": 1,
        "kind": "train",
        "seed": seed,
        "data": {"train": _dataset()},
        "model": model,
        "evaluate": HOLDOUT,
        "limits": LIMITS,
    }
    if steps:
        manifest["steps"] = steps
    return manifest


def demo_jobs(directory: Path, seed: int) -> list[DemoJob]:
    directory.mkdir(parents=True, exist_ok=True)
    cancer = write_csv(directory / "breast_cancer.csv", "load_breast_cancer")
    wine = write_csv(directory / "wine.csv", "load_wine")
    digits = write_csv(directory / "digits.csv", "load_digits")
    sklearn = "sklearn"
    return [
        DemoJob(
            "cancer/logistic",
            _train(
                seed,
                {"library": sklearn, "estimator": "logistic_regression", "params": {}},
                [{"step": "standardise"}],
            ),
            {"train": cancer},
        ),
        DemoJob(
            "wine/boosting",
            _train(
                seed,
                {
                    "library": sklearn,
                    "estimator": "gradient_boosting_classifier",
                    "params": {"n_estimators": 50},
                },
            ),
            {"train": wine},
        ),
        DemoJob(
            "digits/mlp",
            _train(
                seed,
                {
                    "library": "torch",
                    "input_shape": [64],
                    "layers": [
                        {"type": "linear", "out": 64},
                        {"type": "relu"},
                        {"type": "linear", "out": 10},
                    ],
                    "loss": "cross_entropy",
                    "params": {"epochs": 8, "batch_size": 64, "learning_rate": 0.005},
                },
            ),
            {"train": digits},
        ),
        DemoJob(
            "digits/forest",
            _train(
                seed,
                {
                    "library": sklearn,
                    "estimator": "random_forest_classifier",
                    "params": {"n_estimators": 60},
                },
            ),
            {"train": digits},
        ),
        DemoJob(
            "wine/pca",
            {
                "version": 1,
                "kind": "preprocess",
                "seed": seed,
                "data": {"input": _dataset()},
                "steps": [{"step": "standardise"}, {"step": "pca", "params": {"n_components": 4}}],
                "limits": LIMITS,
            },
            {"input": wine},
        ),
        DemoJob(
            "cancer/infer",
            {
                "version": 1,
                "kind": "infer",
                "seed": seed,
                "data": {"input": _dataset()},
                "model": {"library": sklearn, "cid": "", "bytes": 0},
                "evaluate": {"metric": "f1", "split": "input"},
                "limits": LIMITS,
            },
            {"input": cancer},
            model_of="cancer/logistic",
        ),
    ]
