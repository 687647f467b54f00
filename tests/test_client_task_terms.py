"""The requester's rules with no node: which file is which dataset, the manifest checked
before anything is uploaded, the price from a budget, the balance warning, the chain's
task as a record; and the result's checks, against a scripted client (tasks.py's
TaskNode) that serves a made-up task and its blobs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cloudchain.client.task_terms import (
    DEFAULT_PRICE_FACTOR,
    PLACEHOLDER_CID,
    TaskRecord,
    TaskRecordError,
    TaskUsageError,
    balance_warning,
    check_before_upload,
    check_terms,
    choose_class,
    data_entries,
    dataset_names,
    file_sizes,
    fill_datasets,
    name_data,
    parse_data_arg,
    price_per_unit,
    units_for,
)
from cloudchain.client.tasks import (
    TaskError,
    fetch_logs,
    fetch_result,
    read_manifest_obj,
    submit_task,
)
from cloudchain.crypto import PrivateKey
from cloudchain.workload.manifest import ManifestError, parse_manifest
from cloudchain.workload.result import ResultIndex
from tests.helpers.market import PROVIDERS, REQUESTERS, MarketChain, offer, task_args
from tests.helpers.workloads import cid_of, classification_csv, train_manifest

DATA = classification_csv(rows=40)


def two_datasets() -> dict[str, Any]:
    manifest = train_manifest(DATA)
    manifest["data"]["test"] = {"format": "csv", "target": "label"}
    manifest["evaluate"] = {"metric": "accuracy", "split": "test"}
    return manifest


# --- which file is which dataset ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("train=data/train.csv", ("train", Path("data/train.csv"))),
        ("train.csv", (None, Path("train.csv"))),
        ("./a=b.csv", (None, Path("./a=b.csv"))),  # not a dataset's name before the =
        ("Train=x.csv", (None, Path("Train=x.csv"))),
        ("test_2=/tmp/t.csv", ("test_2", Path("/tmp/t.csv"))),
    ],
)
def test_a_data_argument_is_a_path_with_an_optional_dataset_name(text, expected):
    assert parse_data_arg(text) == expected


@pytest.mark.parametrize(
    ("text", "message"), [("train=", "no path after train="), ("", r"expected \[NAME=\]PATH")]
)
def test_a_data_argument_without_a_path_is_refused(text, message):
    with pytest.raises(TaskUsageError, match=message):
        parse_data_arg(text)


def test_every_form_of_data_gives_name_and_path_pairs():
    assert data_entries(None) == []
    assert data_entries("t.csv") == [(None, Path("t.csv"))]
    assert data_entries(Path("t.csv")) == [(None, Path("t.csv"))]
    assert data_entries({"train": "t.csv"}) == [("train", Path("t.csv"))]
    assert data_entries([("train", "t.csv"), (None, "u.csv")]) == [
        ("train", Path("t.csv")),
        (None, Path("u.csv")),
    ]


def test_an_unnamed_file_is_the_manifests_only_dataset():
    names = dataset_names(train_manifest(DATA))
    assert names == ("train",)
    assert name_data(names, [(None, Path("t.csv"))]) == {"train": Path("t.csv")}
    assert name_data(names, [("train", Path("t.csv"))]) == {"train": Path("t.csv")}
    assert name_data(names, []) == {}


@pytest.mark.parametrize(
    ("names", "entries", "message"),
    [
        (("test", "train"), [(None, Path("t.csv"))], "name the dataset .* test, train"),
        ((), [(None, Path("t.csv"))], "name the dataset .* none"),
        (("train",), [("test", Path("t.csv"))], "has no dataset 'test' \\(it has: train\\)"),
        (("train",), [(None, Path("a")), ("train", Path("b"))], "'train' is given twice"),
    ],
)
def test_files_that_are_not_the_manifests_datasets_are_refused(names, entries, message):
    with pytest.raises(TaskUsageError, match=message):
        name_data(names, entries)


def test_a_data_file_must_exist_and_hold_bytes(tmp_path):
    (tmp_path / "t.csv").write_bytes(DATA)
    (tmp_path / "empty.csv").write_bytes(b"")
    assert file_sizes({"train": tmp_path / "t.csv"}) == {"train": len(DATA)}
    with pytest.raises(TaskUsageError, match="--data train=.*missing.csv: no such file"):
        file_sizes({"train": tmp_path / "missing.csv"})
    with pytest.raises(TaskUsageError, match="the file is empty"):
        file_sizes({"train": tmp_path / "empty.csv"})
    with pytest.raises(TaskUsageError, match="no such file"):
        file_sizes({"train": tmp_path})  # a directory


# --- the manifest, before and after the uploads -----------------------------------------------


def test_the_manifest_is_checked_with_placeholders_before_the_upload():
    manifest = train_manifest(DATA)
    del manifest["data"]["train"]["cid"], manifest["data"]["train"]["bytes"]
    checked = check_before_upload(manifest, {"train": 1234})
    assert checked.data["train"].cid == PLACEHOLDER_CID
    assert checked.data["train"].bytes == 1234
    assert "cid" not in manifest["data"]["train"]  # the caller's manifest is left alone


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda m: m["model"]["params"].update(n_estimators=0), "model.params.n_estimators"),
        (lambda m: m["limits"].update(cpu_seconds=0), "limits.cpu_seconds"),
        (lambda m: m["data"]["train"].update(format="parquet"), "data.train.format"),
        (lambda m: m.update(kind="fit"), "kind"),
    ],
)
def test_a_bad_field_is_named_before_anything_is_uploaded(change, field):
    manifest = train_manifest(DATA)
    change(manifest)
    with pytest.raises(ManifestError) as refused:
        check_before_upload(manifest, {"train": len(DATA)})
    assert refused.value.field == f"manifest.{field}"


def test_a_file_too_large_for_the_manifest_is_named_by_its_size():
    with pytest.raises(ManifestError, match=r"manifest.data.train.bytes: \d+ is not in"):
        check_before_upload(train_manifest(DATA), {"train": 5 * 1024**3})


def test_a_dataset_with_neither_a_file_nor_a_cid_asks_for_one():
    manifest = two_datasets()
    with pytest.raises(ManifestError, match=r"manifest.data.test.cid: missing: give the file"):
        check_before_upload(manifest, {"train": len(DATA)})
    # Given a CID of an earlier upload, it needs no file.
    manifest["data"]["test"].update(cid=cid_of(b"held out"), bytes=8)
    assert check_before_upload(manifest, {"train": len(DATA)}).data["test"].bytes == 8


def test_the_uploads_cids_and_sizes_are_filled_in():
    manifest = two_datasets()
    cids = {"train": (cid_of(b"a"), 100), "test": (cid_of(b"b"), 50)}
    filled = parse_manifest(fill_datasets(manifest, cids))
    assert {n: (d.cid, d.bytes) for n, d in filled.data.items()} == cids
    assert filled.dataset_cids == (cid_of(b"b"), cid_of(b"a"))  # in name order: test, train
    assert "cid" not in manifest["data"]["test"]
    assert fill_datasets([1, 2], cids) == [1, 2]  # not a manifest: left to parse_manifest


def test_a_manifest_file_that_is_not_json_or_repeats_a_key_is_refused(tmp_path):
    path = tmp_path / "m.json"
    path.write_text("{'kind': 'train'}")
    with pytest.raises(ManifestError, match="manifest: .*m.json is not JSON"):
        read_manifest_obj(path)
    path.write_text('{"kind": "train", "kind": "infer"}')
    with pytest.raises(ManifestError, match="given twice"):
        read_manifest_obj(path)
    with pytest.raises(ManifestError, match="cannot read"):
        read_manifest_obj(tmp_path / "none.json")
    path.write_text(json.dumps(train_manifest(DATA)))
    assert read_manifest_obj(path) == train_manifest(DATA)


# --- the terms -----------------------------------------------------------------------------


def test_units_default_to_the_manifests_cpu_seconds():
    manifest = parse_manifest(train_manifest(DATA))
    assert units_for(manifest, None) == manifest.limits.cpu_seconds == 60
    assert units_for(manifest, 90) == 90
    with pytest.raises(TaskUsageError, match="--units 0"):
        units_for(manifest, 0)


def test_a_budget_is_spread_over_the_units_rounded_down():
    assert price_per_unit(60, budget=600) == 10
    assert price_per_unit(60, budget=659) == 10  # the deposit, 600, never exceeds the budget
    assert price_per_unit(60, budget=60) == 1
    with pytest.raises(TaskUsageError, match="--budget 59 is less than one token for each"):
        price_per_unit(60, budget=59)


def test_without_a_budget_the_price_is_a_given_one_or_twice_the_reference():
    assert price_per_unit(60, max_price=7) == 7
    assert price_per_unit(60, reference_price=13) == DEFAULT_PRICE_FACTOR * 13 == 26
    with pytest.raises(TaskUsageError, match="no reference price .*give --budget"):
        price_per_unit(60)
    with pytest.raises(TaskUsageError, match="not both"):
        price_per_unit(60, budget=600, max_price=7)
    with pytest.raises(TaskUsageError, match="--max-price 0"):
        price_per_unit(60, max_price=0)


def test_the_class_is_the_one_given_or_the_markets_only_one():
    assert choose_class("gpu", {}) == "gpu"
    assert choose_class(None, {"cpu-small": 5}) == "cpu-small"
    with pytest.raises(TaskUsageError, match="priced: cpu, gpu"):
        choose_class(None, {"gpu": 5, "cpu": 1})
    with pytest.raises(TaskUsageError, match="priced: none yet"):
        choose_class(None, {})


@pytest.mark.parametrize(
    ("terms", "message"),
    [
        ({"deadline_s": 0}, "--deadline-s 0"),
        ({"min_uptime_bps": 10_001}, "--min-uptime-bps 10001"),
        ({"max_latency_ms": 0}, "--max-latency-ms 0"),
        ({"penalty": 601}, "--penalty 601: expected 0 to 600"),
        ({"provider": "alice"}, "--provider 'alice'"),
    ],
)
def test_terms_the_chain_would_refuse_are_named(terms, message):
    base = {
        "deadline_s": 60,
        "min_uptime_bps": 9_000,
        "max_latency_ms": 500,
        "penalty": 0,
        "deposit": 600,
        "provider": "",
    }
    check_terms(**base)
    with pytest.raises(TaskUsageError, match=message):
        check_terms(**(base | terms))


def test_the_warning_is_given_when_the_balance_will_not_cover_another_deposit():
    assert balance_warning(600, 600) is None
    assert balance_warning(10**9, 600) is None
    assert balance_warning(599, 600) == (
        "your balance 599 will not cover the next such task's deposit 600"
    )
    assert balance_warning(1_000, 600, fees=400) is None
    assert balance_warning(999, 600, fees=400) == (
        "your balance 999 will not cover the next such task's deposit 600 and fees 400"
    )


# --- the chain's task ------------------------------------------------------------------------


def test_a_task_record_reads_the_chains_task():
    chain = MarketChain()
    chain.ok(PROVIDERS[0], "register", name="p", tier="community", offers=offer(), stake=5000)
    chain.ok(REQUESTERS[0], "submit", **task_args())
    chain.tick()
    record = TaskRecord.from_obj(chain.task(1))
    assert (record.id, record.state, record.provider) == (1, "assigned", PROVIDERS[0].address)
    assert (record.output, record.payout, record.paid, record.final) == (None, None, None, False)
    assert [state for state, _ in record.history] == ["open", "assigned"]
    assert record["deposit"] == record.deposit == 200  # the chain's fields by name too
    chain.ok(REQUESTERS[1], "submit", **task_args(resource_class="nobody-offers-it"))
    chain.ok(REQUESTERS[1], "cancel", task=2)
    refunded = TaskRecord.from_obj(chain.task(2))
    assert refunded.final and (refunded.paid, refunded.refunded) == (0, 200)
    with pytest.raises(TaskRecordError, match="not a task"):
        TaskRecord.from_obj({"id": 1})
    with pytest.raises(TaskRecordError, match="expected a task"):
        TaskRecord.from_obj([1])


# --- results, from a scripted client ---------------------------------------------------------


class ScriptedNode:
    """Serves one task and the blobs it names: TaskNode's reads, nothing else."""

    def __init__(self, task: dict[str, Any], blobs: dict[str, bytes]) -> None:
        self.task, self.blobs = task, blobs
        self.uploads: list[Any] = []

    async def query(self, path: str, data: bytes = b"", height: int = 0) -> Any:
        assert path == "/market/task" and data == str(self.task["id"]).encode()
        return self.task

    async def blob_get(self, cid: str, dest_path: Any, progress=None, start=None, end=None):
        Path(dest_path).write_bytes(self.blobs[cid][start or 0 : end])

    async def blob_put(self, *args: Any, **kwargs: Any) -> Any:
        self.uploads.append(args)
        raise AssertionError("nothing is uploaded")


MANIFEST_CID = cid_of(b"manifest")


def completed(
    status: str = "done", task_id: int = 3, files: dict[str, bytes] | None = None, **index: Any
) -> ScriptedNode:
    """A completed task 3 whose index names `files` (metrics and a model by default)."""
    files = files or {"metrics.json": b'{"metric":"accuracy","value":0.9}', "model.skops": b"m"}
    blobs = {cid_of(data): data for data in files.values()}
    log = b"job log\n"
    blobs[cid_of(log)] = log
    fields = {
        "task": task_id,
        "manifest": MANIFEST_CID,
        "status": status,
        "message": "" if status == "done" else "the CPU limit was reached",
        "cpu_ms": 2_310,
        "wall_ms": 3_000,
        "units": 3,
        "executor": "local",
        "files": {name: cid_of(data) for name, data in files.items()},
        "log": cid_of(log),
    }
    result = ResultIndex(**(fields | index))
    blobs[cid_of(result.to_bytes())] = result.to_bytes()
    task = {**TASK, "output": [cid_of(result.to_bytes()), *result.output]}
    return ScriptedNode(task, blobs)


TASK = TaskRecord.from_obj(
    {
        "id": 3,
        "state": "completed",
        "requester": "ab" * 20,
        "provider": "cd" * 20,
        "kind": "training",
        "inputs": [MANIFEST_CID],
        "resource_class": "cpu",
        "units": 10,
        "max_price": 2,
        "deposit": 20,
        "price": 1,
        "units_used": 3,
        "output": "",
        "history": [["open", 1], ["assigned", 1], ["completed", 3]],
        "outcome": None,
        "payout": None,
    }
).raw


async def test_a_result_is_written_beside_its_index_and_its_metrics_read(tmp_path):
    node = completed()
    fetched = await fetch_result(node, 3, tmp_path / "out")
    assert fetched.ok and fetched.metrics == {"metric": "accuracy", "value": 0.9}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "index.json",
        "metrics.json",
        "model.skops",
    ]
    assert fetched.files["model.skops"].read_bytes() == b"m"
    assert fetched.index_path.read_bytes() == node.blobs[node.task["output"][0]]
    assert await fetch_logs(node, 3) == b"job log\n"


async def test_a_job_that_did_not_end_done_is_reported_with_its_files(tmp_path):
    fetched = await fetch_result(completed("cpu_limit", files={"partial.txt": b"p"}), 3, tmp_path)
    assert not fetched.ok
    assert (fetched.index.status, fetched.index.message) == (
        "cpu_limit",
        "the CPU limit was reached",
    )
    assert fetched.metrics == {} and fetched.files["partial.txt"].read_bytes() == b"p"


@pytest.mark.parametrize(
    ("node", "message"),
    [
        (completed(task_id=4), "task 3's result index is task 4's"),
        (completed(manifest=cid_of(b"another")), "names another manifest"),
        (completed(files={"index.json": b"{}"}), "a file 'index.json' it may not write"),
        (completed(files={"metrics.json": b"[1]"}), "metrics.json is not a JSON object"),
        (completed(files={"metrics.json": b"{"}), "metrics.json is not JSON"),
    ],
)
async def test_a_result_that_is_not_this_tasks_is_refused(tmp_path, node, message):
    with pytest.raises(TaskError, match=message):
        await fetch_result(node, 3, tmp_path)


async def test_an_output_on_chain_that_the_index_does_not_name_is_refused(tmp_path):
    node = completed()
    node.task["output"] = [node.task["output"][0], cid_of(b"other"), node.task["output"][-1]]
    with pytest.raises(TaskError, match="does not match its output on chain"):
        await fetch_result(node, 3, tmp_path)
    node.task["output"][0] = cid_of(b"x")
    node.blobs[cid_of(b"x")] = b"not an index"
    with pytest.raises(TaskError, match="task 3's result index: not JSON"):
        await fetch_logs(node, 3)


async def test_a_task_without_an_output_says_its_state(tmp_path):
    node = ScriptedNode({**TASK, "state": "running"}, {})
    with pytest.raises(TaskError, match="task 3 is running: it has no output"):
        await fetch_result(node, 3, tmp_path)
    with pytest.raises(TaskError, match="task 3 is running: it has no output"):
        await fetch_logs(node, 3)


async def test_a_bad_manifest_or_data_argument_is_refused_before_the_node_is_asked(tmp_path):
    node = ScriptedNode(TASK, {})  # its query would fail an assertion: nothing may ask
    data = tmp_path / "train.csv"
    data.write_bytes(DATA)
    key = PrivateKey.generate()
    bad = train_manifest(DATA)
    bad["model"]["params"]["n_estimators"] = 0
    with pytest.raises(ManifestError, match="manifest.model.params.n_estimators"):
        await submit_task(node, key, bad, data)
    with pytest.raises(TaskUsageError, match="no dataset 'test'"):
        await submit_task(node, key, train_manifest(DATA), {"test": data})
    assert node.uploads == []
