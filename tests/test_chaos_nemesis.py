"""The nemesis (issue 19): its seeded schedule, `--faults`, and a short run of kills,
pauses, a partition and an equivocating validator against four real node processes,
which must check clean with every process stopped afterwards, even on failure."""

from __future__ import annotations

import asyncio
import itertools
import json
import os

import pytest

from cloudchain.chaos.cluster import Cluster
from cloudchain.chaos.nemesis import (
    FAULT_KINDS,
    PARTITIONS,
    FaultSpecError,
    parse_faults,
    plan,
)
from cloudchain.chaos.runner import ChaosSettings, run_chaos
from cloudchain.cli.main import main

SHORT_RUN = ("kill", "pause", "partition-halves", "equivocate")


def test_faults_parse_as_kinds_groups_and_all():
    assert parse_faults("all") == FAULT_KINDS
    assert parse_faults("partition") == PARTITIONS
    assert parse_faults("pause, kill") == ("kill", "pause")  # in the canonical order
    with pytest.raises(FaultSpecError, match="unknown fault 'nap'"):
        parse_faults("kill,nap")


def test_a_seed_gives_the_same_schedule_and_every_kind_before_any_twice():
    first = plan(5, 7, FAULT_KINDS, 600)
    assert first == plan(5, 7, FAULT_KINDS, 600)
    assert first != plan(6, 7, FAULT_KINDS, 600)
    kinds = [f.kind for f in first]
    assert sorted(kinds[: len(FAULT_KINDS)]) == sorted(FAULT_KINDS)
    f = (7 - 1) // 3
    for fault in first:
        assert len(fault.targets) <= f  # at most f nodes faulty at once
        assert fault.end_s <= 600
    for before, after in itertools.pairwise(first):
        assert after.start_s > before.end_s  # one fault at a time, a gap between
    bridge = next(f for f in first if f.kind == "partition-bridge")
    assert bridge.targets[0] not in {n for g in bridge.groups for n in g}


def test_bad_chaos_arguments_are_refused_with_a_message(capsys):
    for argv, message in (
        (["chaos", "--validators", "3"], "between 4 and"),
        (["chaos", "--duration", "5s"], "at least 20s"),
        (["chaos", "--faults", "flood"], "unknown fault 'flood'"),
    ):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
        assert message in capsys.readouterr().err


def test_a_short_nemesis_run_checks_clean_and_stops_every_process(tmp_path):
    settings = ChaosSettings(
        validators=4, duration_s=50.0, seed=11, faults=SHORT_RUN, out=tmp_path / "run"
    )
    report = asyncio.run(run_chaos(settings))
    assert report.ok, [v.describe() for v in report.result.violations]
    assert {f.kind for f in report.faults} == set(SHORT_RUN)
    assert report.result.evidence >= 1  # the equivocation was caught and committed
    transfers = sum(
        n for kind, outcome, n in report.operations if (kind, outcome) == ("transfer", "ok")
    )
    assert transfers >= 50
    written = json.loads((tmp_path / "run" / "report.json").read_text())
    assert written["ok"] and written["violation_counts"] == {}
    assert (tmp_path / "run" / "history.jsonl").stat().st_size > 0
    assert not _node_processes(tmp_path)


def test_the_cluster_stops_its_processes_when_the_run_fails(tmp_path):
    async def failing() -> None:
        cluster = await Cluster.create(tmp_path / "net", 4, seed=1, accounts=2)
        try:
            assert await cluster.wait_ready(0)
            cluster.pause(1)
            raise RuntimeError("the runner failed mid-run")
        finally:
            await cluster.close()

    with pytest.raises(RuntimeError, match="mid-run"):
        asyncio.run(failing())
    assert not _node_processes(tmp_path)


def _node_processes(under) -> list[int]:
    """Pids of live `node start` processes whose home is under `under`."""
    found = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if "node\0start" in cmdline and str(under) in cmdline and state != "Z":
            found.append(int(pid))
    return found
