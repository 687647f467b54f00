"""scikit-learn workloads: the pipeline a manifest names, built from the allow-list, and
its models stored and read with skops, never pickle.

Every estimator and step gets the manifest's seed where it takes one, and one thread
(n_jobs is not a manifest parameter; the child pins BLAS to one thread too), so that a
fit is the same on every machine of the same kind, and `dump` rewrites skops's archive
into one form (canonical_skops) so that the same model is the same bytes.

`load` refuses a file whose schema names any type outside TRUSTED_TYPES (the classes
the allow-list can build and the numpy types they hold) and plain containers: skops
itself trusts every scikit-learn class, more than our allow-list. What a stranger uploads as a
"model" can therefore only ever become one of those objects.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cloudchain.workload.manifest import SklearnModel, Step

# Every type a model built from the allow-list holds, as skops names them: what
# skops.io.get_untrusted_types reports for each estimator and step of algorithms.py
# (tests/test_workload_runs.py checks that this list covers all of them).
TRUSTED_TYPES = frozenset({
    "numpy.dtype",
    "numpy.float64",
    "numpy.int64",
    "numpy.random.mtrand.RandomState",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn._loss._loss.CyHalfMultinomialLoss",
    "sklearn._loss._loss.CyHalfSquaredError",
    "sklearn._loss.link.Interval",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.MultinomialLogit",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn.cluster._kmeans.KMeans",
    "sklearn.decomposition._pca.PCA",
    "sklearn.dummy.DummyClassifier",
    "sklearn.dummy.DummyRegressor",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.RandomForestRegressor",
    "sklearn.ensemble._gb.GradientBoostingClassifier",
    "sklearn.ensemble._gb.GradientBoostingRegressor",
    "sklearn.impute._base.SimpleImputer",
    "sklearn.linear_model._base.LinearRegression",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._tree.Tree",
})  # fmt: skip
# Containers and values skops stores every model with.
_PLAIN_TYPES = frozenset({
    "builtins.dict",
    "builtins.list",
    "builtins.str",
    "builtins.tuple",
    "builtins.int",
    "builtins.float",
    "builtins.bool",
    "builtins.NoneType",
    "numpy.ndarray",
})  # fmt: skip
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class ModelFileError(ValueError):
    """A model file that is not one the allow-list could have made."""


def build_pipeline(model: SklearnModel | None, steps: Sequence[Step], seed: int) -> Any:
    """The scikit-learn Pipeline of `steps` then `model` (none for a preprocess job)."""
    from sklearn.pipeline import Pipeline

    parts = [(f"{index}_{step.step}", _step(step, seed)) for index, step in enumerate(steps)]
    if model is not None:
        parts.append(("model", _estimator(model, seed)))
    return Pipeline(parts)


def _step(step: Step, seed: int) -> Any:
    from sklearn.decomposition import PCA
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import StandardScaler

    params = dict(step.params)
    if step.step == "impute":
        return SimpleImputer(strategy=params["strategy"])
    if step.step == "standardise":
        return StandardScaler(**params)
    assert step.step == "pca", step
    return PCA(n_components=params["n_components"], svd_solver="full", random_state=seed)


def _estimator(model: SklearnModel, seed: int) -> Any:
    from sklearn import cluster, ensemble, linear_model

    classes = {
        "logistic_regression": linear_model.LogisticRegression,
        "linear_regression": linear_model.LinearRegression,
        "random_forest_classifier": ensemble.RandomForestClassifier,
        "random_forest_regressor": ensemble.RandomForestRegressor,
        "gradient_boosting_classifier": ensemble.GradientBoostingClassifier,
        "gradient_boosting_regressor": ensemble.GradientBoostingRegressor,
        "kmeans": cluster.KMeans,
    }
    params = dict(model.params)
    if model.estimator.startswith("random_forest"):
        params["n_jobs"] = 1
    if model.estimator != "linear_regression":
        params["random_state"] = seed
    return classes[model.estimator](**params)


def dump(pipeline: Any, path: Path) -> None:
    """Store a fitted pipeline with skops, as the same bytes every time."""
    import skops.io

    path.write_bytes(canonical_skops(skops.io.dumps(pipeline)))


def canonical_skops(archive: bytes) -> bytes:
    """A skops archive rewritten so that the same model is the same bytes: skops names
    each object (`__id__`) and each array file by the object's id() in the process that
    saved it, and dates the zip entries with the clock. Here the ids become their order
    of first appearance in the schema, the files are named after them, and every entry
    is dated 1980-01-01, in name order. skops reads the result as it reads its own."""
    with zipfile.ZipFile(io.BytesIO(archive)) as source:
        schema = json.loads(source.read("schema.json"))
        ids: dict[int, int] = {}
        files: dict[str, str] = {}
        _renumber(schema, ids, files)
        entries = {"schema.json": json.dumps(schema, separators=(",", ":")).encode()}
        for name in source.namelist():
            if name != "schema.json":
                if name not in files:
                    raise ModelFileError(f"the archive holds {name}, which its schema never names")
                entries[files[name]] = source.read(name)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            target.writestr(info, entries[name])
    return out.getvalue()


def _renumber(node: Any, ids: dict[int, int], files: dict[str, str]) -> None:
    """Replace, in place and depth first, every `__id__` by its order of first
    appearance, and every array file's name by one made of that order."""
    if isinstance(node, list):
        for item in node:
            _renumber(item, ids, files)
        return
    if not isinstance(node, dict):
        return
    if "__id__" in node:
        node["__id__"] = ids.setdefault(node["__id__"], len(ids))
    if isinstance(node.get("file"), str):
        node["file"] = files.setdefault(node["file"], f"{len(files)}.npy")
    for key in list(node):
        if key not in ("__id__", "file"):
            _renumber(node[key], ids, files)


def _schema_types(archive: bytes) -> set[str]:
    """Every type a skops archive's schema names, as module.class."""
    with zipfile.ZipFile(io.BytesIO(archive)) as source:
        schema = json.loads(source.read("schema.json"))
    found: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if isinstance(node.get("__module__"), str) and isinstance(node.get("__class__"), str):
                found.add(f"{node['__module__']}.{node['__class__']}")
            stack.extend(node.values())
    return found


def load(data: bytes) -> Any:
    """A pipeline from a skops file, refused unless every type in it is trusted."""
    import skops.io

    try:
        named = _schema_types(data)
        untrusted = set(skops.io.get_untrusted_types(data=data))
    except Exception as exc:  # skops raises what its parser meets: all of it is "bad file"
        raise ModelFileError(f"not a skops model file: {exc}") from None
    refused = sorted((named | untrusted) - TRUSTED_TYPES - _PLAIN_TYPES)
    if refused:
        raise ModelFileError(f"the model file holds types outside the allow-list: {refused[:5]}")
    try:
        return skops.io.loads(data, trusted=sorted(untrusted))
    except Exception as exc:
        raise ModelFileError(f"cannot read the model file: {exc}") from None


def score(metric: str, pipeline: Any, X: np.ndarray, y: np.ndarray | None) -> float:
    """The manifest's metric of a fitted pipeline on (X, y)."""
    from sklearn import metrics

    if metric == "inertia":
        return float(-pipeline.score(X))
    assert y is not None
    predicted = pipeline.predict(X)
    return score_predictions(metric, y, predicted, metrics)


def score_predictions(metric: str, y: np.ndarray, predicted: np.ndarray, metrics: Any) -> float:
    if metric == "accuracy":
        return float(metrics.accuracy_score(y, predicted))
    if metric == "f1":
        return float(metrics.f1_score(y, predicted, average="macro"))
    if metric == "rmse":
        return float(np.sqrt(metrics.mean_squared_error(y, predicted)))
    if metric == "mae":
        return float(metrics.mean_absolute_error(y, predicted))
    assert metric == "r2", metric
    return float(metrics.r2_score(y, predicted))
