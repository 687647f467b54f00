"""The child process a job runs in: `python -m cloudchain.agents.workload.child JOB_DIR
--cpu=S --address-space=B --file-size=B`.

Its first act is to put itself under those limits (RLIMIT_CPU, RLIMIT_AS but for a
network that may run on a GPU, RLIMIT_FSIZE, no core files) and to ask for SIGKILL when
the daemon thread that started it dies (PR_SET_PDEATHSIG), before it imports anything
of the job's: sandbox.py says why.

JOB_DIR holds `manifest.json` and `inputs/<name>` (each dataset by its manifest name,
and `model` for infer), and for a DP job on a sealed dataset `noise.seed`, the secret
seed of its noise; the child writes `out/` and logs to stderr, which the parent
keeps as the job's log. It runs under the limits the parent set (sandbox.py) and
exits 0 when the job is done, EXIT_REFUSED when the inputs do not fit the manifest
(out/error.txt says why), EXIT_MEMORY when it ran out of the memory it was given.
"""

from __future__ import annotations

import ctypes
import json
import resource
import signal
import sys
import time
from pathlib import Path

EXIT_REFUSED = 3
EXIT_MEMORY = 4
ERROR_FILE = "error.txt"
NOISE_SEED_FILE = "noise.seed"  # the secret seed of a DP job's noise, if it has one


PR_SET_PDEATHSIG = 1


def limit_self(options: list[str], address_space: bool) -> None:
    """The limits on this process. Without `address_space` there is no RLIMIT_AS: CUDA
    reserves far more address space than any job's memory at start-up, so a job that
    may run on a GPU is held to its memory by the parent's watch of its resident set
    alone (sandbox.py)."""
    values = dict(option.removeprefix("--").split("=", 1) for option in options)
    cpu = int(values["cpu"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    if address_space:
        space = int(values["address-space"])
        resource.setrlimit(resource.RLIMIT_AS, (space, space))
    size = int(values["file-size"])
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def may_use_gpu(manifest_bytes: bytes) -> bool:
    """Whether the manifest (checked again below, in full) lets a network use a GPU."""
    try:
        model = json.loads(manifest_bytes).get("model") or {}
    except (ValueError, AttributeError):
        return False
    return isinstance(model, dict) and model.get("device") == "gpu_if_available"


def main(argv: list[str]) -> int:
    job = Path(argv[0])
    limit_self(argv[1:], address_space=not may_use_gpu((job / "manifest.json").read_bytes()))
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:8.3f}s] {message}", file=sys.stderr, flush=True)

    out = job / "out"
    out.mkdir(exist_ok=True)
    try:
        from cloudchain.agents.workload.datasets import DatasetError
        from cloudchain.agents.workload.jobs import run_job
        from cloudchain.agents.workload.sklearn_runner import ModelFileError
        from cloudchain.agents.workload.torch_runner import TorchJobError
        from cloudchain.workload.manifest import ManifestError, load_manifest

        manifest = load_manifest((job / "manifest.json").read_bytes(), canonical=True)
        inputs = {path.name: path for path in sorted((job / "inputs").iterdir())}
        log(f"{manifest.kind} job, seed {manifest.seed}, inputs {', '.join(inputs)}")
        refusals: tuple[type[Exception], ...] = (
            DatasetError,
            ManifestError,
            ModelFileError,
            TorchJobError,
        )
        seed_file = job / NOISE_SEED_FILE
        noise_seed = int(seed_file.read_text()) if seed_file.exists() else None
        try:
            run_job(manifest, inputs, out, log, noise_seed)
        except refusals as exc:
            log(f"refused: {exc}")
            (out / ERROR_FILE).write_text(str(exc))
            return EXIT_REFUSED
    except MemoryError:
        log("out of memory")
        return EXIT_MEMORY
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
