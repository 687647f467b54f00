"""A requester's tasks on a running one-validator node, through the Python client and
`cloudchain task ...`: the data and the manifest uploaded and anchored, the task on
chain naming them; a bad manifest refused, naming the field, with nothing sent; the
balance warning when (and only when) the balance will not cover another such task; the
result and log of a completed task, the test itself playing the provider; and waiting
for a final state, or a clear timeout.

Waits are on the chain (`wait_task` follows new blocks) under deadlines; the one
timeout that is asked for is the one under test.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from cloudchain.blobs import import_bytes
from cloudchain.client import Client, RPCClientError, TaskTimeout
from cloudchain.crypto import PrivateKey, read_key_file, write_key_file
from cloudchain.node.runtime import Node
from cloudchain.workload.manifest import ManifestError, load_manifest
from cloudchain.workload.result import ResultIndex
from tests.helpers.cli import run_main, verbs
from tests.helpers.network import DEADLINE_S
from tests.helpers.workloads import classification_csv, train_manifest

DATA = classification_csv(rows=60)
CLASS = "cpu-small"
OFFER_PRICE = 20  # far above the floor the reference price can fall to in a test's epochs
UNITS = 60  # train_manifest's limits.cpu_seconds
METRICS = {"metric": "accuracy", "value": 0.9167, "split": "holdout"}
LOG = b"fetched train (1 dataset)\naccuracy on holdout 0.9167\ndone\n"


class Requester:
    """A node's URL, its accounts, and the files of one train task."""

    def __init__(self, node: Node, tmp_path: Path) -> None:
        self.url = f"http://{node.config.rpc.listen_address}"
        self.client = Client(self.url)
        self.accounts = tmp_path / "net" / "accounts"
        self.data = tmp_path / "train.csv"
        self.data.write_bytes(DATA)
        manifest = train_manifest(DATA)
        del manifest["data"]["train"]["cid"], manifest["data"]["train"]["bytes"]
        self.manifest = tmp_path / "manifest.json"
        self.manifest.write_text(json.dumps(manifest, indent=2))
        self.tmp = tmp_path

    def key_file(self, name: str) -> str:
        return str(self.accounts / f"{name}.json")

    def key(self, name: str) -> PrivateKey:
        return read_key_file(self.key_file(name))

    async def send(self, key: PrivateKey, module: str, method: str, **args: Any) -> Any:
        tx = await self.client.sign_tx(key, module, method, args)
        result = await self.client.broadcast_tx_commit(tx.to_bytes())
        assert result.ok, f"{module}.{method}: {result.failure.log}"
        return result

    async def cli(self, *command: str, want: int = 0) -> tuple[str, str]:
        code, out, err = (await verbs(self.url, command))[0]
        assert code == want, f"{command}: exit {code}\n{out}{err}"
        assert "Traceback" not in err
        return out, err

    def submit_argv(self, key_file: str, *extra: str) -> tuple[str, ...]:
        return (
            "task",
            "submit",
            "--from",
            key_file,
            "--manifest",
            str(self.manifest),
            "--data",
            str(self.data),
            "--resource-class",
            CLASS,
            "--replicas",
            "1",
            *extra,
        )

    async def tasks_of(self, key: PrivateKey) -> list[Any]:
        return (await self.client.query("/market/tasks", f"requester={key.address}".encode()))[
            "tasks"
        ]

    async def blob(self, cid: str) -> bytes:
        path = self.tmp / f"blob-{cid}"
        await self.client.blob_get(cid, path)
        return path.read_bytes()


@pytest.fixture
def requester(node: Node, tmp_path: Path) -> Requester:
    return Requester(node, tmp_path)


async def test_submit_uploads_the_data_and_the_manifest_and_the_task_names_them(
    requester: Requester,
):
    key = requester.key("account1")
    submitted = await requester.client.submit_task(
        key, requester.manifest, requester.data, resource_class=CLASS, budget=659, replicas=1
    )
    assert (submitted.units, submitted.max_price, submitted.deposit) == (UNITS, 10, 600)
    assert submitted.warnings == () and submitted.warning is None

    task = await requester.client.task(submitted.task_id)
    manifest_cid, data_cid = task.inputs
    assert (manifest_cid, data_cid) == submitted.inputs and manifest_cid == submitted.manifest_cid
    assert (task.state, task.kind, task.requester) == ("open", "training", key.address)
    assert (task.units, task.max_price, task.deposit) == (UNITS, 10, 600)
    assert data_cid == str(import_bytes(DATA)[1].root)  # the file's bytes, as `ipfs add` names them
    assert await requester.blob(data_cid) == DATA
    manifest = load_manifest(await requester.blob(manifest_cid), canonical=True)
    assert (manifest.data["train"].cid, manifest.data["train"].bytes) == (data_cid, len(DATA))
    anchored = await requester.client.query("/storage/anchored", f"owner={key.address}".encode())
    assert set(anchored["cids"]) == {manifest_cid, data_cid}

    # The CLI: one dataset, named or not; -q prints only the id, --json the record.
    out, err = await requester.cli(
        *requester.submit_argv(requester.key_file("account1"), "-q", "--budget", "600")
    )
    assert re.fullmatch(r"\d+\n", out) and err == ""
    argv = list(requester.submit_argv(requester.key_file("account1"), "--json", "--budget", "60"))
    argv[argv.index(str(requester.data))] = f"train={requester.data}"
    out, _ = await requester.cli(*argv)
    shown = json.loads(out)
    assert (shown["units"], shown["max_price"], shown["deposit"]) == (UNITS, 1, UNITS)
    assert shown["inputs"][1] == data_cid  # the same bytes, the same CID
    assert len(await requester.tasks_of(key)) == 3


async def test_a_bad_manifest_is_refused_naming_the_field_and_nothing_is_sent(
    requester: Requester, node: Node
):
    key = requester.key("account1")
    bad = json.loads(requester.manifest.read_text())
    bad["model"]["params"]["n_estimators"] = 0
    requester.manifest.write_text(json.dumps(bad))
    with pytest.raises(ManifestError) as refused:
        await requester.client.submit_task(
            key, requester.manifest, {"train": requester.data}, budget=600, replicas=1
        )
    assert refused.value.field == "manifest.model.params.n_estimators"

    _, err = await requester.cli(
        *requester.submit_argv(requester.key_file("account1"), "--budget", "600"), want=1
    )
    assert err.startswith("error: manifest.model.params.n_estimators: 0 is "), err
    assert await requester.tasks_of(key) == []
    with pytest.raises(RPCClientError, match="is not in the store"):  # never uploaded
        await requester.client.blob_stat(str(import_bytes(DATA)[1].root))

    # Usage: a dataset the manifest does not have, a budget below a token a unit (exit 2).
    argv = list(requester.submit_argv(requester.key_file("account1"), "--budget", "600"))
    argv[argv.index(str(requester.data))] = f"test={requester.data}"
    _, err = await requester.cli(*argv, want=2)
    assert "the manifest has no dataset 'test' (it has: train)" in err
    requester.manifest.write_text(json.dumps(train_manifest(DATA)))
    _, err = await requester.cli(
        *requester.submit_argv(requester.key_file("account1"), "--budget", "59"), want=2
    )
    assert err == "error: --budget 59 is less than one token for each of the 60 units\n"
    _, err = await requester.cli(
        *requester.submit_argv(requester.key_file("account1")), want=2
    )  # nobody offers the class yet: no reference price
    assert "no reference price for this resource class: give --budget" in err
    assert await requester.tasks_of(key) == []


async def test_the_balance_warning_comes_when_another_such_task_is_not_covered(
    requester: Requester,
):
    poor = PrivateKey.generate()
    write_key_file(requester.tmp / "poor.json", poor)
    funds = 100_000
    await requester.send(
        requester.key("account0"), "token", "transfer", to=poor.address, amount=funds
    )
    budget = ("--budget", "60000")  # 1,000 a unit: a deposit of 60,000, more than half

    out, err = await requester.cli(
        *requester.submit_argv(str(requester.tmp / "poor.json"), *budget)
    )
    assert out.startswith("ok: task 1 submitted at height ")
    warned = re.fullmatch(
        r"warning: your balance (\d+) will not cover the next such task's deposit 60000 "
        r"and fees (\d+)\n",
        err,
    )
    assert warned, err
    balance, fees = int(warned.group(1)), int(warned.group(2))
    assert balance == funds - 60_000 - fees and balance < 60_000

    out, err = await requester.cli(*requester.submit_argv(requester.key_file("account1"), *budget))
    assert out.startswith("ok: task 2 submitted") and err == ""  # rich enough for more

    # Poorer than the deposit: refused before anything is uploaded or sent.
    _, err = await requester.cli(
        *requester.submit_argv(str(requester.tmp / "poor.json"), *budget), want=1
    )
    assert err == (
        f"error: your balance {balance} does not cover the deposit 60000 (1000 a unit x 60 units)\n"
    )
    assert len(await requester.tasks_of(poor)) == 1


async def test_wait_task_returns_at_a_final_state_or_times_out_clearly(requester: Requester):
    key = requester.key("account1")
    submitted = await requester.client.submit_task(
        key, requester.manifest, requester.data, resource_class=CLASS, budget=600, replicas=1
    )
    task_id = submitted.task_id
    with pytest.raises(TaskTimeout) as timed_out:
        await requester.client.wait_task(task_id, states=("settled",), timeout_s=0.5)
    assert str(timed_out.value) == f"task {task_id} is still open after 0.5 s (waited for settled)"
    _, err = await requester.cli("task", "wait", str(task_id), "--timeout", "0.5", want=1)
    assert err == (
        f"error: task {task_id} is still open after 0.5 s "
        "(waited for refunded or resolved or settled)\n"
    )

    await requester.send(key, "market", "cancel", task=task_id)
    task = await requester.client.wait_task(task_id, timeout_s=DEADLINE_S)
    assert (task.state, task.paid, task.refunded) == ("refunded", 0, 600)
    out, _ = await requester.cli("task", "wait", str(task_id), "--timeout", str(DEADLINE_S))
    assert re.match(rf"task {task_id} refunded at height \d+\n", out), out
    assert re.search(r"refunded +600 to the requester", out), out
    _, err = await requester.cli("task", "result", str(task_id), "--out", "x", want=1)
    assert err == f"error: task {task_id} is refunded: it has no output\n"
    _, err = await requester.cli("task", "logs", "99", want=1)
    assert err == "error: unknown task 99\n"


async def test_a_completed_tasks_result_and_log_are_fetched(requester: Requester):
    client, provider, key = requester.client, requester.key("account2"), requester.key("account1")
    offers = {CLASS: {"gpu": "cpu", "gpus": 4, "memory_gb": 8, "units": 200, "price": OFFER_PRICE}}
    await requester.send(
        provider, "market", "register", name="me", tier="community", offers=offers, stake=5_000
    )
    before = await client.query("/market/prices")
    # No class, no price: the market's only class, at twice its reference price.
    submitted = await client.submit_task(key, requester.manifest, requester.data, replicas=1)
    after = await client.query("/market/prices")
    assert submitted.max_price in {2 * p["price"] for p in before["classes"] + after["classes"]}
    task_id = submitted.task_id
    task = await client.wait_task(task_id, states=("assigned",), timeout_s=DEADLINE_S)
    assert task.provider == provider.address and task.resource_class == CLASS

    index = await play_provider(requester, provider, task_id, submitted.manifest_cid, "done")
    fetched = await client.fetch_result(task_id, requester.tmp / "result")
    assert fetched.ok and fetched.index == index and fetched.metrics == METRICS
    assert sorted(fetched.files) == ["metrics.json", "model.skops"]
    assert fetched.files["model.skops"].read_bytes() == b"a model's bytes"
    assert fetched.index_path == (requester.tmp / "result" / "index.json").resolve()
    assert await client.fetch_logs(task_id) == LOG

    out, err = await requester.cli(
        "task", "result", str(task_id), "--out", str(requester.tmp / "cli")
    )
    assert out.startswith(f"ok: task {task_id}'s result in {requester.tmp / 'cli'} (status done)")
    assert re.search(r"accuracy +0.9167 on holdout", out) and err == "", out
    assert (requester.tmp / "cli" / "model.skops").read_bytes() == b"a model's bytes"
    out, _ = await requester.cli("task", "logs", str(task_id))
    assert out == LOG.decode()
    out, _ = await requester.cli("task", "wait", str(task_id), "--state", "completed")
    assert out.startswith(f"task {task_id} completed at height"), out

    # The oracles' quorum attests; the task settles: paid for the 3 units used.
    for k in range(2):
        await requester.send(
            requester.key(f"oracle{k}"),
            "market",
            "attest",
            task=task_id,
            completed=True,
            units=3,
            uptime_bps=9_990,
            latency_ms=100,
        )
    out, _ = await requester.cli("task", "wait", str(task_id), "--timeout", str(DEADLINE_S))
    price = task.price
    assert re.search(rf"paid +{3 * price} to the provider", out), out
    assert re.search(rf"refunded +{submitted.deposit - 3 * price} to the requester", out), out

    # A job that ran out of its CPU limit: its files and status, and exit 1.
    second = await client.submit_task(
        key, requester.manifest, requester.data, max_price=OFFER_PRICE, replicas=1
    )
    await client.wait_task(second.task_id, states=("assigned",), timeout_s=DEADLINE_S)
    await play_provider(requester, provider, second.task_id, second.manifest_cid, "cpu_limit")
    out, err = await requester.cli(
        "task", "result", str(second.task_id), "--out", str(requester.tmp / "failed"), want=1
    )
    assert "(status cpu_limit)" in out
    assert err == (
        f"error: task {second.task_id}'s job ended cpu_limit: the CPU limit of 60 s was "
        f"reached (its log: cloudchain task logs {second.task_id})\n"
    )


async def play_provider(
    requester: Requester, provider: PrivateKey, task_id: int, manifest_cid: str, status: str
) -> ResultIndex:
    """What a provider daemon does with an assigned task, without running it: start,
    store the outputs, the log and the index as blobs, complete with [index, *files, log]."""
    client = requester.client
    await requester.send(provider, "market", "start", task=task_id)
    outputs = {"metrics.json": json.dumps(METRICS).encode(), "model.skops": b"a model's bytes"}
    cids = {name: (await client.blob_put(io.BytesIO(data))).cid for name, data in outputs.items()}
    log = (await client.blob_put(io.BytesIO(LOG))).cid
    index = ResultIndex(
        task=task_id,
        manifest=manifest_cid,
        status=status,
        message="" if status == "done" else "the CPU limit of 60 s was reached",
        cpu_ms=2_310,
        wall_ms=3_120,
        units=3,
        executor="local",
        files=cids if status == "done" else {"metrics.json": cids["metrics.json"]},
        log=log,
    )
    index_cid = (await client.blob_put(io.BytesIO(index.to_bytes()))).cid
    await requester.send(
        provider,
        "market",
        "complete",
        task=task_id,
        units_used=3,
        output=[index_cid, *index.output],
    )
    return index


@pytest.mark.parametrize(
    "verb",
    [("wait", "1"), ("result", "1", "--out", "out"), ("logs", "1"), ("submit", "--budget", "600")],
)
def test_an_unreachable_node_is_an_error_not_a_traceback(verb, tmp_path):
    if verb[0] == "submit":
        key = tmp_path / "key.json"
        write_key_file(key, PrivateKey.generate())
        (tmp_path / "train.csv").write_bytes(DATA)
        (tmp_path / "m.json").write_text(json.dumps(train_manifest(DATA)))
        verb = (*verb, "--from", str(key), "--manifest", str(tmp_path / "m.json"))
        verb = (*verb, "--data", str(tmp_path / "train.csv"), "--resource-class", CLASS)
    code, out, err = run_main("task", *verb, "--node", "http://127.0.0.1:1")
    assert (code, out) == (1, "")
    assert re.fullmatch(r"error: cannot (reach|subscribe at) \S+ \(-1\): .*\n", err), err
