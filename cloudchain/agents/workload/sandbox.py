"""Running a job in a child process under the manifest's limits, and measuring it.

The child (child.py) starts in a session of its own, in the job's directory, with:

    RLIMIT_CPU    the manifest's cpu_seconds (SIGXCPU, then SIGKILL a second later)
    RLIMIT_AS     memory_mb plus ADDRESS_SPACE_SLACK_MB of address space, a backstop:
                  numpy and PyTorch map more than they touch (measured: importing torch
                  and scikit-learn peaks at 840 MiB of address space)
    RLIMIT_FSIZE  output_bytes: no file it writes grows past the job's output budget
    RLIMIT_CORE   0
and PR_SET_PDEATHSIG (SIGKILL): a job dies with the daemon thread that started it, so
that a provider SIGKILLed and restarted never has an orphan of its last run writing
into the job directory it runs again. And one BLAS/OpenMP thread (the same result on
every machine, and CPU time that is the job's own). The parent watches the rest: the
resident memory (VmRSS) every WATCH_INTERVAL_S, the session killed once it passes
memory_mb, and the wall-clock deadline (deadline_s), past which the session is killed
too. Whatever ends the child, its CPU time comes from its rusage (os.wait4), and that is
what the provider is paid for (metering.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cloudchain.agents.workload.child import ERROR_FILE, EXIT_MEMORY, EXIT_REFUSED, NOISE_SEED_FILE
from cloudchain.workload.manifest import Limits

ADDRESS_SPACE_SLACK_MB = 1024
WATCH_INTERVAL_S = 0.05
LOG_FILE = "job.log"
MAX_LOG_BYTES = 1024 * 1024

# How a job ended.
DONE = "done"
REFUSED = "refused"  # its inputs did not fit its manifest
CPU_LIMIT = "cpu_limit"
MEMORY_LIMIT = "memory_limit"
DEADLINE = "deadline"
OUTPUT_LIMIT = "output_limit"
CRASHED = "crashed"

THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "PYTHONHASHSEED": "0",
    "CUBLAS_WORKSPACE_CONFIG": ":4096:8",  # what deterministic cuBLAS needs
}


@dataclass(frozen=True)
class ChildResult:
    status: str  # DONE, REFUSED, CPU_LIMIT, MEMORY_LIMIT, DEADLINE, OUTPUT_LIMIT or CRASHED
    cpu_ms: int  # user + system time of the child and its children, from rusage
    wall_ms: int
    max_rss_kb: int
    exit_code: int  # negative: killed by that signal
    message: str  # why it failed, for the log and the requester; "" when done

    @property
    def ok(self) -> bool:
        return self.status == DONE


# The sessions of the jobs running now (each child leads its own), so that a daemon told
# to stop can end them rather than wait for them: the threads that wait on them would
# otherwise keep the process alive until each job's deadline.
_RUNNING: set[int] = set()
_RUNNING_LOCK = threading.Lock()


def running_jobs() -> int:
    with _RUNNING_LOCK:
        return len(_RUNNING)


def kill_running() -> int:
    """SIGKILL every running job's session; how many there were."""
    with _RUNNING_LOCK:
        sessions = sorted(_RUNNING)
    for pid in sessions:
        _kill_session(pid)
    return len(sessions)


def limit_args(limits: Limits) -> list[str]:
    """The child's command-line limits: it sets them on itself first thing (child.py),
    since a preexec function in this multi-threaded daemon could deadlock between fork
    and exec."""
    address_space = (limits.memory_mb + ADDRESS_SPACE_SLACK_MB) * 1024 * 1024
    return [
        f"--cpu={limits.cpu_seconds}",
        f"--address-space={address_space}",
        f"--file-size={limits.output_bytes}",
    ]


def run_child(job: Path, limits: Limits, *, extra_env: dict[str, str] | None = None) -> ChildResult:
    """Run the job in `job` (manifest.json, inputs/) to its end or its limits; the log
    goes to job/job.log. Blocking: the daemon calls it in a thread."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CLOUDCHAIN_")}
    env.update(THREAD_ENV)
    env.update(extra_env or {})
    started = time.monotonic()
    with open(job / LOG_FILE, "ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cloudchain.agents.workload.child",
                str(job),
                *limit_args(limits),
            ],
            cwd=job,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    with _RUNNING_LOCK:
        _RUNNING.add(process.pid)
    stop = threading.Event()
    verdict: list[str] = []  # what the watcher killed the child for, if it did
    watcher = threading.Thread(
        target=_watch, args=(process.pid, limits, started, stop, verdict), daemon=True
    )
    watcher.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        stop.set()
        watcher.join()
        with _RUNNING_LOCK:
            _RUNNING.discard(process.pid)
    process.returncode = os.waitstatus_to_exitcode(status)
    _kill_session(process.pid)  # anything the job left running
    wall_ms = int((time.monotonic() - started) * 1000)
    cpu_ms = int((usage.ru_utime + usage.ru_stime) * 1000)
    code = process.returncode
    status_name, message = _why(job, limits, code, verdict, cpu_ms)
    _trim_log(job / LOG_FILE)
    return ChildResult(status_name, cpu_ms, wall_ms, usage.ru_maxrss, code, message)


def _watch(
    pid: int, limits: Limits, started: float, stop: threading.Event, verdict: list[str]
) -> None:
    """Kill the child's session at its deadline or when its resident memory passes its
    limit, whichever comes first; `verdict` says which."""
    deadline = started + limits.deadline_s
    most_kb = limits.memory_mb * 1024
    while not stop.wait(WATCH_INTERVAL_S):
        if time.monotonic() >= deadline:
            verdict.append(DEADLINE)
        elif _resident_kb(pid) > most_kb:
            verdict.append(MEMORY_LIMIT)
        else:
            continue
        _kill_session(pid)
        return


def _resident_kb(pid: int) -> int:
    """The process's resident set (VmRSS), 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _why(job: Path, limits: Limits, code: int, verdict: list[str], cpu_ms: int) -> tuple[str, str]:
    if DEADLINE in verdict:
        return DEADLINE, f"killed at its deadline of {limits.deadline_s} s"
    if MEMORY_LIMIT in verdict:
        return MEMORY_LIMIT, f"killed when its resident memory passed {limits.memory_mb} MiB"
    if code == 0:
        return DONE, ""
    if code == EXIT_REFUSED:
        error = job / "out" / ERROR_FILE
        return REFUSED, error.read_text() if error.exists() else "refused"
    # SIGXCPU comes only from RLIMIT_CPU; the SIGKILL a second later counts if the CPU
    # time was used up (and not if someone else killed the child)
    if code == -signal.SIGXCPU or (code == -signal.SIGKILL and cpu_ms >= limits.cpu_seconds * 1000):
        return CPU_LIMIT, f"used its {limits.cpu_seconds} CPU seconds"
    if code == -signal.SIGXFSZ:
        return OUTPUT_LIMIT, f"wrote a file of more than {limits.output_bytes} bytes"
    if code == EXIT_MEMORY or _log_says(job, "MemoryError", "Cannot allocate memory"):
        return MEMORY_LIMIT, f"ran out of its {limits.memory_mb} MiB"
    return CRASHED, f"exited with {code}: {_last_line(job)}"


def _log_says(job: Path, *needles: str) -> bool:
    try:
        tail = (job / LOG_FILE).read_bytes()[-8192:].decode(errors="replace")
    except OSError:
        return False
    return any(needle in tail for needle in needles)


def _last_line(job: Path) -> str:
    try:
        lines = (job / LOG_FILE).read_bytes()[-4096:].decode(errors="replace").splitlines()
    except OSError:
        return ""
    return lines[-1].strip()[:300] if lines else ""


def _kill_session(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _trim_log(path: Path) -> None:
    """Keep the first and last halves of MAX_LOG_BYTES of a log that grew beyond it."""
    size = path.stat().st_size
    if size <= MAX_LOG_BYTES:
        return
    data = path.read_bytes()
    half = MAX_LOG_BYTES // 2
    path.write_bytes(data[:half] + b"\n[... log trimmed ...]\n" + data[-half:])


def prepare_job(
    job: Path, manifest_bytes: bytes, inputs: dict[str, bytes], noise_seed: int | None = None
) -> None:
    """A job directory as the child reads it: the manifest, each input by name, and for
    a DP job on a sealed dataset the secret seed of its noise (NOISE_SEED_FILE). The
    directory is the provider's alone (0700): a sealed dataset's plaintext is in it."""
    job.mkdir(parents=True, exist_ok=True)
    job.chmod(0o700)
    (job / "inputs").mkdir(exist_ok=False)
    (job / "manifest.json").write_bytes(manifest_bytes)
    if noise_seed is not None:
        (job / NOISE_SEED_FILE).write_text(str(noise_seed))
    for name, data in sorted(inputs.items()):
        (job / "inputs" / name).write_bytes(data)
