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


def train(model: TorchModel, X: np.ndarray, y: np.ndarray, seed: int, log: Any) -> TrainedNetwork:
    """Fit the manifest's network on (X, y), deterministically."""
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
