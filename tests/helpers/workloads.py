"""Manifests and datasets for workload tests: small, generated, the same every time."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import numpy as np

from cloudchain.blobs.cid import CID

RAW = 0x55


def cid_of(data: bytes) -> str:
    """A CIDv1 (raw) of `data`: what a manifest may name (a blob's CID in the store is
    its UnixFS root; for the tests only the form matters)."""
    return str(CID.for_data(data, RAW, 1))


def classification_csv(rows: int = 240, features: int = 6, seed: int = 0) -> bytes:
    """A CSV of `rows` labelled rows: two blobs of points, labels "a" and "b"."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, rows)
    X = rng.normal(size=(rows, features)) + labels[:, None] * 1.5
    header = ",".join([f"f{i}" for i in range(features)] + ["label"])
    lines = [header] + [
        ",".join(f"{value:.6f}" for value in row) + ("," + "ab"[label])
        for row, label in zip(X, labels, strict=True)
    ]
    return ("\n".join(lines) + "\n").encode()


def regression_csv(rows: int = 200, features: int = 4, seed: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, features))
    y = X @ np.arange(1, features + 1) + rng.normal(scale=0.1, size=rows)
    header = ",".join([f"x{i}" for i in range(features)] + ["y"])
    lines = [header] + [
        ",".join(f"{v:.6f}" for v in [*row, target]) for row, target in zip(X, y, strict=True)
    ]
    return ("\n".join(lines) + "\n").encode()


def limits(**changes: int) -> dict[str, int]:
    base = {"cpu_seconds": 60, "memory_mb": 1024, "deadline_s": 120, "output_bytes": 50_000_000}
    return {**base, **changes}


def train_manifest(
    data: bytes, model: dict[str, Any] | None = None, **changes: Any
) -> dict[str, Any]:
    """A train manifest (as JSON would give it) on the CSV `data`, a random forest by
    default, scored on a quarter held out."""
    manifest = {
        "version": 1,
        "kind": "train",
        "seed": 7,
        "data": {
            "train": {"cid": cid_of(data), "format": "csv", "bytes": len(data), "target": "label"}
        },
        "model": model
        or {
            "library": "sklearn",
            "estimator": "random_forest_classifier",
            "params": {"n_estimators": 20},
        },
        "evaluate": {"metric": "accuracy", "split": "holdout", "holdout_fraction": 0.25},
        "limits": limits(),
    }
    manifest.update(changes)
    return copy.deepcopy(manifest)


MLP = {
    "library": "torch",
    "input_shape": [6],
    "layers": [{"type": "linear", "out": 16}, {"type": "relu"}, {"type": "linear", "out": 2}],
    "loss": "cross_entropy",
    "params": {"epochs": 5, "batch_size": 32, "learning_rate": 0.01},
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
