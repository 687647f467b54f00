"""`cloudchain bench consensus`: its arithmetic (pacing, percentiles, block intervals, the
signature ceiling), its outputs' shape, its refusal of bad options, the py-spy summary,
and one small run on real node processes, all of which are gone afterwards."""

from __future__ import annotations

import csv
import json
from collections import Counter

import pytest

from cloudchain.bench import consensus as consensus_bench
from cloudchain.bench import profiling
from cloudchain.bench.consensus import (
    ConsensusBenchConfig,
    ConsensusBenchResult,
    Generator,
    Step,
    run_consensus_bench,
)
from cloudchain.bench.consensus_report import CSV_FIELDS, format_table, to_json, write_outputs
from cloudchain.bench.consensus_stats import (
    ArgumentError,
    Ceiling,
    Intervals,
    batches,
    block_intervals,
    due_count,
    latency_summary,
    parse_rates,
    parse_requesters,
    percentile,
    send_offsets_s,
)
from cloudchain.cli.main import main

# --- pacing ----------------------------------------------------------------------------


def test_the_open_loop_schedule_is_one_transaction_every_one_over_rate_seconds():
    assert send_offsets_s(4, 5) == [0.0, 0.25, 0.5, 0.75, 1.0]
    # Due: the first at once, each next one at exactly its offset, never more than all.
    assert due_count(4, -0.1, 5) == 0
    assert due_count(4, 0.0, 5) == 1
    assert due_count(4, 0.2499, 5) == 1
    assert due_count(4, 0.25, 5) == 2
    assert due_count(1000, 0.3, 10_000) == 301  # 0 ms, 1 ms, ..., 300 ms
    assert due_count(4, 100.0, 5) == 5
    # Ticks of any length send the same transactions in all: only when they go changes.
    ticks = [due_count(250, t / 50, 1000) for t in range(250)]
    assert ticks == sorted(ticks) and ticks[-1] == 1000


def test_transactions_go_round_robin_over_the_nodes_in_batches_of_at_most_the_limit():
    assert batches(range(7), 3, 10) == [(0, [0, 3, 6]), (1, [1, 4]), (2, [2, 5])]
    assert batches(range(25), 1, 10) == [
        (0, list(range(10))),
        (0, list(range(10, 20))),
        (0, list(range(20, 25))),
    ]
    sent = [i for _, group in batches(range(100, 160), 4, 10) for i in group]
    assert sorted(sent) == list(range(100, 160))  # every one once
    assert all(len(group) <= 10 for _, group in batches(range(1000), 4, 10))
    assert all(i % 4 == node for node, group in batches(range(1000), 4, 10) for i in group)


# --- statistics ------------------------------------------------------------------------


def test_percentiles_interpolate_between_closest_ranks():
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 0) == 1.0 and percentile(values, 100) == 100.0
    assert percentile([3.0], 95) == 3.0
    assert percentile([], 50) is None
    summary = latency_summary([0.5, 1.0, 1.5, 2.0, 10.0])
    assert (summary.count, summary.p50_s, summary.max_s) == (5, 1.5, 10.0)
    assert summary.p99_s == pytest.approx(9.68)
    empty = latency_summary([])
    assert (empty.count, empty.p50_s, empty.p95_s, empty.p99_s) == (0, None, None, None)


def test_block_intervals_come_from_consecutive_header_times():
    second = 10**9
    intervals = block_intervals([0, 1 * second, 3 * second, 4 * second])  # gaps 1, 2, 1
    assert intervals == Intervals(4, pytest.approx(4 / 3), 1.0)
    assert block_intervals([5 * second]) == Intervals(1, None, None)
    rounds = block_intervals([0, second, 3 * second], [0, 2, 1])
    assert (rounds.late_heights, rounds.max_rounds) == (2, 3)
    assert block_intervals([]) == Intervals(0, None, None)


def test_the_ceiling_is_verifications_times_cores_over_validators():
    ceiling = Ceiling(9_300, cores=2, validators=4)
    assert ceiling.tx_per_s == 4_650
    assert ceiling.ratio(415) == pytest.approx(415 / 4_650)
    assert Ceiling(0, 2, 4).ratio(100) == 0.0


def test_the_measured_ceiling_is_of_this_machine():
    ceiling = consensus_bench.measure_ceiling(4, seconds=0.05)
    assert ceiling.verifications_per_s_one_core > 100
    assert ceiling.validators == 4 and ceiling.cores >= 1


# --- options ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        ("250,x", "--rates: 'x' is not a whole number"),
        ("0", "--rates: 0 tx/s is not from 1 to"),
        ("250,250", "names a value twice"),
        ("1.5", "'1.5' is not a whole number"),
    ],
)
def test_bad_rates_are_refused(text, message):
    with pytest.raises(ArgumentError, match=message):
        parse_rates(text)


def test_lists_parse_and_an_empty_one_skips_its_sweep():
    assert parse_rates("250,500,1000") == (250, 500, 1000)
    assert parse_requesters("10, 50") == (10, 50)
    assert parse_requesters("") == ()
    with pytest.raises(ArgumentError, match="--requesters: -3 requesters"):
        parse_requesters("-3")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--rates", "fast"], "--rates: 'fast' is not a whole number"),
        (["--requesters", "10,10"], "--requesters: 10,10 names a value twice"),
        (["--validators", "0"], "--validators must be from 1 to 16"),
        (["--duration", "0"], "--duration must be from 1 to 3600 seconds"),
        (["--warmup", "-1"], "--warmup must be from 0 to 3600 seconds"),
        (["--rates", "", "--requesters", ""], "nothing to measure"),
        (["--soak", "-5"], "--soak must be from 0 to 3600 seconds"),
        (["--soak", "10", "--soak-rate", "-1"], "--soak-rate must be from 0 to 100000"),
        (["--soak", "10", "--rates", ""], "--soak runs at --soak-rate, or at the rate sweep"),
    ],
)
def test_the_command_refuses_bad_options_before_starting_anything(args, message, capsys):
    assert main(["bench", "consensus", *args]) == 2
    assert message in capsys.readouterr().err


def test_profile_without_py_spy_exits_2_naming_the_install(monkeypatch, capsys):
    monkeypatch.setattr(profiling, "py_spy_path", lambda: None)
    assert main(["bench", "consensus", "--profile"]) == 2
    assert "pip install -e '.[bench]'" in capsys.readouterr().err
    with pytest.raises(profiling.ProfileError, match="not installed"):
        profiling.check_py_spy(1)


def test_an_out_directory_that_holds_files_is_refused(tmp_path, capsys):
    (tmp_path / "old.json").write_text("{}")
    assert main(["bench", "consensus", "--out", str(tmp_path)]) == 2
    assert "is not empty" in capsys.readouterr().err


# --- outputs ---------------------------------------------------------------------------


def _step(sweep: str, load: int, committed_tx_s: float, p50: float | None) -> Step:
    latency = latency_summary([] if p50 is None else [p50, p50 * 2])
    return Step(
        sweep=sweep,
        load=load,
        duration_s=20.0,
        sent=load * 20,
        admitted=load * 20 - 3,
        committed=load * 20 - 5,
        committed_tx_s=committed_tx_s,
        latency=latency,
        intervals=Intervals(15, 1.3, 1.2),
        refusals={"20 (mempool)": 3} if sweep == "rate" else {},
        errors=0,
        timeouts=2,
        generator=Generator(load * 0.99, 0.01, 0.4, False, ""),
        market={"submit": 40, "settle": 12} if sweep == "requesters" else {},
        requester_tx_s=committed_tx_s / 2 if sweep == "requesters" else 0.0,
    )


def synthetic_result() -> ConsensusBenchResult:
    config = ConsensusBenchConfig(rates=(250, 500), requesters=(10, 50))
    steps = (
        _step("rate", 250, 231.0, 1.3),
        _step("rate", 500, 415.0, 3.5),
        _step("requesters", 10, 8.0, 1.1),
        _step("requesters", 50, 40.0, None),
    )
    return ConsensusBenchResult(config, steps, Ceiling(9_300, 2, 4), {"cores": 2})


def test_json_csv_and_chart_have_every_step(tmp_path):
    result = synthetic_result()
    paths = write_outputs(result, tmp_path / "out")
    assert [p.name for p in paths] == ["consensus.json", "consensus.csv", "consensus.png"]
    document = json.loads(paths[0].read_text())
    assert document == json.loads(json.dumps(to_json(result)))
    assert [(s["sweep"], s["load"]) for s in document["steps"]] == [
        ("rate", 250),
        ("rate", 500),
        ("requesters", 10),
        ("requesters", 50),
    ]
    assert document["ceiling"]["tx_per_s"] == 4_650
    assert document["ceiling"]["peak_committed_tx_s"] == 415.0
    assert document["ceiling"]["peak_over_ceiling"] == pytest.approx(415 / 4_650)
    assert document["steps"][0]["latency"]["p50_s"] == pytest.approx(1.95)
    with open(paths[1]) as stream:
        reader = csv.DictReader(stream)
        rows = list(reader)
    assert tuple(reader.fieldnames or ()) == CSV_FIELDS
    assert [(r["sweep"], r["load"], r["committed_tx_s"]) for r in rows] == [
        ("rate", "250", "231.0"),
        ("rate", "500", "415.0"),
        ("requesters", "10", "8.0"),
        ("requesters", "50", "40.0"),
    ]
    assert rows[0]["refusals"] == "20 (mempool): 3" and rows[3]["p50_s"] == ""
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_table_names_both_sweeps_the_ceiling_and_the_ratio():
    table = format_table(synthetic_result())
    assert "(a) token transfers offered open loop" in table
    assert "(b) closed-loop requesters (the paper's Fig. 3)" in table
    assert "= 4,650 tx/s" in table
    assert "committed peak 415 tx/s = 8.9% of the ceiling" in table
    assert "rate 250: 20 (mempool) x3" in table


# --- the profile's summary -------------------------------------------------------------


def test_folded_stacks_summarise_by_own_and_total_samples(tmp_path):
    text = (
        "run (node.py:10);check (app.py:5);verify (crypto.py:63) 60\n"
        "run (node.py:10);check (app.py:7);encode (codec.py:20) 30\n"
        "run (node.py:11);write (kv.py:3) 10\n"
        "garbage line\n"
    )
    stacks = profiling.parse_folded(text)
    assert sum(stacks.values()) == 100
    samples, own, total = profiling.summarise(stacks)
    assert samples == 100
    assert [(t.function, t.own_samples) for t in own] == [
        ("verify (crypto.py)", 60),
        ("encode (codec.py)", 30),
        ("write (kv.py)", 10),
    ]
    by_total = {t.function: t.total_samples for t in total}
    assert by_total["run (node.py)"] == 100  # its two lines count as one function
    assert by_total["check (app.py)"] == 90
    raw = tmp_path / "profile-node0.txt"
    raw.write_text(text)
    profile = profiling.write_profile("node0", raw, tmp_path)
    assert profile.files == ("profile-node0.txt", "profile-node0-top.txt", "profile-node0.svg")
    assert (tmp_path / "profile-node0.svg").read_text().lstrip().startswith("<?xml")
    assert "60.0% own" in (tmp_path / "profile-node0-top.txt").read_text()
    assert profiling.summarise(Counter())[0] == 0


# --- one small run on real processes ---------------------------------------------------


def test_a_small_run_commits_writes_its_files_and_leaves_no_node_running(tmp_path, monkeypatch):
    started = []

    def recording_start(*args, **kwargs):
        processes = start(*args, **kwargs)
        started.extend(processes)
        return processes

    start = consensus_bench.start_node_processes
    monkeypatch.setattr(consensus_bench, "start_node_processes", recording_start)
    # Ten soak keys, so that each sends several nonces within the soak's few seconds.
    monkeypatch.setattr(consensus_bench, "soak_keys", lambda rate, nodes: 10)
    monkeypatch.setattr(consensus_bench, "RSS_SAMPLE_S", 0.5)
    config = ConsensusBenchConfig(
        validators=1,
        rates=(40,),
        requesters=(2,),
        duration_s=2.0,
        warmup_s=0.5,
        drain_s=15.0,
        soak_s=3.0,
        soak_rate=20,
    )
    lines: list[str] = []
    result = run_consensus_bench(config, tmp_path / "out", say=lines.append)

    assert len(started) == 1 and all(p.poll() is not None for p in started)
    (rate,) = result.sweep("rate")
    (closed,) = result.sweep("requesters")
    assert rate.committed_tx_s > 0 and rate.committed > 0 and rate.latency.p50_s is not None
    assert rate.generator.send_tx_s > 0
    assert closed.committed_tx_s > 0 and closed.committed > 0
    assert closed.market.get("submit", 0) > 0  # market tasks went through the chain
    assert result.ceiling.tx_per_s > 0
    assert any("rate 40 tx/s: committed" in line for line in lines)

    paths = write_outputs(result, tmp_path / "out")
    document = json.loads(paths[0].read_text())
    assert {s["sweep"] for s in document["steps"]} == {"rate", "requesters"}
    with open(paths[1]) as stream:
        assert len(list(csv.DictReader(stream))) == 2
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    soak = result.soak
    assert soak is not None and soak.rate == 20 and soak.sent > 0
    assert soak.committed_tx_s > 0 and soak.errors == 0
    (node,) = soak.rss
    assert node.samples and all(mib > 10 for _, mib in node.samples)  # a Python node's RSS
    assert node.growth(soak.warmup_s) is not None
    assert document["soak"]["worst_growth_mib"] == soak.worst_growth_mib
    with open(paths[3]) as stream:
        rows = list(csv.DictReader(stream))
    assert paths[3].name == "consensus-rss.csv" and len(rows) == len(node.samples)
    assert float(rows[0]["node0_rss_mib"]) == pytest.approx(node.samples[0][1], abs=0.1)
    table = format_table(result)
    assert "soak: 20 tx/s offered for 3 s" in table and "node0 RSS:" in table
    assert "worst growth" in table
