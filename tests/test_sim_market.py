"""`cloudchain simulate market` (cloudchain/sim/market/): the real application driven by
a seeded world. Determinism, conservation of the supply every day, every task final,
scenario files, and a 1-day run of the command writing every output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloudchain.cli.main import main
from cloudchain.sim.market.report import jain, summary, write_run
from cloudchain.sim.market.scenario import (
    ProviderSpec,
    ScenarioError,
    load_scenario,
    paper_scenario,
)
from cloudchain.sim.market.world import SimConfig, pick_kind, simulate

FINAL = ("settle", "resolved", "refunded:expired", "refunded:cancelled", "refunded:privacy_budget")


def small(**changes) -> SimConfig:
    base = {
        "providers": paper_scenario(3),
        "days": 2,
        "block_s": 300,
        "requesters": 12,
        "tasks_per_day": 6,
        "seed": 3,
    }
    return SimConfig(**{**base, **changes})


@pytest.fixture(scope="module")
def run():
    return simulate(small())


def test_the_same_seed_gives_the_same_bytes_and_another_seed_does_not(run, tmp_path: Path):
    again = simulate(small())
    assert again.app_hash == run.app_hash and len(run.app_hash) == 64
    first = write_run(run, tmp_path / "a")
    second = write_run(again, tmp_path / "b")
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    other = simulate(small(seed=4))
    assert other.app_hash != run.app_hash


def test_the_supply_is_genesis_plus_minted_less_burnt_every_day(run):
    assert len(run.supply_by_day) == 2 and run.minted_final > 0 and run.burnt > 0
    for _, supply, minted, burnt in run.supply_by_day:
        assert supply == run.genesis_supply + minted - burnt
    assert run.final_supply == run.genesis_supply + run.minted_final - run.burnt
    assert summary(run)["supply_conserved"]


def test_every_task_ends_in_a_final_state_on_chain(run):
    from cloudchain.sim.market.world import World

    assert len(run.tasks) > 20
    assert {record.outcome for record in run.tasks.values()} <= set(FINAL)
    assert any(record.outcome == "settle" for record in run.tasks.values())
    # and the chain says so, task by task
    world = World(small())
    world.run()
    for task in world.result.tasks:
        state = world.chain.query("/market/task", str(task))["state"]
        assert state in ("settled", "refunded", "resolved"), (task, state)


def test_a_faulty_oracle_is_outvoted_and_counted_dishonest():
    from cloudchain.sim.market.world import World

    world = World(small(days=1, faulty_oracles=1))
    result = world.run()
    assert any(r.outcome == "settle" for r in result.tasks.values())  # 2 of 3 still decide
    faulty, *honest = (
        world.chain.query("/market/account", oracle.address)["oracle"] for oracle in world.oracles
    )
    assert faulty["attestations"] > 0 and faulty["honest"] < faulty["attestations"] / 2
    for stats in honest:  # honest ones disagree only where their noisy measures straddle a term
        assert stats["honest"] > 0.8 * stats["attestations"]


def test_a_wrong_output_is_disputed_by_its_requester_and_overturned_by_the_oracles():
    """A provider whose every output is wrong: each of its verified tasks is disputed,
    the honest oracles outvote the faulty one, and the chain pays it nothing for them."""
    from cloudchain.sim.market.world import World

    wrong = ProviderSpec("wrong", "community", {"gpu": (2_000, 50), "cpu": (2_000, 10)},
                         9_990, 50, 10_000, wrong_bps=10_000)  # fmt: skip
    world = World(small(providers=(wrong,), days=1, faulty_oracles=1))
    result = world.run()
    resolved = [r for r in result.tasks.values() if r.outcome == "resolved"]
    assert resolved and result.disputes == len(resolved) == result.overturned
    assert not any(r.outcome == "settle" for r in result.tasks.values())
    for record in resolved:
        task = world.chain.query("/market/task", str(record.task))
        assert task["state"] == "resolved" and task["dispute"]["by"] == "requester"
        assert task["outcome"]["units"] == 0 and task["payout"]["provider"] == 0
    stats = world.chain.query("/market/account", world.providers[0][0].address)["provider"]
    assert stats["earned"] == 0 and stats["violated"] >= len(resolved)
    # slashed past the stake it registered with: it topped the stake up at epochs
    assert stats["slashed"] > wrong.stake_or_default()


def test_the_mix_covers_every_roll():
    assert [pick_kind(roll).name for roll in (0, 29, 30, 79, 80, 99)] == [
        "training", "training", "inference", "inference", "preprocessing", "preprocessing",
    ]  # fmt: skip


def test_jains_index():
    assert jain([5, 5, 5]) == 1.0
    assert jain([1, 0, 0, 0]) == 0.25
    assert jain([0, 0]) == 1.0


def test_the_paper_scenario_has_five_clouds_and_23_community_nodes():
    providers = paper_scenario(1)
    assert len(providers) == 28
    assert [p.name for p in providers[:5]] == ["aws", "gcp", "azure", "lambda", "hetzner"]
    assert sum(p.tier == "community" for p in providers) == 23
    assert paper_scenario(1) == paper_scenario(1) != paper_scenario(2)


def test_a_scenario_file_is_read_and_a_bad_field_named(tmp_path: Path):
    toml = tmp_path / "s.toml"
    toml.write_text(
        '[[providers]]\nname = "a"\ntier = "community"\nuptime_bps = 9900\n'
        "latency_ms = 50\nreliability_bps = 9900\noffers = { gpu = [10, 20] }\n"
    )
    (spec,) = load_scenario(toml)
    assert spec.offers == {"gpu": (10, 20)} and spec.capacity == 10
    bad = tmp_path / "s.json"
    for row, said in (
        ({"name": "a"}, "providers[0].tier: missing"),
        (
            {"name": "a", "tier": "x", "offers": {}, "uptime_bps": 1, "latency_ms": 1,
             "reliability_bps": 1},
            "providers[0].tier",
        ),
        (
            {"name": "a", "tier": "community", "offers": {"tpu": [1, 1]}, "uptime_bps": 1,
             "latency_ms": 1, "reliability_bps": 1},
            "providers[0].offers",
        ),
        (
            {"name": "a", "tier": "community", "offers": {"gpu": [1, 1]}, "uptime_bps": 20_000,
             "latency_ms": 1, "reliability_bps": 1},
            "providers[0].uptime_bps",
        ),
    ):  # fmt: skip
        bad.write_text(json.dumps({"providers": [row]}))
        with pytest.raises(ScenarioError, match=said.replace("[", r"\[").replace("]", r"\]")):
            load_scenario(bad)


def test_a_one_day_run_of_the_command_writes_every_output(tmp_path: Path, capsys):
    out = tmp_path / "out"
    argv = ["simulate", "market", "--days", "1", "--block-seconds", "300", "--requesters", "4,8",
            "--profile",
            "--tasks-per-day", "4", "--out", str(out), "--quiet",
            "--policies", "cheapest,fair+capacity"]  # fmt: skip
    assert main(argv) == 0
    names = sorted(p.name for p in out.iterdir())
    runs_named = [f"{n}-{p}" for p in ("cheapest", "fair+capacity") for n in (4, 8)]
    assert names == sorted(
        [f"{kind}-R{run}.{ext}" for run in runs_named
         for kind, ext in (("days", "csv"), ("providers", "csv"), ("providers", "json"))]
        + ["summary.json", "fig4-tokens.png", "fig5-fairness.png", "profile-top.txt"]
    )  # fmt: skip
    runs = json.loads((out / "summary.json").read_text())["runs"]
    assert [(r["label"], r["requesters"], r["capacity_reward_bps"]) for r in runs] == [
        ("cheapest", 4, 0), ("cheapest", 8, 0), ("fair+capacity", 4, 10_000),
        ("fair+capacity", 8, 10_000)
    ]  # fmt: skip
    for row in runs:
        assert 0 < row["jain_raw"] <= 1 and 0 < row["jain_normalised"] <= 1
        assert row["supply_conserved"] and row["outcomes"].get("unfinished") is None
        assert len(row["app_hash"]) == 64
        assert (
            0 < row["jain_requesters"] <= 1 and (row["fair_cost_ratio_estimate"] or 1) >= 1 - 1e-6
        )
        assert row["disputes"] >= row["disputes_overturned"] >= 0
    printed = capsys.readouterr().out
    assert "app hash" in printed and "the paper's Fig. 5" in printed
    assert (out / "fig4-tokens.png").read_bytes()[:4] == b"\x89PNG"
    assert "finalize_block" in (out / "profile-top.txt").read_text()
    assert main(["simulate", "market", "--requesters", "0", "--out", str(out)]) == 2
    assert main(["simulate", "market", "--policies", "random", "--out", str(out)]) == 2
    assert main(["simulate", "market", "--epoch-reward", "-1", "--out", str(out)]) == 2


def test_a_policy_named_twice_runs_once():
    from cloudchain.cli.simulate_commands import _policies

    assert _policies("fair,fair:1000,cheapest,cheapest", 1_000) == [(1, 1_000, 0), (0, 1_000, 0)]
    assert _policies("fair,fair:3000", 1_000) == [(1, 1_000, 0), (1, 3_000, 0)]


def test_a_policy_may_pay_for_capacity():
    from cloudchain.cli.simulate_commands import _policies

    assert _policies("cheapest+capacity,fair:500+capacity:2500", 1_000) == [
        (0, 1_000, 10_000),
        (1, 500, 2_500),
    ]
    assert _policies("cheapest+capacity:10000,cheapest+capacity", 1_000) == [(0, 1_000, 10_000)]
    for bad in ("cheapest+power", "cheapest+capacity:x", "cheapest+capacity:10001", "fair+"):
        with pytest.raises(ValueError, match="--policies"):
            _policies(bad, 1_000)
