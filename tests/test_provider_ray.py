"""`--executor ray`: a job run as a Ray task yields the same output bytes as the local
process pool, for a scikit-learn and a PyTorch model.

Ray is started by the test on this machine (`ray.init()`, no dashboard; its processes
are stopped with `ray.shutdown()` whatever happens); `--ray-address` joins a cluster in
the same call, which this machine has no second host to show."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudchain.agents.executor import LocalExecutor, RayExecutor
from cloudchain.agents.workload.sandbox import prepare_job
from cloudchain.workload.manifest import canonical_bytes, parse_manifest
from tests.helpers.workloads import MLP, classification_csv, train_manifest

DATA = classification_csv()


@pytest.fixture(scope="module")
def ray_executor() -> Iterator[RayExecutor]:
    executor = RayExecutor(None)
    try:
        yield executor
    finally:
        executor.close()


@pytest.mark.parametrize("model", [None, MLP], ids=["random_forest", "torch_mlp"])
def test_ray_and_local_executors_give_the_same_bytes(
    tmp_path: Path, ray_executor: RayExecutor, model: dict | None
) -> None:
    manifest = parse_manifest(
        train_manifest(DATA, model=json.loads(json.dumps(model)) if model else None)
    )
    outputs = {}
    local = LocalExecutor(1)
    try:
        for executor in (local, ray_executor):
            job = tmp_path / executor.name
            prepare_job(job, canonical_bytes(manifest), {"train": DATA})
            result = asyncio.run(executor.run(job, manifest.limits))
            assert result.ok, (executor.name, (job / "job.log").read_text())
            assert "done" in (job / "job.log").read_text()
            outputs[executor.name] = {p.name: p.read_bytes() for p in (job / "out").iterdir()}
    finally:
        local.close()
    assert outputs["ray"] == outputs["local"]
    assert "metrics.json" in outputs["ray"] and len(outputs["ray"]) == 2
