"""The child process a job runs in: `python -m cloudchain.agents.workload.child JOB_DIR`.

JOB_DIR holds `manifest.json` and `inputs/<name>` (each dataset by its manifest name,
and `model` for infer); the child writes `out/` and logs to stderr, which the parent
keeps as the job's log. It runs under the limits the parent set (sandbox.py) and
exits 0 when the job is done, EXIT_REFUSED when the inputs do not fit the manifest
(out/error.txt says why), EXIT_MEMORY when it ran out of the memory it was given.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

EXIT_REFUSED = 3
EXIT_MEMORY = 4
ERROR_FILE = "error.txt"


def main(argv: list[str]) -> int:
    job = Path(argv[0])
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:8.3f}s] {message}", file=sys.stderr, flush=True)

    out = job / "out"
    out.mkdir(exist_ok=True)
    try:
        from cloudchain.agents.workload.datasets import DatasetError
        from cloudchain.agents.workload.jobs import run_job
        from cloudchain.agents.workload.sklearn_runner import ModelFileError
        from cloudchain.agents.workload.torch_runner import TorchJobError
        from cloudchain.workload.manifest import ManifestError, load_manifest

        manifest = load_manifest((job / "manifest.json").read_bytes(), canonical=True)
        inputs = {path.name: path for path in sorted((job / "inputs").iterdir())}
        log(f"{manifest.kind} job, seed {manifest.seed}, inputs {', '.join(inputs)}")
        refusals: tuple[type[Exception], ...] = (
            DatasetError,
            ManifestError,
            ModelFileError,
            TorchJobError,
        )
        try:
            run_job(manifest, inputs, out, log)
        except refusals as exc:
            log(f"refused: {exc}")
            (out / ERROR_FILE).write_text(str(exc))
            return EXIT_REFUSED
    except MemoryError:
        log("out of memory")
        return EXIT_MEMORY
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
