"""`testnet up` supervising its nodes: the restart backoff, the run file, whose pid is
whose, and `up`/`status`/`stop` on four real node processes (one SIGKILLed)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudchain.cli.main import main
from cloudchain.client import Client, RPCClientError
from cloudchain.node import supervisor
from cloudchain.node.config import NodeConfig
from cloudchain.node.supervisor import (
    NodeRun,
    RestartBackoff,
    RunFile,
    RunFileError,
    is_node_process,
    is_supervisor_process,
    stop_testnet,
)
from tests.helpers.network import FAST
from tests.helpers.processes import ROOT, cli
from tests.helpers.waiting import wait_until_blocking

DEADLINE_S = 40.0  # one wait; a test's waits that pass take a few seconds each
POLL_S = 0.1

# --- the restart policy -----------------------------------------------------------------


def test_backoff_doubles_up_to_its_cap_and_starts_over_after_a_long_uptime():
    backoff = RestartBackoff()
    assert [backoff.next_delay_s(uptime_s=0.5) for _ in range(8)] == [
        1,
        2,
        4,
        8,
        16,
        30,
        30,
        30,
    ]
    assert backoff.next_delay_s(uptime_s=59.9) == 30  # not up long enough to count
    assert backoff.next_delay_s(uptime_s=60) == 1  # a minute up: healthy again
    assert backoff.next_delay_s(uptime_s=0) == 2


def test_backoff_parameters_and_its_exponent_bound():
    backoff = RestartBackoff(initial_s=0.5, max_s=3, reset_after_s=10)
    assert [backoff.next_delay_s(1) for _ in range(4)] == [0.5, 1, 2, 3]
    backoff.failures = 10_000  # no overflow however long a node keeps dying
    assert backoff.next_delay_s(1) == 3
    with pytest.raises(AssertionError):
        RestartBackoff(initial_s=5, max_s=1)


# --- the run file -----------------------------------------------------------------------


def run_file(tmp_path: Path, **changes: object) -> RunFile:
    node = NodeRun(
        name="node0",
        home=str(tmp_path / "node0"),
        pid=4242,
        running=False,
        started_at="2026-01-02T03:04:05.678Z",
        log_offset=17,
        restarts=2,
        last_exit_code=-9,
    )
    return dataclasses.replace(
        RunFile(supervisor_pid=4241, home=str(tmp_path), restart=True, nodes=(node,)), **changes
    )


def test_run_file_round_trip_and_atomic_write(tmp_path, monkeypatch):
    path = tmp_path / "testnet.json"
    written = run_file(tmp_path)
    written.write(path)
    assert RunFile.read(path) == written
    assert RunFile.read(path).node("node0").last_exit_code == -9
    assert RunFile.read(path).node("node9") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["testnet.json"]  # no temp file left

    # A write that fails half way leaves the old file whole, and no temp file.
    def broken_replace(src: str, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(supervisor.os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space"):
        run_file(tmp_path, supervisor_pid=1).write(path)
    monkeypatch.undo()
    assert RunFile.read(path) == written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["testnet.json"]


def test_a_missing_or_corrupt_run_file_is_a_clear_error(tmp_path):
    path = tmp_path / "testnet.json"
    with pytest.raises(RunFileError, match=r"no run file .*testnet\.json \(testnet up is not"):
        RunFile.read(path)
    path.write_text('{"supervisor_pid": 1, "nod')
    with pytest.raises(RunFileError, match="is not a testnet up run file"):
        RunFile.read(path)
    good = run_file(tmp_path).to_json()
    for broken, problem in [
        ({**good, "supervisor_pid": "12"}, "supervisor_pid: expected int"),
        ({**good, "supervisor_pid": True}, "supervisor_pid: expected int"),
        ({**good, "version": 99}, "version 99"),
        ({**good, "nodes": {}}, "nodes: expected a list"),
        ({**good, "nodes": [{**good["nodes"][0], "pid": None}]}, "pid: expected int"),
        ([], "expected an object"),
    ]:
        path.write_text(json.dumps(broken))
        with pytest.raises(RunFileError, match=re.escape(problem)):
            RunFile.read(path)


def test_signal_names_and_log_levels():
    assert supervisor.signal_name(-9) == " (SIGKILL)"
    assert supervisor.signal_name(137) == " (SIGKILL)"
    assert supervisor.signal_name(1) == supervisor.signal_name(None) == ""
    lines = [
        "INFO 2026-01-02T03:04:05.678Z cloudchain.node.runtime: committed height=5 txs=0",
        "WARNING 2026-01-02T03:04:05.678Z cloudchain.network: peer slow peer=ab",
        '{"level": "error", "ts": "x", "module": "m", "msg": "disk full"}',
        "INFO 2026-01-02T03:04:05.679Z cloudchain.node.runtime: committed height=6 txs=0",
    ]
    assert [supervisor.log_level(line) for line in lines] == [None, "warning", "error", None]
    assert supervisor.log_level("error: cannot open the node's data") == "error"
    assert supervisor.last_log_line(lines, ("error", "warning")) == lines[2]
    assert supervisor.last_log_line(lines, ("warning",)) == lines[1]
    assert supervisor.last_log_line(lines[:1], ("error",)) is None


def test_a_pid_counts_only_while_it_is_that_process(tmp_path):
    home = tmp_path / "node0"
    # A stand-in whose command line looks like a node's; it blocks on its stdin.
    imposter = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()", "cloudchain", "--home", str(home)],
        stdin=subprocess.PIPE,
    )
    other = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        assert is_node_process(imposter.pid, home)
        assert not is_node_process(imposter.pid, tmp_path / "node1")
        assert not is_supervisor_process(imposter.pid)
        assert not is_node_process(other.pid, home)  # a reused pid: not cloudchain
        # stop_testnet leaves alone a pid that is now some other process
        stale = run_file(tmp_path, supervisor_pid=other.pid)
        stale = dataclasses.replace(
            stale, nodes=(dataclasses.replace(stale.nodes[0], pid=other.pid, home=str(home)),)
        )
        assert [s.outcome for s in stop_testnet(stale, wait_s=1)] == ["not running"] * 2
        assert other.poll() is None
    finally:
        for process in (imposter, other):
            process.kill()
            process.wait()
    assert not is_node_process(imposter.pid, home)
    assert supervisor.process_command(0) is None


# --- the commands, without nodes --------------------------------------------------------


def test_status_and_stop_without_a_run_file_and_with_a_bad_home(tmp_path, capsys):
    home = tmp_path / "net"
    assert main(["testnet", "init", "--validators", "2", "--home", str(home)]) == 0
    capsys.readouterr()
    assert main(["testnet", "stop", "--home", str(home)]) == 0
    assert "nothing to stop: no run file" in capsys.readouterr().out
    assert main(["testnet", "status", "--home", str(home)]) == 0
    out = capsys.readouterr().out
    assert "testnet up: not running" in out
    assert len(re.findall(r"^node\d\s+-\s+not running\s+-\s+-\s+-\s+-$", out, re.M)) == 2
    assert main(["testnet", "status", "--home", str(home), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["supervisor"] is None
    assert [n["state"] for n in status["nodes"]] == ["not running"] * 2
    (home / "testnet.json").write_text("not json")
    assert main(["testnet", "status", "--home", str(home)]) == 1
    assert main(["testnet", "stop", "--home", str(home)]) == 1
    assert "is not a testnet up run file" in capsys.readouterr().err
    for command in ("up", "status", "stop"):
        assert main(["testnet", command, "--home", str(tmp_path / "nowhere")]) == 2
        assert "no node directories under" in capsys.readouterr().err


def test_up_refuses_to_start_while_the_run_file_names_a_live_testnet_up(tmp_path, capsys):
    home = tmp_path / "net"
    assert main(["testnet", "init", "--validators", "1", "--home", str(home)]) == 0
    # A stand-in for a running `testnet up` (its command line says so); it blocks on stdin.
    stand_in = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()", "cloudchain", "testnet", "up"],
        stdin=subprocess.PIPE,
    )
    try:
        run_file(home, supervisor_pid=stand_in.pid).write(home / "testnet.json")
        capsys.readouterr()
        assert main(["testnet", "up", "--home", str(home)]) == 1
        assert f"testnet up is already running under {home} (pids {stand_in.pid})" in (
            capsys.readouterr().err
        )
        assert main(["testnet", "status", "--home", str(home)]) == 0
        assert f"testnet up: pid {stand_in.pid} running, --restart on" in capsys.readouterr().out
    finally:
        stand_in.kill()
        stand_in.wait()


# --- four node processes under testnet up -----------------------------------------------


class Up:
    """`cloudchain testnet up` on a four-validator testnet, its console read by a thread."""

    def __init__(self, home: Path, *flags: str) -> None:
        self.home = home
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cloudchain", "testnet", "up", "--home", str(home), *flags],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        self.rpc = {
            h.name: f"http://{NodeConfig.load(h / 'config' / 'config.toml').rpc.listen_address}"
            for h in sorted(home.glob("node*"))
        }

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def run_file(self) -> RunFile | None:
        try:
            return RunFile.read(self.home / "testnet.json")
        except RunFileError:
            return None

    def heights(self, *names: str) -> dict[str, int | None]:
        async def all_heights() -> list[int | None]:
            return await asyncio.gather(*(_height(self.rpc[n]) for n in names))

        return dict(zip(names, asyncio.run(all_heights()), strict=True))

    def wait(self, condition, what: str) -> object:
        def checked() -> object:
            assert self.process.poll() is None, (
                f"testnet up exited {self.process.returncode}:\n{self.text}"
            )
            return condition()

        return wait_until_blocking(checked, DEADLINE_S, what=what, poll_s=POLL_S)


async def _height(url: str) -> int | None:
    try:
        status = await asyncio.wait_for(Client(url).status(), 2)
    except (RPCClientError, TimeoutError):
        return None
    return status.latest_block_height


@pytest.fixture
def testnet(tmp_path) -> Iterator[Path]:
    """A four-validator testnet made by the CLI, with FAST timeouts; afterwards, every
    process whose command line names it is killed, whatever the test left running."""
    home = tmp_path / "net"
    made = cli("testnet", "init", "--validators", "4", "--base-port", "0", "--home", str(home))
    assert made.returncode == 0, made.stderr
    for path in home.glob("node*/config/config.toml"):
        dataclasses.replace(NodeConfig.load(path), consensus=FAST).save(path)
    try:
        yield home
    finally:
        for pid in _pids_naming(home):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _pids_naming(home: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            command = supervisor.process_command(int(entry.name))
            if command and any(str(home) in word for word in command):
                pids.append(int(entry.name))
    return pids


def _stop_up(up: Up) -> None:
    if up.process.poll() is None:
        up.process.send_signal(signal.SIGTERM)
        try:
            up.process.wait(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            os.killpg(up.process.pid, signal.SIGKILL)
            up.process.wait()


NAMES = ("node0", "node1", "node2", "node3")


def test_a_killed_node_is_reported_the_others_go_on_and_stop_stops_all(testnet):
    up = Up(testnet)
    try:
        up.wait(lambda: all((h or 0) >= 2 for h in up.heights(*NAMES).values()), "all nodes commit")
        run = up.run_file()
        assert run is not None and run.supervisor_pid == up.process.pid and not run.restart
        victim = run.node("node1")
        assert victim is not None and is_node_process(victim.pid, victim.home)
        os.kill(victim.pid, signal.SIGKILL)
        survivors = ("node0", "node2", "node3")
        before = up.heights(*survivors)
        up.wait(lambda: "node1 | not restarted" in up.text, "up reports node1's death")
        assert re.search(
            r"^ node1 \| exited with code -9 \(SIGKILL\) \(pid \d+\); last", up.text, re.M
        )
        assert re.search(r"^ node1 \|   INFO .* committed height=\d+", up.text, re.M)  # its log
        assert "3 of 4 nodes running" in up.text
        up.wait(
            lambda: all((h or 0) >= before[n] + 3 for n, h in up.heights(*survivors).items()),
            "the three others commit 3 more blocks",
        )
        after = up.run_file()
        assert after is not None
        dead = after.node("node1")
        assert dead is not None and not dead.running and dead.last_exit_code == -9

        shown = cli("testnet", "status", "--home", str(testnet), "--json")
        assert shown.returncode == 0, shown.stderr
        status = json.loads(shown.stdout)
        assert status["supervisor"] == {"pid": up.process.pid, "alive": True, "restart": False}
        nodes = {n["name"]: n for n in status["nodes"]}
        assert nodes["node1"]["state"] == "not running" and not nodes["node1"]["alive"]
        assert nodes["node1"]["last_error"].startswith("exit -9 (SIGKILL)")
        for name in survivors:
            assert nodes[name]["state"] == "running" and nodes[name]["alive"]
            assert nodes[name]["height"] >= before[name] + 3
            assert nodes[name]["peers"] >= 2 and nodes[name]["catching_up"] is False
        table = cli("testnet", "status", "--home", str(testnet)).stdout
        assert re.search(r"^node1\s+\d+ dead\s+not running\s+-\s+-\s+-\s+exit -9", table, re.M)
        assert (
            len(re.findall(r"^node\d\s+\d+ alive\s+running\s+\d+\s+\d+\s+false", table, re.M)) == 3
        )

        stopped = cli("testnet", "stop", "--home", str(testnet))  # as from another shell
        assert stopped.returncode == 0, stopped.stderr
        assert f"testnet up (pid {up.process.pid}): stopped" in stopped.stdout
        assert f"node1 (pid {victim.pid}): not running" in stopped.stdout
        assert len(re.findall(r"^node[023] \(pid \d+\): stopped$", stopped.stdout, re.M)) == 3
        assert up.process.wait(timeout=DEADLINE_S) == 0
        assert not (testnet / "testnet.json").exists()
        assert not any(is_node_process(n.pid, n.home) for n in after.nodes)
        assert not is_supervisor_process(after.supervisor_pid)
        assert len(re.findall(r"stopped at height \d+", up.text)) == 3
        log = (testnet / "node0" / "node.log").read_text()
        assert "committed height=" in log and "stopped at height" in log
    finally:
        _stop_up(up)


def test_with_restart_a_killed_node_comes_back_and_catches_up(testnet):
    up = Up(testnet, "--restart")
    try:
        up.wait(lambda: all((h or 0) >= 2 for h in up.heights(*NAMES).values()), "all nodes commit")
        run = up.run_file()
        assert run is not None and run.restart
        victim = run.node("node2")
        assert victim is not None
        os.kill(victim.pid, signal.SIGKILL)

        def restarted() -> NodeRun | None:
            now = up.run_file()
            node = None if now is None else now.node("node2")
            return node if node is not None and node.restarts == 1 and node.running else None

        back = up.wait(restarted, "node2 restarted in the run file")
        assert isinstance(back, NodeRun) and back.pid != victim.pid
        assert is_node_process(back.pid, back.home) and back.last_exit_code == -9
        assert re.search(r"^ node2 \| exited with code -9 \(SIGKILL\)", up.text, re.M)
        assert re.search(r"^ node2 \| restarting in 1 s$", up.text, re.M)
        assert re.search(rf"^ node2 \| restarted: pid {back.pid} \(restart 1\)$", up.text, re.M)
        others = ("node0", "node1", "node3")
        target = max(h or 0 for h in up.heights(*others).values())
        up.wait(lambda: (up.heights("node2")["node2"] or 0) >= target, "node2 catches up")

        up.process.send_signal(signal.SIGTERM)
        assert up.process.wait(timeout=DEADLINE_S) == 0
        assert not (testnet / "testnet.json").exists()
        assert not is_node_process(back.pid, back.home)
        assert len(re.findall(r"stopped at height \d+", up.text)) == 4
        log = (testnet / "node2" / "node.log").read_text()
        assert "testnet up: start 1 ---" in log and "testnet up: start 2 ---" in log
    finally:
        _stop_up(up)
