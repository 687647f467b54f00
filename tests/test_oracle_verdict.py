"""The oracle's comparison (agents/oracle/verdict.py): what it accepts, and every way a
provider's claim is caught."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from cloudchain.agents.oracle.verdict import Claim, Rerun, judge
from cloudchain.workload.manifest import canonical_json
from cloudchain.workload.result import ResultIndex
from tests.helpers.workloads import cid_of

MANIFEST = cid_of(b"manifest")
MODEL = b"model bytes"


def metrics(value: float = 0.9, model: bytes = MODEL) -> bytes:
    return canonical_json(
        {
            "metric": "accuracy",
            "value": value,
            "outputs": {"model.skops": hashlib.sha256(model).hexdigest()},
        }
    )


def claim(
    *,
    status: str = "done",
    value: float = 0.9,
    model: bytes = MODEL,
    units: int = 4,
    task: int = 7,
    **changes: object,
) -> Claim:
    files = {"metrics.json": metrics(value, model), "model.skops": model}
    index = ResultIndex(
        task=task,
        manifest=MANIFEST,
        status=status,
        message="",
        cpu_ms=units * 1000,
        wall_ms=units * 1000,
        units=units,
        executor="local",
        files={name: cid_of(data) for name, data in files.items()},
        log=cid_of(b"log"),
    )
    index_bytes = index.to_bytes()
    made = Claim(
        task=7,
        manifest=MANIFEST,
        output=(cid_of(index_bytes), *index.output),
        units_used=units,
        index_bytes=index_bytes,
        files=files,
    )
    return dataclasses.replace(made, **changes)  # type: ignore[arg-type]


def rerun(value: float = 0.9, model: bytes = MODEL, units: int = 4, status: str = "done") -> Rerun:
    return Rerun(status, units, {"metrics.json": metrics(value, model), "model.skops": model})


def test_a_faithful_result_is_completed_at_the_oracles_own_units() -> None:
    verdict = judge(claim(units=4), rerun(units=3), tolerance=0.0)
    assert verdict.completed and verdict.units == 3 and verdict.reason == "re-run agrees"


def test_without_a_rerun_a_consistent_result_is_taken_at_its_claim() -> None:
    verdict = judge(claim(units=5), None, tolerance=0.0)
    assert verdict.completed and verdict.units == 5


def test_a_made_up_metric_is_caught_by_the_rerun() -> None:
    verdict = judge(claim(value=0.999), rerun(value=0.81), tolerance=0.0)
    assert not verdict.completed and verdict.units == 0
    assert "reported 0.999" in verdict.reason and "0.81" in verdict.reason


def test_a_metric_within_the_manifests_tolerance_passes_and_past_it_fails() -> None:
    other_bytes = b"same model, other float sums"
    assert judge(claim(value=0.90), rerun(value=0.905, model=other_bytes), 0.01).completed
    assert not judge(claim(value=0.90), rerun(value=0.92), 0.01).completed


def test_with_no_tolerance_the_output_bytes_must_be_the_reruns() -> None:
    verdict = judge(claim(value=0.9), rerun(value=0.9, model=b"another model"), 0.0)
    assert not verdict.completed and "bytes differ" in verdict.reason


def test_a_model_shipped_other_than_the_one_the_metrics_name_is_caught_unrun() -> None:
    honest = claim()
    swapped = dict(honest.files, **{"model.skops": b"swapped"})
    verdict = judge(dataclasses.replace(honest, files=swapped), None, 0.0)
    assert not verdict.completed and "hashes" in verdict.reason


def test_an_output_that_cannot_be_fetched_fails() -> None:
    honest = claim()
    verdict = judge(
        dataclasses.replace(honest, files={**honest.files, "model.skops": None}), None, 0
    )
    assert not verdict.completed and "model.skops" in verdict.reason
    verdict = judge(dataclasses.replace(honest, index_bytes=None), None, 0.0)
    assert not verdict.completed and "cannot be fetched" in verdict.reason


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"task": 8}, "task 8"),
        ({"manifest": cid_of(b"another manifest")}, "names manifest"),
        ({"index_bytes": b"{not json"}, "not JSON"),
    ],
)
def test_an_index_that_does_not_match_the_chains_record_fails(
    change: dict[str, object], said: str
) -> None:
    verdict = judge(dataclasses.replace(claim(), **change), rerun(), 0.0)  # type: ignore[arg-type]
    assert not verdict.completed and said in verdict.reason


def test_an_output_list_other_than_the_indexs_fails() -> None:
    honest = claim()
    shuffled = (honest.output[0], *reversed(honest.output[1:]))
    verdict = judge(dataclasses.replace(honest, output=shuffled), rerun(), 0.0)
    assert not verdict.completed and "complete's output" in verdict.reason


def test_a_failure_is_never_taken_on_the_providers_word() -> None:
    assert not judge(claim(status="cpu_limit"), None, 0.0).completed
    # re-run, stopped by the same limit: served as the manifest asked
    assert judge(claim(status="cpu_limit"), rerun(status="cpu_limit"), 0.0).completed
    # re-run, done: the provider's failure was its own
    verdict = judge(claim(status="crashed"), rerun(status="done"), 0.0)
    assert not verdict.completed and "crashed" in verdict.reason


def test_padded_units_are_paid_at_the_oracles_measure() -> None:
    verdict = judge(claim(units=20), rerun(units=4), 0.0)
    assert verdict.completed and verdict.units == 4 and "20 units claimed" in verdict.reason
    # within the slack (1.5x + 1): not called padding
    assert judge(claim(units=7), rerun(units=4), 0.0).reason == "re-run agrees"


def test_a_job_without_a_metric_is_judged_by_its_bytes() -> None:
    def without_metric(model: bytes) -> dict[str, bytes]:
        hashes = {"model.skops": hashlib.sha256(model).hexdigest()}
        return {"metrics.json": canonical_json({"outputs": hashes}), "model.skops": model}

    honest = claim()
    index = ResultIndex(
        task=7,
        manifest=MANIFEST,
        status="done",
        message="",
        cpu_ms=1000,
        wall_ms=1000,
        units=1,
        executor="local",
        files={name: cid_of(data) for name, data in without_metric(MODEL).items()},
        log=cid_of(b"log"),
    )
    preprocess = dataclasses.replace(
        honest,
        index_bytes=index.to_bytes(),
        output=(cid_of(index.to_bytes()), *index.output),
        units_used=1,
        files=without_metric(MODEL),
    )
    assert judge(preprocess, Rerun("done", 1, without_metric(MODEL)), 0.5).completed
    verdict = judge(preprocess, Rerun("done", 1, without_metric(b"other rows")), 0.5)
    assert not verdict.completed and "bytes differ" in verdict.reason


def test_files_other_than_the_ones_the_job_writes_fail_even_within_tolerance() -> None:
    honest = claim()
    extra = Rerun("done", 4, {**rerun().files, "model.safetensors": b"weights"})
    verdict = judge(honest, extra, tolerance=0.5)
    assert not verdict.completed and "files shipped" in verdict.reason
