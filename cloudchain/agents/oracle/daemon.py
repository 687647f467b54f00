"""`cloudchain oracle run`: one oracle key's daemon.

Three loops, each reading what it acts on from the chain:

- probes: every registered provider's advertised `/health`, every `probe_s`, into a
  window per provider (probes.py);
- service records: every `attest_s`, `market.attest_provider` with each provider's
  uptime and median latency over its window (its reputation moves toward the uptime);
- tasks (follow.py, on each block and every `reconcile_s`): each completed task this
  oracle has not attested to and is no party of is checked (verdict.py: outputs fetched
  and consistent; re-run when sampled, when the provider reports a failure) and
  attested with `market.attest`: completed or not, the units, and the provider's
  measured uptime and latency, so that the quorum and the penalties act on what was
  measured. A task on a sealed dataset is also checked against its privacy terms
  (privacy_verdict.py: opened under a grant, ε not under-declared), and re-run only if
  this oracle holds a grant for it too. Each disputed task it has not voted on is
  re-run and voted on: uphold the outcome if the oracle's own verdict agrees with it.

Restart-safe without a file of its own: the chain records what this oracle attested
and voted, and a refusal as ALREADY_EXISTS (a race with its own earlier transaction)
or a closed window means there is nothing left to do.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Gauge

from cloudchain.agents.chain import BlobTooLarge, Chain, TxRefused, is_missing
from cloudchain.agents.executor import Executor
from cloudchain.agents.follow import follow_chain, pause
from cloudchain.agents.jobrun import JobInputError, NotGranted, fetch_job, run_job
from cloudchain.agents.oracle.config import BPS, OracleConfig
from cloudchain.agents.oracle.privacy_verdict import privacy_violation
from cloudchain.agents.oracle.probes import Probe, ProbeWindow, probe, refused_endpoint
from cloudchain.agents.oracle.verdict import (
    DONE,
    Claim,
    Rerun,
    Verdict,
    claim_metrics,
    index_of,
    judge,
    needs_rerun,
)
from cloudchain.agents.sealed_inputs import SealedInputs
from cloudchain.agents.server import AgentServer
from cloudchain.agents.workload.sandbox import REFUSED
from cloudchain.chaincode.codes import Code
from cloudchain.client import RPCClientError
from cloudchain.crypto import PrivateKey
from cloudchain.logfields import fields
from cloudchain.privacy.wrapping import read_encryption_key
from cloudchain.workload.manifest import (
    MAX_MANIFEST_BYTES,
    Manifest,
    ManifestError,
    load_manifest,
)
from cloudchain.workload.metering import compute_units
from cloudchain.workload.result import MAX_INDEX_BYTES, ResultError

RERUN_SLACK_BPS = 15_000
DONE_CODES = frozenset({Code.ALREADY_EXISTS, Code.DEADLINE_PASSED, Code.INVALID_STATE})
log = logging.getLogger(__name__)


class OracleMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.attestations = Counter(
            "cloudchain_oracle_attestations", "Task attestations sent", ["completed"], registry=r
        )
        self.reruns = Counter("cloudchain_oracle_reruns", "Jobs re-run", registry=r)
        self.votes = Counter("cloudchain_oracle_votes", "Dispute votes", ["uphold"], registry=r)
        self.probes = Counter("cloudchain_oracle_probes", "Health probes", ["ok"], registry=r)
        self.service = Counter(
            "cloudchain_oracle_service_records", "attest_provider sent", registry=r
        )
        self.uptime = Gauge(
            "cloudchain_oracle_provider_uptime_bps", "Measured uptime", ["provider"], registry=r
        )
        self.latency = Gauge(
            "cloudchain_oracle_provider_latency_ms",
            "Median probe latency",
            ["provider"],
            registry=r,
        )
        self.reconnects = Counter(
            "cloudchain_oracle_reconnects", "Event stream reconnections", registry=r
        )


class OracleDaemon:
    def __init__(self, config: OracleConfig, key: PrivateKey, executor: Executor) -> None:
        self.config = config
        self.chain = Chain(config.node, key)
        self.sealed = SealedInputs(self.chain, read_encryption_key(config.encryption_key_file))
        self._published = False
        self.executor = executor
        self.metrics = OracleMetrics()
        self.server = AgentServer(config.host, config.port, self.metrics.registry, self.health)
        self.endpoints: dict[str, str] = {}  # provider address -> advertised URL
        self.windows: dict[str, ProbeWindow] = {}
        self._refused: set[str] = set()  # providers whose endpoint is not probed (said once)
        self._busy: dict[tuple[str, int], asyncio.Task[None]] = {}
        self.height = 0

    @property
    def address(self) -> str:
        return self.chain.address

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "oracle": self.address,
            "height": self.height,
            "providers": {
                address: {"uptime_bps": w.uptime_bps, "latency_ms": w.latency_ms, "probes": len(w)}
                for address, w in sorted(self.windows.items())
            },
            "checking": sorted(f"{what}:{task}" for what, task in self._busy),
        }

    async def run(self, stop: asyncio.Event) -> None:
        await self.server.start()
        log.info("oracle starting", extra=fields(oracle=self.address, endpoint=self.server.url))
        async with aiohttp.ClientSession() as session:
            loops = [
                asyncio.create_task(self._probe_loop(session, stop)),
                asyncio.create_task(self._service_loop(stop)),
            ]
            try:
                await follow_chain(
                    self.chain.client,
                    self.reconcile,
                    self.config.reconcile_s,
                    stop,
                    self.metrics.reconnects,
                )
            finally:
                for task in [*loops, *self._busy.values()]:
                    task.cancel()
                await asyncio.gather(*loops, *self._busy.values(), return_exceptions=True)
                await self.server.stop()

    # --- providers' service ------------------------------------------------------------------

    async def _refresh_providers(self) -> None:
        for record in await self.chain.providers():
            address = record["address"]
            if record.get("status") == "left" or address == self.address:
                self.endpoints.pop(address, None)
            elif record.get("endpoint"):
                why = refused_endpoint(record["endpoint"])
                if why is None:
                    self.endpoints[address] = record["endpoint"]
                    continue
                self.endpoints.pop(address, None)
                if address not in self._refused:  # said once, not every round
                    self._refused.add(address)
                    log.warning(
                        "endpoint not probed",
                        extra=fields(provider=address, endpoint=record["endpoint"], why=why),
                    )

    def window(self, provider: str) -> ProbeWindow:
        if provider not in self.windows:
            self.windows[provider] = ProbeWindow(
                self.config.probe_window, self.config.probe_timeout_ms
            )
        return self.windows[provider]

    async def probe_all(self, session: aiohttp.ClientSession) -> None:
        targets = sorted(self.endpoints.items())
        results = await asyncio.gather(
            *(probe(session, url, self.config.probe_timeout_ms) for _, url in targets)
        )
        for (address, _), result in zip(targets, results, strict=True):
            self._record(address, result)

    def _record(self, address: str, result: Probe) -> None:
        window = self.window(address)
        window.add(result)
        self.metrics.probes.labels(str(result.ok).lower()).inc()
        self.metrics.uptime.labels(address).set(window.uptime_bps)
        self.metrics.latency.labels(address).set(window.latency_ms)

    async def _probe_loop(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._refresh_providers()
                await self.probe_all(session)
            except (RPCClientError, OSError) as exc:
                log.warning("probe round failed", extra=fields(error=str(exc)))
            await pause(stop, self.config.probe_s)

    async def _service_loop(self, stop: asyncio.Event) -> None:
        await pause(stop, self.config.attest_s)
        while not stop.is_set():
            for address, window in sorted(self.windows.items()):
                if not len(window) or address not in self.endpoints:
                    continue
                try:
                    await self.chain.send(
                        "market",
                        "attest_provider",
                        {
                            "provider": address,
                            "uptime_bps": window.uptime_bps,
                            "latency_ms": window.latency_ms,
                        },
                    )
                    self.metrics.service.inc()
                except TxRefused as exc:
                    log.warning("service record refused", extra=fields(error=str(exc)))
                except (RPCClientError, OSError) as exc:
                    log.warning("service record not sent", extra=fields(error=str(exc)))
            await pause(stop, self.config.attest_s)

    # --- tasks ---------------------------------------------------------------------------------

    async def reconcile(self, height: int | None) -> None:
        if height is not None:
            self.height = max(self.height, height)
        if not self._published:  # so that data owners can grant it, to re-run their tasks
            await self.sealed.publish()
            self._published = True
        for task in await self.chain.tasks(state="completed"):
            if self._may_judge(task) and self.address not in task["attestations"]:
                self._start(("attest", task["id"]), self._attest(task))
        for task in await self.chain.tasks(state="disputed"):
            dispute = task.get("dispute") or {}
            if self._may_judge(task) and self.address not in dispute.get("votes", {}):
                self._start(("vote", task["id"]), self._vote(task))

    def _may_judge(self, task: dict[str, Any]) -> bool:
        return self.address not in (task["provider"], task["requester"])

    def _start(self, key: tuple[str, int], work: Any) -> None:
        if key in self._busy:
            work.close()
            return

        async def logged() -> None:
            try:
                await work
            except TxRefused as exc:
                if exc.code not in DONE_CODES:
                    log.error("refused", extra=fields(task=key[1], error=str(exc)))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("check failed", extra=fields(task=key[1], what=key[0]))
            finally:
                self._busy.pop(key, None)

        self._busy[key] = asyncio.create_task(logged())

    def sampled(self, task_id: int) -> bool:
        """Whether this oracle re-runs the task: a fixed draw per (oracle, task), so
        that oracles sample different tasks and a restart draws the same."""
        draw = hashlib.sha256(f"{self.address}:{task_id}".encode()).digest()
        return int.from_bytes(draw[:4], "big") % BPS < self.config.sample_bps

    async def _attest(self, task: dict[str, Any]) -> None:
        verdict = await self.verify(task, force_rerun=self.sampled(task["id"]))
        window = self.window(task["provider"])
        if not len(window) and task["provider"] in self.endpoints:
            async with aiohttp.ClientSession() as session:
                url = self.endpoints[task["provider"]]
                self._record(task["provider"], await probe(session, url, window.timeout_ms))
        await self.chain.send(
            "market",
            "attest",
            {
                "task": task["id"],
                "completed": verdict.completed,
                "units": min(verdict.units, task["units"]),
                "uptime_bps": window.uptime_bps,
                "latency_ms": window.latency_ms,
            },
        )
        self.metrics.attestations.labels(str(verdict.completed).lower()).inc()
        log.info(
            "attested",
            extra=fields(
                task=task["id"],
                provider=task["provider"],
                completed=verdict.completed,
                units=verdict.units,
                uptime_bps=window.uptime_bps,
                latency_ms=window.latency_ms,
                reason=verdict.reason,
            ),
        )

    async def _vote(self, task: dict[str, Any]) -> None:
        verdict = await self.verify(task, force_rerun=True)
        outcome = task.get("outcome") or {}
        uphold = verdict.completed == bool(outcome.get("completed"))
        await self.chain.send("market", "vote", {"task": task["id"], "uphold": uphold})
        self.metrics.votes.labels(str(uphold).lower()).inc()
        log.info("voted", extra=fields(task=task["id"], uphold=uphold, reason=verdict.reason))

    # --- checking a result ---------------------------------------------------------------------

    async def verify(self, task: dict[str, Any], force_rerun: bool) -> Verdict:
        """Fetch what the provider published for `task` and judge it, re-running the
        job if `force_rerun` or the provider reports a failure."""
        directory = (
            self.config.home
            / "checks"
            / f"{task['id']}-{'dispute' if task.get('dispute') else 'attest'}"
        )
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        try:
            output = tuple(task["output"] or ())
            inputs = tuple(task["inputs"])
            claim = Claim(
                task=task["id"],
                manifest=inputs[0] if inputs else "",
                output=output,
                units_used=task["units_used"],
                index_bytes=(
                    await self._fetch(output[0], directory / "index", MAX_INDEX_BYTES)
                    if output
                    else None
                ),
                files={},
            )
            try:
                index = index_of(claim)
            except ResultError:
                return judge(claim, None, 0.0)
            manifest = await self._manifest(task, directory)
            bound = MAX_MANIFEST_BYTES if manifest is None else manifest.limits.output_bytes
            files = {
                name: await self._fetch(cid, directory / f"file-{name}", bound)
                for name, cid in sorted(index.files.items())
            }
            claim = Claim(**{**claim.__dict__, "files": files})
            if index.status == DONE:  # a result was made: by the task's privacy terms?
                violation = await self._privacy_violation(task, manifest, claim_metrics(claim))
                if violation is not None:
                    return Verdict(False, 0, violation)
            rerun, tolerance = None, 0.0
            if force_rerun or needs_rerun(index):
                rerun, tolerance = await self._rerun(task, directory / "job", index.status == DONE)
            return judge(claim, rerun, tolerance)
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    async def _fetch(self, cid: str, dest: Path, at_most: int) -> bytes | None:
        """The blob's bytes; None if no node has it or it is larger than `at_most` (the
        provider's fault). A network that does not answer raises: the oracle attests
        nothing then, and looks again at the next block."""
        try:
            await self.chain.get_blob(cid, dest, at_most)
        except BlobTooLarge as exc:
            log.info("blob too large", extra=fields(cid=cid, error=str(exc)))
            return None
        except RPCClientError as exc:
            if not is_missing(exc):
                raise
            log.info("blob not fetched", extra=fields(cid=cid, error=str(exc)))
            return None
        return dest.read_bytes()

    async def _manifest(self, task: dict[str, Any], directory: Path) -> Manifest | None:
        """The task's manifest, if it can be had and read (its output_bytes bound each
        output file; a job that cannot run has no outputs worth more than a manifest)."""
        inputs = task["inputs"]
        data = await self._fetch(inputs[0], directory / "manifest", MAX_MANIFEST_BYTES)
        try:
            return load_manifest(data or b"", canonical=True)
        except ManifestError:
            return None

    async def _privacy_violation(
        self, task: dict[str, Any], manifest: Manifest | None, metrics: dict[str, Any] | None
    ) -> str | None:
        dataset = task.get("dataset")
        if not dataset:
            return None
        record = await self.chain.query("/access/dataset", str(dataset))
        audit = await self.chain.query("/access/audit", f"dataset={dataset}&task={task['id']}")
        return privacy_violation(task, manifest, record["delta_e12"], audit["openings"], metrics)

    async def _rerun(
        self, task: dict[str, Any], job_dir: Path, slack: bool
    ) -> tuple[Rerun | None, float]:
        """The job run again. With `slack` (the provider says it finished), the re-run
        gets RERUN_SLACK_BPS of the CPU time and the deadline: this machine may be
        slower than the provider's, and an honest result must not fail for that. A job
        the provider says ran out of a limit is re-run under that same limit. A job on
        a sealed dataset this oracle holds no grant for is not re-run (None): it is
        judged on what was published, and its privacy terms."""
        self.metrics.reruns.inc()
        try:
            job = await fetch_job(self.chain, task, job_dir, self.sealed)
        except NotGranted as exc:
            log.info("not re-run: no grant", extra=fields(task=task["id"], reason=str(exc)))
            return None, 0.0
        except JobInputError as exc:
            log.info("re-run refused", extra=fields(task=task["id"], reason=str(exc)))
            return Rerun(REFUSED, 1, {}), 0.0
        if slack:
            limits = job.limits
            job = replace(
                job,
                limits=replace(
                    limits,
                    cpu_seconds=-(-limits.cpu_seconds * RERUN_SLACK_BPS // BPS),
                    deadline_s=-(-limits.deadline_s * RERUN_SLACK_BPS // BPS),
                ),
            )
        result = await run_job(self.executor, job)
        out = job_dir / "out"
        files = {p.name: p.read_bytes() for p in sorted(out.glob("*")) if p.is_file()}
        evaluate = job.manifest.evaluate
        tolerance = evaluate.tolerance if evaluate is not None else 0.0
        return Rerun(result.status, compute_units(result.cpu_ms, task["units"]), files), tolerance
