"""Nodes of a local testnet running in the test's own process, and waiting on their commits.

Each node listens on loopback ports that `init_testnet` picks free; FAST timeouts
make blocks come in a fraction of a second. A test waits for what it needs on the
nodes' commit listeners (`wait_on_commits`, `wait_for_height`), never for time.
Nodes as OS processes are tests/helpers/processes.py's; RPC calls, tests/helpers/rpc.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from cloudchain.node.config import BlobsConfig, ConsensusConfig, MempoolConfig, NodeConfig
from cloudchain.node.runtime import Node
from cloudchain.node.testnet import init_testnet

DEADLINE_S = 60
SEND_BYTES = "cloudchain_p2p_message_send_bytes_total"
RECEIVE_BYTES = "cloudchain_p2p_message_receive_bytes_total"
REFUSED_MESSAGES = "cloudchain_p2p_refused_messages_total"
FAST = ConsensusConfig(
    timeout_propose_ms=800,
    timeout_propose_delta_ms=200,
    timeout_prevote_ms=300,
    timeout_prevote_delta_ms=200,
    timeout_precommit_ms=300,
    timeout_precommit_delta_ms=200,
    timeout_commit_ms=100,
)


def fast_node(home: Path) -> Node:
    """The node of `home` (not started), with the FAST consensus timeouts."""
    config = NodeConfig.load(home / "config" / "config.toml")
    return Node(home, dataclasses.replace(config, consensus=FAST))


async def start_node(
    tmp_path: Path,
    *,
    blobs: BlobsConfig | None = None,
    mempool: MempoolConfig | None = None,
    consensus: ConsensusConfig = FAST,
    **rpc_limits: Any,
) -> Node:
    """A started one-validator node (its testnet under tmp_path / "net"), FAST unless
    `consensus` says otherwise, with `rpc_limits` replacing fields of its RPC settings
    (and `blobs` its [blobs], `mempool` its [mempool], if given); the caller stops it."""
    home = init_testnet(tmp_path / "net", 1)[0]
    config = NodeConfig.load(home / "config" / "config.toml")
    config = dataclasses.replace(
        config,
        consensus=consensus,
        rpc=dataclasses.replace(config.rpc, **rpc_limits),
        blobs=blobs or config.blobs,
        mempool=mempool or config.mempool,
    )
    node = Node(home, config)
    await node.start()
    return node


async def wait_for_height(
    nodes: Sequence[Node], height: int, deadline_s: float = DEADLINE_S
) -> None:
    """Wait until every one of `nodes` has committed `height`."""
    await wait_on_commits(
        nodes,
        lambda: all(n.app.info().height >= height for n in nodes),
        deadline_s,
        what=f"height {height}",
    )


async def wait_on_commits(
    nodes: Sequence[Node],
    condition: Callable[[], object],
    deadline_s: float = DEADLINE_S,
    *,
    what: str = "the condition",
) -> None:
    """Wait for `condition()` to hold, checking it now and whenever one of `nodes` commits;
    TimeoutError naming `what` and the nodes' heights after `deadline_s`."""
    reached = asyncio.Event()

    def check(_decision: object = None) -> None:
        if condition():
            reached.set()

    for node in nodes:
        node.commit_listeners.append(check)
    check()
    try:
        await asyncio.wait_for(reached.wait(), deadline_s)
    except TimeoutError:
        heights = [n.app.info().height for n in nodes]
        raise TimeoutError(f"waited {deadline_s} s for {what}; heights {heights}") from None
    finally:
        for node in nodes:
            node.commit_listeners.remove(check)


def metric(node: Node, name: str, **labels: str) -> float:
    """The value of one series of `node`'s /metrics (0 for a series not yet created)."""
    node.refresh_metrics()
    return node.metrics.registry.get_sample_value(name, labels) or 0.0


@contextlib.asynccontextmanager
async def network(tmp_path: Path, running: int = 4) -> AsyncIterator[tuple[list[Path], list[Node]]]:
    """A 4-validator testnet with its first `running` nodes started; every node in the
    list (tests may add or replace some) is stopped afterwards."""
    homes = init_testnet(tmp_path / "net", 4)
    nodes = [fast_node(home) for home in homes[:running]]
    try:
        for node in nodes:
            await node.start()
        yield homes, nodes
    finally:
        for node in nodes:
            await node.stop()  # stopping a stopped node is harmless


async def hung_up(reader: asyncio.StreamReader) -> None:
    """Read what the node still sends; `read()` returns only at EOF: the node hung up."""
    try:
        await asyncio.wait_for(reader.read(), DEADLINE_S)
    except ConnectionResetError:
        return  # hung up with our bytes unread: a reset
    assert reader.at_eof()
