"""Where a provider's jobs run: on this machine (`local`) or on a Ray cluster (`ray`).

Both take a prepared job directory (sandbox.prepare_job) and return the ChildResult with
the job's outputs in `job/out` and its log in `job/job.log`, so the rest of the daemon
does not know which ran it. The job itself is the same child process under the same
limits either way: on Ray, a task on some worker node writes the job directory there,
runs the child, and ships back its outputs as bytes. The manifest, the inputs and the
code are the same, so the output bytes are the same (tests/test_provider_ray.py).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from cloudchain.agents.workload.sandbox import LOG_FILE, ChildResult, kill_running, run_child
from cloudchain.workload.manifest import Limits


class Executor(Protocol):
    name: str

    async def run(self, job: Path, limits: Limits) -> ChildResult: ...

    def close(self) -> None: ...


class LocalExecutor:
    """Up to `workers` jobs at once, each a child process of this machine."""

    name = "local"

    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="job")

    async def run(self, job: Path, limits: Limits) -> ChildResult:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, run_child, job, limits)

    def close(self) -> None:
        """Stop now: queued jobs are dropped and running ones killed (a provider that
        restarts runs them again; an oracle looks again)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        kill_running()


def _run_remote(files: dict[str, bytes], limits: Limits) -> tuple[ChildResult, dict[str, bytes]]:
    """On a Ray worker: the job directory rebuilt from `files`, run, and its outputs
    (out/* and the log) returned by name."""
    root = Path(tempfile.mkdtemp(prefix="cloudchain-job-"))
    try:
        for name, data in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        result = run_child(root, limits)
        outputs = {f"out/{p.name}": p.read_bytes() for p in sorted((root / "out").glob("*"))}
        if (root / LOG_FILE).exists():
            outputs[LOG_FILE] = (root / LOG_FILE).read_bytes()
        return result, outputs
    finally:
        shutil.rmtree(root, ignore_errors=True)


class RayExecutor:
    """Jobs as Ray tasks: `ray.init()` on this machine, or joining the cluster at
    `address`. Each task asks Ray for one CPU; Ray spreads them over the cluster."""

    name = "ray"

    def __init__(self, address: str | None) -> None:
        import ray

        ray.init(address=address, include_dashboard=False, log_to_driver=False)
        self._ray = ray
        self._remote = ray.remote(num_cpus=1)(_run_remote)

    async def run(self, job: Path, limits: Limits) -> ChildResult:
        files = {
            str(path.relative_to(job)): path.read_bytes()
            for path in sorted(job.rglob("*"))
            if path.is_file() and path.parts[len(job.parts)] != "out"
        }
        ref: Any = self._remote.remote(files, limits)
        result, outputs = await asyncio.wrap_future(ref.future())
        (job / "out").mkdir(exist_ok=True)
        for name, data in outputs.items():
            (job / name).write_bytes(data)
        return result

    def close(self) -> None:
        self._ray.shutdown()


def make_executor(name: str, workers: int, ray_address: str | None) -> Executor:
    if name == "ray":
        return RayExecutor(ray_address)
    return LocalExecutor(workers)
