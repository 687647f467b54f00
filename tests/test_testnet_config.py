import dataclasses
import stat
import tomllib

import pytest

from cloudchain.chaincode.market.params import params_from_genesis
from cloudchain.crypto import read_key_file
from cloudchain.genesis import Genesis
from cloudchain.node.config import ConfigError, NodeConfig
from cloudchain.node.testnet import TestnetError, init_testnet


def test_init_writes_a_consistent_network(tmp_path):
    home = tmp_path / "net"
    nodes = init_testnet(home, 4)
    assert [n.name for n in nodes] == ["node0", "node1", "node2", "node3"]
    genesis_texts = {(n / "config" / "genesis.json").read_text() for n in nodes}
    assert len(genesis_texts) == 1
    genesis = Genesis.load(nodes[0] / "config" / "genesis.json")
    configs = [NodeConfig.load(n / "config" / "config.toml") for n in nodes]
    node_ids = [read_key_file(n / "config" / "node_key.json").address for n in nodes]
    validator_keys = [read_key_file(n / "config" / "priv_validator_key.json") for n in nodes]
    assert [v.public_key for v in genesis.validators] == [k.public_key for k in validator_keys]
    addresses = [c.p2p.listen_address for c in configs] + [c.rpc.listen_address for c in configs]
    assert len(set(addresses)) == 8  # every port distinct
    for i, config in enumerate(configs):
        expected = {f"{node_ids[j]}@{configs[j].p2p.listen_address}" for j in range(4) if j != i}
        assert set(config.p2p.persistent_peers) == expected
    for key_file in [*home.glob("node*/config/*key.json"), *home.glob("accounts/*.json")]:
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    account = read_key_file(home / "accounts" / "account0.json")
    assert genesis.authority == account.address
    assert dict(genesis.balances)[account.address] > 0
    oracles = [read_key_file(home / "accounts" / f"oracle{k}.json").address for k in range(3)]
    params, named, _ = params_from_genesis(genesis.params["market"])
    assert list(named) == oracles  # named in genesis, funded, and the rest of the accounts
    assert all(dict(genesis.balances)[oracle] > 0 for oracle in oracles)
    assert len(genesis.balances) == 4 + 3
    assert params.dispute_blocks < params.attestation_blocks <= 10 and params.epoch_blocks == 10


def test_fixed_base_port_and_refusals(tmp_path):
    nodes = init_testnet(tmp_path / "fixed", 2, base_port=40000)
    config = NodeConfig.load(nodes[1] / "config" / "config.toml")
    assert (config.p2p.listen_address, config.rpc.listen_address) == (
        "127.0.0.1:40002",
        "127.0.0.1:40003",
    )
    with pytest.raises(TestnetError, match="not empty"):
        init_testnet(tmp_path / "fixed", 2)
    with pytest.raises(TestnetError, match="--validators"):
        init_testnet(tmp_path / "zero", 0)
    with pytest.raises(TestnetError, match="--oracles"):
        init_testnet(tmp_path / "many", 1, oracles=65)
    init_testnet(tmp_path / "none", 1, oracles=0)  # a market without oracles: none named
    genesis = Genesis.load(tmp_path / "none" / "node0" / "config" / "genesis.json")
    assert genesis.params["market"]["oracles"] == ()


def test_config_round_trips_and_defaults_are_documented_values():
    config = NodeConfig()
    assert NodeConfig.from_dict(tomllib.loads(config.to_toml())) == config
    assert config.consensus.timeout_commit_ms == 1_000  # a block at least every second
    limits = config.mempool.limits()
    assert (limits.max_txs_per_sender, limits.ttl_num_blocks, limits.ttl_duration_ns) == (64, 0, 0)
    assert NodeConfig.from_dict({"mempool": {"ttl_duration_s": 90}}).mempool.limits() == (
        dataclasses.replace(limits, ttl_duration_ns=90 * 10**9)
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ("[p2p]\nlisten_address = 5\n", "expected str"),
        ('[p2p]\nlisten_address = "nohost"\n', "host:port"),
        ('[p2p]\npersistent_peers = ["abc@1.2.3.4:5"]\n', "id@host:port"),
        ("[consensus]\ntimeout_commit_ms = -1\n", "negative"),
        ("[consensus]\ntimeout_commit_ms = true\n", "expected int"),
        ("[consensus]\ntimeout_commit_busy_ms = -1\n", "negative"),
        ('[log]\nlevel = "loud"\n', "level"),
        ('[log]\nformat = "xml"\n', "format"),
        ("[log]\nformat = 1\n", "format: expected str"),
        ("[surprise]\n", "unknown setting"),
        ("[mempool]\nmax_txz = 1\n", "unknown setting"),
        ("[mempool]\nmax_txs_per_sender = 0\n", r"\[mempool\] max_txs_per_sender must be at"),
        ("[mempool]\nttl_duration_s = -1\n", "negative"),
        ("not = [toml", "not valid TOML"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path, text, message):
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        NodeConfig.load(path)
