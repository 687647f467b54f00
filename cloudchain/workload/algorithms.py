"""The allow-list: every algorithm, hyperparameter, pipeline step, metric and network layer
a workload manifest may name, as data.

A manifest is not code: it picks from these tables, and its hyperparameters are checked
against each one's type and range before anything runs. The runner (sklearn_runner.py,
torch_runner.py) builds exactly what is named here and nothing else; whatever a table
does not list, such as `n_jobs` or a custom kernel, a manifest cannot ask for.

This module imports neither scikit-learn nor PyTorch: the requester's client validates a
manifest with it before anything is uploaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# What a model predicts, and so which metrics and losses make sense for it.
CLASSIFY, REGRESS, CLUSTER = "classify", "regress", "cluster"


@dataclass(frozen=True)
class Param:
    """One hyperparameter: its type ("int", "float", "bool" or "choice"), range or
    choices, and the value used when the manifest does not give one. `nullable`: None
    is allowed too (max_depth: no limit)."""

    type: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    default: Any = None
    nullable: bool = False

    def check(self, value: Any) -> str | None:
        """Why `value` is not a valid value of this parameter, or None if it is."""
        if value is None:
            return None if self.nullable else "may not be null"
        if self.type == "bool":
            return None if isinstance(value, bool) else f"expected true or false, got {value!r}"
        if self.type == "choice":
            if value in self.choices:
                return None
            return f"expected one of {', '.join(self.choices)}, got {value!r}"
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"expected a number, got {value!r}"
        if self.type == "int" and not isinstance(value, int):
            return f"expected an integer, got {value!r}"
        if self.low is not None and value < self.low:
            return f"{value!r} is below the minimum {self.low:g}"
        if self.high is not None and value > self.high:
            return f"{value!r} is above the maximum {self.high:g}"
        return None


def _int(low: int, high: int, default: int | None, nullable: bool = False) -> Param:
    return Param("int", low, high, default=default, nullable=nullable)


def _float(low: float, high: float, default: float) -> Param:
    return Param("float", low, high, default=default)


def _choice(default: str, *choices: str) -> Param:
    return Param("choice", choices=(default, *choices), default=default)


_BOOL_TRUE = Param("bool", default=True)


@dataclass(frozen=True)
class Estimator:
    """A scikit-learn estimator a manifest may train: what it predicts and its
    hyperparameters. `random_state`: it takes the manifest's seed."""

    problem: str
    params: Mapping[str, Param]
    random_state: bool = True


ESTIMATORS: Mapping[str, Estimator] = {
    "logistic_regression": Estimator(
        CLASSIFY,
        {
            "C": _float(1e-6, 1e6, 1.0),
            "max_iter": _int(1, 10_000, 200),
            "fit_intercept": _BOOL_TRUE,
        },
    ),
    "random_forest_classifier": Estimator(
        CLASSIFY,
        {
            "n_estimators": _int(1, 1_000, 100),
            "max_depth": _int(1, 100, None, nullable=True),
            "min_samples_split": _int(2, 10_000, 2),
            "min_samples_leaf": _int(1, 10_000, 1),
            "criterion": _choice("gini", "entropy", "log_loss"),
        },
    ),
    "random_forest_regressor": Estimator(
        REGRESS,
        {
            "n_estimators": _int(1, 1_000, 100),
            "max_depth": _int(1, 100, None, nullable=True),
            "min_samples_split": _int(2, 10_000, 2),
            "min_samples_leaf": _int(1, 10_000, 1),
        },
    ),
    "gradient_boosting_classifier": Estimator(
        CLASSIFY,
        {
            "n_estimators": _int(1, 1_000, 100),
            "learning_rate": _float(1e-4, 10.0, 0.1),
            "max_depth": _int(1, 32, 3),
            "subsample": _float(0.01, 1.0, 1.0),
        },
    ),
    "gradient_boosting_regressor": Estimator(
        REGRESS,
        {
            "n_estimators": _int(1, 1_000, 100),
            "learning_rate": _float(1e-4, 10.0, 0.1),
            "max_depth": _int(1, 32, 3),
            "subsample": _float(0.01, 1.0, 1.0),
        },
    ),
    "linear_regression": Estimator(REGRESS, {"fit_intercept": _BOOL_TRUE}, random_state=False),
    "kmeans": Estimator(
        CLUSTER,
        {
            "n_clusters": _int(1, 1_000, 8),
            "n_init": _int(1, 50, 3),
            "max_iter": _int(1, 10_000, 300),
        },
    ),
}

# Pipeline steps, applied in the order the manifest lists them, before the estimator
# (train) or as the whole job (preprocess).
STEPS: Mapping[str, Mapping[str, Param]] = {
    "impute": {"strategy": _choice("mean", "median", "most_frequent")},
    "standardise": {"with_mean": _BOOL_TRUE, "with_std": _BOOL_TRUE},
    "pca": {"n_components": _int(1, 10_000, 2)},
}

# Metrics by what the model predicts. For every one but rmse and mae, higher is better.
METRICS: Mapping[str, str] = {
    "accuracy": CLASSIFY,
    "f1": CLASSIFY,  # macro-averaged over the classes
    "rmse": REGRESS,
    "mae": REGRESS,
    "r2": REGRESS,
    "inertia": CLUSTER,  # on the evaluated split, lower is better
}

# --- PyTorch networks, as layer specs ------------------------------------------------------

# Each layer type and its own parameters (besides "type"): all integers but dropout's p.
LAYERS: Mapping[str, Mapping[str, Param]] = {
    "linear": {"out": _int(1, 65_536, None)},
    "conv2d": {
        "out": _int(1, 4_096, None),
        "kernel": _int(1, 31, 3),
        "stride": _int(1, 31, 1),
        "padding": _int(0, 31, 0),
    },
    "maxpool2d": {"kernel": _int(1, 31, 2)},
    "flatten": {},
    "relu": {},
    "tanh": {},
    "sigmoid": {},
    "dropout": {"p": _float(0.0, 0.95, 0.5)},
}
MAX_LAYERS = 64
MAX_PARAMETERS = 50_000_000  # weights in one network: 200 MB of float32

TORCH_PARAMS: Mapping[str, Param] = {
    "optimiser": _choice("adam", "sgd"),
    "learning_rate": _float(1e-7, 10.0, 1e-3),
    "epochs": _int(1, 10_000, 10),
    "batch_size": _int(1, 65_536, 32),
    "momentum": _float(0.0, 0.999, 0.0),  # sgd only
    "weight_decay": _float(0.0, 1.0, 0.0),
}
LOSSES: Mapping[str, str] = {"cross_entropy": CLASSIFY, "mse": REGRESS}
DEVICES = ("cpu", "gpu_if_available")
