"""An oracle's verdict on a completed task: was it served as its manifest asked, and how
many units did it take. Pure: what was fetched and what was re-run come in as records.

Checked always (a provider's blobs are a stranger's word):
- the result index parses (result.parse_result_index), names this task and the task's
  manifest, and `complete`'s output is exactly [index, *its files by name, its log];
- every file it names was fetched, and metrics.json's `outputs` hashes are those of the
  files fetched (a provider cannot report one model and ship another).

Re-run (a sample of tasks, every task whose index reports a failure, and every disputed
task), the oracle's own run must agree:
- the same status: both done, or both stopped by the same limit of the manifest (a job
  the requester sized too small is served when it is stopped where the manifest says);
- when done, the same metric, within the manifest's `evaluate.tolerance`; with tolerance
  0 (the default), or no metric at all (preprocess), the output files' SHA-256 must
  be equal too: the bytes are the
  promise (workload/determinism: fixed seeds, one thread, deterministic algorithms,
  canonical serialisation). A positive tolerance is for what a library cannot promise
  bit for bit (a GPU's float reductions, another BLAS): then only the metric is
  compared;
- the units claimed at most `UNITS_SLACK_BPS` of the oracle's own plus one (CPU time
  differs between machines); a claim past that is padding, noted in the verdict's
  reason: the work was done, and it is paid by the oracles' measure.

The units attested are the oracle's own measure when it re-ran the job, else the claim
(bounded by what `complete` reported); the chain pays the median over the quorum, and
never more than `complete` claimed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cloudchain.workload.result import ResultError, ResultIndex, parse_result_index

DONE = "done"
METRICS_FILE = "metrics.json"
UNITS_SLACK_BPS = 15_000  # the claim may be 1.5x the oracle's own measure, plus one unit
BPS = 10_000


@dataclass(frozen=True)
class Claim:
    """What the provider published: the index's bytes and the files it names, fetched
    (None: the blob could not be fetched)."""

    task: int
    manifest: str
    output: tuple[str, ...]  # complete's output, from the chain
    units_used: int  # complete's units, from the chain
    index_bytes: bytes | None
    files: Mapping[str, bytes | None]


@dataclass(frozen=True)
class Rerun:
    """The oracle's own run of the same job."""

    status: str
    units: int
    files: Mapping[str, bytes]  # out/* by name


@dataclass(frozen=True)
class Verdict:
    completed: bool
    units: int
    reason: str  # why not completed, or "" / what was checked


def index_of(claim: Claim) -> ResultIndex:
    """The claim's index, checked against the chain's record (ResultError if not)."""
    if claim.index_bytes is None:
        raise ResultError(f"the result index {claim.output[0]} cannot be fetched")
    index = parse_result_index(claim.index_bytes)
    if index.task != claim.task:
        raise ResultError(f"the index is task {index.task}'s, not task {claim.task}'s")
    if index.manifest != claim.manifest:
        raise ResultError(f"the index names manifest {index.manifest}, not {claim.manifest}")
    if (claim.output[0], *index.output) != claim.output:
        raise ResultError("complete's output is not [index, *files, log] of the index")
    return index


def needs_rerun(index: ResultIndex) -> bool:
    """A failure is never taken on a provider's word."""
    return index.status != DONE


def claim_metrics(claim: Claim) -> dict[str, Any] | None:
    """The claim's metrics.json, decoded (None: not there, or not a JSON object)."""
    return _metrics(claim.files)


def _metrics(files: Mapping[str, bytes | None]) -> dict[str, Any] | None:
    data = files.get(METRICS_FILE)
    if data is None:
        return None
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _hashes(files: Mapping[str, bytes | None]) -> dict[str, str]:
    return {
        name: hashlib.sha256(data).hexdigest()
        for name, data in sorted(files.items())
        if name != METRICS_FILE and data is not None
    }


def judge(claim: Claim, rerun: Rerun | None, tolerance: float) -> Verdict:
    """The verdict on `claim`, from the oracle's own `rerun` when there is one."""
    try:
        index = index_of(claim)
    except ResultError as exc:
        return Verdict(False, 0, str(exc))
    missing = sorted(name for name, data in claim.files.items() if data is None)
    if missing or set(claim.files) != set(index.files):
        return Verdict(False, 0, f"outputs cannot be fetched: {', '.join(missing) or 'index'}")
    metrics = _metrics(claim.files)
    if index.status == DONE:
        if metrics is None:
            return Verdict(False, 0, "metrics.json is missing or not JSON")
        if metrics.get("outputs") != _hashes(claim.files):
            return Verdict(False, 0, "metrics.json's output hashes are not the files'")
    claimed = min(index.units, claim.units_used)
    if rerun is None:
        if index.status != DONE:
            return Verdict(False, 0, f"the job failed ({index.status}) and was not re-run")
        return Verdict(True, claimed, "outputs fetched and consistent (not re-run)")
    if rerun.status != index.status:
        return Verdict(
            False, 0, f"the provider reports {index.status}, the re-run ended {rerun.status}"
        )
    if index.status == DONE:
        own = _metrics(rerun.files)
        assert metrics is not None
        if own is None or own.get("metric") != metrics.get("metric"):
            return Verdict(False, 0, "the re-run's metric is not the one reported")
        if set(rerun.files) != set(claim.files):
            return Verdict(False, 0, "the files shipped are not the ones the job writes")
        if "metric" in own:
            reported, measured = metrics.get("value"), own.get("value")
            if not _numbers(reported, measured) or abs(reported - measured) > tolerance:
                return Verdict(
                    False, 0, f"{own['metric']} reported {reported}, the re-run measured {measured}"
                )
        # With no tolerance, or no metric to compare (preprocess), the bytes must agree.
        if (tolerance == 0 or "metric" not in own) and _hashes(claim.files) != _hashes(
            dict(rerun.files)
        ):
            return Verdict(False, 0, "the output bytes differ from the re-run's")
    if claimed * BPS > rerun.units * UNITS_SLACK_BPS + BPS:
        return Verdict(True, rerun.units, f"{claimed} units claimed, the re-run took {rerun.units}")
    return Verdict(True, rerun.units, "re-run agrees")


def _numbers(*values: Any) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
