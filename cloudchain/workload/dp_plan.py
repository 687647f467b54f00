"""The DP-SGD run a manifest asks for, as the privacy accountant takes it: from the
manifest alone, so that the requester (declaring the task's ε), the provider (refusing
a run past its target) and an oracle (checking the declared ε) compute the same ε.

The trainer draws batches by Poisson sampling at q = 1 / ceil(rows / batch_size) (the
batch size is the expected one) and takes ceil(rows / batch_size) steps an epoch.
"""

from __future__ import annotations

from cloudchain.privacy.accountant import DPSGD, epsilon_spent, micro_epsilon
from cloudchain.workload.manifest import DPConfig, Manifest, TorchModel


def batches_per_epoch(rows: int, batch_size: int) -> int:
    return -(-rows // batch_size)


def dp_run(dp: DPConfig, model: TorchModel) -> DPSGD:
    """The run of `model` trained by DP-SGD as `dp` says."""
    batches = batches_per_epoch(dp.rows, model.params["batch_size"])
    return DPSGD(dp.noise_multiplier, 1 / batches, model.params["epochs"] * batches, dp.delta)


def planned_run(manifest: Manifest) -> DPSGD:
    """The run of a manifest with a `dp` section."""
    assert manifest.dp is not None and isinstance(manifest.model, TorchModel), "a DP manifest"
    return dp_run(manifest.dp, manifest.model)


def planned_micro_epsilon(manifest: Manifest) -> int:
    """The ε the run spends, in the chain's micro-ε (rounded up)."""
    return micro_epsilon(epsilon_spent(planned_run(manifest)))
