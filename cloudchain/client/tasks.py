"""A requester's tasks: submit a manifest with its data, wait for the task, fetch what
it returned. `Client.submit_task`, `wait_task`, `fetch_result` and `fetch_logs` call
these; `cloudchain task ...` calls those.

    submitted = await client.submit_task(key, "manifest.json", {"train": "train.csv"},
                                         budget=600)
    task = await client.wait_task(submitted.task_id)          # settled, refunded, resolved
    result = await client.fetch_result(submitted.task_id, "out/")  # files, metrics

Submitting: the manifest (a JSON file or its decoded value) is checked with each given
file's size before anything is uploaded, so that a bad field is named first
(task_terms.check_before_upload); then each file is uploaded, its CID and size written
into the manifest, the manifest's canonical bytes uploaded, every blob anchored on chain
by the requester (unless `anchor=False`: an unanchored upload is dropped from the node
after its lease's grace), and `market.submit` sent with the manifest's CID first among
the inputs, then the datasets'. A task the chain refuses raises TaskRefused with the
chain's code and log.

Results: a completed task's output is [index, *files, log] (workload/result.py); the
index is fetched first, checked against the task and against that output, and names
every file, written under the output directory and nowhere else. A job that did not end
"done" (a CPU limit, a deadline, a crash) is reported by the index's status and message,
not hidden: the files it left and its log are still there.
"""

from __future__ import annotations

import asyncio
import io
import json
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cloudchain.client.blobs import BlobGot, Progress, Source
from cloudchain.client.errors import RPCClientError
from cloudchain.client.results import (
    BlobPut,
    BroadcastCommitResult,
    BroadcastResult,
    Status,
    TxResponse,
)
from cloudchain.client.subscriptions import EventStream
from cloudchain.client.task_terms import (
    FINAL_STATES,
    DataArg,
    StrPath,
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
    price_per_unit,
    reference_prices,
    units_for,
)
from cloudchain.crypto import PrivateKey
from cloudchain.ledger import Transaction
from cloudchain.workload.manifest import (
    MAX_MANIFEST_BYTES,
    Manifest,
    ManifestError,
    canonical_bytes,
    parse_manifest,
)
from cloudchain.workload.result import MAX_INDEX_BYTES, ResultError, ResultIndex, parse_result_index

# SLA terms a task asks for when the caller names none (market.submit requires them).
DEFAULT_MIN_UPTIME_BPS = 9_000  # 90%
DEFAULT_MAX_LATENCY_MS = 2_000
# Market deadline beyond the job's own wall limit: the wait to be assigned, the inputs'
# download and the outputs' upload.
DEADLINE_MARGIN_S = 600
DEFAULT_WAIT_S = 3_600.0
POLL_S = 1.0  # how often wait_task reads the task when the block subscription is lost
INDEX_FILE = "index.json"
METRICS_FILE = "metrics.json"
MAX_METRICS_BYTES = 1024 * 1024
NEW_BLOCK = "tm.event='NewBlock'"


class TaskError(Exception):
    """A requester's task cannot go on: the message says why and what the task is."""


class TaskRefused(TaskError):
    """The chain refused a transaction of the submission (its code and log)."""

    def __init__(self, what: str, code: int, codespace: str, log: str) -> None:
        space = f" ({codespace})" if codespace else ""
        super().__init__(f"{what} refused with code {code}{space}: {log}")
        self.code, self.codespace, self.log = code, codespace, log


class TaskTimeout(TaskError):
    """The task did not reach the states waited for in time."""

    def __init__(self, task_id: int, state: str, states: Sequence[str], timeout_s: float) -> None:
        super().__init__(
            f"task {task_id} is still {state} after {timeout_s:g} s "
            f"(waited for {' or '.join(states)})"
        )
        self.task_id, self.state, self.timeout_s = task_id, state, timeout_s


class TaskNode(Protocol):
    """What of the client these functions use (Client has all of it)."""

    async def status(self) -> Status: ...
    async def query(self, path: str, data: bytes = b"", height: int = 0) -> Any: ...
    async def nonce(self, address: str) -> int: ...
    async def sign_tx(
        self,
        key: PrivateKey,
        module: str,
        method: str,
        args: dict[str, Any],
        *,
        fee: int | None = None,
        nonce: int | None = None,
        chain_id: str | None = None,
    ) -> Transaction: ...
    async def broadcast_tx_sync(self, tx: bytes) -> BroadcastResult: ...
    async def broadcast_tx_commit(self, tx: bytes) -> BroadcastCommitResult: ...
    async def tx(self, tx_hash: bytes) -> TxResponse: ...
    async def blob_put(
        self,
        path_or_stream: Source,
        replicas: int = 1,
        progress: Progress | None = None,
        cid_version: int = 0,
    ) -> BlobPut: ...
    async def blob_get(
        self,
        cid: str,
        dest_path: StrPath,
        progress: Progress | None = None,
        start: int | None = None,
        end: int | None = None,
    ) -> BlobGot: ...
    def subscribe(self, *queries: str) -> EventStream: ...


@dataclass(frozen=True)
class SubmittedTask:
    task_id: int
    manifest_cid: str
    inputs: tuple[str, ...]  # as the chain records them: the manifest, then the datasets
    deposit: int  # max_price x units, in escrow
    max_price: int
    units: int
    height: int  # of the block that holds the submit
    tx_hash: bytes
    warnings: tuple[str, ...] = ()  # the balance will not cover another such task, ...
    dataset: int | None = None  # the sealed dataset it reads
    dp_micro_eps: int | None = None  # the ε it declares, spent from that dataset's budget

    @property
    def warning(self) -> str | None:
        return "; ".join(self.warnings) or None


@dataclass(frozen=True)
class FetchedResult:
    index: ResultIndex
    files: Mapping[str, Path]  # output file name -> where it was written
    metrics: Mapping[str, Any]  # metrics.json, {} when the job wrote none
    index_path: Path
    # The oracles' verdict: True if their quorum found the task served, False if it
    # refused the result (made up, or not what the manifest asked), None before one.
    verified: bool | None = None

    @property
    def ok(self) -> bool:
        """The job ran to its end ("done") and the oracles did not refuse it; otherwise
        index.status and message, or `verified`, say why."""
        return self.index.status == "done" and self.verified is not False


# --- reading ------------------------------------------------------------------------------


async def read_task(client: TaskNode, task_id: int) -> TaskRecord:
    """The task as the chain has it now (TaskError "unknown task" if it has none)."""
    try:
        answer = await client.query("/market/task", str(task_id).encode())
    except RPCClientError as exc:
        if exc.message == "query refused" and exc.data.startswith("unknown task"):
            raise TaskError(f"unknown task {task_id}") from None
        raise
    try:
        return TaskRecord.from_obj(answer)
    except TaskRecordError as exc:
        raise TaskError(str(exc)) from None


async def balance_of(client: TaskNode, address: str) -> int:
    answer = await client.query("/token/balance", address.encode())
    balance = answer.get("balance") if isinstance(answer, Mapping) else None
    if not isinstance(balance, int):
        raise TaskError(f"/token/balance: expected a balance, got {answer!r:.60}")
    return balance


# --- submitting -------------------------------------------------------------------------------


def read_manifest_obj(manifest: StrPath | Mapping[str, Any]) -> Any:
    """The manifest's decoded JSON: read from a file, or as given."""
    if isinstance(manifest, Mapping):
        return manifest
    path = Path(manifest)
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise ManifestError("manifest", f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError("manifest", f"{path} is more than {MAX_MANIFEST_BYTES} bytes")
    try:
        return json.loads(data, object_pairs_hook=_no_duplicate_keys)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError("manifest", f"{path} is not JSON: {exc}") from None


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("a key is given twice in one object")
    return obj


async def submit_task(
    client: TaskNode,
    key: PrivateKey,
    manifest: StrPath | Mapping[str, Any],
    data: DataArg = None,
    *,
    resource_class: str | None = None,
    units: int | None = None,
    budget: int | None = None,
    max_price: int | None = None,
    deadline_s: int | None = None,
    min_uptime_bps: int = DEFAULT_MIN_UPTIME_BPS,
    max_latency_ms: int = DEFAULT_MAX_LATENCY_MS,
    penalty: int = 0,
    provider: str = "",
    replicas: int = 2,
    anchor: bool = True,
) -> SubmittedTask:
    """Upload the data and the manifest, and submit the task. `units` default to the
    manifest's CPU limit; the price per unit is `max_price`, or `budget` // units, or
    twice the class's reference price; `resource_class` defaults to the market's only
    one; `deadline_s` to the manifest's deadline plus DEADLINE_MARGIN_S. Raises
    ManifestError (the field named) or TaskUsageError before anything is uploaded,
    TaskError if the balance does not cover the deposit, TaskRefused if the chain
    refuses the task.

    A dataset the manifest names as sealed (`"sealed": ID`) takes its ciphertext's CID
    and size from the chain; the task then names the dataset, and if the manifest trains
    with DP it declares the ε the accountant computes for it (dp_plan.py), which the
    chain spends from the dataset's budget."""
    manifest = await _with_sealed_ciphertext(client, read_manifest_obj(manifest))
    terms = await _plan(
        client,
        key,
        manifest,
        data,
        resource_class=resource_class,
        units=units,
        budget=budget,
        max_price=max_price,
        deadline_s=deadline_s,
    )
    check_terms(
        deadline_s=terms.deadline_s,
        min_uptime_bps=min_uptime_bps,
        max_latency_ms=max_latency_ms,
        penalty=penalty,
        deposit=terms.deposit,
        provider=provider,
    )
    uploads, manifest_put, filled = await _upload(client, terms, replicas)
    inputs = (manifest_put.cid, *filled.dataset_cids)
    args = {
        "kind": filled.chain_kind,
        "inputs": list(inputs),
        "resource_class": terms.resource_class,
        "units": terms.units,
        "max_price": terms.price,
        "deadline_s": terms.deadline_s,
        "min_uptime_bps": min_uptime_bps,
        "max_latency_ms": max_latency_ms,
        "penalty": penalty,
        "provider": provider,
    }
    privacy = _privacy_terms(filled)
    args.update(privacy)
    anchored = [*uploads, manifest_put] if anchor else []
    committed, anchors, fees = await _send(client, key, anchored, args)
    failure = committed.failure
    if failure is not None:
        raise TaskRefused("the task", failure.code, failure.codespace, failure.log)
    warnings = await _anchor_failures(client, anchors)
    low = balance_warning(await balance_of(client, key.address), terms.deposit, fees)
    if low is not None:
        warnings.append(low)
    return SubmittedTask(
        task_id=_submitted_id(committed),
        manifest_cid=manifest_put.cid,
        inputs=inputs,
        deposit=terms.deposit,
        max_price=terms.price,
        units=terms.units,
        height=committed.height,
        tx_hash=committed.hash,
        warnings=tuple(warnings),
        dataset=privacy.get("dataset"),
        dp_micro_eps=privacy.get("dp_micro_eps"),
    )


async def _with_sealed_ciphertext(client: TaskNode, obj: Any) -> Any:
    """The manifest's JSON with each sealed dataset's cid and bytes those of the
    ciphertext the chain records for it."""
    sealed = {}
    for name in dataset_names(obj):
        entry = obj["data"][name]
        dataset = entry.get("sealed") if isinstance(entry, Mapping) else None
        if isinstance(dataset, int) and not isinstance(dataset, bool) and dataset > 0:
            try:
                record = await client.query("/access/dataset", str(dataset).encode())
            except RPCClientError as exc:
                raise TaskUsageError(f"manifest.data.{name}.sealed: {exc}") from None
            sealed[name] = (record["cid"], record["size"])
    return fill_datasets(obj, sealed) if sealed else obj


def _privacy_terms(manifest: Manifest) -> dict[str, int]:
    """market.submit's dataset and dp_micro_eps for the manifest (none if it reads no
    sealed dataset)."""
    if manifest.sealed is None:
        return {}
    dataset = manifest.sealed[1].sealed
    assert dataset is not None
    if manifest.dp is None:
        return {"dataset": dataset}
    from cloudchain.workload.dp_plan import planned_micro_epsilon

    return {"dataset": dataset, "dp_micro_eps": planned_micro_epsilon(manifest)}


@dataclass(frozen=True)
class _Terms:
    """What submit_task settled before it uploads anything."""

    manifest_obj: Any
    files: Mapping[str, Path]
    sizes: Mapping[str, int]
    resource_class: str
    units: int
    price: int  # per unit
    deadline_s: int

    @property
    def deposit(self) -> int:
        return self.price * self.units


async def _plan(
    client: TaskNode,
    key: PrivateKey,
    manifest: StrPath | Mapping[str, Any],
    data: DataArg,
    *,
    resource_class: str | None,
    units: int | None,
    budget: int | None,
    max_price: int | None,
    deadline_s: int | None,
) -> _Terms:
    """The manifest and its files checked, the terms worked out, the balance seen to
    cover the deposit: everything that can refuse the task before an upload."""
    obj = read_manifest_obj(manifest)
    files = name_data(dataset_names(obj), data_entries(data))
    sizes = file_sizes(files)
    checked = check_before_upload(obj, sizes)
    units = units_for(checked, units)
    prices = reference_prices(await client.query("/market/prices"))
    resource_class = choose_class(resource_class, prices)
    price = price_per_unit(
        units, budget=budget, max_price=max_price, reference_price=prices.get(resource_class)
    )
    if deadline_s is None:
        deadline_s = checked.limits.deadline_s + DEADLINE_MARGIN_S
    terms = _Terms(obj, files, sizes, resource_class, units, price, deadline_s)
    balance = await balance_of(client, key.address)
    # Verify that the deposit is there before uploading (the chain would refuse it).
    if balance < terms.deposit:
        raise TaskError(
            f"your balance {balance} does not cover the deposit {terms.deposit} "
            f"({price} a unit x {units} units)"
        )
    return terms


async def _upload(
    client: TaskNode, terms: _Terms, replicas: int
) -> tuple[list[BlobPut], BlobPut, Manifest]:
    """Each dataset's file, then the manifest with their CIDs and sizes filled in:
    (the datasets' uploads, the manifest's, the manifest as uploaded)."""
    uploads = {}
    for name, path in sorted(terms.files.items()):
        put = await client.blob_put(path, replicas=replicas)
        if put.size != terms.sizes[name]:
            raise TaskError(f"{path} changed while it was uploaded: {put.size} bytes")
        uploads[name] = put
    filled = parse_manifest(
        fill_datasets(terms.manifest_obj, {n: (p.cid, p.size) for n, p in uploads.items()})
    )
    manifest_put = await client.blob_put(io.BytesIO(canonical_bytes(filled)), replicas=replicas)
    return list(uploads.values()), manifest_put, filled


async def _send(
    client: TaskNode, key: PrivateKey, blobs: Sequence[BlobPut], submit: dict[str, Any]
) -> tuple[BroadcastCommitResult, list[tuple[str, bytes]], int]:
    """Anchor each blob, then submit, with the account's consecutive nonces: the anchors
    go to the mempool (their check is awaited), the submit waits for its block, after
    the anchors' (nonce order). Returns the submit's result, (CID, hash) of each
    anchor, and the fees of them all."""
    chain_id = (await client.status()).network
    nonce = await client.nonce(key.address)
    anchors, fees = [], 0
    for offset, put in enumerate(dict((p.cid, p) for p in blobs).values()):
        args = {"cid": put.cid, "size": put.size, "replicas": list(put.replicas)}
        tx = await client.sign_tx(
            key, "storage", "anchor", args, nonce=nonce + offset, chain_id=chain_id
        )
        checked = await client.broadcast_tx_sync(tx.to_bytes())
        if not checked.ok:
            raise TaskRefused(
                f"the anchor of {put.cid}", checked.code, checked.codespace, checked.log
            )
        anchors.append((put.cid, tx.hash))
        fees += tx.fee
    tx = await client.sign_tx(
        key, "market", "submit", submit, nonce=nonce + len(anchors), chain_id=chain_id
    )
    return await client.broadcast_tx_commit(tx.to_bytes()), anchors, fees + tx.fee


async def _anchor_failures(client: TaskNode, anchors: Iterable[tuple[str, bytes]]) -> list[str]:
    """A warning for each anchor that failed in its block (the task stands: its blobs
    are on the node, under the upload's lease)."""
    failures = []
    for cid, tx_hash in anchors:
        try:
            result = (await client.tx(tx_hash)).tx_result
        except RPCClientError as exc:
            failures.append(f"cannot confirm the anchor of {cid}: {exc}")
            continue
        if not result.ok:
            failures.append(f"the anchor of {cid} failed with code {result.code}: {result.log}")
    return failures


def _submitted_id(committed: BroadcastCommitResult) -> int:
    for event in committed.tx_result.events:
        if event.type == "market_submit":
            task = dict(event.attributes).get("task", "")
            if task.isdigit():
                return int(task)
    raise TaskError(f"the submit at height {committed.height} emitted no market_submit event")


# --- waiting -------------------------------------------------------------------------------


async def wait_task(
    client: TaskNode,
    task_id: int,
    states: Sequence[str] = FINAL_STATES,
    timeout_s: float = DEFAULT_WAIT_S,
) -> TaskRecord:
    """The task once it is in one of `states` (by default a final one), read after each
    new block (or every POLL_S if the node's event stream is lost); TaskTimeout after
    `timeout_s`."""
    if not states:
        raise ValueError("wait for at least one state")
    last: list[TaskRecord] = []
    try:
        async with asyncio.timeout(timeout_s):
            return await _follow(client, task_id, tuple(states), last)
    except TimeoutError:
        state = last[-1].state if last else "unknown"
        raise TaskTimeout(task_id, state, states, timeout_s) from None


async def _follow(
    client: TaskNode, task_id: int, states: tuple[str, ...], last: list[TaskRecord]
) -> TaskRecord:
    async def reached() -> TaskRecord | None:
        record = await read_task(client, task_id)
        last.append(record)
        del last[:-1]
        return record if record.state in states else None

    try:
        async with client.subscribe(NEW_BLOCK) as blocks:
            # Subscribed first, then read: a block committed in between is not missed.
            if (record := await reached()) is not None:
                return record
            while await _next_block(blocks):
                if (record := await reached()) is not None:
                    return record
    except _StreamLost:
        pass
    while (record := await reached()) is None:
        await asyncio.sleep(POLL_S)
    return record


class _StreamLost(Exception):
    pass


async def _next_block(blocks: EventStream) -> bool:
    try:
        await blocks.__anext__()
    except StopAsyncIteration:
        return False
    except RPCClientError:
        raise _StreamLost from None
    return True


# --- results ---------------------------------------------------------------------------------


async def read_index(client: TaskNode, task_id: int) -> tuple[TaskRecord, ResultIndex, bytes]:
    """The task, its result index and the index's bytes, the index checked against the
    task: its id, its manifest (the first input) and the output the chain records."""
    record = await read_task(client, task_id)
    if not record.output:
        raise TaskError(f"task {task_id} is {record.state}: it has no output")
    with tempfile.TemporaryDirectory(prefix="cloudchain-index-") as scratch:
        path = Path(scratch) / INDEX_FILE
        await client.blob_get(record.output[0], path, end=MAX_INDEX_BYTES + 1)
        data = path.read_bytes()
    try:
        index = parse_result_index(data)
    except ResultError as exc:
        raise TaskError(f"task {task_id}'s {exc}") from None
    # Verify that the index is this task's, and names what the chain holds as its output.
    if index.task != task_id:
        raise TaskError(f"task {task_id}'s result index is task {index.task}'s")
    if record.inputs and index.manifest != record.inputs[0]:
        raise TaskError(f"task {task_id}'s result index names another manifest")
    if list(record.output[1:]) != index.output:
        raise TaskError(f"task {task_id}'s result index does not match its output on chain")
    return record, index, data


async def fetch_result(client: TaskNode, task_id: int, out_dir: StrPath) -> FetchedResult:
    """Every file the task's result index names, written into `out_dir` (created if
    need be) with the index itself as index.json; metrics.json parsed."""
    record, index, data = await read_index(client, task_id)
    outcome = record.outcome
    verified = None if outcome is None else bool(outcome.get("completed"))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    root = out.resolve()
    files: dict[str, Path] = {}
    for name, cid in index.files.items():
        dest = root / name
        # Verify that the file lands in out_dir, beside the index, not over it.
        if dest.parent != root or name in (INDEX_FILE, "", ".", ".."):
            raise TaskError(f"task {task_id}'s result names a file {name!r} it may not write")
        await client.blob_get(cid, dest)
        files[name] = dest
    index_path = root / INDEX_FILE
    index_path.write_bytes(data)
    metrics = _metrics(task_id, files.get(METRICS_FILE))
    return FetchedResult(
        index=index, files=files, metrics=metrics, index_path=index_path, verified=verified
    )


def _metrics(task_id: int, path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        if path.stat().st_size > MAX_METRICS_BYTES:
            raise ValueError(f"more than {MAX_METRICS_BYTES} bytes")
        metrics = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise TaskError(f"task {task_id}'s {METRICS_FILE} is not JSON: {exc}") from None
    if not isinstance(metrics, dict):
        raise TaskError(f"task {task_id}'s {METRICS_FILE} is not a JSON object")
    return metrics


async def fetch_logs(client: TaskNode, task_id: int) -> bytes:
    """The job's log, as the provider stored it (a blob: it outlives job and provider)."""
    _, index, _ = await read_index(client, task_id)
    with tempfile.TemporaryDirectory(prefix="cloudchain-log-") as scratch:
        path = Path(scratch) / "job.log"
        await client.blob_get(index.log, path)
        return path.read_bytes()


__all__ = [
    "DEFAULT_MAX_LATENCY_MS",
    "DEFAULT_MIN_UPTIME_BPS",
    "FINAL_STATES",
    "FetchedResult",
    "SubmittedTask",
    "TaskError",
    "TaskRefused",
    "TaskTimeout",
    "fetch_logs",
    "fetch_result",
    "read_task",
    "submit_task",
    "wait_task",
]
