"""The soak's pure parts: reading RSS, which key sends which nonce, and the summary."""

import os
import time

from cloudchain.bench.soak import (
    RssSeries,
    SoakNonces,
    read_cpu_s,
    read_rss_mib,
    series,
    soak_keys,
    soak_slot,
)


def test_rss_is_read_from_proc_and_a_gone_process_reads_none(tmp_path):
    assert read_rss_mib(os.getpid()) > 10  # this Python process
    fake = tmp_path / "4242"
    fake.mkdir()
    (fake / "status").write_text("Name:\tnode\nVmPeak:\t 900 kB\nVmRSS:\t  204800 kB\n")
    assert read_rss_mib(4242, proc=tmp_path) == 200.0
    assert read_rss_mib(4243, proc=tmp_path) is None


def test_keys_are_a_multiple_of_the_nodes_and_each_key_keeps_its_node():
    assert soak_keys(1_000, 4) == 20_000
    assert soak_keys(999, 4) % 4 == 0 and soak_keys(999, 4) >= 999 * 20
    assert soak_keys(0, 3) == 3
    keys, nodes = soak_keys(7, 4), 4
    for index in range(5 * keys):
        key, nonce = soak_slot(index, keys)
        assert index == nonce * keys + key
        assert index % nodes == key % nodes  # node i % n: always the key's node


def test_growth_is_from_after_the_warmup_to_the_end_and_a_missing_node_has_none():
    node = RssSeries(0, ((0.0, 100.0), (5.0, 150.0), (10.0, 170.0), (15.0, 160.0)))
    assert node.growth(warmup_s=3.0) == 10.0  # 160 at the end less 150 after the warm-up
    assert node.peak == 170.0 and node.last == 160.0
    assert RssSeries(1, ()).growth(3.0) is None
    rows = [(0.0, [100.0, None]), (5.0, [110.0, 90.0])]
    assert series(rows, 2) == [
        RssSeries(0, ((0.0, 100.0), (5.0, 110.0))),
        RssSeries(1, ((5.0, 90.0),)),
    ]


def test_cpu_time_is_read_from_proc_stat_and_a_gone_process_reads_none(tmp_path):
    before = read_cpu_s(os.getpid())
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:  # burn CPU until this process has used more
        pass
    assert before is not None and read_cpu_s(os.getpid()) > before
    (tmp_path / "4242").mkdir()
    ticks = os.sysconf("SC_CLK_TCK")
    # a command name with spaces and parentheses, as /proc shows them; utime, stime 14, 15
    rest = " ".join(["S"] + ["0"] * 10 + [str(3 * ticks), str(ticks)] + ["0"] * 30)
    (tmp_path / "4242" / "stat").write_text(f"4242 (node (a) b) {rest}\n")
    assert read_cpu_s(4242, proc=tmp_path) == 4.0
    assert read_cpu_s(4243, proc=tmp_path) is None


def test_a_refused_transfer_is_sent_again_and_its_keys_later_nonces_follow_on():
    nonces = SoakNonces(keys=2)
    assert [nonces.nonce_for(0, n) for n in range(3)] == [0, 1, 2]
    nonces.refused(0, 1)  # refused late: nonce 2 had gone out already
    nonces.refused(0, 2)
    assert nonces.nonce_for(0, 3) == 1, "the lowest refused nonce first"
    assert [nonces.nonce_for(0, n) for n in (4, 5)] == [2, 3]
    assert [nonces.nonce_for(1, n) for n in range(6)] == list(range(6)), "other keys go on"
