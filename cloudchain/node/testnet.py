"""`cloudchain testnet init`: the files of a local multi-validator network.

    DIR/node<i>/config/config.toml              settings (see node/config.py)
    DIR/node<i>/config/genesis.json             the same file in every node
    DIR/node<i>/config/node_key.json            p2p identity (mode 0600)
    DIR/node<i>/config/priv_validator_key.json  consensus signing key (mode 0600)
    DIR/node<i>/data/                           state, blocks, WAL
    DIR/accounts/account<k>.json                funded accounts for clients (mode 0600)
    DIR/accounts/oracle<k>.json                 funded market oracles named in genesis (0600)

As in CometBFT, a node's id is the address of its node key, and every node
names the others as persistent peers. Ports are free ones picked at init time
unless a base port is given (then node i uses base+2i for p2p and base+2i+1
for RPC).

Each node's `[rpc] unsafe` is false, the default (its operator methods blob_pin,
blob_unpin and blob_gc refuse), unless `rpc_unsafe` (`testnet init --rpc-unsafe`)
says otherwise: nothing the demo does needs them; `bench storage`, which collects
its blobs between runs, turns it on in the configs it writes.

The genesis names the oracle accounts in app_state.params.market.oracles, writes out
the default fee schedule (cloudchain/fees.py; the accounts hold ACCOUNT_BALANCE, a few
million transactions' fees each) and sets LOCAL_MARKET_PARAMS: windows short enough
that a task settles within about ten blocks (seconds, at the default commit timeout) of
being submitted.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from pathlib import Path

from cloudchain.crypto import PrivateKey, write_key_file
from cloudchain.fees import FeeSchedule
from cloudchain.genesis import Genesis
from cloudchain.ledger import Validator
from cloudchain.node.config import NodeConfig, P2PConfig, RPCConfig

DEFAULT_CHAIN_ID = "cloudchain-local"
VALIDATOR_POWER = 10
ACCOUNT_BALANCE = 1_000_000_000
MAX_VALIDATORS = 64
MAX_ORACLES = 64

# The market's windows, in blocks, for a network on one machine (about a block a
# second): submitted at h, a task is assigned at h, started and completed at h+1 or
# h+2, verified by the oracles' quorum a block later and settled `dispute_blocks`
# after that. Everything else keeps the defaults of market/params.py.
LOCAL_MARKET_PARAMS = {
    "unbonding_blocks": 10,
    "attestation_blocks": 8,
    "dispute_blocks": 3,
    "dispute_vote_blocks": 8,
    "epoch_blocks": 10,
}


# What a network with oracle daemons needs: they re-run a job before they attest to it
# and again before they vote on a dispute, which takes longer than the few blocks
# LOCAL_MARKET_PARAMS leave (blocks come several a second when idle). The quorum still
# decides as soon as it agrees: only a task no quorum attests to waits the window out.
AGENT_WINDOW_BLOCKS = 300
AGENT_MARKET_PARAMS = {
    "attestation_blocks": AGENT_WINDOW_BLOCKS,
    "dispute_vote_blocks": AGENT_WINDOW_BLOCKS,
}


class TestnetError(ValueError):
    """The testnet cannot be created as asked."""

    __test__ = False  # not a pytest test class, despite its name


def free_ports(count: int) -> list[int]:
    """Ports the OS says are free now (on loopback)."""
    sockets, ports = [], []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in sockets:
            s.close()
    return ports


def init_testnet(
    home: Path,
    validators: int,
    chain_id: str = DEFAULT_CHAIN_ID,
    accounts: int = 4,
    base_port: int | None = None,
    oracles: int = 3,
    *,
    rpc_unsafe: bool = False,
    market_params: Mapping[str, int] | None = None,
) -> list[Path]:
    """Write a testnet of `validators` nodes under `home`; returns the node directories.
    `market_params` override LOCAL_MARKET_PARAMS (an agents' network, whose oracles
    re-run jobs, gives them a longer attestation window)."""
    if not 1 <= validators <= MAX_VALIDATORS:
        raise TestnetError(f"--validators must be between 1 and {MAX_VALIDATORS}")
    if not 1 <= accounts <= 1_000:
        raise TestnetError("--accounts must be between 1 and 1000")
    if not 0 <= oracles <= MAX_ORACLES:
        raise TestnetError(f"--oracles must be between 0 and {MAX_ORACLES}")
    if home.exists() and any(home.iterdir()):
        raise TestnetError(f"{home} is not empty; choose another --home or remove it")
    if base_port is None:
        ports = free_ports(2 * validators)
    else:
        if not 1024 <= base_port <= 65535 - 2 * validators:
            raise TestnetError("--base-port must leave room for two ports per node")
        ports = list(range(base_port, base_port + 2 * validators))
    node_keys = [PrivateKey.generate() for _ in range(validators)]
    validator_keys = [PrivateKey.generate() for _ in range(validators)]
    account_keys = [PrivateKey.generate() for _ in range(accounts)]
    oracle_keys = [PrivateKey.generate() for _ in range(oracles)]
    genesis = Genesis(
        chain_id=chain_id,
        genesis_time_ns=time.time_ns(),
        validators=tuple(
            Validator(k.public_key, VALIDATOR_POWER, f"node{i}")
            for i, k in enumerate(validator_keys)
        ),
        authority=account_keys[0].address,
        balances=tuple(sorted((k.address, ACCOUNT_BALANCE) for k in [*account_keys, *oracle_keys])),
        params={
            "token": {"denom": "ucc"},
            # Written out, so that an operator sees (and may change) what a byte costs.
            "fees": FeeSchedule().to_obj(),
            "market": {
                **LOCAL_MARKET_PARAMS,
                **(market_params or {}),
                "oracles": [k.address for k in oracle_keys],
            },
        },
    )
    for k, key in enumerate(account_keys):
        write_key_file(home / "accounts" / f"account{k}.json", key)
    for k, key in enumerate(oracle_keys):
        write_key_file(home / "accounts" / f"oracle{k}.json", key)
    directories = []
    for i in range(validators):
        node_dir = home / f"node{i}"
        config_dir = node_dir / "config"
        config_dir.mkdir(parents=True)
        (node_dir / "data").mkdir()
        peers = tuple(
            f"{node_keys[j].address}@127.0.0.1:{ports[2 * j]}" for j in range(validators) if j != i
        )
        config = NodeConfig(
            moniker=f"node{i}",
            p2p=P2PConfig(listen_address=f"127.0.0.1:{ports[2 * i]}", persistent_peers=peers),
            rpc=RPCConfig(listen_address=f"127.0.0.1:{ports[2 * i + 1]}", unsafe=rpc_unsafe),
        )
        config.save(config_dir / "config.toml")
        genesis.save(config_dir / "genesis.json")
        write_key_file(config_dir / "node_key.json", node_keys[i])
        write_key_file(config_dir / "priv_validator_key.json", validator_keys[i])
        directories.append(node_dir)
    return directories
