"""`cloudchain bench market` on a small load: every phase ran and tasks settled."""

from cloudchain.bench.market import format_report, run_market_bench


def test_market_bench_runs_every_phase_and_settles_what_was_assigned():
    report = run_market_bench(tasks=30, providers=2, idle_blocks=2)
    names = [p.name.split(" ")[0] for p in report.phases]
    assert names == ["register", "submit", "idle", "complete", "attest", "settle"]
    assert report.settled == 8  # two providers, room for four 10-unit tasks each
    assert report.waiting == 30 - 8
    assert all(p.median_block_ms > 0 for p in report.phases)
    assert "settled" in format_report(report)
