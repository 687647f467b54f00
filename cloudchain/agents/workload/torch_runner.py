"""PyTorch workloads: a network built from the manifest's layer specs, trained
deterministically, stored as safetensors with its spec, never as a pickled object.

Determinism: the seed seeds torch and the batch order (a torch.Generator of its own),
one intra-op thread, and `torch.use_deterministic_algorithms(True)`, so that on the
CPU the same manifest and data give the same weights, bit for bit. On a GPU
(`device: gpu_if_available` and one is there) CUDA kernels may reduce in another order:
the weights can differ in their last bits, and the oracle then compares the metric
within the manifest's `evaluate.tolerance` instead of the bytes (README, "Determinism"), and the
manifest must name one (manifest.py).

The model file holds the weights (safetensors) and, in its metadata under
"cloudchain", the network's spec: input shape, layers, loss and the class labels. `load`
rebuilds the network from that spec, checked by the manifest's own rules, and loads
the weights into it: nothing in the file is ever executed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cloudchain.workload.algorithms import CLASSIFY
from cloudchain.workload.manifest import (
    DPConfig,
    Layer,
    ManifestError,
    TorchModel,
    canonical_json,
    layer_output_shape,
    parse_manifest_layers,
)

SPEC_KEY = "cloudchain"


class TorchJobError(ValueError):
    """Data that does not fit the network the manifest describes."""


@dataclass(frozen=True)
class TrainedNetwork:
    module: Any  # torch.nn.Sequential
    spec: dict[str, Any]  # input_shape, layers, loss, classes
    classes: tuple[str, ...]  # labels, by output index (classification)
    epsilon: float | None = None  # DP-SGD: the ε spent, by the independent accountant


def pin_determinism(seed: int) -> None:
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)


def device_for(model: TorchModel) -> str:
    import torch

    if model.device == "gpu_if_available" and torch.cuda.is_available():
        return "cuda"
    return "cpu"


def build_network(layers: Sequence[Layer], input_shape: tuple[int, ...]) -> Any:
    import torch.nn as nn

    modules: list[Any] = []
    shape = input_shape
    for layer in layers:
        p = layer.params
        if layer.type == "linear":
            modules.append(nn.Linear(shape[0], p["out"]))
        elif layer.type == "conv2d":
            modules.append(
                nn.Conv2d(shape[0], p["out"], p["kernel"], stride=p["stride"], padding=p["padding"])
            )
        elif layer.type == "maxpool2d":
            modules.append(nn.MaxPool2d(p["kernel"]))
        elif layer.type == "flatten":
            modules.append(nn.Flatten())
        elif layer.type == "dropout":
            modules.append(nn.Dropout(p["p"]))
        else:
            modules.append({"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}[layer.type]())
        shape = layer_output_shape([layer], shape)
    return nn.Sequential(*modules)


def _inputs(X: np.ndarray, input_shape: tuple[int, ...]) -> Any:
    import torch

    per_row = int(np.prod(X.shape[1:]))
    if per_row != int(np.prod(input_shape)):
        raise TorchJobError(f"a row has {per_row} values; the network takes {list(input_shape)}")
    if np.isnan(X).any():
        raise TorchJobError("the features have missing values (NaN): a network cannot take them")
    return torch.from_numpy(X.reshape(len(X), *input_shape).astype(np.float32))


def train(
    model: TorchModel,
    X: np.ndarray,
    y: np.ndarray,
    seed: int,
    log: Any,
    dp: DPConfig | None = None,
    noise_seed: int | None = None,
) -> TrainedNetwork:
    """Fit the manifest's network on (X, y), deterministically; with `dp`, by DP-SGD,
    its sampling and noise drawn from `noise_seed` (a secret: dp_noise_seed)."""
    import torch

    pin_determinism(seed)
    device = device_for(model)
    network = build_network(model.layers, model.input_shape).to(device)
    inputs = _inputs(X, model.input_shape).to(device)
    classes: tuple[str, ...] = ()
    if model.problem == CLASSIFY:
        classes = tuple(str(label) for label in np.unique(y.astype(np.str_)))
        outputs = layer_output_shape(model.layers, model.input_shape)[0]
        if len(classes) > outputs:
            raise TorchJobError(f"{len(classes)} classes, but the network has {outputs} outputs")
        index = {label: i for i, label in enumerate(classes)}
        targets = torch.tensor([index[str(label)] for label in y.astype(np.str_)])
        loss_fn: Any = torch.nn.CrossEntropyLoss()
    else:
        targets = torch.from_numpy(y.astype(np.float32)).reshape(-1, 1)
        loss_fn = torch.nn.MSELoss()
    targets = targets.to(device)
    params = model.params
    if params["optimiser"] == "adam":
        optimiser: Any = torch.optim.Adam(
            network.parameters(), lr=params["learning_rate"], weight_decay=params["weight_decay"]
        )
    else:
        optimiser = torch.optim.SGD(
            network.parameters(),
            lr=params["learning_rate"],
            momentum=params["momentum"],
            weight_decay=params["weight_decay"],
        )
    if dp is not None:
        if noise_seed is None:
            log("DP-SGD noise from the manifest's seed: the data is not sealed, and the noise "
                "protects nothing against one who reads the manifest")  # fmt: skip
            noise_seed = seed
        return _train_private(
            network, optimiser, inputs, targets, loss_fn, model, classes, noise_seed, dp, log
        )
    order = torch.Generator().manual_seed(seed)
    network.train()
    for epoch in range(params["epochs"]):
        total = 0.0
        for batch in torch.randperm(len(inputs), generator=order).split(params["batch_size"]):
            optimiser.zero_grad()
            loss = loss_fn(network(inputs[batch]), targets[batch])
            loss.backward()
            optimiser.step()
            total += loss.item() * len(batch)
        log(f"epoch {epoch + 1}/{params['epochs']}: mean loss {total / len(inputs):.6f}")
    network.eval()
    spec = {
        "input_shape": list(model.input_shape),
        "layers": [layer.to_obj() for layer in model.layers],
        "loss": model.loss,
        "classes": list(classes),
    }
    return TrainedNetwork(network.cpu(), spec, classes)


def _spec(model: TorchModel, classes: tuple[str, ...]) -> dict[str, Any]:
    return {
        "input_shape": list(model.input_shape),
        "layers": [layer.to_obj() for layer in model.layers],
        "loss": model.loss,
        "classes": list(classes),
    }


def make_private(network: Any, optimiser: Any, loader: Any, dp: DPConfig, seed: int) -> Any:
    """(engine, module, optimiser, loader) of DP-SGD as the manifest says: clipping at
    C = clip_norm, noise N(0, sigma^2 C^2) on the batch's sum (divided, like the sum, by
    the expected batch size), Poisson sampling, the noise drawn from a generator seeded
    by `seed`, which must be secret (dp_noise_seed): one who knows it can take the noise
    back out of a step."""
    import torch
    from opacus import PrivacyEngine

    engine = PrivacyEngine(accountant="rdp")
    private, optimiser, loader = engine.make_private(
        module=network,
        optimizer=optimiser,
        data_loader=loader,
        noise_multiplier=dp.noise_multiplier,
        max_grad_norm=dp.clip_norm,
        poisson_sampling=True,
        noise_generator=torch.Generator().manual_seed(seed + 1),
    )
    return engine, private, optimiser, loader


def _train_private(
    network: Any,
    optimiser: Any,
    inputs: Any,
    targets: Any,
    loss_fn: Any,
    model: TorchModel,
    classes: tuple[str, ...],
    seed: int,
    dp: DPConfig,
    log: Any,
) -> TrainedNetwork:
    """DP-SGD through Opacus: Algorithm 2 first (the independent accountant's ε for the
    run as it will be, refused past the target), then per-example clipping and noise
    with Poisson sampling; Opacus's own accountant must agree with the first afterwards.
    The noise and the sampling draw from generators seeded by `seed`: the same seed and
    manifest train the same weights."""
    import torch

    from cloudchain.privacy.accountant import AGREEMENT, PrivacyBudgetError, check_budget
    from cloudchain.workload.dp_plan import dp_run

    params = model.params
    if len(inputs) != dp.rows:
        raise TorchJobError(f"the manifest's dp.rows is {dp.rows}, the job trains on {len(inputs)}")
    run = dp_run(dp, model)
    try:
        planned = check_budget(run, dp.target_epsilon)
    except PrivacyBudgetError as exc:
        raise TorchJobError(str(exc)) from None
    log(f"DP-SGD: sigma {dp.noise_multiplier}, C {dp.clip_norm}, q {run.sampling_rate:.5f}, "
        f"{run.steps} steps: epsilon {planned:.4f} at delta {dp.delta:g} "
        f"(target {dp.target_epsilon:g})")  # fmt: skip
    dataset = torch.utils.data.TensorDataset(inputs, targets)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=params["batch_size"], generator=torch.Generator().manual_seed(seed)
    )
    engine, private, optimiser, loader = make_private(network, optimiser, loader, dp, seed)
    private.train()
    for epoch in range(params["epochs"]):
        total, seen = 0.0, 0
        for batch_inputs, batch_targets in loader:
            if not len(batch_inputs):
                continue
            optimiser.zero_grad()
            loss = loss_fn(private(batch_inputs), batch_targets)
            loss.backward()
            optimiser.step()
            total += loss.item() * len(batch_inputs)
            seen += len(batch_inputs)
        log(f"epoch {epoch + 1}/{params['epochs']}: mean loss {total / max(seen, 1):.6f}")
    theirs = float(engine.get_epsilon(dp.delta))
    if abs(theirs - planned) > AGREEMENT * planned:
        raise TorchJobError(
            f"the accountants disagree: epsilon {planned:.4f} by dp-accounting, {theirs:.4f} "
            "by Opacus"
        )
    log(f"epsilon spent {planned:.4f} (Opacus: {theirs:.4f}) at delta {dp.delta:g}")
    trained = private._module
    trained.eval()
    return TrainedNetwork(trained.cpu(), _spec(model, classes), classes, epsilon=planned)


def predict(network: TrainedNetwork, X: np.ndarray) -> np.ndarray:
    """Labels (classification) or values (regression) for the rows of X."""
    import torch

    shape = tuple(network.spec["input_shape"])
    with torch.no_grad():
        out = network.module(_inputs(X, shape))
    if network.spec["loss"] == "cross_entropy":
        return np.array(network.classes, dtype=np.str_)[out.argmax(dim=1).numpy()]
    return out.reshape(-1).numpy().astype(np.float64)


def dump(network: TrainedNetwork, path: Path) -> None:
    from safetensors.torch import save_file

    state = {name: tensor.contiguous() for name, tensor in network.module.state_dict().items()}
    save_file(state, str(path), metadata={SPEC_KEY: canonical_json(network.spec).decode()})


def load(path: Path) -> TrainedNetwork:
    """A network from a safetensors file and the spec in its metadata, refused unless
    the spec passes the manifest's rules and the weights fit it exactly."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as opened:
            metadata = opened.metadata() or {}
        spec = json.loads(metadata[SPEC_KEY])
        layers, input_shape = parse_manifest_layers(spec)
        classes = tuple(str(label) for label in spec.get("classes", []))
        network = build_network(layers, input_shape)
        network.load_state_dict(load_file(str(path)), strict=True)
    except (SafetensorError, KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise TorchJobError(f"not a model file of an allowed network: {exc}") from None
    network.eval()
    return TrainedNetwork(network, spec, classes)


__all__ = ["ManifestError", "TrainedNetwork", "dump", "load", "predict", "train"]
