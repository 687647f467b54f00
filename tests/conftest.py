"""Settings and fixtures every test module may use; shared functions are in tests/helpers/."""

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from cloudchain.node.runtime import Node
from tests.helpers.network import start_node, wait_for_height

# CI gets more examples than a developer's quick run; both are deterministic per seed.
settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "dev", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture
def node_rpc_limits() -> dict[str, Any]:
    """The RPC settings the `node` fixture's node starts with, beyond its testnet's: none.
    A module that wants others overrides this fixture."""
    return {}


@pytest.fixture
async def node(tmp_path: Path, node_rpc_limits: dict[str, Any]) -> AsyncIterator[Node]:
    """A running one-validator node (its testnet under tmp_path / "net"), past height 1."""
    running = await start_node(tmp_path, **node_rpc_limits)
    try:
        await wait_for_height([running], 1)
        yield running
    finally:
        await running.stop()
