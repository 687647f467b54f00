"""The deterministic simulator: many seeds, every safety and liveness check, and proof
that the harness catches a weakened core."""

import os
from functools import partial

import pytest

from cloudchain.consensus.messages import Proposal, Vote
from cloudchain.consensus.state_machine import Consensus
from cloudchain.sim.consensus_sim import SimConfig, SimViolation, run_seed

# At least 200 seeds per `make test`; CLOUDCHAIN_SIM_SEEDS raises the count for long runs.
TOTAL_SEEDS = max(200, int(os.environ.get("CLOUDCHAIN_SIM_SEEDS", "200")))
MIXES = [  # (validators, byzantine, share of the seeds)
    (4, 0, 0.25),
    (4, 1, 0.35),
    (7, 2, 0.25),
    (7, 1, 0.15),
]


@pytest.mark.parametrize("validators, byzantine, share", MIXES)
def test_every_seed_keeps_agreement_validity_liveness_and_no_double_signing(
    validators, byzantine, share
):
    config = SimConfig(validators=validators, byzantine=byzantine)
    seeds = range(int(TOTAL_SEEDS * share) + 1)
    crashes = decided = 0
    for seed in seeds:
        result = run_seed(seed, config)  # raises SimViolation, with seed and trace
        crashes += result.crashes
        decided += min(result.heights.values())
    assert decided >= len(seeds) * config.heights_after_gst  # liveness, summed
    assert crashes > 0  # the runs did crash and restart validators


def test_a_seed_replays_exactly():
    config = SimConfig(validators=4, byzantine=1)
    assert run_seed(7, config) == run_seed(7, config)


def test_silent_and_equivocating_validators_are_both_exercised():
    silent = run_seed(3, SimConfig(validators=7, byzantine=2, byzantine_mode="silent"))
    assert silent.equivocations_seen == 0
    equivocating = [
        run_seed(s, SimConfig(validators=4, byzantine=1, byzantine_mode="equivocate"))
        for s in range(10)
    ]
    assert sum(r.equivocations_seen for r in equivocating) > 0


def accept_any_signature(message: Proposal | Vote, public_key: bytes) -> bool:
    """A verifier that checks nothing: no node may ever run with it."""
    return True


def test_the_harness_finds_an_agreement_violation_in_a_weakened_core():
    """Honest cores given a verifier that checks nothing count the precommits an
    equivocating validator forges "from" the others (zero signatures); the forged
    +2/3 splits the honest validators and the simulator must notice."""
    config = SimConfig(validators=4, byzantine=1, byzantine_mode="equivocate")
    trusting = partial(Consensus, verifier=accept_any_signature)
    found = None
    for seed in range(100):
        try:
            run_seed(seed, config, trusting)
        except SimViolation as violation:
            if "agreement" in violation.kinds:
                found = violation
                break
    assert found is not None, "no agreement violation in 100 seeds"
    assert f"seed {found.seed}" in str(found) and "agreement" in str(found)
    assert found.trace  # a trace to replay it by
    run_seed(found.seed, config)  # the sound core survives the very same seed


def test_crash_recovery_through_the_real_wal_file_matches_the_model(tmp_path):
    """Every record goes through the file, its framing and its decoding: a run whose
    validators crash between effects and replay their WAL files ends exactly as the
    run with in-memory WALs."""
    crashed = 0
    for seed in range(12):
        with_files = run_seed(seed, SimConfig(byzantine=1, wal_dir=str(tmp_path)))
        assert with_files == run_seed(seed, SimConfig(byzantine=1))
        crashed += with_files.crashes
    assert crashed > 0
    assert list(tmp_path.glob("*.wal"))
