"""`cloudchain provider run`: one provider key's daemon.

It registers the provider if the chain does not know it (its offer: this machine's
capacity, its price by its pricing policy, its stake), says where its agent answers
(`market.advertise`) and publishes its encryption key (`access.publish_key`, the X25519
key data owners wrap grants to), then follows the chain (follow.py) and at each look:

- re-prices: the policy's price from the class's reference price and the units in
  flight; a changed price is sent as `market.update`, the provider's bid for what the
  chain assigns next (assignment takes the cheapest offer);
- serves every task the chain has assigned to it, assigned or running, that is not
  already being served: `start`, the job fetched and run on the executor, the units
  metered, the outputs, the job log and the result index stored as blobs and
  anchored, and `complete`. A sealed dataset is opened only through a grant the chain
  records the opening of (sealed_inputs.py); its plaintext stays in the job's private
  directory and is removed once the job has run; outputs are what is uploaded.

Restart-safe, because the chain is the record of what is due and `home/jobs/<id>/
report.json` the record of a result made: the report is written before `complete` is
sent, so a daemon killed in between finds it on restart and sends that same result,
never a second one; a daemon killed while a job ran finds its task running and no
report, and runs the job again (the child died with it: sandbox.py). A `complete` the
chain refuses as INVALID_STATE means the task moved on (done, or expired), which after a
restart is how "already done" reads.

Faults on purpose (`--fault`), for tests and the demo:
    wrong-output    makes up its answer: runs nothing, reports a plausible metric and a
                    model file of invented bytes, and claims every unit bought
    crash-mid-task  exits (code 70) right after `start` is committed
    slow            every /health answer waits `slow_s` first (probe latency past SLA)
    offline         serves no /health and takes no tasks after registering
    ignore-privacy  runs a task whose privacy terms it should refuse (an ε declared
                    below what the manifest spends): what the oracles must catch
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from cloudchain.agents.chain import Chain, TxRefused
from cloudchain.agents.executor import Executor
from cloudchain.agents.follow import follow_chain
from cloudchain.agents.jobrun import JobInputError, fetch_job, run_job
from cloudchain.agents.provider.capacity import Capacity
from cloudchain.agents.provider.config import ProviderConfig
from cloudchain.agents.sealed_inputs import SealedInputs
from cloudchain.agents.server import AgentServer
from cloudchain.agents.workload.jobs import METRICS_FILE
from cloudchain.agents.workload.sandbox import LOG_FILE, REFUSED, ChildResult
from cloudchain.chaincode.codes import Code
from cloudchain.crypto import PrivateKey
from cloudchain.logfields import fields
from cloudchain.privacy.wrapping import read_encryption_key
from cloudchain.workload.manifest import canonical_json
from cloudchain.workload.metering import compute_units
from cloudchain.workload.result import ResultIndex

REPORT_FILE = "report.json"
CRASH_EXIT = 70
SERVED_STATES = ("assigned", "running")
MOVED_ON = frozenset({Code.INVALID_STATE, Code.DEADLINE_PASSED})
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Report:
    """A result made and not yet known to be on chain: the blobs to anchor (CID, size,
    the nodes holding it) and what `complete` sends."""

    task: int
    units: int
    output: tuple[str, ...]
    anchors: tuple[tuple[str, int, tuple[str, ...]], ...]

    def to_bytes(self) -> bytes:
        return canonical_json(
            {
                "task": self.task,
                "units": self.units,
                "output": list(self.output),
                "anchors": [[cid, size, list(holders)] for cid, size, holders in self.anchors],
            }
        )

    @classmethod
    def read(cls, path: Path) -> Report | None:
        try:
            obj = json.loads(path.read_bytes())
            anchors = tuple((str(c), int(n), tuple(map(str, h))) for c, n, h in obj["anchors"])
            return cls(int(obj["task"]), int(obj["units"]), tuple(obj["output"]), anchors)
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable report, running the job again", extra=fields(path=path))
            return None

    def transactions(self) -> list[tuple[str, str, dict[str, Any]]]:
        """The anchors (an anchor sent again only updates itself) and `complete`."""
        anchors = [
            ("storage", "anchor", {"cid": cid, "size": size, "replicas": list(holders)})
            for cid, size, holders in self.anchors
        ]
        complete = {"task": self.task, "units_used": self.units, "output": list(self.output)}
        return [*anchors, ("market", "complete", complete)]


class ProviderMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.tasks = Counter(
            "cloudchain_provider_tasks", "Tasks finished, by how", ["outcome"], registry=r
        )
        self.units = Counter(
            "cloudchain_provider_units", "Compute units reported in complete", registry=r
        )
        self.running = Gauge("cloudchain_provider_jobs_running", "Jobs being served", registry=r)
        self.job_seconds = Histogram(
            "cloudchain_provider_job_seconds",
            "Wall-clock time of a job",
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 300, 1800),
            registry=r,
        )
        self.price = Gauge(
            "cloudchain_provider_price", "Price offered per compute unit", registry=r
        )
        self.height = Gauge("cloudchain_provider_height", "Last block height seen", registry=r)
        self.reconnects = Counter(
            "cloudchain_provider_reconnects", "Event stream reconnections", registry=r
        )


class ProviderDaemon:
    def __init__(
        self,
        config: ProviderConfig,
        key: PrivateKey,
        capacity: Capacity,
        executor: Executor,
    ) -> None:
        self.config = config
        self.chain = Chain(config.node, key)
        self.sealed = SealedInputs(self.chain, read_encryption_key(config.encryption_key_file))
        self.capacity = capacity
        self.executor = executor
        self.metrics = ProviderMetrics()
        self.server = AgentServer(
            config.host,
            config.port,
            self.metrics.registry,
            self.health,
            delay_s=config.slow_s if config.fault == "slow" else 0.0,
        )
        self.price: int | None = None
        self.height = 0
        self._serving: dict[int, asyncio.Task[None]] = {}
        self._started = time.monotonic()

    @property
    def address(self) -> str:
        return self.chain.address

    @property
    def jobs_dir(self) -> Path:
        return self.config.home / "jobs"

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "provider": self.address,
            "height": self.height,
            "serving": sorted(self._serving),
            "executor": self.executor.name,
            "price": self.price,
            "uptime_s": int(time.monotonic() - self._started),
        }

    async def run(self, stop: asyncio.Event) -> None:
        if self.config.fault != "offline":
            await self.server.start()
        endpoint = self.config.advertise or self.server.url
        log.info(
            "provider starting",
            extra=fields(
                provider=self.address,
                endpoint=endpoint,
                executor=self.executor.name,
                fault=self.config.fault,
                cores=self.capacity.cores,
                gpus=self.capacity.gpus,
            ),
        )
        try:
            await self._join(endpoint)
            reconcile = self._idle if self.config.fault == "offline" else self.reconcile
            await follow_chain(
                self.chain.client, reconcile, self.config.reconcile_s, stop, self.metrics.reconnects
            )
        finally:
            for task in self._serving.values():
                task.cancel()
            await asyncio.gather(*self._serving.values(), return_exceptions=True)
            await self.server.stop()

    # --- joining the market ------------------------------------------------------------------

    def _offers(self, price: int) -> dict[str, dict[str, Any]]:
        return {
            self.config.resource_class: {
                "gpu": self.capacity.device,
                "gpus": self.capacity.devices,
                "memory_gb": self.capacity.memory_gb,
                "units": self.config.units,
                "price": price,
            }
        }

    async def _join(self, endpoint: str) -> None:
        """Register (or bring the offer up to date) and advertise, retrying while the
        node is not reachable yet."""
        for delay in (0.5, 1, 2, 4, 8, 16, 30):
            try:
                await self._register(endpoint)
                return
            except OSError as exc:
                log.warning("node unreachable", extra=fields(error=str(exc), retry_in_s=delay))
                await asyncio.sleep(delay)
        await self._register(endpoint)

    async def _register(self, endpoint: str) -> None:
        record = await self.chain.provider(self.address)
        price = self.config.pricing.price(await self._reference_price(), 0, self.config.units)
        if record is None or record.get("status") == "left":
            await self.chain.send(
                "market",
                "register",
                {
                    "name": self.config.name,
                    "tier": self.config.tier,
                    "offers": self._offers(price),
                    "stake": self.config.stake,
                },
            )
            log.info("registered", extra=fields(stake=self.config.stake, price=price))
        else:
            offer = record["offers"].get(self.config.resource_class, {})
            price = offer.get("price", price)
            if offer.get("units") != self.config.units:
                await self.chain.send("market", "update", {"offers": self._offers(price)})
        self._set_price(price)
        if record is None or record.get("endpoint") != endpoint:
            await self.chain.send("market", "advertise", {"endpoint": endpoint})
        await self.sealed.publish()

    def _set_price(self, price: int) -> None:
        self.price = price
        self.metrics.price.set(price)

    async def _reference_price(self) -> int | None:
        for row in (await self.chain.query("/market/prices"))["classes"]:
            if row["resource_class"] == self.config.resource_class:
                return row.get("price")
        return None

    # --- each look at the chain --------------------------------------------------------------

    async def _idle(self, height: int | None) -> None:
        self._saw(height)

    def _saw(self, height: int | None) -> None:
        if height is not None:
            self.height = max(self.height, height)
            self.metrics.height.set(self.height)

    async def reconcile(self, height: int | None) -> None:
        self._saw(height)
        tasks: list[dict[str, Any]] = []
        for state_name in SERVED_STATES:
            tasks += await self.chain.tasks(provider=self.address, state=state_name)
        for task in sorted(tasks, key=lambda t: t["id"]):
            if task["id"] not in self._serving:
                self._serving[task["id"]] = asyncio.create_task(self._serve_logged(task))
        await self._reprice()

    async def _reprice(self) -> None:
        record = await self.chain.provider(self.address)
        if record is None or record.get("status") != "active":
            return
        in_flight = record["in_flight"].get(self.config.resource_class, 0)
        price = self.config.pricing.price(
            await self._reference_price(), in_flight, self.config.units
        )
        if price != self.price:
            await self.chain.send("market", "update", {"offers": self._offers(price)})
            log.info("price changed", extra=fields(old=self.price, new=price, in_flight=in_flight))
            self._set_price(price)

    # --- serving one task ----------------------------------------------------------------------

    async def _serve_logged(self, task: dict[str, Any]) -> None:
        task_id = task["id"]
        self.metrics.running.inc()
        try:
            await self.serve(task)
        except TxRefused as exc:
            if exc.code in MOVED_ON:
                log.info("task moved on", extra=fields(task=task_id, refused=exc.message))
                self.metrics.tasks.labels("moved_on").inc()
            else:
                log.error("task refused", extra=fields(task=task_id, error=str(exc)))
                self.metrics.tasks.labels("refused").inc()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("task failed", extra=fields(task=task_id))
            self.metrics.tasks.labels("error").inc()
        finally:
            self.metrics.running.dec()
            self._serving.pop(task_id, None)

    async def serve(self, task: dict[str, Any]) -> None:
        task_id = task["id"]
        directory = self.jobs_dir / str(task_id)
        directory.mkdir(parents=True, exist_ok=True)
        report = Report.read(directory / REPORT_FILE)
        if report is None:
            if task["state"] == "assigned":
                await self.chain.send("market", "start", {"task": task_id})
                log.info("task started", extra=fields(task=task_id))
                if self.config.fault == "crash-mid-task":
                    log.error(
                        "crashing on purpose (--fault crash-mid-task)", extra=fields(task=task_id)
                    )
                    logging.shutdown()
                    os._exit(CRASH_EXIT)
            else:
                log.info(
                    "task running without a result: running it again", extra=fields(task=task_id)
                )
            report = await self._make_result(task, directory)
            tmp = directory / f"{REPORT_FILE}.tmp"
            tmp.write_bytes(report.to_bytes())
            os.replace(tmp, directory / REPORT_FILE)
        else:
            log.info("sending the result saved before a restart", extra=fields(task=task_id))
        await self.chain.send_batch(report.transactions())
        self.metrics.units.inc(report.units)
        self.metrics.tasks.labels("completed").inc()
        log.info(
            "task completed",
            extra=fields(task=task_id, units=report.units, index=report.output[0]),
        )
        shutil.rmtree(directory / "job", ignore_errors=True)

    async def _make_result(self, task: dict[str, Any], directory: Path) -> Report:
        job_dir = directory / "job"
        started = time.monotonic()
        manifest_cid = task["inputs"][0] if task["inputs"] else ""
        try:
            job = await fetch_job(
                self.chain,
                task,
                job_dir,
                self.sealed,
                check_terms=self.config.fault != "ignore-privacy",
            )
            manifest_cid = job.manifest_cid
            if self.config.fault == "wrong-output":
                result = _make_up(job_dir, task)
            else:
                result = await run_job(self.executor, job)
            if job.sealed:  # the plaintext goes as soon as the job is done with it
                shutil.rmtree(job_dir / "inputs", ignore_errors=True)
        except JobInputError as exc:
            log.warning("job refused", extra=fields(task=task["id"], reason=str(exc)))
            job_dir.mkdir(parents=True, exist_ok=True)
            (job_dir / "out").mkdir(exist_ok=True)
            (job_dir / LOG_FILE).write_text(f"refused: {exc}\n")
            result = ChildResult(REFUSED, 0, 0, 0, 0, str(exc))
        self.metrics.job_seconds.observe(time.monotonic() - started)
        units = compute_units(result.cpu_ms, task["units"])
        if self.config.fault == "wrong-output":
            units = task["units"]
        log.info(
            "job ended",
            extra=fields(task=task["id"], status=result.status, cpu_ms=result.cpu_ms, units=units),
        )
        anchors = []
        files: dict[str, str] = {}
        for path in sorted((job_dir / "out").glob("*")):
            if path.is_file():
                anchors.append(await self.chain.put_blob(path))
                files[path.name] = anchors[-1][0]
        anchors.append(await self.chain.put_blob(job_dir / LOG_FILE))
        index = ResultIndex(
            task=task["id"],
            manifest=manifest_cid or anchors[-1][0],
            status=result.status,
            message=result.message,
            cpu_ms=result.cpu_ms,
            wall_ms=result.wall_ms,
            units=units,
            executor=self.executor.name,
            files=files,
            log=anchors[-1][0],
        )
        index_path = directory / "index.json"
        index_path.write_bytes(index.to_bytes())
        anchors.append(await self.chain.put_blob(index_path))
        return Report(task["id"], units, (anchors[-1][0], *index.output), tuple(anchors))


def _make_up(job: Path, task: dict[str, Any]) -> ChildResult:
    """--fault wrong-output: the outputs of a job never run, shaped like real ones."""
    out = job / "out"
    out.mkdir(exist_ok=True)
    invented = hashlib.sha256(f"invented {task['id']}".encode()).digest() * 64
    (out / "model.skops").write_bytes(invented)
    metrics = {
        "kind": "train",
        "metric": "accuracy",
        "value": 0.999,
        "split": "holdout",
        "outputs": {"model.skops": hashlib.sha256(invented).hexdigest()},
    }
    (out / METRICS_FILE).write_bytes(canonical_json(metrics))
    (job / LOG_FILE).write_text("done\n")
    return ChildResult("done", 0, 1, 0, 0, "")
