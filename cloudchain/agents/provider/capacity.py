"""What this machine can sell: CPU cores, memory, GPUs.

GPUs are found through PyTorch's CUDA API when PyTorch is installed, else by
`nvidia-smi -L` when it is on PATH; a machine with neither sells CPU time, which the
chain's offer records as gpu "cpu" with its cores as the count (the chain's offers name
a device and a count; a CPU-only provider's device is its CPU).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class Capacity:
    cores: int
    memory_gb: int
    gpus: int
    gpu_name: str  # "" when there is none

    @property
    def device(self) -> str:
        """The offer's `gpu`: the GPU's model, or "cpu"."""
        return self.gpu_name or "cpu"

    @property
    def devices(self) -> int:
        """The offer's `gpus`: GPUs, or CPU cores on a machine without one."""
        return self.gpus or self.cores


def detect_capacity() -> Capacity:
    cores = len(os.sched_getaffinity(0))
    memory_gb = max(1, _memory_kb() // (1024 * 1024))
    gpus, name = _torch_gpus()
    if not gpus:
        gpus, name = _nvidia_smi_gpus()
    return Capacity(cores, memory_gb, gpus, name)


def _memory_kb() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    return 0


def _torch_gpus() -> tuple[int, str]:
    try:
        import torch
    except ImportError:
        return 0, ""
    if not torch.cuda.is_available():
        return 0, ""
    count = torch.cuda.device_count()
    return count, _offer_name(torch.cuda.get_device_name(0)) if count else ""


def _nvidia_smi_gpus() -> tuple[int, str]:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0, ""
    try:
        listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return 0, ""
    lines = [line for line in listed.stdout.splitlines() if line.startswith("GPU ")]
    if not lines:
        return 0, ""
    # "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-...)"
    return len(lines), _offer_name(lines[0].split(":", 1)[1].split("(")[0])


def _offer_name(name: str) -> str:
    """A device name as the chain's offer takes it: [A-Za-z0-9 ._-], 64 characters."""
    kept = "".join(c for c in name.strip() if c.isalnum() or c in " ._-")
    return kept[:64] or "gpu"
