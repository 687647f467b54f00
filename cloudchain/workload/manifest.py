"""Workload manifests: what a task asks a provider to run, as a canonical JSON blob.

A task's first input CID is its manifest (the rest are the datasets it names, so that the
chain records everything the task reads). The manifest names the job's kind, an
algorithm from the allow-list (algorithms.py) with its hyperparameters, the datasets by
CID with their format and size, the seed, the metric and the split it is reported on,
and the limits the provider enforces:

    {"version": 1, "kind": "train", "seed": 7,
     "data": {"train": {"cid": "bafk...", "format": "csv", "bytes": 48213,
                        "target": "label"}},
     "model": {"library": "sklearn", "estimator": "random_forest_classifier",
               "params": {"n_estimators": 50}},
     "steps": [{"step": "standardise"}],
     "evaluate": {"metric": "accuracy", "split": "holdout", "holdout_fraction": 0.25},
     "limits": {"cpu_seconds": 60, "memory_mb": 2048, "deadline_s": 300,
                "output_bytes": 50000000}}

`parse_manifest` checks every field and raises ManifestError naming the first bad one
(`manifest.model.params.n_estimators: 0 is below the minimum 1`); the requester's client
calls it before anything is uploaded, and the provider again on what it fetched. The
parsed Manifest has every default filled in, and `canonical_bytes` is its one encoding
(sorted keys, no spaces, ASCII): the bytes uploaded, so that one job has one CID, and
the provider refuses a blob that is not in that form.

Kinds: `train` fits a model on `data.train` and reports the metric on the split
`evaluate` names, a dataset of `data` or `"holdout"` (a fraction of the training rows,
drawn with the seed); `infer` runs a trained model (`model.cid`, an output of an
earlier train task) on `data.input` and, if `evaluate` is given, scores it there;
`preprocess` fits the `steps` on `data.input` and outputs the transformed rows.

Datasets: CSV with a header row and numeric cells (an empty cell is a missing value),
the target a named column; or `.npz` with arrays `X` and, where a target is needed,
`target` names the array (default `y`). `bytes` is the blob's exact size: the provider
refuses a dataset of another size before it reads a row.

A sealed dataset (cloudchain/privacy/sealed.py) is named by its id on chain too,
`"sealed": 3`: `cid` and `bytes` are then its ciphertext's (the chain's record of the
dataset must name the same), and the provider reads it only through a grant (the access
module); its plaintext is whatever authenticates under the data key. A job reads at
most one sealed dataset, the one whose privacy budget the task spends from.

`dp` (train jobs of a PyTorch network) asks for DP-SGD, and says everything its ε
follows from: clip norm, noise multiplier, δ, the target ε and the rows it trains on
(after any holdout), so that anyone can compute the ε from the manifest alone
(cloudchain/workload/dp_plan.py) and the provider refuses a dataset of other rows.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cloudchain.blobs.cid import CID, CIDError
from cloudchain.workload.algorithms import (
    CLASSIFY,
    CLUSTER,
    DEVICES,
    ESTIMATORS,
    LAYERS,
    LOSSES,
    MAX_LAYERS,
    MAX_PARAMETERS,
    METRICS,
    REGRESS,
    STEPS,
    TORCH_PARAMS,
    Param,
)

VERSION = 1
KINDS = ("train", "infer", "preprocess")
# The chain's name for each kind (market.submit's `kind`).
CHAIN_KINDS: Mapping[str, str] = {
    "train": "training",
    "infer": "inference",
    "preprocess": "preprocessing",
}
FORMATS = ("csv", "npz")
HOLDOUT = "holdout"
MAX_MANIFEST_BYTES = 64 * 1024
MAX_DATASETS = 8
MAX_DATASET_BYTES = 4 * 1024**3
MAX_ROWS = 10_000_000
MAX_STEPS = 8
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
_COLUMN = re.compile(r"[\x20-\x7e]{1,128}")

# Limits: (low, high) of each, in the unit its name says.
LIMITS: Mapping[str, tuple[int, int]] = {
    "cpu_seconds": (1, 7 * 24 * 3600),
    "memory_mb": (64, 1024 * 1024),
    "deadline_s": (1, 7 * 24 * 3600),
    "output_bytes": (1024, 64 * 1024**3),
}


class ManifestError(ValueError):
    """A manifest that cannot run: `field` is the path of the first bad field
    (`manifest.limits.cpu_seconds`), and the message says what is wrong with it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


# --- the records ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    cid: str
    format: str  # csv or npz
    bytes: int  # the blob's exact size (sealed: the ciphertext's)
    target: str | None  # the target column (csv) or array (npz), if it has one
    sealed: int | None = None  # the access module's id of it, if it is sealed

    def to_obj(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"cid": self.cid, "format": self.format, "bytes": self.bytes}
        if self.target is not None:
            obj["target"] = self.target
        if self.sealed is not None:
            obj["sealed"] = self.sealed
        return obj


@dataclass(frozen=True)
class Step:
    step: str  # a name of algorithms.STEPS
    params: Mapping[str, Any]  # every parameter, defaults filled in

    def to_obj(self) -> dict[str, Any]:
        return {"step": self.step, "params": dict(self.params)}


@dataclass(frozen=True)
class SklearnModel:
    estimator: str  # a name of algorithms.ESTIMATORS
    params: Mapping[str, Any]

    library = "sklearn"

    @property
    def problem(self) -> str:
        return ESTIMATORS[self.estimator].problem

    def to_obj(self) -> dict[str, Any]:
        return {"library": self.library, "estimator": self.estimator, "params": dict(self.params)}


@dataclass(frozen=True)
class Layer:
    type: str  # a name of algorithms.LAYERS
    params: Mapping[str, Any]

    def to_obj(self) -> dict[str, Any]:
        return {"type": self.type, **self.params}


@dataclass(frozen=True)
class TorchModel:
    input_shape: tuple[int, ...]  # (features,) or (channels, height, width)
    layers: tuple[Layer, ...]
    loss: str  # a name of algorithms.LOSSES
    device: str  # cpu, or gpu_if_available
    params: Mapping[str, Any]  # optimiser, learning_rate, epochs, batch_size, ...

    library = "torch"

    @property
    def problem(self) -> str:
        return LOSSES[self.loss]

    def to_obj(self) -> dict[str, Any]:
        return {
            "library": self.library,
            "input_shape": list(self.input_shape),
            "layers": [layer.to_obj() for layer in self.layers],
            "loss": self.loss,
            "device": self.device,
            "params": dict(self.params),
        }


@dataclass(frozen=True)
class TrainedModel:
    """A model an earlier train task output, for `infer`."""

    library: str  # sklearn or torch
    cid: str
    bytes: int

    def to_obj(self) -> dict[str, Any]:
        return {"library": self.library, "cid": self.cid, "bytes": self.bytes}


Model = SklearnModel | TorchModel | TrainedModel


@dataclass(frozen=True)
class Evaluation:
    metric: str  # a name of algorithms.METRICS
    split: str  # a dataset of `data`, or "holdout"
    holdout_fraction: float | None  # only with the holdout split
    tolerance: float  # how far an oracle's re-run metric may be from the reported one

    def to_obj(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "metric": self.metric,
            "split": self.split,
            "tolerance": self.tolerance,
        }
        if self.holdout_fraction is not None:
            obj["holdout_fraction"] = self.holdout_fraction
        return obj


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int
    memory_mb: int
    deadline_s: int
    output_bytes: int

    def to_obj(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in LIMITS}


@dataclass(frozen=True)
class DPConfig:
    """DP-SGD (Opacus): each example's gradient clipped to `clip_norm`, Gaussian noise of
    standard deviation noise_multiplier x clip_norm added to the batch's sum, Poisson
    sampling at batch_size / rows; refused before the first step if the accountant's ε
    at `delta` exceeds `target_epsilon` (cloudchain/privacy/accountant.py). `rows` is
    the number of examples it trains on, which q and the steps follow from."""

    clip_norm: float
    noise_multiplier: float
    delta: float
    target_epsilon: float
    rows: int

    def to_obj(self) -> dict[str, Any]:
        return {
            "clip_norm": self.clip_norm,
            "noise_multiplier": self.noise_multiplier,
            "delta": self.delta,
            "target_epsilon": self.target_epsilon,
            "rows": self.rows,
        }


@dataclass(frozen=True)
class Manifest:
    kind: str
    seed: int
    data: Mapping[str, Dataset]
    model: Model | None  # None for preprocess
    steps: tuple[Step, ...]
    evaluate: Evaluation | None
    limits: Limits
    dp: DPConfig | None = None

    @property
    def chain_kind(self) -> str:
        return CHAIN_KINDS[self.kind]

    @property
    def sealed(self) -> tuple[str, Dataset] | None:
        """The sealed dataset it reads (its name and entry), if any."""
        for name in sorted(self.data):
            if self.data[name].sealed is not None:
                return name, self.data[name]
        return None

    @property
    def dataset_cids(self) -> tuple[str, ...]:
        """Every blob the job reads besides the manifest, in name order."""
        cids = [self.data[name].cid for name in sorted(self.data)]
        if isinstance(self.model, TrainedModel):
            cids.append(self.model.cid)
        return tuple(cids)

    def to_obj(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "version": VERSION,
            "kind": self.kind,
            "seed": self.seed,
            "data": {name: dataset.to_obj() for name, dataset in self.data.items()},
            "limits": self.limits.to_obj(),
        }
        if self.model is not None:
            obj["model"] = self.model.to_obj()
        if self.steps:
            obj["steps"] = [step.to_obj() for step in self.steps]
        if self.evaluate is not None:
            obj["evaluate"] = self.evaluate.to_obj()
        if self.dp is not None:
            obj["dp"] = self.dp.to_obj()
        return obj


def canonical_bytes(manifest: Manifest) -> bytes:
    """The manifest's one encoding: the bytes its blob holds."""
    return canonical_json(manifest.to_obj())


def canonical_json(obj: Any) -> bytes:
    """JSON with sorted keys, no spaces and only ASCII: one value, one text."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode()


# --- reading ---------------------------------------------------------------------------------


def load_manifest(data: bytes, *, canonical: bool = False) -> Manifest:
    """The manifest in `data` (JSON), checked; with `canonical`, refused unless `data` is
    exactly its canonical encoding (what a provider requires of a blob)."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError("manifest", f"{len(data)} bytes, more than {MAX_MANIFEST_BYTES}")
    try:
        obj = json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # Recursion: too deep
        raise ManifestError("manifest", f"not JSON: {exc}") from None
    manifest = parse_manifest(obj)
    if canonical and canonical_bytes(manifest) != data:
        raise ManifestError("manifest", "not in canonical form (sorted keys, defaults filled in)")
    return manifest


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"key {key!r} given twice")
            seen.add(key)
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_manifest(obj: Any) -> Manifest:
    """A Manifest from a decoded JSON value, every field checked and every default
    filled in; ManifestError names the first field that is wrong."""
    where = "manifest"
    _map(obj, where, required=("version", "kind", "seed", "data", "limits"),
         optional=("model", "steps", "evaluate", "dp"))  # fmt: skip
    if obj["version"] != VERSION or isinstance(obj["version"], bool):
        raise ManifestError(f"{where}.version", f"expected {VERSION}, got {obj['version']!r}")
    kind = _choice(obj["kind"], KINDS, f"{where}.kind")
    seed = _integer(obj["seed"], 0, 2**32 - 1, f"{where}.seed")
    data = _datasets(obj["data"], f"{where}.data")
    limits = _limits(obj["limits"], f"{where}.limits")
    steps = _steps(obj.get("steps", []), f"{where}.steps")
    model = _model(kind, obj.get("model"), f"{where}.model")
    if steps and isinstance(model, TorchModel | TrainedModel):
        raise ManifestError(f"{where}.steps", "pipeline steps go only with a scikit-learn model")
    evaluate = None
    if "evaluate" in obj:
        evaluate = _evaluation(obj["evaluate"], data, f"{where}.evaluate")
    dp = None
    if "dp" in obj:
        if kind != "train" or not isinstance(model, TorchModel):
            raise ManifestError(f"{where}.dp", "DP-SGD trains a PyTorch network: a train job")
        dp = _dp(obj["dp"], f"{where}.dp")
    manifest = Manifest(kind, seed, data, model, steps, evaluate, limits, dp)
    _check_kind(manifest, where)
    # Verify that a job an oracle cannot match bit for bit says how close is close.
    gpu = isinstance(model, TorchModel) and model.device == "gpu_if_available"
    if gpu and (evaluate is None or evaluate.tolerance == 0):
        raise ManifestError(
            f"{where}.evaluate.tolerance",
            "a network that may run on a GPU needs a tolerance above 0 (GPU "
            "reductions are not the same bytes from one device to another)",
        )
    return manifest


def _dp(value: Any, where: str) -> DPConfig:
    _map(
        value, where, required=("clip_norm", "noise_multiplier", "delta", "target_epsilon", "rows")
    )
    return DPConfig(
        clip_norm=_number(value["clip_norm"], 0.0, 1e6, f"{where}.clip_norm", open_low=True),
        noise_multiplier=_number(
            value["noise_multiplier"], 0.0, 1e3, f"{where}.noise_multiplier", open_low=True
        ),
        delta=_number(value["delta"], 0.0, 0.1, f"{where}.delta", open_low=True),
        target_epsilon=_number(
            value["target_epsilon"], 0.0, 1e6, f"{where}.target_epsilon", open_low=True
        ),
        rows=_integer(value["rows"], 1, MAX_ROWS, f"{where}.rows"),
    )


def _check_kind(manifest: Manifest, where: str) -> None:
    """The rules that tie the fields of one kind together."""
    needed = "train" if manifest.kind == "train" else "input"
    if needed not in manifest.data:
        raise ManifestError(f"{where}.data.{needed}", f"a {manifest.kind} job reads it")
    evaluate = manifest.evaluate
    if manifest.kind == "preprocess":
        if not manifest.steps:
            raise ManifestError(f"{where}.steps", "a preprocess job needs at least one step")
        if evaluate is not None:
            raise ManifestError(f"{where}.evaluate", "a preprocess job reports no metric")
        return
    if manifest.kind == "train":
        if evaluate is None:
            raise ManifestError(f"{where}.evaluate", "a train job reports a metric")
        assert isinstance(manifest.model, SklearnModel | TorchModel)
        problem = manifest.model.problem
        if METRICS[evaluate.metric] != problem:
            raise ManifestError(
                f"{where}.evaluate.metric",
                f"{evaluate.metric} does not score a {problem} model",
            )
        if problem != CLUSTER:
            for name in sorted({"train", evaluate.split} - {HOLDOUT}):
                _require_target(manifest.data[name], f"{where}.data.{name}", problem)
        if evaluate.split == HOLDOUT and evaluate.holdout_fraction is None:
            raise ManifestError(f"{where}.evaluate.holdout_fraction", "required with holdout")
    elif evaluate is not None:  # infer, scored on a labelled split
        if evaluate.split == HOLDOUT:
            raise ManifestError(f"{where}.evaluate.split", "an infer job has no holdout")
        problem = METRICS[evaluate.metric]
        if problem != CLUSTER:
            split = evaluate.split
            _require_target(manifest.data[split], f"{where}.data.{split}", problem)


def _require_target(dataset: Dataset, where: str, problem: str) -> None:
    if dataset.target is None:
        raise ManifestError(f"{where}.target", f"a {problem} model needs the target's name")


def _map(
    value: Any, where: str, required: Sequence[str] = (), optional: Sequence[str] = ()
) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ManifestError(where, f"expected an object, got {_kind_of(value)}")
    for name in required:
        if name not in value:
            raise ManifestError(f"{where}.{name}", "missing")
    allowed = set(required) | set(optional)
    for name in sorted(value):
        if name not in allowed:
            raise ManifestError(f"{where}.{name}", "unknown field")
    return value


def _keys(value: Any) -> tuple[str, ...]:
    """Every key of a map whose keys are checked elsewhere (`_map` then checks only that
    it is a map)."""
    return tuple(value) if isinstance(value, Mapping) else ()


def _kind_of(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), repr(value)
    )


def _choice(value: Any, choices: Sequence[str], where: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ManifestError(where, f"expected one of {', '.join(choices)}, got {value!r}")
    return value


def _integer(value: Any, low: int, high: int, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ManifestError(where, f"expected an integer, got {_kind_of(value)}")
    if not low <= value <= high:
        raise ManifestError(where, f"{value} is not in [{low}, {high}]")
    return value


def _number(value: Any, low: float, high: float, where: str, open_low: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ManifestError(where, f"expected a number, got {_kind_of(value)}")
    if value < low or value > high or (open_low and value == low):
        bounds = f"({low:g}, {high:g}]" if open_low else f"[{low:g}, {high:g}]"
        raise ManifestError(where, f"{value!r} is not in {bounds}")
    return float(value)


def _cid(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ManifestError(where, f"expected a CID, got {_kind_of(value)}")
    try:
        return str(CID.parse(value))
    except CIDError as exc:
        raise ManifestError(where, f"not a CID: {exc}") from None


def _datasets(value: Any, where: str) -> Mapping[str, Dataset]:
    _map(value, where, optional=_keys(value))
    if not value:
        raise ManifestError(where, "names no dataset")
    if len(value) > MAX_DATASETS:
        raise ManifestError(where, f"more than {MAX_DATASETS} datasets")
    datasets = {}
    for name in sorted(value):
        at = f"{where}.{name}"
        if not isinstance(name, str) or not _NAME.fullmatch(name) or name == HOLDOUT:
            raise ManifestError(at, "a dataset's name is [a-z][a-z0-9_]*, and not holdout")
        entry = _map(
            value[name], at, required=("cid", "format", "bytes"), optional=("target", "sealed")
        )
        fmt = _choice(entry["format"], FORMATS, f"{at}.format")
        target = entry.get("target")
        if target is not None and (not isinstance(target, str) or not _COLUMN.fullmatch(target)):
            raise ManifestError(f"{at}.target", f"expected a column or array name, got {target!r}")
        if fmt == "npz" and target == "X":
            raise ManifestError(f"{at}.target", "X holds the features, not the target")
        datasets[name] = Dataset(
            cid=_cid(entry["cid"], f"{at}.cid"),
            format=fmt,
            bytes=_integer(entry["bytes"], 1, MAX_DATASET_BYTES, f"{at}.bytes"),
            target=target,
            sealed=_integer(entry["sealed"], 1, 2**63 - 1, f"{at}.sealed")
            if "sealed" in entry
            else None,
        )
    sealed = [name for name, dataset in datasets.items() if dataset.sealed is not None]
    if len(sealed) > 1:
        raise ManifestError(f"{where}.{sealed[1]}.sealed", "a job reads at most one sealed dataset")
    return datasets


def _limits(value: Any, where: str) -> Limits:
    _map(value, where, required=tuple(LIMITS))
    checked = {
        name: _integer(value[name], low, high, f"{where}.{name}")
        for name, (low, high) in LIMITS.items()
    }
    return Limits(**checked)


def _params(value: Any, table: Mapping[str, Param], where: str) -> dict[str, Any]:
    """Hyperparameters checked against `table`, every one of it filled in."""
    _map(value, where, optional=tuple(table))
    params = {}
    for name, param in table.items():
        if name not in value and param.default is None and not param.nullable:
            raise ManifestError(f"{where}.{name}", "missing")
        given = value.get(name, param.default)
        problem = param.check(given)
        if problem is not None:
            raise ManifestError(f"{where}.{name}", problem)
        params[name] = float(given) if param.type == "float" else given
    return params


def _steps(value: Any, where: str) -> tuple[Step, ...]:
    if not isinstance(value, list):
        raise ManifestError(where, f"expected a list, got {_kind_of(value)}")
    if len(value) > MAX_STEPS:
        raise ManifestError(where, f"more than {MAX_STEPS} steps")
    steps = []
    for index, entry in enumerate(value):
        at = f"{where}[{index}]"
        _map(entry, at, required=("step",), optional=("params",))
        name = _choice(entry["step"], tuple(STEPS), f"{at}.step")
        steps.append(Step(name, _params(entry.get("params", {}), STEPS[name], f"{at}.params")))
    return tuple(steps)


def _model(kind: str, value: Any, where: str) -> Model | None:
    if kind == "preprocess":
        if value is not None:
            raise ManifestError(where, "a preprocess job trains no model")
        return None
    if value is None:
        raise ManifestError(where, f"a {kind} job needs a model")
    _map(value, where, required=("library",), optional=_keys(value))
    library = _choice(value["library"], ("sklearn", "torch"), f"{where}.library")
    if kind == "infer":
        _map(value, where, required=("library", "cid", "bytes"))
        return TrainedModel(
            library,
            _cid(value["cid"], f"{where}.cid"),
            _integer(value["bytes"], 1, MAX_DATASET_BYTES, f"{where}.bytes"),
        )
    if library == "sklearn":
        _map(value, where, required=("library", "estimator"), optional=("params",))
        estimator = _choice(value["estimator"], tuple(ESTIMATORS), f"{where}.estimator")
        table = ESTIMATORS[estimator].params
        return SklearnModel(estimator, _params(value.get("params", {}), table, f"{where}.params"))
    return _torch_model(value, where)


def torch_model(value: Any) -> TorchModel:
    """The network a manifest's model section describes (ManifestError names the field)."""
    _map(value, "model", required=("library",), optional=_keys(value))
    return _torch_model(value, "model")


def _torch_model(value: Mapping[str, Any], where: str) -> TorchModel:
    _map(
        value,
        where,
        required=("library", "input_shape", "layers", "loss"),
        optional=("device", "params"),
    )
    shape = value["input_shape"]
    if not isinstance(shape, list) or len(shape) not in (1, 3):
        raise ManifestError(
            f"{where}.input_shape", "expected [features] or [channels, height, width]"
        )
    input_shape = tuple(
        _integer(size, 1, 65_536, f"{where}.input_shape[{i}]") for i, size in enumerate(shape)
    )
    loss = _choice(value["loss"], tuple(LOSSES), f"{where}.loss")
    device = _choice(value.get("device", "cpu"), DEVICES, f"{where}.device")
    params = _params(value.get("params", {}), TORCH_PARAMS, f"{where}.params")
    layers = _layers(value["layers"], input_shape, f"{where}.layers")
    out = layer_output_shape(layers, input_shape)
    if len(out) != 1:
        raise ManifestError(f"{where}.layers", f"the network ends in shape {list(out)}, not [n]")
    if loss == "mse" and out != (1,):
        raise ManifestError(f"{where}.layers", "a regression network ends in one output")
    return TorchModel(input_shape, layers, loss, device, params)


def _layers(value: Any, input_shape: tuple[int, ...], where: str) -> tuple[Layer, ...]:
    if not isinstance(value, list) or not value:
        raise ManifestError(where, "expected a non-empty list of layers")
    if len(value) > MAX_LAYERS:
        raise ManifestError(where, f"more than {MAX_LAYERS} layers")
    layers: list[Layer] = []
    shape, weights = input_shape, 0
    for index, entry in enumerate(value):
        at = f"{where}[{index}]"
        _map(entry, at, required=("type",), optional=_keys(entry))
        name = _choice(entry["type"], tuple(LAYERS), f"{at}.type")
        given = {key: item for key, item in entry.items() if key != "type"}
        layer = Layer(name, _params(given, LAYERS[name], at))
        try:
            shape, added = _layer_shape(layer, shape)
        except ValueError as exc:
            raise ManifestError(at, str(exc)) from None
        weights += added
        if weights > MAX_PARAMETERS:
            raise ManifestError(at, f"the network has more than {MAX_PARAMETERS} weights")
        layers.append(layer)
    return tuple(layers)


def parse_manifest_layers(spec: Any) -> tuple[tuple[Layer, ...], tuple[int, ...]]:
    """(layers, input shape) of a stored network's spec (a model file's metadata),
    checked by the same rules as a manifest's."""
    where = "model.spec"
    _map(spec, where, required=("input_shape", "layers", "loss"), optional=("classes",))
    model = _torch_model(
        {"library": "torch", **{k: spec[k] for k in ("input_shape", "layers", "loss")}}, where
    )
    classes = spec.get("classes", [])
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ManifestError(f"{where}.classes", "expected a list of labels")
    return model.layers, model.input_shape


def layer_output_shape(layers: Sequence[Layer], input_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of one sample after `layers` (already checked)."""
    shape = input_shape
    for layer in layers:
        shape, _ = _layer_shape(layer, shape)
    return shape


def _layer_shape(layer: Layer, shape: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    """The sample's shape after `layer`, and the weights the layer has; ValueError if
    the layer cannot take a sample of `shape`."""
    p = layer.params
    if layer.type == "linear":
        if len(shape) != 1:
            raise ValueError(f"linear takes [features], not {list(shape)}: flatten first")
        return (p["out"],), shape[0] * p["out"] + p["out"]
    if layer.type == "conv2d":
        if len(shape) != 3:
            raise ValueError(f"conv2d takes [channels, height, width], not {list(shape)}")
        channels, height, width = shape
        size = [(n + 2 * p["padding"] - p["kernel"]) // p["stride"] + 1 for n in (height, width)]
        if min(size) < 1:
            raise ValueError(f"a {p['kernel']}-wide kernel does not fit {height}x{width}")
        return (p["out"], *size), channels * p["out"] * p["kernel"] ** 2 + p["out"]
    if layer.type == "maxpool2d":
        if len(shape) != 3:
            raise ValueError(f"maxpool2d takes [channels, height, width], not {list(shape)}")
        size = [n // p["kernel"] for n in shape[1:]]
        if min(size) < 1:
            raise ValueError(f"a {p['kernel']}-wide pool does not fit {shape[1]}x{shape[2]}")
        return (shape[0], *size), 0
    if layer.type == "flatten":
        return (math.prod(shape),), 0
    return shape, 0  # activations and dropout keep the shape


def _evaluation(value: Any, data: Mapping[str, Dataset], where: str) -> Evaluation:
    _map(value, where, required=("metric", "split"), optional=("holdout_fraction", "tolerance"))
    metric = _choice(value["metric"], tuple(METRICS), f"{where}.metric")
    split = value["split"]
    if split != HOLDOUT and split not in data:
        raise ManifestError(
            f"{where}.split", f"{split!r} is neither a dataset of manifest.data nor holdout"
        )
    fraction = value.get("holdout_fraction")
    if fraction is not None:
        if split != HOLDOUT:
            raise ManifestError(f"{where}.holdout_fraction", "only with the holdout split")
        fraction = _number(fraction, 0.0, 0.9, f"{where}.holdout_fraction", open_low=True)
    tolerance = _number(value.get("tolerance", 0.0), 0.0, 1e6, f"{where}.tolerance")
    return Evaluation(metric, split, fraction, tolerance)


__all__ = [
    "CLASSIFY",
    "CLUSTER",
    "REGRESS",
    "Dataset",
    "Evaluation",
    "Layer",
    "Limits",
    "Manifest",
    "ManifestError",
    "SklearnModel",
    "Step",
    "TorchModel",
    "TrainedModel",
    "canonical_bytes",
    "load_manifest",
    "parse_manifest",
]
