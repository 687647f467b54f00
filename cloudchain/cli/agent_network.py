"""A local market network of processes: validators, provider daemons, oracle daemons.

What `cloudchain demo` and the end-to-end tests share. `AgentNetwork` writes a testnet
(node/testnet.py, with the oracles' longer windows: AGENT_MARKET_PARAMS), starts one
`node start` process per validator and, on request, `provider run` and `oracle run`
processes, each in a session of its own and logging to HOME/logs/<name>.log; `close`
stops every process it started (SIGTERM, then SIGKILL), whatever happened before.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from cloudchain.client import RPCClientError, SyncClient
from cloudchain.node.config import ConsensusConfig, NodeConfig
from cloudchain.node.processes import start_node_processes, stop_node_processes
from cloudchain.node.testnet import AGENT_MARKET_PARAMS, init_testnet

READY_DEADLINE_S = 60.0
STOP_WAIT_S = 15.0


@dataclasses.dataclass
class AgentProcess:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            self.process.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class AgentNetwork:
    def __init__(
        self,
        home: Path,
        validators: int = 4,
        *,
        accounts: int = 8,
        oracles: int = 3,
        consensus: ConsensusConfig | None = None,
        market_params: Mapping[str, int] | None = None,
    ) -> None:
        self.home = home
        self.validators = validators
        self.accounts = accounts
        self.oracles = oracles
        self.consensus = consensus
        self.market_params = {**AGENT_MARKET_PARAMS, **(market_params or {})}
        self.node_homes: list[Path] = []
        self.nodes: list[subprocess.Popen[str]] = []
        self.agents: list[AgentProcess] = []

    def __enter__(self) -> AgentNetwork:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        self.node_homes = init_testnet(
            self.home,
            self.validators,
            accounts=self.accounts,
            oracles=self.oracles,
            market_params=self.market_params,
        )
        if self.consensus is not None:
            for node_home in self.node_homes:
                path = node_home / "config" / "config.toml"
                dataclasses.replace(NodeConfig.load(path), consensus=self.consensus).save(path)
        (self.home / "logs").mkdir(exist_ok=True)
        self.nodes = start_node_processes(self.node_homes, log_to_files=True, own_session=True)
        self.wait_ready()

    def rpc_url(self, node: int = 0) -> str:
        config = NodeConfig.load(self.node_homes[node] / "config" / "config.toml")
        return f"http://{config.rpc.listen_address}"

    def key_file(self, name: str) -> Path:
        """accounts/<name>.json: account0..., oracle0..."""
        return self.home / "accounts" / f"{name}.json"

    def wait_ready(self) -> None:
        """Until every node answers and the chain has committed a block."""
        deadline = time.monotonic() + READY_DEADLINE_S
        for node in range(len(self.node_homes)):
            client = SyncClient(self.rpc_url(node))
            while True:
                for process in self.nodes:
                    if process.poll() is not None:
                        raise RuntimeError(
                            f"a node exited ({process.returncode}); see its node.log"
                        )
                try:
                    if client.status().latest_block_height >= 1:
                        break
                except (RPCClientError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"node{node} not ready within {READY_DEADLINE_S} s")
                time.sleep(0.1)  # polling the node's RPC, with the deadline above

    def _start_agent(self, name: str, argv: list[str]) -> AgentProcess:
        log = self.home / "logs" / f"{name}.log"
        with open(log, "ab") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "cloudchain", *argv],
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
            )
        agent = AgentProcess(name, process, log)
        self.agents.append(agent)
        return agent

    def start_provider(
        self, account: int, *options: str, node: int = 0, name: str | None = None
    ) -> AgentProcess:
        name = name or f"provider{account}"
        return self._start_agent(
            name,
            [
                "provider",
                "run",
                "--key",
                str(self.key_file(f"account{account}")),
                "--node",
                self.rpc_url(node),
                "--home",
                str(self.home / "agents" / name),
                "--name",
                name,
                "--reconcile-seconds",
                "1",
                *options,
            ],
        )

    def start_oracle(self, index: int, *options: str, node: int = 0) -> AgentProcess:
        name = f"oracle{index}"
        return self._start_agent(
            name,
            [
                "oracle",
                "run",
                "--key",
                str(self.key_file(name)),
                "--node",
                self.rpc_url(node % len(self.node_homes)),
                "--home",
                str(self.home / "agents" / name),
                "--reconcile-seconds",
                "1",
                *options,
            ],
        )

    def close(self) -> None:
        for agent in self.agents:
            if agent.process.poll() is None:
                agent.process.send_signal(signal.SIGTERM)
        for agent in self.agents:
            agent.stop()
        stop_node_processes(self.nodes)
