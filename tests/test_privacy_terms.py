"""A task's privacy terms against its manifest (workload/privacy_terms.py), and an
oracle's verdict on them (agents/oracle/privacy_verdict.py): pure, no data needed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cloudchain.agents.oracle.privacy_verdict import privacy_violation
from cloudchain.workload.dp_plan import planned_micro_epsilon
from cloudchain.workload.manifest import parse_manifest
from cloudchain.workload.privacy_terms import broken_terms
from tests.helpers.workloads import MLP, classification_csv, train_manifest

DATA = classification_csv(rows=40)
DP = {"clip_norm": 1.0, "noise_multiplier": 1.1, "delta": 1e-6, "target_epsilon": 8.0, "rows": 30}
DELTA_E12 = 1_000_000  # δ = 1e-6


def manifest(dp: dict[str, Any] | None = DP, sealed: int | None = 4) -> Any:
    obj = train_manifest(DATA, model=json.loads(json.dumps(MLP)))
    if dp is not None:
        obj["dp"] = dp
    if sealed is not None:
        obj["data"]["train"]["sealed"] = sealed
    return parse_manifest(obj)


def test_terms_that_agree_pass() -> None:
    spent = planned_micro_epsilon(manifest())
    assert broken_terms(manifest(), 4, spent, DELTA_E12) is None
    assert broken_terms(manifest(), 4, spent + 1, DELTA_E12) is None  # over-declared: fine
    assert broken_terms(manifest(dp=None), 4, None, DELTA_E12) is None  # unbudgeted, no DP
    assert broken_terms(manifest(dp=None, sealed=None), None, None, None) is None


@pytest.mark.parametrize(
    ("built", "dataset", "declared", "said"),
    [
        (dict(), 4, "spent - 1", "under-declared"),
        (dict(), 5, "spent", "names sealed dataset 5, the manifest reads 4"),
        (dict(sealed=None), 4, "spent", "the manifest reads None"),
        (dict(dp=None), 4, 1_000_000, "trains without DP"),
        (dict(dp={**DP, "delta": 1e-5}), 4, "spent", "larger than the dataset's"),
    ],
)
def test_terms_that_disagree_are_named(built, dataset, declared, said) -> None:
    m = manifest(**built)
    spent = planned_micro_epsilon(manifest())
    declared = {"spent": spent, "spent - 1": spent - 1}.get(declared, declared)
    broken = broken_terms(m, dataset, declared, DELTA_E12)
    assert broken is not None and said in broken


def task(**fields: Any) -> dict[str, Any]:
    spent = planned_micro_epsilon(manifest())
    return {"id": 9, "provider": "p" * 40, "dataset": 4, "dp_micro_eps": spent, **fields}


OPENED = [{"dataset": 4, "grantee": "p" * 40, "task": 9, "key_version": 1, "height": 20}]
METRICS = {"metric": "accuracy", "value": 0.9, "privacy": {"epsilon": 1.0, "delta": 1e-6}}


def test_an_oracle_passes_a_task_opened_under_a_grant_within_its_terms() -> None:
    epsilon = planned_micro_epsilon(manifest()) / 1e6
    metrics = {**METRICS, "privacy": {"epsilon": epsilon, "delta": 1e-6}}
    assert privacy_violation(task(), manifest(), DELTA_E12, OPENED, metrics) is None
    assert privacy_violation({"id": 1, "provider": "x"}, None, None, [], None) is None


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        (dict(openings=[]), "never opened dataset 4 for task 9"),
        (dict(openings=[{**OPENED[0], "task": 8}]), "never opened"),
        (dict(openings=[{**OPENED[0], "grantee": "q" * 40}]), "never opened"),
        (dict(task=task(dp_micro_eps=1)), "under-declared"),
        (dict(metrics={"metric": "accuracy", "value": 0.9}), "reports no ε"),
        (dict(metrics={**METRICS, "privacy": {"epsilon": 99.0}}), "reports ε 99"),
        (dict(manifest=None), "cannot be read"),
    ],
)
def test_an_oracle_names_each_broken_privacy_term(changes, said) -> None:
    args = {
        "task": task(),
        "manifest": manifest(),
        "delta_e12": DELTA_E12,
        "openings": OPENED,
        "metrics": METRICS,
        **changes,
    }
    found = privacy_violation(**args)
    assert found is not None and said in found, found
