"""A task's job, from the chain's record to a finished job directory: what the provider
runs and what an oracle re-runs, the same way, so that both meet the same limits on the
same bytes.

The task's inputs are [manifest CID, *dataset CIDs]. The manifest is fetched, checked
in its canonical form, and every blob it reads must be one the task names (so that the
chain records everything a job reads); each is fetched by CID into the job directory
(sandbox.prepare_job). The limits are the manifest's, with the CPU time capped at the
units the task bought (metering.cpu_seconds_for): a job cannot use more than was paid
for.

A sealed dataset is opened through the agent's grant (sealed_inputs.py), which the
chain records; its plaintext goes only into the job's directory (0700). A task whose
privacy terms and manifest disagree (workload/privacy_terms.py) is not run.

A task whose manifest or inputs cannot be had is not run: `fetch_job` raises
JobInputError with the reason, which the provider reports as the job's outcome
(status "refused") and an oracle finds again.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloudchain.agents.chain import BlobTooLarge, Chain, is_missing
from cloudchain.agents.executor import Executor
from cloudchain.agents.job_errors import JobInputError, NotGranted
from cloudchain.agents.workload.sandbox import ChildResult, prepare_job
from cloudchain.client import RPCClientError
from cloudchain.workload.manifest import (
    MAX_MANIFEST_BYTES,
    Limits,
    Manifest,
    ManifestError,
    TrainedModel,
    load_manifest,
)
from cloudchain.workload.metering import cpu_seconds_for

__all__ = ["Job", "JobInputError", "NotGranted", "fetch_job", "job_limits", "run_job"]
from cloudchain.workload.privacy_terms import broken_terms

if TYPE_CHECKING:
    from cloudchain.agents.sealed_inputs import SealedInputs


@dataclass(frozen=True)
class Job:
    manifest_cid: str
    manifest: Manifest
    limits: Limits
    directory: Path
    sealed: bool = False  # it read a sealed dataset: its directory holds plaintext


def job_limits(manifest: Manifest, bought_units: int) -> Limits:
    cap = cpu_seconds_for(bought_units)
    return replace(manifest.limits, cpu_seconds=min(manifest.limits.cpu_seconds, cap))


async def _fetch(chain: Chain, cid: str, dest: Path, at_most: int) -> bytes:
    """The blob's bytes, at most `at_most` of them. A blob no node has, or a larger one,
    is the task's fault (JobInputError); a network that does not answer is not, and its
    RPCClientError goes up so that the job is tried again later."""
    try:
        await chain.get_blob(cid, dest, at_most)
    except BlobTooLarge as exc:
        raise JobInputError(str(exc)) from None
    except RPCClientError as exc:
        if is_missing(exc):
            raise JobInputError(f"blob {cid} could not be fetched: {exc}") from None
        raise
    return dest.read_bytes()


async def fetch_job(
    chain: Chain,
    task: dict[str, Any],
    directory: Path,
    sealed: SealedInputs | None = None,
    *,
    check_terms: bool = True,
) -> Job:
    """The task's manifest and inputs, fetched into `directory` (made afresh); a sealed
    dataset opened with `sealed` (None: this agent opens none). Without `check_terms`
    (a provider's --fault ignore-privacy) a task's privacy terms are not checked."""
    inputs = list(task["inputs"])
    if not inputs:
        raise JobInputError(f"task {task['id']} names no manifest")
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    downloads = directory.parent / f"{directory.name}.fetch"
    shutil.rmtree(downloads, ignore_errors=True)
    downloads.mkdir()
    try:
        manifest_bytes = await _fetch(chain, inputs[0], downloads / "manifest", MAX_MANIFEST_BYTES)
        try:
            manifest = load_manifest(manifest_bytes, canonical=True)
        except ManifestError as exc:
            raise JobInputError(f"the manifest {inputs[0]} is refused: {exc}") from None
        if manifest.chain_kind != task["kind"]:
            raise JobInputError(
                f"the manifest is a {manifest.kind} job, the task a {task['kind']} one"
            )
        delta_e12 = None
        if task.get("dataset"):
            record = await chain.query("/access/dataset", str(task["dataset"]))
            delta_e12 = record["delta_e12"]
        broken = broken_terms(manifest, task.get("dataset"), task.get("dp_micro_eps"), delta_e12)
        if broken is not None and check_terms:
            raise JobInputError(f"the task's privacy terms: {broken}")
        wanted = {name: (d.cid, d.bytes) for name, d in manifest.data.items()}
        if isinstance(manifest.model, TrainedModel):
            wanted["model"] = (manifest.model.cid, manifest.model.bytes)
        named = set(inputs[1:])
        fetched: dict[str, bytes] = {}
        noise_seed = None
        for name, (cid, size) in sorted(wanted.items()):
            if cid not in named:
                raise JobInputError(f"input {name} ({cid}) is not among the task's inputs")
            entry = manifest.data.get(name)
            if entry is not None and entry.sealed is not None:
                fetched[name], noise_seed = await _open_sealed(
                    sealed, task, name, inputs[0], manifest, downloads
                )
            else:
                fetched[name] = await _fetch(chain, cid, downloads / name, size)
        prepare_job(directory, manifest_bytes, fetched, noise_seed)
    finally:
        shutil.rmtree(downloads, ignore_errors=True)
    limits = job_limits(manifest, task["units"])
    return Job(inputs[0], manifest, limits, directory, manifest.sealed is not None)


async def _open_sealed(
    sealed: SealedInputs | None,
    task: dict[str, Any],
    name: str,
    manifest_cid: str,
    manifest: Manifest,
    scratch: Path,
) -> tuple[bytes, int | None]:
    """The sealed dataset's plaintext, and for a DP job the secret seed of its noise."""
    if sealed is None:
        raise NotGranted(f"dataset {name} is sealed, and this agent opens no sealed dataset")
    opened = await sealed.open(task, name, manifest.data[name], scratch)
    if manifest.dp is None:
        return opened.plaintext, None
    from cloudchain.privacy.sealed import dp_noise_seed

    return opened.plaintext, dp_noise_seed(opened.data_key, manifest_cid)


async def run_job(executor: Executor, job: Job) -> ChildResult:
    """Run a fetched job on the executor; outputs in job.directory/out."""
    out = job.directory / "out"
    shutil.rmtree(out, ignore_errors=True)
    return await executor.run(job.directory, job.limits)
