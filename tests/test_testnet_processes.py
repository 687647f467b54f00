"""Four validators as real OS processes on loopback: agreement, SIGKILL, restart, catch-up."""

import queue
import re
import signal
import subprocess
import sys
import threading
import time

from cloudchain.crypto import read_key_file
from cloudchain.node.config import NodeConfig
from cloudchain.storage.chain import ChainStore
from cloudchain.storage.kv import LevelDBKV
from tests.helpers.processes import (
    DEADLINE_S,
    ROOT,
    NodeProcess,
    cli,
    fast_testnet,
    wait_on_logs,
)


def test_four_processes_agree_and_a_killed_validator_catches_up(tmp_path):
    homes = fast_testnet(tmp_path / "net", 4)
    nodes = [NodeProcess(home) for home in homes]
    rpc = [
        f"http://{NodeConfig.load(h / 'config' / 'config.toml').rpc.listen_address}" for h in homes
    ]
    accounts = tmp_path / "net" / "accounts"
    recipient = read_key_file(accounts / "account1.json").address
    try:
        wait_on_logs(lambda: all(n.height >= 3 for n in nodes), nodes)
        sent = cli(
            "tx",
            "token",
            "transfer",
            "--from",
            str(accounts / "account0.json"),
            "--to",
            recipient,
            "--amount",
            "5",
            "--node",
            rpc[0],
        )
        assert sent.returncode == 0 and sent.stdout.startswith("ok: "), sent.stderr
        tx_hash = bytes.fromhex(sent.stdout.split()[1])
        balance = cli("query", "balance", recipient, "--node", rpc[2])
        assert balance.stdout.split()[1] == str(1_000_000_005)
        status = cli("status", "--node", rpc[1])
        assert status.returncode == 0 and "height" in status.stdout
        victim = nodes[3]
        victim.stop(signal.SIGKILL)
        survivors = nodes[:3]
        target = max(n.height for n in survivors) + 3
        wait_on_logs(lambda: all(n.height >= target for n in survivors), survivors)
        nodes[3] = NodeProcess(homes[3])
        target = max(n.height for n in survivors) + 2
        wait_on_logs(lambda: all(n.height >= target for n in nodes), nodes)
    finally:
        for node in nodes:
            node.stop()
    stores = [ChainStore(LevelDBKV(home / "data" / "chain")) for home in homes]
    try:
        top = min(s.height for s in stores)
        assert top >= target
        for height in range(1, top + 1):
            assert len({s.block(height).hash for s in stores}) == 1, f"height {height}"
            assert len({s.app_hash_at(height) for s in stores}) == 1, f"height {height}"
        for store in stores:  # the transfer committed before the SIGKILL is everywhere
            result = store.tx_result(tx_hash)
            assert result is not None and result.ok
    finally:
        for store in stores:
            store.close()


def test_two_killed_halt_without_a_fork_one_back_resumes_and_bad_peers_do_no_harm(tmp_path):
    import asyncio

    from tests.helpers.network import hung_up

    homes = fast_testnet(tmp_path / "net", 4)
    nodes = [NodeProcess(home) for home in homes]
    try:
        wait_on_logs(lambda: all(n.height >= 2 for n in nodes), nodes)
        # Bad peers against node0, a real process: garbage, an unknown key, an oversized
        # frame from an allowed identity. Each is hung up on.
        asyncio.run(_attack(homes, hung_up))
        target = max(n.height for n in nodes) + 2
        wait_on_logs(lambda: all(n.height >= target for n in nodes), nodes)
        for victim in nodes[2:]:
            victim.stop(signal.SIGKILL)
        survivors = nodes[:2]
        halted = max(n.height for n in survivors)
        try:  # half the power must not commit anything more
            wait_on_logs(
                lambda: any(n.height > halted + 1 for n in survivors), survivors, deadline_s=4
            )
            raise AssertionError("two validators of four kept committing")
        except TimeoutError:
            pass
        nodes[2] = NodeProcess(homes[2])
        back = nodes[:3]
        wait_on_logs(lambda: all(n.height >= halted + 3 for n in back), back)
    finally:
        for node in nodes:
            node.stop()
    stores = [ChainStore(LevelDBKV(home / "data" / "chain")) for home in homes]
    try:
        for height in range(1, min(s.height for s in stores) + 1):
            assert len({s.block(height).hash for s in stores}) == 1, f"height {height}"
    finally:
        for store in stores:
            store.close()


async def _attack(homes, hung_up):
    import asyncio

    from cloudchain.network.secret_connection import MAX_FRAME_BYTES, handshake

    host, _, port = NodeConfig.load(
        homes[0] / "config" / "config.toml"
    ).p2p.listen_address.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"\x00garbage" * 100)
    await writer.drain()
    await hung_up(reader)
    reader, writer = await asyncio.open_connection(host, int(port))
    stranger = read_key_file(homes[0] / "config" / "priv_validator_key.json")
    await handshake(reader, writer, stranger, lambda k: True)
    await hung_up(reader)
    reader, writer = await asyncio.open_connection(host, int(port))
    await handshake(
        reader, writer, read_key_file(homes[3] / "config" / "node_key.json"), lambda k: True
    )
    writer.write((MAX_FRAME_BYTES + 1).to_bytes(4, "big"))
    await writer.drain()
    await hung_up(reader)


def test_testnet_up_streams_blocks_and_stops_every_node_on_ctrl_c(tmp_path):
    fast_testnet(tmp_path / "net", 4)

    # SIGINT as a terminal delivers it, even if this test runs where SIGINT is ignored
    # (a background job of a script): Python then leaves it ignored in the child.
    def default_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    up = subprocess.Popen(
        [sys.executable, "-m", "cloudchain", "testnet", "up", "--home", str(tmp_path / "net")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=default_sigint,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in up.stdout], daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + DEADLINE_S
    try:
        while sum("committed height=" in x for x in seen) < 8:
            seen.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
            assert time.monotonic() < deadline, "no blocks streamed in time"
        up.send_signal(signal.SIGINT)  # Ctrl-C
        assert up.wait(timeout=DEADLINE_S) == 0
    finally:
        if up.poll() is None:
            up.kill()
    while not lines.empty():
        seen.append(lines.get())
    text = "".join(seen)
    assert len(re.findall(r"^node\d: rpc http://127\.0\.0\.1:\d+$", text, re.M)) == 4
    assert re.search(r"^ node\d \| committed height=\d+ txs=\d+", text, re.M)
    assert len(re.findall(r"stopped at height \d+", text)) == 4  # every node stopped cleanly
