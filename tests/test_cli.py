import asyncio
import base64
import contextlib
import io
import json
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cloudchain import codec
from cloudchain.cli.main import main
from cloudchain.crypto import read_key_file
from tests.chainutil import make_genesis
from tests.test_node_network import DEADLINE_S, network, wait_for_height

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


# --- the operator's verbs, against a running in-process network ---------------------------


async def acli(*args: str) -> tuple[int, str, str]:
    """`cloudchain ARGS` as a child process, while this process's nodes keep running."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cloudchain", *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), DEADLINE_S)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def run_main(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


async def verbs(url: str, *commands: tuple[str, ...]) -> list[tuple[int, str, str]]:
    """Each command run by `cloudchain.cli.main.main` in a worker thread, one at a time
    (faster than a process each; this thread's loop runs the nodes meanwhile)."""
    return [await asyncio.to_thread(run_main, *c, "--node", url) for c in commands]


def field(out: str, label: str) -> str:
    """The value of a `label  value` line of human output."""
    match = re.search(rf"^{label}\s{{2,}}(.*)$", out, re.M)
    assert match, f"no {label!r} line in:\n{out}"
    return match.group(1)


async def test_operator_verbs_print_tables_and_json(tmp_path):
    async with network(tmp_path) as (_homes, nodes):
        await wait_for_height(nodes, 1)
        url = f"http://{nodes[0].config.rpc.listen_address}"
        accounts = tmp_path / "net" / "accounts"
        sender = read_key_file(accounts / "account0.json").address
        recipient = read_key_file(accounts / "account1.json").address
        code, out, err = await acli("tx", "token", "transfer", "--from",
                                    str(accounts / "account0.json"), "--to", recipient,
                                    "--amount", "5", "--node", url)  # fmt: skip
        assert code == 0 and out.startswith("ok: "), err
        tx_hash, height = out.split()[1], int(out.split()[-1])
        await wait_for_height(nodes, height + 1)
        runs = await verbs(
            url,
            ("status",), ("status", "--json"),
            ("block", str(height)), ("block", str(height), "--json"),
            ("tx", tx_hash), ("tx", tx_hash, "--json"), ("show-tx", tx_hash.lower()),
            ("txs", "--query", f"transfer.recipient = '{recipient}'"),
            ("txs", "--query", "tx.height >= 1", "--json"),
            ("validators",), ("validators", "--height", "1", "--json"),
            ("query", "/token/balance", "--data", recipient),
            ("query", "/token/balance", "--data-hex", recipient.encode().hex(), "--json"),
            ("query", "/auth/nonce", "--data", sender), ("query", "/token/supply"),
            ("query", "balance", recipient),
        )  # fmt: skip
        for code, _, err in runs:
            assert code == 0 and "error" not in err, err
        (status, status_json, block, block_json, tx, tx_json, show_tx, txs, txs_json,
         validators, validators_json, balance, balance_json, nonce, supply,
         old_balance) = (out for _, out, _ in runs)  # fmt: skip

    chain_id = json.loads(status_json)["node_info"]["network"]
    assert field(status, "chain") == chain_id and int(field(status, "height")) >= height + 1
    assert field(status, "catching up") == "no"
    assert field(status, "validator").endswith("(power 10)")

    assert field(block, "height") == str(height) and field(block, "txs") == "1"
    assert field(block, "hash") == json.loads(block_json)["block_id"]["hash"]
    assert re.search(rf"^\s+0\s+{tx_hash}\s+\d+$", block, re.M)  # the table of its txs

    assert field(tx, "hash") == tx_hash and field(tx, "height") == str(height)
    assert field(tx, "result") == "ok" and field(tx, "call") == "token.transfer"
    assert field(tx, "sender") == sender
    assert re.search(rf"^transfer\s+recipient\s+{recipient}$", tx, re.M)  # the events table
    assert show_tx == tx  # `show-tx HASH` is `tx HASH`
    assert json.loads(tx_json)["hash"] == tx_hash

    header, row, total = txs.splitlines()
    assert header.split() == ["HASH", "HEIGHT", "INDEX", "RESULT"]
    assert row.split() == [tx_hash, str(height), "0", "ok"] and total == "1 transaction"
    assert json.loads(txs_json)["total_count"] == "1"

    lines = validators.splitlines()
    assert lines[0].split() == ["ADDRESS", "VOTING", "POWER", "PUB", "KEY"]
    listed = json.loads(validators_json)["validators"]
    assert len(lines) == 2 + len(listed) == 6
    power = sum(int(v["voting_power"]) for v in listed)
    assert re.fullmatch(rf"4 validators, total power {power}, at height \d+", lines[-1])
    assert json.loads(validators_json)["block_height"] == "1"
    addresses = sorted(line.split()[0] for line in lines[1:-1])
    assert addresses == sorted(v["address"].lower() for v in listed)

    denom = json.loads(supply)["denom"]
    assert json.loads(balance) == {"address": recipient, "balance": 1_000_000_005, "denom": denom}
    raw = json.loads(balance_json)["response"]  # --json: the node's result, value in base64
    assert json.loads(balance) == codec.thaw(codec.decode(base64.b64decode(raw["value"])))
    assert json.loads(nonce) == {"address": sender, "nonce": 1}
    assert json.loads(supply)["supply"] > 0
    assert old_balance.split()[:2] == [recipient, "1000000005"]


async def test_refusals_and_errors_exit_1_with_a_message(tmp_path):
    async with network(tmp_path, running=1) as (_homes, nodes):
        url = f"http://{nodes[0].config.rpc.listen_address}"
        runs = await verbs(
            url,
            ("query", "/no/such/path"), ("tx", "00" * 32), ("block", "999999"),
            ("txs", "--query", "tx.height ="),
        )  # fmt: skip
    (refused, missing, beyond, bad_query) = runs
    assert refused[0] == 1 and refused[1] == ""
    assert re.match(r"error: query refused with code \d+", refused[2])
    assert missing[0] == 1 and missing[2].startswith("error: ") and "not found" in missing[2]
    assert beyond[0] == 1 and "must be less than or equal" in beyond[2]
    assert bad_query[0] == 1 and "needs an operand" in bad_query[2]
    assert not any("Traceback" in err for _, _, err in runs)


@pytest.mark.parametrize("verb", [
    ("status",), ("block",), ("tx", "ab" * 32), ("txs", "--query", "tx.height = 1"),
    ("validators",), ("query", "/token/supply"), ("query", "balance", "ab" * 20),
    ("events", "--limit", "1"),
])  # fmt: skip
def test_an_unreachable_node_is_an_error_not_a_traceback(verb, capsys):
    assert main([*verb, "--node", "http://127.0.0.1:1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot "), err
    assert "http://127.0.0.1:1" in err or "ws://127.0.0.1:1" in err


async def test_events_follows_blocks_and_matching_transactions(tmp_path):
    from cloudchain.client import Client
    from cloudchain.types import Transaction

    async with network(tmp_path) as (_homes, nodes):
        node = nodes[0]
        await wait_for_height(nodes, 1)
        url = f"http://{node.config.rpc.listen_address}"
        code, out, err = await asyncio.to_thread(run_main, "events", "--limit", "3", "--node", url)
        assert code == 0, err
        lines = out.splitlines()
        assert [line.split()[0] for line in lines] == ["NewBlock"] * 3
        heights = [int(line.split()[1]) for line in lines]
        assert heights == list(range(heights[0], heights[0] + 3))

        accounts = tmp_path / "net" / "accounts"
        recipient = read_key_file(accounts / "account1.json").address
        query = f"tm.event='Tx' AND transfer.recipient='{recipient}'"
        following = asyncio.create_task(asyncio.to_thread(
            run_main, "events", "--query", query, "--limit", "1", "--json", "--node", url))
        async with asyncio.timeout(DEADLINE_S):
            while not node.rpc.bus.has_subscribers:  # the verb has subscribed
                await wait_for_height(nodes, node.store.height + 1)
        sender = read_key_file(accounts / "account0.json")
        tx = Transaction.create(sender, node.chain_id, 0, "token", "transfer",
                                {"to": recipient, "amount": 5})  # fmt: skip
        assert (await Client(url).broadcast_tx_commit(tx.to_bytes())).ok
        code, out, err = await asyncio.wait_for(following, DEADLINE_S)
        assert code == 0, err
        event = json.loads(out.splitlines()[0])
        assert event["query"] == query and event["data"]["type"] == "tendermint/event/Tx"
        assert event["events"]["tx.hash"] == [tx.hash.hex().upper()]

        code, out, err = await asyncio.to_thread(run_main, "events", "--query", "tm.event = = 1",
                                                 "--node", url)  # fmt: skip
        assert code == 1 and "failed to parse query" in err and "Traceback" not in err


def test_tx_and_query_help_show_both_forms(capsys):
    for command, forms in [
        ("tx", ["cloudchain tx HASH", "cloudchain tx token transfer"]),
        ("query", ["cloudchain query PATH", "cloudchain query balance"]),
    ]:
        with pytest.raises(SystemExit) as exited:
            main([command, "--help"])
        assert exited.value.code == 0
        out = capsys.readouterr().out
        for form in forms:
            assert form in out, (command, form)
    assert main(["tx", "ab" * 32, "--node", "http://127.0.0.1:1"]) == 1  # routed to show-tx
    assert main(["show-tx", "abc", "--node", "http://127.0.0.1:1"]) == 2  # not a hash
    assert "64 hex digits" in capsys.readouterr().err
    assert main(["query", "/token/supply", "--data-hex", "zz"]) == 2
    with pytest.raises(SystemExit):  # --data and --data-hex are one or the other
        main(["query", "/token/supply", "--data", "a", "--data-hex", "61"])
