"""A task's result index: the blob a provider's `complete` names first.

    complete(task, units_used, output=[index CID, *output file CIDs, log CID])

The index (canonical JSON) says how the job ended and where each of its files is:

    {"version": 1, "task": 12, "manifest": "Qm...", "status": "done", "message": "",
     "cpu_ms": 2310, "wall_ms": 3120, "units": 3, "executor": "local",
     "files": {"metrics.json": "Qm...", "model.skops": "Qm..."}, "log": "Qm..."}

`status` is the sandbox's (sandbox.DONE, CPU_LIMIT, DEADLINE, ...): a job that ran out
of its limits is reported as such, with its log, and an oracle that re-runs it and meets
the same limit agrees it was served as the manifest asked. The requester fetches the
index, then the files it names (`cloudchain task result`), and the log (`task logs`):
blobs, so they outlive the job and the provider.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cloudchain.blobs.cid import CID, CIDError
from cloudchain.workload.manifest import canonical_json

VERSION = 1
MAX_INDEX_BYTES = 64 * 1024
MAX_FILES = 14  # complete's output holds 16 CIDs: the index, the files, the log
MAX_MESSAGE = 2_000
_FILE_NAME = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
_EXECUTORS = ("local", "ray")


class ResultError(ValueError):
    """A result index that is not one: named by the field at fault."""


@dataclass(frozen=True)
class ResultIndex:
    task: int
    manifest: str  # the manifest's CID
    status: str  # how the job ended: sandbox.DONE, ..., CRASHED
    message: str  # why it failed; "" when done
    cpu_ms: int
    wall_ms: int
    units: int  # the compute units claimed (metering.units_for)
    executor: str  # local or ray
    files: Mapping[str, str] = field(default_factory=dict)  # output file name -> CID
    log: str = ""  # the job log's CID

    @property
    def output(self) -> list[str]:
        """What `complete` names as the task's output, given the index's own CID first."""
        return [*(self.files[name] for name in sorted(self.files)), self.log]

    def to_obj(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "task": self.task,
            "manifest": self.manifest,
            "status": self.status,
            "message": self.message,
            "cpu_ms": self.cpu_ms,
            "wall_ms": self.wall_ms,
            "units": self.units,
            "executor": self.executor,
            "files": dict(sorted(self.files.items())),
            "log": self.log,
        }

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_obj())


def parse_result_index(data: bytes) -> ResultIndex:
    """The index in `data`, every field checked: a provider's blob is a stranger's word."""
    if len(data) > MAX_INDEX_BYTES:
        raise ResultError(f"result index: {len(data)} bytes, more than {MAX_INDEX_BYTES}")
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:  # or too deep
        raise ResultError(f"result index: not JSON ({exc})") from None
    if not isinstance(obj, Mapping):
        raise ResultError("result index: expected an object")
    expected = set(ResultIndex.__dataclass_fields__) | {"version"}
    if set(obj) != expected:
        raise ResultError(f"result index: expected the fields {sorted(expected)}")
    if obj["version"] != VERSION:
        raise ResultError(f"result index.version: {obj['version']!r}, expected {VERSION}")
    files = obj["files"]
    if not isinstance(files, Mapping) or len(files) > MAX_FILES:
        raise ResultError(f"result index.files: expected at most {MAX_FILES} name -> CID")
    for name, cid in files.items():
        if not _FILE_NAME.fullmatch(name):
            raise ResultError(f"result index.files: {name!r} is not a file name")
        _cid(cid, f"files.{name}")
    message = obj["message"]
    if not isinstance(message, str) or len(message) > MAX_MESSAGE:
        raise ResultError(f"result index.message: expected text of at most {MAX_MESSAGE}")
    status = obj["status"]
    if not isinstance(status, str) or not re.fullmatch(r"[a-z_]{1,32}", status):
        raise ResultError(f"result index.status: {status!r} is not a status")
    if obj["executor"] not in _EXECUTORS:
        raise ResultError(f"result index.executor: expected one of {', '.join(_EXECUTORS)}")
    return ResultIndex(
        task=_count(obj["task"], "task"),
        manifest=_cid(obj["manifest"], "manifest"),
        status=status,
        message=message,
        cpu_ms=_count(obj["cpu_ms"], "cpu_ms"),
        wall_ms=_count(obj["wall_ms"], "wall_ms"),
        units=_count(obj["units"], "units"),
        executor=obj["executor"],
        files=dict(sorted(files.items())),
        log=_cid(obj["log"], "log"),
    )


def _count(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise ResultError(f"result index.{where}: expected a non-negative integer")
    return value


def _cid(value: Any, where: str) -> str:
    try:
        return str(CID.parse(value))
    except (CIDError, TypeError, ValueError):
        raise ResultError(f"result index.{where}: {value!r} is not a CID") from None
