"""An oracle's check of a completed task's privacy terms: pure, from what the chain and
the provider published (the oracle need not hold a grant, nor see any data).

For a task that reads a sealed dataset:
- the dataset's audit trail must hold an opening by the task's provider for this task:
  a result made without one was made from data the chain did not let it read, or from
  none (a provider without a grant is refused by the chain; this is how an oracle sees
  that it was);
- the task's terms and its manifest must agree (workload/privacy_terms.py): the dataset
  the manifest reads is the task's, and a DP task's ε, recomputed from the manifest by
  the accountant, is no more than the ε the task declared and the chain debited;
- the ε the provider reports in metrics.json is no more than declared.

Any of these broken is a violation, attested as the task not served (the SLA and dispute
machinery then acts on it as on any other). Checked of a result the provider made; a
provider that refused the job is judged by the oracle's own attempt at it, which
refuses a task with broken terms as the provider must.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cloudchain.privacy.accountant import micro_epsilon
from cloudchain.workload.manifest import Manifest
from cloudchain.workload.privacy_terms import broken_terms


def privacy_violation(
    task: dict[str, Any],
    manifest: Manifest | None,
    delta_e12: int | None,
    openings: Sequence[dict[str, Any]],
    metrics: dict[str, Any] | None,
) -> str | None:
    """Why the task broke its privacy terms (None: it did not, or reads no sealed data)."""
    dataset = task.get("dataset")
    if not dataset:
        return None
    if manifest is None:
        return "the manifest of a task on a sealed dataset cannot be read"
    opened = [
        o for o in openings if o.get("grantee") == task["provider"] and o.get("task") == task["id"]
    ]
    if not opened:
        return (
            f"the provider never opened dataset {dataset} for task {task['id']} under a "
            "grant (no opening in its audit trail)"
        )
    broken = broken_terms(manifest, dataset, task.get("dp_micro_eps"), delta_e12)
    if broken is not None:
        return broken
    declared = task.get("dp_micro_eps")
    if not declared or metrics is None:
        return None  # not DP, or no result to report an ε (a failure is re-run)
    privacy = metrics.get("privacy")
    reported = privacy.get("epsilon") if isinstance(privacy, dict) else None
    if not isinstance(reported, int | float) or isinstance(reported, bool):
        return "a DP task's metrics.json reports no ε"
    if micro_epsilon(reported) > declared:
        return f"the provider reports ε {reported:g}, more than the {declared} micro-ε declared"
    return None
