"""`cloudchain bench mempool` on a small load: both mempools measured, and what differs."""

from cloudchain.bench.mempool import format_report, run_mempool_bench
from cloudchain.cli.main import main


def test_mempool_bench_measures_both_and_only_the_old_one_verifies_again():
    report = run_mempool_bench(pool=100, arrivals=40, block=100, rounds=1, profile=True)
    before, after = report.measures["before"], report.measures["after"]
    assert before.full_admitted == 0 < after.full_admitted < 40  # evicts only for more
    # The old one verifies every arrival; today's only those it admits (signature last).
    assert before.full_signatures == 40 and after.full_signatures == after.full_admitted
    assert before.signatures_verified == before.recheck_calls == 100  # the rest, re-verified
    assert after.signatures_verified == 0 < after.recheck_calls <= 100
    assert min(before.fill_txs_per_s, after.full_txs_per_s, after.recheck_ms) > 0
    text = format_report(report)
    assert "signatures verified" in text and "ncalls" in text


def test_mempool_bench_refuses_bad_options(capsys):
    assert main(["bench", "mempool", "--rounds", "0"]) == 2
    assert main(["bench", "mempool", "--block", "20000"]) == 2
    assert "error: --block must be at most 10000" in capsys.readouterr().err
