"""Workload manifests: every field's bad values refused with the field named, the
canonical form, and no input that makes the parser fail in any other way."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudchain.workload.manifest import (
    ManifestError,
    SklearnModel,
    TorchModel,
    canonical_bytes,
    load_manifest,
    parse_manifest,
)
from tests.helpers.workloads import MLP, cid_of, classification_csv, train_manifest

DATA = classification_csv(rows=40)


def base() -> dict[str, Any]:
    return train_manifest(DATA)


def torch_base() -> dict[str, Any]:
    return train_manifest(DATA, model=json.loads(json.dumps(MLP)))


def _set(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """`obj` with the field at dotted `path` set to `value` (or removed: ...)."""
    *parents, last = path.split(".")
    node: Any = obj
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is ...:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return obj


BAD_FIELDS = [
    ("version", ..., "manifest.version"),
    ("version", 2, "manifest.version"),
    ("version", True, "manifest.version"),
    ("kind", "fit", "manifest.kind"),
    ("seed", -1, "manifest.seed"),
    ("seed", "7", "manifest.seed"),
    ("seed", 2**32, "manifest.seed"),
    ("data", {}, "manifest.data"),
    ("data", [], "manifest.data"),
    ("data.train.cid", "not-a-cid", "manifest.data.train.cid"),
    ("data.train.cid", 5, "manifest.data.train.cid"),
    ("data.train.format", "parquet", "manifest.data.train.format"),
    ("data.train.bytes", 0, "manifest.data.train.bytes"),
    ("data.train.bytes", 5 * 1024**3, "manifest.data.train.bytes"),
    ("data.train.target", ..., "manifest.data.train.target"),
    ("data.train.target", "", "manifest.data.train.target"),
    ("data.train.extra", 1, "manifest.data.train.extra"),
    ("data.Train", {"cid": cid_of(b"x"), "format": "csv", "bytes": 1}, "manifest.data.Train"),
    ("data.holdout", {"cid": cid_of(b"x"), "format": "csv", "bytes": 1}, "manifest.data.holdout"),
    ("model", ..., "manifest.model"),
    ("model.library", "tensorflow", "manifest.model.library"),
    ("model.estimator", "svm", "manifest.model.estimator"),
    ("model.params.n_estimators", 0, "manifest.model.params.n_estimators"),
    ("model.params.n_estimators", 2.5, "manifest.model.params.n_estimators"),
    ("model.params.n_estimators", True, "manifest.model.params.n_estimators"),
    ("model.params.n_jobs", 4, "manifest.model.params.n_jobs"),
    ("model.params.criterion", "gain", "manifest.model.params.criterion"),
    ("model.params", [], "manifest.model.params"),
    ("evaluate", ..., "manifest.evaluate"),
    ("evaluate.metric", "rmse", "manifest.evaluate.metric"),
    ("evaluate.metric", "auc", "manifest.evaluate.metric"),
    ("evaluate.split", "test", "manifest.evaluate.split"),
    ("evaluate.holdout_fraction", 0, "manifest.evaluate.holdout_fraction"),
    ("evaluate.holdout_fraction", 0.95, "manifest.evaluate.holdout_fraction"),
    ("evaluate.holdout_fraction", "a quarter", "manifest.evaluate.holdout_fraction"),
    ("evaluate.holdout_fraction", ..., "manifest.evaluate.holdout_fraction"),
    ("evaluate.tolerance", -0.1, "manifest.evaluate.tolerance"),
    ("limits.cpu_seconds", 0, "manifest.limits.cpu_seconds"),
    ("limits.memory_mb", ..., "manifest.limits.memory_mb"),
    ("limits.memory_mb", 1, "manifest.limits.memory_mb"),
    ("limits.deadline_s", 10**9, "manifest.limits.deadline_s"),
    ("limits.output_bytes", 10, "manifest.limits.output_bytes"),
    ("limits.gpus", 1, "manifest.limits.gpus"),
    ("steps", [{"step": "normalise"}], "manifest.steps[0].step"),
    (
        "steps",
        [{"step": "pca", "params": {"n_components": 0}}],
        "manifest.steps[0].params.n_components",
    ),
    ("steps", {"step": "pca"}, "manifest.steps"),
    ("code", "import os", "manifest.code"),
]


@pytest.mark.parametrize(("path", "value", "field"), BAD_FIELDS)
def test_a_bad_field_is_refused_by_name(path: str, value: Any, field: str) -> None:
    with pytest.raises(ManifestError) as refused:
        parse_manifest(_set(base(), path, value))
    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field}: ")


BAD_NETWORKS = [
    ("model.layers.0.out", ..., "manifest.model.layers[0].out"),
    ("model.layers.0.out", 0, "manifest.model.layers[0].out"),
    ("model.layers.0.type", "lstm", "manifest.model.layers[0].type"),
    ("model.layers.0", {"type": "conv2d", "out": 4}, "manifest.model.layers[0]"),
    ("model.layers.1", {"type": "dropout", "p": 1.0}, "manifest.model.layers[1].p"),
    ("model.layers.2", {"type": "linear", "out": 70_000}, "manifest.model.layers[2].out"),
    ("model.layers", [], "manifest.model.layers"),
    ("model.input_shape", [2, 3], "manifest.model.input_shape"),
    ("model.input_shape", [0], "manifest.model.input_shape[0]"),
    ("model.loss", "hinge", "manifest.model.loss"),
    ("model.loss", "mse", "manifest.model.layers"),
    ("model.device", "tpu", "manifest.model.device"),
    ("model.params.optimiser", "lbfgs", "manifest.model.params.optimiser"),
    ("model.params.learning_rate", 0, "manifest.model.params.learning_rate"),
    ("model.params.epochs", 0, "manifest.model.params.epochs"),
    ("model.params.batch_size", -1, "manifest.model.params.batch_size"),
    ("steps", [{"step": "standardise"}], "manifest.steps"),
]


@pytest.mark.parametrize(("path", "value", "field"), BAD_NETWORKS)
def test_a_bad_network_is_refused_by_name(path: str, value: Any, field: str) -> None:
    with pytest.raises(ManifestError) as refused:
        parse_manifest(_set(torch_base(), path, value))
    assert refused.value.field == field


def test_a_network_too_large_is_refused_before_anything_runs() -> None:
    manifest = torch_base()
    manifest["model"]["input_shape"] = [65_536]
    manifest["model"]["layers"] = [{"type": "linear", "out": 1024}, {"type": "linear", "out": 2}]
    with pytest.raises(ManifestError, match="more than 50000000 weights") as refused:
        parse_manifest(manifest)
    assert refused.value.field == "manifest.model.layers[0]"


def test_a_small_cnn_checks_its_shapes() -> None:
    manifest = torch_base()
    manifest["model"]["input_shape"] = [1, 8, 8]
    manifest["model"]["layers"] = [
        {"type": "conv2d", "out": 4, "kernel": 3, "padding": 1},
        {"type": "relu"},
        {"type": "maxpool2d", "kernel": 2},
        {"type": "flatten"},
        {"type": "linear", "out": 2},
    ]
    model = parse_manifest(manifest).model
    assert isinstance(model, TorchModel)
    assert model.layers[0].params == {"out": 4, "kernel": 3, "stride": 1, "padding": 1}
    manifest["model"]["layers"] = manifest["model"]["layers"][:3]  # ends in [4, 4, 4]
    with pytest.raises(ManifestError, match=r"ends in shape \[4, 4, 4\]"):
        parse_manifest(manifest)


def test_defaults_are_filled_in_and_the_canonical_form_reads_back() -> None:
    manifest = parse_manifest(base())
    assert isinstance(manifest.model, SklearnModel)
    assert manifest.model.params["max_depth"] is None
    assert manifest.model.params["n_estimators"] == 20
    assert manifest.evaluate is not None and manifest.evaluate.tolerance == 0.0
    assert manifest.chain_kind == "training"
    assert manifest.dataset_cids == (cid_of(DATA),)
    data = canonical_bytes(manifest)
    assert load_manifest(data, canonical=True) == manifest
    assert data == json.dumps(json.loads(data), sort_keys=True, separators=(",", ":")).encode()


def test_a_blob_not_in_canonical_form_is_refused_by_a_provider() -> None:
    spaced = json.dumps(base(), indent=2).encode()
    assert load_manifest(spaced) == parse_manifest(base())  # fine from a requester
    with pytest.raises(ManifestError, match="canonical"):
        load_manifest(spaced, canonical=True)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"{not json", "not JSON"),
        (b'{"version": 1, "version": 1}', "given twice"),
        (b'{"version": NaN}', "NaN"),
        (b"[]", "expected an object"),
        (b" " * (65 * 1024), "more than 65536"),
    ],
)
def test_bytes_that_are_not_a_manifest(data: bytes, problem: str) -> None:
    with pytest.raises(ManifestError, match=problem) as refused:
        load_manifest(data)
    assert refused.value.field == "manifest"


def test_the_kinds_tie_their_fields_together() -> None:
    cid = cid_of(DATA)
    dataset = {"cid": cid, "format": "csv", "bytes": len(DATA)}
    preprocess = {
        "version": 1,
        "kind": "preprocess",
        "seed": 0,
        "data": {"input": dataset},
        "steps": [{"step": "impute"}, {"step": "standardise"}],
        "limits": base()["limits"],
    }
    assert parse_manifest(preprocess).steps[0].params == {"strategy": "mean"}
    for path, value, field in [
        ("steps", [], "manifest.steps"),
        ("model", base()["model"], "manifest.model"),
        ("evaluate", {"metric": "accuracy", "split": "input"}, "manifest.evaluate"),
        ("data", {"train": dataset}, "manifest.data.input"),
    ]:
        with pytest.raises(ManifestError) as refused:
            parse_manifest(_set(json.loads(json.dumps(preprocess)), path, value))
        assert refused.value.field == field
    infer = {
        **preprocess,
        "kind": "infer",
        "steps": [],
        "model": {"library": "sklearn", "cid": cid, "bytes": 10},
        "evaluate": {"metric": "accuracy", "split": "input"},
    }
    with pytest.raises(ManifestError) as refused:
        parse_manifest(infer)
    assert refused.value.field == "manifest.data.input.target"
    infer["data"] = {"input": {**dataset, "target": "label"}}
    assert parse_manifest(infer).dataset_cids == (cid, cid)
    infer["evaluate"] = {"metric": "accuracy", "split": "holdout", "holdout_fraction": 0.2}
    with pytest.raises(ManifestError) as refused:
        parse_manifest(infer)
    assert refused.value.field == "manifest.evaluate.split"
    del infer["model"]["cid"]
    with pytest.raises(ManifestError) as refused:
        parse_manifest(infer)
    assert refused.value.field == "manifest.model.cid"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [
    "kind",
    "seed",
    "data",
    "data.train",
    "model",
    "model.params",
    "evaluate",
    "limits",
    "steps",
]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(FIELDS), json_values)
def test_any_json_in_any_field_is_a_manifest_or_a_manifest_error(path: str, value: Any) -> None:
    try:
        parse_manifest(_set(base(), path, value))
    except ManifestError as exc:
        assert exc.field.startswith("manifest")


def test_a_network_that_may_run_on_a_gpu_must_name_a_tolerance() -> None:
    model = {**json.loads(json.dumps(MLP)), "device": "gpu_if_available"}
    with pytest.raises(ManifestError, match=r"manifest\.evaluate\.tolerance: .*GPU"):
        parse_manifest(train_manifest(DATA, model=model))
    evaluate = {
        "metric": "accuracy",
        "split": "holdout",
        "holdout_fraction": 0.25,
        "tolerance": 0.02,
    }
    parsed = parse_manifest(train_manifest(DATA, model=model, evaluate=evaluate))
    assert parsed.evaluate is not None and parsed.evaluate.tolerance == 0.02


def test_a_sealed_dataset_is_named_by_its_id_and_a_job_reads_one_at_most() -> None:
    obj = torch_base()
    obj["data"]["train"]["sealed"] = 3
    manifest = load_manifest(canonical_bytes(parse_manifest(obj)), canonical=True)
    assert manifest.sealed is not None and manifest.sealed[0] == "train"
    assert manifest.sealed[1].sealed == 3 and parse_manifest(torch_base()).sealed is None
    for bad in (0, "3", True):
        obj["data"]["train"]["sealed"] = bad
        with pytest.raises(ManifestError, match=r"manifest\.data\.train\.sealed"):
            parse_manifest(obj)
    obj["data"]["train"]["sealed"] = 3
    obj["data"]["test"] = {**obj["data"]["train"], "sealed": 4}
    with pytest.raises(ManifestError, match="at most one sealed dataset"):
        parse_manifest(obj)


def test_a_dp_section_names_the_rows_its_epsilon_follows_from() -> None:
    from cloudchain.privacy.accountant import DPSGD, epsilon_spent, micro_epsilon
    from cloudchain.workload.dp_plan import planned_micro_epsilon, planned_run

    dp = {"clip_norm": 1.0, "noise_multiplier": 1.1, "delta": 1e-5, "target_epsilon": 8.0}
    with pytest.raises(ManifestError, match=r"manifest\.dp\.rows: missing"):
        parse_manifest({**torch_base(), "dp": dp})
    manifest = parse_manifest({**torch_base(), "dp": {**dp, "rows": 100}})
    # the MLP's batch size 32 over 100 rows: 4 batches an epoch (q = 1/4), 5 epochs
    assert planned_run(manifest) == DPSGD(1.1, 0.25, 20, 1e-5)
    assert planned_micro_epsilon(manifest) == micro_epsilon(
        epsilon_spent(DPSGD(1.1, 0.25, 20, 1e-5))
    )
