import json
import re
import stat
import subprocess
import sys
from pathlib import Path

from tests.chainutil import make_genesis

ROOT = Path(__file__).resolve().parent.parent


def cloudchain(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloudchain", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_demo_commits_blocks_and_conserves_the_supply(tmp_path):
    run = cloudchain("demo", "--solo", "--blocks", "4", "--interval", "0", "--home", str(tmp_path))
    assert run.returncode == 0, run.stderr
    heights = [int(h) for h in re.findall(r"^height\s+(\d+)", run.stdout, re.M)]
    assert heights == [1, 2, 3, 4]
    totals = re.findall(r"^\s+total\s+(\d+)\s+\(supply (\d+)\)", run.stdout, re.M)
    assert totals == [("4000000", "4000000")] * 2
    hashes = re.findall(r"app hash ([0-9a-f]{16})", run.stdout)
    assert len(set(hashes)) == 5  # genesis and four blocks, each different
    assert (tmp_path / "genesis.json").exists()
    assert stat.S_IMODE((tmp_path / "keys" / "alice.json").stat().st_mode) == 0o600


def test_demo_rejects_bad_options():
    run = cloudchain("demo", "--blocks", "0")
    assert run.returncode == 2
    assert "--blocks must be >= 1" in run.stderr


def test_keys_new_and_show(tmp_path):
    path = tmp_path / "alice.json"
    created = cloudchain("keys", "new", str(path))
    assert created.returncode == 0, created.stderr
    shown = cloudchain("keys", "show", str(path))
    assert json.loads(shown.stdout) == json.loads(created.stdout)
    again = cloudchain("keys", "new", str(path))
    assert again.returncode == 1
    assert "already exists" in again.stderr
    assert json.loads(cloudchain("keys", "show", str(path)).stdout) == json.loads(created.stdout)


def test_genesis_validate(tmp_path):
    path = tmp_path / "genesis.json"
    make_genesis().save(path)
    ok = cloudchain("genesis", "validate", str(path))
    assert ok.returncode == 0
    assert ok.stdout.startswith("ok: chain cloudchain-test, 1 validators")
    path.write_text(path.read_text().replace('"power": 10', '"power": -10'))
    bad = cloudchain("genesis", "validate", str(path))
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: genesis.validators[0].power")
    assert "Traceback" not in bad.stderr


def test_no_command_prints_help():
    run = cloudchain()
    assert run.returncode == 2
    assert "demo" in run.stdout and "keys" in run.stdout


def test_bench_apply_reports_every_phase():
    run = cloudchain("bench", "apply", "--blocks", "2", "--txs-per-block", "5")
    assert run.returncode == 0, run.stderr
    for phase in ("prepare", "process", "finalize", "commit"):
        assert re.search(rf"^{phase}\s+\d+\.\d\d$", run.stdout, re.M), phase
    assert re.search(r"^throughput\s+\d+ tx/s", run.stdout, re.M)


def test_sim_consensus_runs_seeds_and_refuses_too_many_byzantine():
    ok = cloudchain("sim", "consensus", "--seeds", "3", "--validators", "4", "--byzantine", "1")
    assert ok.returncode == 0, ok.stderr
    assert "3/3 seeds, 0 with violations" in ok.stdout
    bad = cloudchain("sim", "consensus", "--validators", "4", "--byzantine", "2")
    assert bad.returncode == 2
    assert "--byzantine" in bad.stderr


def test_testnet_init_prints_each_nodes_addresses(tmp_path):
    run = cloudchain("testnet", "init", "--validators", "2", "--home", str(tmp_path / "net"))
    assert run.returncode == 0, run.stderr
    # By default node0's RPC is where every command looks for a node.
    assert re.findall(r"rpc http://127\.0\.0\.1:(\d+)", run.stdout) == ["26657", "26659"]
    free = cloudchain("testnet", "init", "--validators", "2", "--base-port", "0",
                      "--home", str(tmp_path / "free"))  # fmt: skip
    assert free.returncode == 0 and "26657" not in free.stdout
    again = cloudchain("testnet", "init", "--validators", "2", "--home", str(tmp_path / "net"))
    assert again.returncode == 2 and "not empty" in again.stderr


def test_network_demo_commits_blocks_of_transfers_on_four_validator_processes():
    run = cloudchain("demo", "--blocks", "3", "--txs-per-second", "8")
    assert run.returncode == 0, run.stderr + run.stdout
    rows = re.findall(r"^\s+(\d+)\s+(\d+)\s", run.stdout, re.M)
    assert rows and int(rows[-1][0]) >= 3
    assert sum(int(txs) for _, txs in rows) > 0  # transfers were committed
    assert "stopped every node" in run.stdout
    assert len(re.findall(r"node\d: rpc http://127\.0\.0\.1:\d+", run.stdout)) == 4
