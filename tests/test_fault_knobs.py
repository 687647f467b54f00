"""The node's side of the nemesis (issue 19): the sign state that stops a double sign
when the WAL is damaged, a full disk, and the test aids of `[debug]` (a skewed clock, a
validator that equivocates)."""

from __future__ import annotations

import dataclasses
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cloudchain.consensus.events import (
    PersistSigned,
    ProposalValue,
    Start,
    TimeoutElapsed,
    TimeoutKind,
)
from cloudchain.consensus.messages import Vote, VoteType
from cloudchain.consensus.state_machine import Consensus, TimeoutConfig
from cloudchain.ledger import Validator
from cloudchain.node.config import ConfigError, DebugConfig, NodeConfig
from cloudchain.node.runtime import Node
from cloudchain.node.sign_state import FILE_NAME, LastSigned, SignState, SignStateError
from cloudchain.node.storage_failure import STORAGE_FAILURE_EXIT, describe, is_disk_full
from cloudchain.node.testnet import init_testnet
from cloudchain.sim.consensus_sim import CHAIN_ID, SimConfig, Simulation
from tests.helpers.chain import key
from tests.helpers.network import FAST, network, wait_on_commits
from tests.helpers.processes import ROOT, fast_testnet

KEYS = [key(f"validator-{i}") for i in range(4)]
VALIDATORS = [Validator(k.public_key, 10) for k in KEYS]


# --- the sign state ----------------------------------------------------------------------


def test_the_sign_state_keeps_the_last_vote_and_the_slot_of_a_proposal(tmp_path):
    path = tmp_path / FILE_NAME
    state = SignState(path)
    assert state.last is None and state.floor(1) == ([], (0, -1, -1))
    vote = Vote.create(KEYS[0], CHAIN_ID, VoteType.PRECOMMIT, 5, 2, b"\x01" * 32, 9)
    state.record(vote)
    again = SignState(path)
    assert again.last == LastSigned((5, 2, 2), vote)
    assert again.floor(5) == ([vote], (5, 2, 2))
    assert again.floor(6) == ([], (0, -1, -1))  # height 5 is committed: nothing to keep
    # A message below the last one is not recorded (the core re-sends, never signs lower).
    again.record(Vote.create(KEYS[0], CHAIN_ID, VoteType.PREVOTE, 5, 2, b"", 9))
    assert SignState(path).last == LastSigned((5, 2, 2), vote)

    _, proposal = _a_block_and_its_proposal(height=1)
    state = SignState(tmp_path / "other.json")
    state.record(proposal)
    # A proposal is not kept whole (its block may be megabytes): the next step is the floor.
    floor = (1, proposal.round, 1)
    assert SignState(tmp_path / "other.json").floor(1) == ([], floor)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{not json",
        "[]",
        '{"height": 0, "round": 0, "step": "prevote"}',
        '{"height": 3, "round": 0, "step": "vote"}',
        '{"height": 3, "round": 0, "step": "prevote", "vote": "!!"}',
    ],
)
def test_a_damaged_sign_state_is_refused_with_a_clear_message(tmp_path, text):
    path = tmp_path / FILE_NAME
    path.write_text(text)
    with pytest.raises(SignStateError, match="damaged.*refusing to start"):
        SignState(path)


def test_a_vote_filed_under_another_slot_is_refused(tmp_path):
    vote = Vote.create(KEYS[0], CHAIN_ID, VoteType.PREVOTE, 4, 0, b"", 9)
    text = LastSigned((4, 0, 1), vote).to_json().replace('"height": 4', '"height": 5')
    (tmp_path / FILE_NAME).write_text(text)
    with pytest.raises(SignStateError, match="not of the slot"):
        SignState(tmp_path / FILE_NAME)


def test_a_node_with_a_damaged_sign_state_does_not_start(tmp_path):
    [home] = init_testnet(tmp_path / "net", 1)
    (home / "data" / FILE_NAME).write_text("{garbage")
    done = subprocess.run(
        [sys.executable, "-m", "cloudchain", "node", "start", "--home", str(home)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "damaged" in done.stderr and "refusing to start" in done.stderr


def test_a_proposer_whose_wal_lost_its_proposal_does_not_propose_again_but_votes():
    """The sign state says (height 1, round 0, proposal) was signed, the WAL has nothing:
    the core signs no second proposal there, and still prevotes (nil) at the timeout."""
    block, _ = _a_block_and_its_proposal(height=1)
    proposer = Consensus(CHAIN_ID, VALIDATORS, None, TimeoutConfig(), 1, 0).proposer(0).address
    index = next(i for i, k in enumerate(KEYS) if k.address == proposer.hex())
    floor = (1, 0, 1)
    core = Consensus(CHAIN_ID, VALIDATORS, KEYS[index], TimeoutConfig(), 1, 0, sign_floor=floor)
    core.handle(Start(), 1)
    effects = core.handle(ProposalValue(1, 0, block), 2)
    assert not any(isinstance(e, PersistSigned) for e in effects)
    assert core.counters["sign_refused"] == 1
    effects = core.handle(TimeoutElapsed(1, 0, TimeoutKind.PROPOSE), 3)
    [signed] = [e.message for e in effects if isinstance(e, PersistSigned)]
    assert signed.type is VoteType.PREVOTE and signed.is_nil


def _a_block_and_its_proposal(height: int):
    sim = Simulation(1, SimConfig(crashes=False, partitions=False))
    sim.run()
    decision = sim.honest[0].decision(height)
    return decision.proposal.block, decision.proposal


# --- a full disk -------------------------------------------------------------------------


def test_disk_full_is_told_from_other_failures():
    assert is_disk_full(OSError(28, "No space left on device"))
    assert is_disk_full(OSError(27, "File too large"))
    assert is_disk_full(RuntimeError("IO error: 000005.log: File too large"))
    wrapped = RuntimeError("WAL failed")
    wrapped.__cause__ = OSError(28, "No space left on device")
    assert is_disk_full(wrapped)
    assert not is_disk_full(OSError(5, "Input/output error"))
    # LevelDB's messages come as bytes; the log shows them as text.
    leveldb = RuntimeError(b"IO error: 000038.ldb: File too large")
    assert is_disk_full(leveldb) and describe(leveldb) == "IO error: 000038.ldb: File too large"


def test_a_node_past_its_file_size_limit_stops_cleanly_and_recovers_once_there_is_room(
    tmp_path,
):
    """RLIMIT_FSIZE stands in for a full disk (no size-limited file system without root
    mounts): the node must stop with its own exit code and a clear ERROR, not be killed
    by SIGXFSZ, and start again from what is on disk once the limit is gone."""
    [home] = fast_testnet(tmp_path / "net", 1)
    first = _run_node(home)
    _wait_for_height(first, 3)
    first.send_signal(signal.SIGTERM)
    first.wait(timeout=20)
    biggest = max(p.stat().st_size for p in (home / "data").rglob("*") if p.is_file())
    limit = biggest + 4096  # room for a few blocks more, then a write fails

    limited = _run_node(home, file_size_limit=limit)
    output = limited.communicate(timeout=120)[0]
    assert limited.returncode == STORAGE_FAILURE_EXIT, output[-2000:]
    assert "disk full: stopping the node" in output
    assert "stopped on a storage failure" in output
    failed_at = int(output.rsplit("storage failure at height ", 1)[1].split()[0])

    again = _run_node(home)
    try:
        _wait_for_height(again, failed_at + 3)
    finally:
        again.send_signal(signal.SIGTERM)
        output = again.communicate(timeout=20)[0]
    assert again.returncode == 0, output[-2000:]


def _run_node(home: Path, file_size_limit: int | None = None) -> subprocess.Popen[str]:
    def limit() -> None:
        if file_size_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.Popen(
        [sys.executable, "-m", "cloudchain", "node", "start", "--home", str(home)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=limit,  # only setrlimit, between fork and exec
    )


def _wait_for_height(process: subprocess.Popen[str], height: int, deadline_s: float = 60) -> None:
    """Read the node's log until it announces `height` committed (or fail at its exit)."""
    assert process.stdout is not None
    deadline = time.monotonic() + deadline_s
    seen = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise AssertionError(f"the node exited: {''.join(seen[-20:])}")
        seen.append(line)
        if f"committed height={height} " in line or line.rstrip().endswith(
            f"committed height={height}"
        ):
            return
    raise AssertionError(f"height {height} not committed within {deadline_s} s")


# --- the test aids -----------------------------------------------------------------------


def test_debug_settings_are_written_only_when_set_and_the_offset_may_be_negative(tmp_path):
    path = tmp_path / "config.toml"
    NodeConfig().save(path)
    assert "[debug]" not in path.read_text()
    skewed = NodeConfig(debug=DebugConfig(clock_offset_ms=-2500, byzantine_equivocate=True))
    skewed.save(path)
    assert "[debug]" in path.read_text() and NodeConfig.load(path) == skewed
    path.write_text("[consensus]\ntimeout_commit_ms = -1\n")
    with pytest.raises(ConfigError, match="must not be negative"):
        NodeConfig.load(path)


def test_a_clock_offset_moves_the_nodes_consensus_clock(tmp_path):
    [home] = init_testnet(tmp_path / "net", 1)
    config = NodeConfig.load(home / "config" / "config.toml")
    node = Node(home, dataclasses.replace(config, debug=DebugConfig(clock_offset_ms=-60_000)))
    try:
        skew_s = (time.time_ns() - node.now_ns()) / 1e9
    finally:
        node.store.close()
    assert 59 < skew_s < 61


async def test_an_equivocating_validator_is_caught_and_its_evidence_committed(tmp_path):
    """node3 runs with byzantine_equivocate: the honest nodes see two prevotes of its key
    at one height and round, and commit the evidence; the chain goes on."""
    async with network(tmp_path, running=3) as (homes, nodes):
        config = NodeConfig.load(homes[3] / "config" / "config.toml")
        byzantine = Node(
            homes[3],
            dataclasses.replace(
                config, consensus=FAST, debug=DebugConfig(byzantine_equivocate=True)
            ),
        )
        nodes.append(byzantine)
        await byzantine.start()
        address = bytes.fromhex(byzantine.key.address)

        def caught() -> bool:
            return all(
                any(e.validator_address == address for e in _committed_evidence(n))
                for n in nodes[:3]
            )

        await wait_on_commits(nodes, caught, what="node3's double vote committed")
        for node in nodes[:3]:
            assert {e.validator_address for e in _committed_evidence(node)} == {address}
        height = max(n.app.info().height for n in nodes)
        await wait_on_commits(nodes, lambda: all(n.app.info().height > height for n in nodes))


def _committed_evidence(node: Node) -> list:
    return [e for h in range(1, node.store.height + 1) for e in node.store.block(h).evidence]
