"""The network under test: n real `cloudchain node start` processes whose peer links run
through the nemesis's relays, and what the nemesis does to a process.

`Cluster.create` writes a testnet (node/testnet.py), starts the relays (relay.py) and
points every node's persistent peers at them, then starts the nodes. Each node's output
is read by a thread into `<home>/node.log` (a pipe, not the file itself: a node run
under a file size limit must still be able to log), and its exits are recorded: one the
nemesis did not cause is a crash (the checker's Crash).

What the nemesis does to node i, each undone by `heal(i)` (or `heal_all`):

- `kill(i)` SIGKILL; `pause(i)` SIGSTOP (SIGCONT to resume);
- `restart(i, debug=..., file_size_limit=...)`: stop (SIGTERM) and start again, with
  `[debug]` test aids (a clock offset, equivocation) or under RLIMIT_FSIZE (a full
  disk: no size-limited file system can be mounted without privileges);
- `damage_wal(i, rng)` on a stopped node: cut its WAL's tail or flip bytes in it.

Every process is started in its own session and with PR_SET_PDEATHSIG, so that one
the runner fails to stop dies with it; `close()` stops them all, paused ones included.
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import os
import random
import resource
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from cloudchain.chaos.relay import Links
from cloudchain.client import Client, RPCClientError
from cloudchain.crypto import read_key_file
from cloudchain.genesis import Genesis
from cloudchain.node.config import ConsensusConfig, DebugConfig, NodeConfig
from cloudchain.node.storage_failure import STORAGE_FAILURE_EXIT
from cloudchain.node.testnet import init_testnet

# Short enough for many heights in a minute, long enough for a loaded machine of two
# cores running seven nodes: rounds that fail grow by the deltas.
CHAOS_CONSENSUS = ConsensusConfig(
    timeout_propose_ms=1_000,
    timeout_propose_delta_ms=500,
    timeout_prevote_ms=500,
    timeout_prevote_delta_ms=250,
    timeout_precommit_ms=500,
    timeout_precommit_delta_ms=250,
    timeout_commit_ms=250,
)
STOP_WAIT_S = 20.0
READY_TIMEOUT_S = 60.0
READY_POLL_S = 0.1
EXIT_POLL_S = 0.05
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class NodeExit:
    node: int
    returncode: int
    expected: bool  # the nemesis caused it (a kill, a stop, a full disk it set up)
    log_tail: str = ""


@dataclass
class ClusterNode:
    index: int
    home: Path
    rpc_url: str
    process: subprocess.Popen[str] | None = None
    paused: bool = False
    file_size_limit: int | None = None
    caused: set[int] = field(default_factory=set)  # pids the nemesis stopped or killed
    tail: list[str] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def config_path(self) -> Path:
        return self.home / "config" / "config.toml"

    @property
    def wal_path(self) -> Path:
        return self.home / "data" / "cs.wal"


class Cluster:
    def __init__(self, home: Path, nodes: list[ClusterNode], links: Links) -> None:
        self.home = home
        self.nodes = nodes
        self.links = links
        self.exits: list[NodeExit] = []
        self._lock = threading.Lock()
        self.genesis = Genesis.load(nodes[0].home / "config" / "genesis.json")

    @classmethod
    async def create(cls, home: Path, validators: int, seed: int, accounts: int) -> Cluster:
        homes = init_testnet(home, validators, accounts=accounts, oracles=0)
        configs = [NodeConfig.load(h / "config" / "config.toml") for h in homes]
        p2p = [_host_port(c.p2p.listen_address) for c in configs]
        links = Links(p2p, seed)
        await links.start()
        ids = [read_key_file(h / "config" / "node_key.json").address for h in homes]
        nodes = []
        for i, (node_home, config) in enumerate(zip(homes, configs, strict=True)):
            # node i reaches node j through relay (i, j)
            peers = tuple(
                f"{ids[j]}@127.0.0.1:{links.relay(i, j).port}" for j in range(validators) if j != i
            )
            p2p_config = dataclasses.replace(config.p2p, persistent_peers=peers)
            config = dataclasses.replace(config, p2p=p2p_config, consensus=CHAOS_CONSENSUS)
            config.save(node_home / "config" / "config.toml")
            nodes.append(ClusterNode(i, node_home, f"http://{config.rpc.listen_address}"))
        cluster = cls(home, nodes, links)
        for node in nodes:
            cluster.start(node.index)
        return cluster

    @property
    def rpc_urls(self) -> list[str]:
        return [n.rpc_url for n in self.nodes]

    @property
    def validator_addresses(self) -> list[str]:
        """Node i's validator address (hex), as the genesis and evidence name it."""
        return [
            read_key_file(n.home / "config" / "priv_validator_key.json").address for n in self.nodes
        ]

    @property
    def account_paths(self) -> list[Path]:
        return sorted((self.home / "accounts").glob("account*.json"))

    # --- processes ---------------------------------------------------------------------

    def start(self, i: int, file_size_limit: int | None = None) -> None:
        node = self.nodes[i]
        assert not node.running, f"node{i} is running"
        node.file_size_limit = file_size_limit
        node.paused = False

        def in_child() -> None:  # between fork and exec: only system calls
            ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
            if file_size_limit is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

        node.process = subprocess.Popen(
            [sys.executable, "-m", "cloudchain", "node", "start", "--home", str(node.home)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
            preexec_fn=in_child,
        )
        reader = threading.Thread(
            target=self._read, args=(node, node.process, file_size_limit), daemon=True
        )
        reader.start()

    def _read(
        self, node: ClusterNode, process: subprocess.Popen[str], file_size_limit: int | None
    ) -> None:
        """Log the process's output; record its exit, and whether a fault caused it (this
        process's, not the node's next one: the nemesis may have restarted it already)."""
        assert process.stdout is not None
        with open(node.home / "node.log", "a") as log:
            for line in process.stdout:
                log.write(line)
                node.tail = [*node.tail[-19:], line]
            returncode = process.wait()
            log.write(f"--- exited with {returncode}\n")
        expected = process.pid in node.caused or (
            file_size_limit is not None and returncode == STORAGE_FAILURE_EXIT
        )
        with self._lock:
            self.exits.append(NodeExit(node.index, returncode, expected, "".join(node.tail)))

    async def kill(self, i: int) -> None:
        await self._signal_and_wait(i, signal.SIGKILL)

    async def stop(self, i: int) -> None:
        """SIGTERM (after a SIGCONT, if paused) and wait; SIGKILL what does not stop."""
        await self._signal_and_wait(i, signal.SIGTERM)

    async def _signal_and_wait(self, i: int, sig: int) -> None:
        """Signal node i and wait for its exit without blocking the loop (the relays and
        the workload run on it)."""
        node = self.nodes[i]
        process = node.process
        if process is None or process.poll() is not None:
            return
        node.caused.add(process.pid)
        if node.paused and sig != signal.SIGKILL:
            process.send_signal(signal.SIGCONT)
        process.send_signal(sig)
        deadline = time.monotonic() + STOP_WAIT_S
        while process.poll() is None:
            if time.monotonic() > deadline:
                process.kill()
                deadline = time.monotonic() + STOP_WAIT_S
            await asyncio.sleep(EXIT_POLL_S)  # polling a child's exit, not synchronising
        node.paused = False

    async def wait_ready(self, i: int, timeout_s: float = READY_TIMEOUT_S) -> bool:
        """Wait until node i answers its RPC (True), or has exited or the timeout passed
        (False): a restarted node takes seconds to import and recover on a loaded
        machine, and a fault's window counts from when it runs."""
        node = self.nodes[i]
        client = Client(node.rpc_url)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and node.running:
            try:
                await asyncio.wait_for(client.status(), READY_POLL_S * 10)
            except (RPCClientError, TimeoutError, OSError):
                await asyncio.sleep(READY_POLL_S)  # polling the node's RPC, with a deadline
            else:
                return True
        return False

    def pause(self, i: int) -> None:
        node = self.nodes[i]
        if node.running and not node.paused:
            assert node.process is not None
            node.process.send_signal(signal.SIGSTOP)
            node.paused = True

    def resume(self, i: int) -> None:
        node = self.nodes[i]
        if node.running and node.paused:
            assert node.process is not None
            node.process.send_signal(signal.SIGCONT)
        node.paused = False

    async def restart(
        self, i: int, debug: DebugConfig | None = None, file_size_limit: int | None = None
    ) -> None:
        """Stop node i, write its `[debug]` test aids (None: none), and start it again."""
        await self.stop(i)
        node = self.nodes[i]
        config = NodeConfig.load(node.config_path)
        wanted = debug or DebugConfig()
        if config.debug != wanted:
            dataclasses.replace(config, debug=wanted).save(node.config_path)
        self.start(i, file_size_limit)

    def damage_wal(self, i: int, rng: random.Random) -> str:
        """Cut node i's WAL (stopped) at a point in its last 4 KiB, or flip a few bytes
        there; says which."""
        node = self.nodes[i]
        assert not node.running, "damage the WAL of a stopped node"
        size = node.wal_path.stat().st_size if node.wal_path.exists() else 0
        if size == 0:
            return "WAL empty: nothing to damage"
        low = max(0, size - 4096)
        if rng.random() < 0.5:
            cut = rng.randrange(low, size)
            os.truncate(node.wal_path, cut)
            return f"WAL cut from {size} to {cut} bytes"
        flips = sorted(rng.sample(range(low, size), min(3, size - low)))
        with open(node.wal_path, "r+b") as f:
            for offset in flips:
                f.seek(offset)
                byte = f.read(1)[0]
                f.seek(offset)
                f.write(bytes([byte ^ (1 << rng.randrange(8))]))
        return f"WAL of {size} bytes: bits flipped at {','.join(map(str, flips))}"

    async def heal(self, i: int) -> None:
        """Node i running, unpaused, without test aids or a file size limit."""
        node = self.nodes[i]
        if node.paused:
            self.resume(i)
        config = NodeConfig.load(node.config_path)
        if config.debug.active or node.file_size_limit is not None or not node.running:
            await self.restart(i)

    async def heal_all(self) -> None:
        self.links.heal()
        for node in self.nodes:
            await self.heal(node.index)

    def unexpected_exits(self) -> list[NodeExit]:
        with self._lock:
            return [e for e in self.exits if not e.expected]

    async def close(self) -> None:
        """Stop every node (paused ones too) and the relays; safe to call twice."""
        try:
            await asyncio.gather(*(self.stop(node.index) for node in self.nodes))
        finally:
            for node in self.nodes:  # whatever went wrong above, no process outlives us
                if node.process is not None and node.process.poll() is None:
                    node.process.kill()
            await self.links.close()


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)
