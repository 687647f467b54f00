"""Whether a task's privacy terms on chain and its manifest agree: what the provider
checks before it runs a job and an oracle after, from the manifest alone (no data).

A task that names a sealed dataset must have a manifest that reads that dataset; a DP
task (one that declares an ε on chain) a manifest with a `dp` section whose ε, computed
by the accountant from the manifest (dp_plan.py), is no more than the ε declared, at a
δ no larger than the dataset's. An ε under-declared would spend less of the dataset's
budget than the job uses: the provider refuses such a task, and an oracle that finds one
run attests a violation.
"""

from __future__ import annotations

from cloudchain.privacy.units import DELTA_SCALE
from cloudchain.workload.manifest import Manifest


def broken_terms(
    manifest: Manifest, dataset: int | None, declared_micro_eps: int | None, delta_e12: int | None
) -> str | None:
    """What is wrong with the task's privacy terms (None: nothing). `dataset` and
    `declared_micro_eps` are the task's on chain, `delta_e12` the dataset's δ."""
    from cloudchain.workload.dp_plan import planned_micro_epsilon

    sealed = manifest.sealed
    read = None if sealed is None else sealed[1].sealed
    if read != dataset:
        return f"the task names sealed dataset {dataset}, the manifest reads {read}"
    if not declared_micro_eps:
        return None
    if manifest.dp is None:
        return "the task declares an ε, and its manifest trains without DP"
    assert delta_e12 is not None
    if manifest.dp.delta * DELTA_SCALE > delta_e12:
        return f"the manifest's δ {manifest.dp.delta:g} is larger than the dataset's"
    spent = planned_micro_epsilon(manifest)
    if spent > declared_micro_eps:
        return (
            f"the job spends {spent} micro-ε by the accountant, the task declares "
            f"{declared_micro_eps}: under-declared"
        )
    return None
