import asyncio
import base64
import contextlib
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
from cloudchain.fees import priced_transaction
from tests.helpers.chain import make_genesis
from tests.helpers.cli import run_main, verbs
from tests.helpers.network import DEADLINE_S, network, wait_for_height
from tests.helpers.processes import cli

ROOT = Path(__file__).resolve().parent.parent


def cloudchain(*args: str) -> subprocess.CompletedProcess[str]:
    return cli(*args, timeout_s=120)


def test_demo_commits_blocks_and_conserves_the_supply(tmp_path):
    run = cloudchain("demo", "--solo", "--blocks", "12", "--interval", "0", "--home", str(tmp_path))
    assert run.returncode == 0, run.stderr
    heights = [int(h) for h in re.findall(r"^height\s+(\d+)", run.stdout, re.M)]
    assert heights == list(range(1, 13))
    # Every block holds the 8 transfers sent for it but those left out (after an
    # overdraft of their sender): a sender goes on at the chain's next nonce.
    counts = re.findall(r"^height .* txs\s+(\d+) .* left out (\d+)", run.stdout, re.M)
    assert all(int(txs) + int(out) == 8 for txs, out in counts) and len(counts) == 12
    assert sum(int(txs) for txs, _ in counts) >= 12 * 8 - 12
    totals = re.findall(r"^\s+total\s+(\d+)\s+\(supply (\d+), (\d+) burnt", run.stdout, re.M)
    fees = sum(int(f) for f in re.findall(r"^height .* fees\s+(\d+)", run.stdout, re.M))
    assert fees > 0  # every transfer paid a fee, the failed ones too, and it was burnt:
    assert totals == [("4000000", "4000000", "0"), (str(4_000_000 - fees),) * 2 + (str(fees),)]
    hashes = re.findall(r"app hash ([0-9a-f]{16})", run.stdout)
    assert len(set(hashes)) == 13  # genesis and twelve blocks, each different
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
    free = cloudchain(
        "testnet", "init", "--validators", "2", "--base-port", "0", "--home", str(tmp_path / "free")
    )
    assert free.returncode == 0 and "26657" not in free.stdout
    again = cloudchain("testnet", "init", "--validators", "2", "--home", str(tmp_path / "net"))
    assert again.returncode == 2 and "not empty" in again.stderr


def test_the_demo_runs_real_jobs_and_catches_the_cheating_provider():
    # The first three jobs: with three providers at the start, the cheap cheat takes at
    # least one of them (ties go by address, then load), and the requester resubmits it.
    run = cloudchain("demo", "--tasks", "3")
    assert run.returncode == 0, run.stderr + run.stdout
    ui = r"^watch the market in a browser: http://127\.0\.0\.1:\d+/ui/$"
    assert re.search(ui, run.stdout, re.M)
    assert len(re.findall(r"^  (enterprise|community|cheap|oracle\d) +log ", run.stdout, re.M)) == 6
    assert re.search(r"^\s+\d+\s+1\s+cancer/logistic\s+\S+\s+settled\s", run.stdout, re.M)
    jobs = re.findall(
        r"^  (\S+/\S+) +task +(\d+)  (\S+) +(\S+) +(completed|NOT completed) *(.*)$",
        run.stdout,
        re.M,
    )
    assert {name for name, *_ in jobs} == {"cancer/logistic", "wine/boosting", "digits/mlp"}
    cheated = [job for job in jobs if job[2] == "cheap"]
    assert cheated and all(job[4] == "NOT completed" for job in cheated), run.stdout
    assert all(job[4] == "completed" for job in jobs if job[2] != "cheap")
    for name in {job[0] for job in cheated}:  # resubmitted, and served honestly
        assert any(j[0] == name and j[4] == "completed" for j in jobs), run.stdout
    assert all(re.fullmatch(r"accuracy 0\.\d{4}", j[5]) for j in jobs if j[4] == "completed")
    stake = re.search(r"^  cheap +100000 -> (\d+) ", run.stdout, re.M)
    assert stake and int(stake[1]) == 100000 - 100 * len(cheated), run.stdout
    caught = f"the cheating provider served {len(cheated)} tasks; the oracles caught {len(cheated)}"
    assert caught in run.stdout
    assert "stopped every process" in run.stdout


# --- the operator's verbs, against a running in-process network ---------------------------


async def acli(*args: str) -> tuple[int, str, str]:
    """`cloudchain ARGS` as a child process, while this process's nodes keep running."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cloudchain",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), DEADLINE_S)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


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
        code, out, err = await acli(
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
            url,
        )
        assert code == 0 and out.startswith("ok: "), err
        first_line = out.splitlines()[0]
        tx_hash, height = first_line.split()[1], int(first_line.split()[-1])
        paid = int(field(out, "fee"))  # the minimum, asked of the node: base + bytes
        committed = nodes[0].store.block(height).txs[0]
        assert paid == committed.fee == nodes[0].app.min_fee(committed)
        await wait_for_height(nodes, height + 1)
        runs = await verbs(
            url,
            ("status",),
            ("status", "--json"),
            ("block", str(height)),
            ("block", str(height), "--json"),
            ("tx", tx_hash),
            ("tx", tx_hash, "--json"),
            ("show-tx", tx_hash.lower()),
            ("txs", "--query", f"transfer.recipient = '{recipient}'"),
            ("txs", "--query", "tx.height >= 1", "--json"),
            ("validators",),
            ("validators", "--height", "1", "--json"),
            ("query", "/token/balance", "--data", recipient),
            ("query", "/token/balance", "--data-hex", recipient.encode().hex(), "--json"),
            ("query", "/auth/nonce", "--data", sender),
            ("query", "/token/supply"),
            ("query", "balance", recipient),
        )
        for code, _, err in runs:
            assert code == 0 and "error" not in err, err
        (
            status,
            status_json,
            block,
            block_json,
            tx,
            tx_json,
            show_tx,
            txs,
            txs_json,
            validators,
            validators_json,
            balance,
            balance_json,
            nonce,
            supply,
            old_balance,
        ) = (out for _, out, _ in runs)

    chain_id = json.loads(status_json)["node_info"]["network"]
    assert field(status, "chain") == chain_id and int(field(status, "height")) >= height + 1
    assert field(status, "catching up") == "no"
    assert field(status, "validator").endswith("(power 10)")

    assert field(block, "height") == str(height) and field(block, "txs") == "1"
    assert field(block, "hash") == json.loads(block_json)["block_id"]["hash"]
    assert re.search(rf"^\s+0\s+{tx_hash}\s+\d+$", block, re.M)  # the table of its txs

    assert field(tx, "hash") == tx_hash and field(tx, "height") == str(height)
    assert field(tx, "result") == "ok" and field(tx, "call") == "token.transfer"
    assert field(tx, "sender") == sender and field(tx, "fee") == str(paid)
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
            ("query", "/no/such/path"),
            ("tx", "00" * 32),
            ("block", "999999"),
            ("txs", "--query", "tx.height ="),
        )
    (refused, missing, beyond, bad_query) = runs
    assert refused[0] == 1 and refused[1] == ""
    assert re.match(r"error: query refused with code \d+", refused[2])
    assert missing[0] == 1 and missing[2].startswith("error: ") and "not found" in missing[2]
    assert beyond[0] == 1 and "must be less than or equal" in beyond[2]
    assert bad_query[0] == 1 and "needs an operand" in bad_query[2]
    assert not any("Traceback" in err for _, _, err in runs)


@pytest.mark.parametrize(
    "verb",
    [
        ("status",),
        ("block",),
        ("tx", "ab" * 32),
        ("txs", "--query", "tx.height = 1"),
        ("validators",),
        ("query", "/token/supply"),
        ("query", "balance", "ab" * 20),
        ("events", "--limit", "1"),
    ],
)
def test_an_unreachable_node_is_an_error_not_a_traceback(verb, capsys):
    assert main([*verb, "--node", "http://127.0.0.1:1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot "), err
    assert "http://127.0.0.1:1" in err or "ws://127.0.0.1:1" in err


async def test_events_follows_blocks_and_matching_transactions(tmp_path):
    from cloudchain.client import Client

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
        following = asyncio.create_task(
            asyncio.to_thread(
                run_main, "events", "--query", query, "--limit", "1", "--json", "--node", url
            )
        )
        async with asyncio.timeout(DEADLINE_S):
            while not node.rpc.bus.has_query(query):  # the verb has subscribed
                await wait_for_height(nodes, node.store.height + 1)
        sender = read_key_file(accounts / "account0.json")
        args = {"to": recipient, "amount": 5}
        tx = priced_transaction(sender, node.chain_id, 0, "token", "transfer", args, node.app.fees)
        assert (await Client(url).broadcast_tx_commit(tx.to_bytes())).ok
        code, out, err = await asyncio.wait_for(following, DEADLINE_S)
        assert code == 0, err
        event = json.loads(out.splitlines()[0])
        assert event["query"] == query and event["data"]["type"] == "tendermint/event/Tx"
        assert event["events"]["tx.hash"] == [tx.hash.hex().upper()]

        code, out, err = await asyncio.to_thread(
            run_main, "events", "--query", "tm.event = = 1", "--node", url
        )
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


# --- the market's verbs: `tx market METHOD` and `query market WHAT` ------------------------

# Real CIDs: "hello world\n" as `ipfs add` and `ipfs add --cid-version=1` name it.
CID_IN = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
CID_OUT = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
OFFER = "gpu-a100:A100 80GB:8:80:100:5"  # class:gpu:gpus:memory_gb:units:price


@contextlib.asynccontextmanager
async def one_node(tmp_path):
    """A one-validator testnet (blocks as fast as the FAST consensus config makes them)."""
    from cloudchain.node.testnet import init_testnet
    from tests.helpers.network import fast_node

    node = fast_node(init_testnet(tmp_path / "net", 1)[0])
    await node.start()
    try:
        await wait_for_height([node], 1)
        yield node
    finally:
        await node.stop()


def committed_at(out: str) -> int:
    """The height of "ok: HASH at height H", the first line of a sent transaction."""
    match = re.match(r"ok: [0-9A-F]{64} at height (\d+)$", out.splitlines()[0])
    assert match, out
    return int(match.group(1))


async def test_market_verbs_run_a_task_from_register_to_settlement(tmp_path):
    accounts = tmp_path / "net" / "accounts"
    key = {
        name: str(accounts / f"{name}.json")
        for name in ("account0", "account1", "account2", "account3")
    }
    async with one_node(tmp_path) as node:
        _authority, provider, requester, extra_oracle = (
            read_key_file(k).address for k in key.values()
        )
        url = f"http://{node.config.rpc.listen_address}"

        async def run(*command: str, want: int = 0) -> str:
            code, out, err = (await verbs(url, command))[0]
            assert code == want, f"{command}: exit {code}\n{out}{err}"
            assert "Traceback" not in err
            return out if want == 0 else err

        async def sign(who: str, *command: str, want: int = 0) -> str:
            return await run("tx", "market", *command, "--from", key[who], want=want)

        params = json.loads(await run("query", "market", "params", "--json"))
        # Oracles: whichever genesis names (testnet key files oracle<k>.json), and one the
        # authority admits; the quorum of them attests.
        refused = await sign("account1", "add-oracle", "--oracle", extra_oracle, want=1)
        assert re.match(
            r"error: transaction refused with code 101 \(market\): only the "
            "authority",
            refused,
        ), refused
        await sign("account0", "add-oracle", "--oracle", extra_oracle)
        oracles = json.loads(await run("query", "market", "oracles", "--json"))
        held = {read_key_file(p).address: str(p) for p in sorted(accounts.glob("oracle*.json"))}
        held[extra_oracle] = key["account3"]
        attesters = [held[a] for a in oracles["oracles"] if a in held][: oracles["quorum"]]
        assert len(attesters) == oracles["quorum"] and extra_oracle in oracles["oracles"]
        oracles_table = await run("query", "market", "oracles")
        assert oracles_table.splitlines()[-1] == (
            f"{len(oracles['oracles'])} oracle"
            f"{'s' * (len(oracles['oracles']) > 1)}, "
            f"quorum {oracles['quorum']}"
        )

        out = await sign(
            "account1",
            "register",
            "--name",
            "Acme GPU",
            "--tier",
            "community",
            "--offer",
            OFFER,
            "--stake",
            "5000",
        )
        assert field(out, "provider") == provider and field(out, "stake") == "5000"

        async def submit(*extra: str) -> int:
            out = await sign(
                "account2",
                "submit",
                "--kind",
                "inference",
                "--input",
                CID_IN,
                "--units",
                "10",
                "--max-price",
                "8",
                "--deadline",
                "10m",
                "--min-uptime",
                "99%",
                "--max-latency-ms",
                "200",
                "--penalty",
                "5",
                *extra,
            )
            assert field(out, "deposit") == "80"
            return int(field(out, "task"))

        async def attest(task: int, *report: str) -> list[str]:
            return [
                await run("tx", "market", "attest", str(task), *report, "--from", oracle)
                for oracle in attesters
            ]

        # Task 1: assigned at the end of its block, run, attested, settled after the window.
        first = await submit("--class", "gpu-a100")
        await sign("account1", "start", str(first))
        await sign("account1", "complete", str(first), "--units-used", "8", "--output", CID_OUT)
        reports = await attest(
            first, "--completed", "--units", "8", "--uptime", "99.9%", "--latency-ms", "120"
        )
        assert all("verified" not in r for r in reports[:-1])  # decided by the quorum only
        assert field(reports[-1], "verified") == str(first)
        assert (field(reports[-1], "payment"), field(reports[-1], "penalty")) == ("40", "0")
        settles_at = committed_at(reports[-1]) + params["dispute_blocks"]

        # Task 2: an SLA term broken (uptime), disputed by the provider, overturned by vote.
        second = await submit("--class", "gpu-a100", "--provider", provider)
        await sign("account1", "start", str(second))
        await sign("account1", "complete", str(second), "--units-used", "10")
        reports = await attest(
            second, "--completed", "--units", "10", "--uptime", "9000bps", "--latency-ms", "120"
        )
        assert field(reports[-1], "violations") == "1" and field(reports[-1], "penalty") == "5"
        out = await sign("account1", "dispute", str(second), "--reason", "uptime was 99.95%")
        assert field(out, "disputed by") == "provider"
        votes = [
            await run("tx", "market", "vote", str(second), "--overturn", "--from", oracle)
            for oracle in attesters
        ]
        assert field(votes[-1], "resolved, upheld") == "false"
        assert (field(votes[-1], "provider paid"), field(votes[-1], "requester refunded")) == (
            "50",
            "30",
        )

        # Task 3: a class nobody offers stays open; only its requester may cancel it.
        third = await submit("--class", "cpu-small")
        refused = await sign("account1", "cancel", str(third), want=1)
        assert "code 101 (market): only the requester may cancel" in refused
        assert field(await sign("account2", "cancel", str(third)), "refunded") == "80"

        # Refusals say why, with the code and the log, and exit 1.
        refused = await sign("account1", "start", str(first), want=1)
        assert re.search(rf"code 104 \(market\): task {first} is \w+, not assigned", refused)
        refused = await sign(
            "account2",
            "attest",
            str(first),
            "--failed",
            "--units",
            "0",
            "--uptime",
            "0%",
            "--latency-ms",
            "0",
            want=1,
        )
        assert f"code 101 (market): {requester} is not an oracle" in refused
        refused = await sign("account2", "complete", "999", "--units-used", "1", want=1)
        assert "code 103 (market): unknown task 999" in refused

        await wait_for_height([node], settles_at)
        runs = await verbs(
            url,
            ("query", "market", "task", str(first)),
            ("query", "market", "task", str(first), "--json"),
            ("query", "market", "task", str(second)),
            ("query", "market", "tasks", "--requester", requester),
            ("query", "market", "tasks", "--state", "settled", "--json"),
            ("query", "market", "account", provider),
            ("query", "market", "account", requester, "--json"),
            ("query", "market", "stats"),
            ("query", "market", "stats", "--json"),
            ("query", "market", "provider", provider),
            ("query", "market", "providers"),
            ("query", "market", "prices"),
            ("query", "market", "params"),
            ("query", "balance", requester),
        )
        for code, _, err in runs:
            assert code == 0 and err == "", err
        # What the requester paid in fees (failed transactions included), block by block.
        requester_fees = sum(
            tx.fee
            for height in range(1, node.store.height + 1)
            for tx in node.store.block(height).txs
            if tx.sender_address == requester
        )
        (
            task,
            task_json,
            disputed,
            tasks,
            settled,
            account,
            requester_json,
            stats,
            stats_json,
            provider_view,
            providers,
            prices,
            params_view,
            balance,
        ) = (out for _, out, _ in runs)

        # Everything else an operator does: stake, offers, SLA records, oracles, leaving.
        out = await sign("account1", "add-stake", "--amount", "1000")
        assert field(out, "stake") == "6000"
        await sign("account1", "update", "--offer", OFFER.replace(":100:5", ":200:4"))
        out = await run(
            "tx",
            "market",
            "attest-provider",
            provider,
            "--uptime",
            "100%",
            "--latency-ms",
            "50",
            "--from",
            attesters[0],
        )
        assert int(field(out, "reputation bps")) > 0
        await sign("account0", "remove-oracle", "--oracle", extra_oracle)
        refused = await sign("account0", "remove-oracle", "--oracle", extra_oracle, want=1)
        assert f"code 103 (market): {extra_oracle} is not an oracle" in refused
        out = await sign("account1", "leave")
        assert int(field(out, "unbond at height")) == committed_at(out) + params["unbonding_blocks"]
        out = await sign("account2", "cancel", str(third), "--no-wait")  # refused in its block
        assert re.match(r"ok: [0-9A-F]{64} in the mempool\nfee\s+\d+$", out)
        missing = await run("query", "market", "task", "999", want=1)
        assert re.match(r"error: query refused with code 103 \(\w+\): unknown task", missing)
        bad = await run("query", "market", "tasks", "--state", "lost", want=1)
        assert "code 201" in bad and "state must be one of" in bad

    assert field(task, "state") == "settled" and field(task, "provider") == provider
    assert field(task, "payout").startswith("provider 40, requester 40, slashed 0 at height")
    assert field(task, "sla") == "uptime >= 99.00%, latency <= 200 ms, penalty 5 per term broken"
    assert field(task, "output") == CID_OUT and field(task, "inputs") == CID_IN
    assert len(re.findall(r"^[0-9a-f]{40}\s+yes\s+8\s+99\.90%\s+120\s+\d+$", task, re.M)) == len(
        attesters
    )  # the attestations table
    as_json = json.loads(task_json)
    assert as_json["state"] == "settled" and as_json["payout"]["provider"] == 40
    assert [s for s, _ in as_json["history"]] == [
        "open",
        "assigned",
        "running",
        "completed",
        "verified",
        "settled",
    ]
    assert field(disputed, "state") == "resolved"
    assert re.match(
        r"by the provider at height \d+: 'uptime was 99.95%', \d+ vote\(s\), "
        "overturned",
        field(disputed, "dispute"),
    )

    header, *rows, total = tasks.splitlines()
    assert header.split()[:3] == ["ID", "STATE", "KIND"] and total == "3 tasks"
    assert [row.split()[:2] for row in rows] == [
        [str(first), "settled"],
        [str(second), "resolved"],
        [str(third), "refunded"],
    ]
    assert [t["id"] for t in json.loads(settled)["tasks"]] == [first]

    # Π_p = Σ(P_i·C_i - λ_i·R_i) = 5·8 + 5·10 (the dispute took back the penalty);
    # U_r = Σ(Q_i - P_i) = (8·8 - 40) + (8·10 - 50).
    assert field(account, "profit").split()[0] == "90"
    assert re.search(r"^provider\s+gross\s+90$", account, re.M)
    assert json.loads(requester_json)["utility"] == 54
    assert balance.split()[:2] == [requester, str(1_000_000_000 - 40 - 50 - requester_fees)]

    assert field(stats, "tasks settled") == "2" and field(stats, "sla compliance") == "100.00%"
    assert json.loads(stats_json)["tasks_settled"] == 2
    assert re.search(rf"^{provider}\s+Acme GPU\s+community\s+100\s+90\s", stats, re.M)
    assert field(provider_view, "name") == "Acme GPU" and field(provider_view, "stake") == "5000"
    assert re.search(r"^gpu-a100\s+A100 80GB\s+8\s+80\s+100\s+0\s+5$", provider_view, re.M)
    assert providers.splitlines()[-1] == "1 provider" and provider in providers
    assert re.search(r"^gpu-a100\s+\d+\s+100\s+0\s", prices, re.M)
    assert field(params_view, "dispute_blocks") == str(params["dispute_blocks"])
    bps = params["quorum_bps"]
    assert field(params_view, "quorum_bps") == f"{bps}  ({bps // 100}.{bps % 100:02d}%)"


def test_market_verbs_refuse_bad_arguments_before_sending(capsys):
    unreachable = ("--from", "no-such-key.json", "--node", "http://127.0.0.1:1")
    submit = (
        "tx",
        "market",
        "submit",
        "--kind",
        "inference",
        "--class",
        "gpu-a100",
        "--units",
        "10",
        "--max-price",
        "8",
        "--max-latency-ms",
        "200",
    )
    for argv, message in [
        (
            (
                "tx",
                "market",
                "register",
                "--name",
                "A",
                "--tier",
                "community",
                "--offer",
                "gpu-a100:A100:8",
                "--stake",
                "5000",
            ),
            "is not CLASS:GPU:GPUS:MEMORY_GB:UNITS:PRICE",
        ),
        (("tx", "market", "update", "--offer", "gpu:A100:8:80:many:5"), "must be whole numbers"),
        ((*submit, "--deadline", "soon", "--min-uptime", "99%"), "'soon' is not a duration"),
        ((*submit, "--deadline", "10m", "--min-uptime", "99"), "give a percentage (99.5%)"),
        ((*submit, "--deadline", "10m", "--min-uptime", "101%"), "more than 100%"),
        (("tx", "market", "vote", "7"), "one of the arguments --uphold --overturn is required"),
    ]:
        with pytest.raises(SystemExit) as exited:
            main([*argv, *unreachable])
        assert exited.value.code == 2
        assert message in capsys.readouterr().err, argv
    for argv, message in [
        (
            (
                "tx",
                "market",
                "register",
                "--name",
                "A",
                "--tier",
                "community",
                "--offer",
                "gpu:A100:8:80:100:5",
                "--offer",
                "gpu:H100:8:80:100:9",
                "--stake",
                "5000",
            ),
            "error: --offer: resource class 'gpu' is offered twice",
        ),
        (
            (*submit, "--deadline", "10m", "--min-uptime", "99%", "--input", "not-a-cid"),
            "error: --input: item 0: invalid CID 'not-a-cid': unsupported multibase",
        ),
        ((*submit, "--deadline", "500d", "--min-uptime", "99%"), "error: --deadline: "),
        (("tx", "market", "add-oracle", "--oracle", "ALICE"), "error: --oracle: 'ALICE' is not"),
        (("tx", "market", "complete", "7", "--units-used", "0"), "error: --units-used: 0 is"),
    ]:
        assert main([*argv, *unreachable]) == 2, argv  # refused before reading the key
        assert capsys.readouterr().err.startswith(message), argv


def test_tx_and_query_help_name_the_market_verbs(capsys):
    for argv, words in [
        (["tx", "--help"], ["cloudchain tx market submit"]),
        (["query", "--help"], ["cloudchain query market WHAT"]),
        (["tx", "market", "--help"], ["register", "submit", "attest-provider", "vote"]),
        (["query", "market", "--help"], ["provider", "tasks", "account", "stats", "params"]),
    ]:
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 0
        out = capsys.readouterr().out
        assert all(word in out for word in words), (argv, out)


async def test_tx_verbs_pay_the_nodes_minimum_fee_and_fee_overrides_it(tmp_path):
    accounts = tmp_path / "net" / "accounts"
    async with one_node(tmp_path) as node:
        url = f"http://{node.config.rpc.listen_address}"
        recipient = read_key_file(accounts / "account1.json").address
        send = ("tx", "token", "transfer", "--from", str(accounts / "account0.json"))
        send += ("--to", recipient, "--amount", "5", "--node", url)
        (low, at_minimum, high, schedule) = await verbs(
            url,
            (*send, "--fee", "1"),
            send,
            (*send, "--fee", "5000"),
            ("query", "/fees/params"),
        )
        blocks = [node.store.block(h) for h in range(1, node.store.height + 1)]
        sent = [tx for block in blocks for tx in block.txs]

    # Below the minimum: refused before sending, naming the minimum and what to do.
    code, out, err = low
    assert code == 2 and out == ""
    match = re.match(r"error: --fee 1 is below the minimum (\d+) this transaction must pay", err)
    assert match and "leave out --fee to pay the minimum" in err, err
    minimum = int(match.group(1))
    # Without --fee: exactly the minimum of its own bytes, by the node's schedule.
    code, out, err = at_minimum
    assert code == 0, err
    assert int(field(out, "fee")) == sent[0].fee == node.app.min_fee(sent[0])
    assert abs(sent[0].fee - minimum) <= 2  # the same call; only the fee's width differs
    # --fee above the minimum: paid as given.
    code, out, err = high
    assert code == 0 and int(field(out, "fee")) == 5000 == sent[1].fee, err
    assert len(sent) == 2  # the refused one never reached the node
    assert json.loads(schedule[1]) == node.app.fees.to_obj()


@pytest.mark.parametrize("fee", ["-3", "1.5", "ten", str(2**63)])
def test_a_fee_that_is_not_an_amount_is_a_bad_option(fee, capsys):
    argv = ["tx", "token", "transfer", "--from", "k.json", "--to", "ab" * 20, "--amount", "1"]
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--node", "http://127.0.0.1:1", "--fee", fee])
    assert exited.value.code == 2
    assert f"{fee!r} is not a fee in token units" in capsys.readouterr().err
