"""The fuzzing harness's commands: `python -m fuzz list | run | replay | all | seeds`.

`run` hands one target to atheris (libFuzzer) with two corpus directories: first
the writable work corpus (.fuzz/corpus/<target>, where libFuzzer adds the inputs
that reach new code), then the checked-in seeds (fuzz/corpus/<target>), which it
only reads. A crash (any exception outside the target's allowed errors) stops the
run with a non-zero exit and its input under .fuzz/crashes/<target>/.

`all` runs every target in its own process, one after the other, and prints per
target the inputs run, the time and the rate; it fails if any target failed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fuzz import SEED_DIR, WORK_DIR

if TYPE_CHECKING:
    from fuzz.targets import Target

DEFAULT_RUNS = 1_000_000
# One input that takes longer than this is a hang: libFuzzer reports it as a crash.
INPUT_TIMEOUT_S = 10


def _load_target(name: str, target_module: str | None) -> Target:
    from fuzz import targets

    if target_module is not None:
        # A module of extra targets (its own TARGETS dict): the tests' broken decoder.
        extra: dict[str, Target] = importlib.import_module(target_module).TARGETS
        if name in extra:
            return extra[name]
    if name not in targets.names():
        sys.exit(f"unknown target {name!r}; `python -m fuzz list` names them")
    return targets.load(name)


def _run(
    name: str,
    runs: int,
    corpus: Path | None,
    crashes: Path | None,
    target_module: str | None,
    max_seconds: int = 0,
) -> None:
    import atheris

    # Only cloudchain is instrumented: its branches are what the fuzzer should explore.
    with atheris.instrument_imports(include=["cloudchain"]):
        target = _load_target(name, target_module)
    work = corpus if corpus is not None else WORK_DIR / "corpus" / name
    crashes = crashes if crashes is not None else WORK_DIR / "crashes" / name
    work.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    seeds = SEED_DIR / name
    allowed = target.allowed
    decode = target.decode

    def test_one_input(data: bytes) -> None:
        # Bad input refused as documented; anything else propagates: a crash.
        with contextlib.suppress(allowed):
            decode(data)

    argv = [
        sys.argv[0],
        f"-runs={runs}",
        f"-artifact_prefix={crashes}/",
        f"-timeout={INPUT_TIMEOUT_S}",
        "-print_final_stats=1",
        str(work),
    ]
    if max_seconds:
        argv.insert(2, f"-max_total_time={max_seconds}")
    if seeds.is_dir():
        argv.append(str(seeds))  # second: libFuzzer writes new inputs only to the first
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()  # exits the process when the runs are done


def _replay(name: str, files: Sequence[Path], target_module: str | None) -> int:
    """Each file through the target, without atheris: a crash raises with its traceback."""
    target = _load_target(name, target_module)
    for path in files:
        try:
            target.decode(path.read_bytes())
        except target.allowed as exc:
            print(f"{path}: refused: {type(exc).__name__}: {exc}")
        else:
            print(f"{path}: decoded")
    return 0


_STAT = re.compile(r"stat::(number_of_executed_units|average_exec_per_sec):\s+(\d+)")


def _all(names: Sequence[str], runs: int, max_seconds: int = 0) -> int:
    """Each target in a process of its own (a crash ends only that one)."""
    rows = []
    for name in names:
        limit = f" (at most {max_seconds} s)" if max_seconds else ""
        print(f"=== fuzz {name}: {runs} inputs{limit}", flush=True)
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", "fuzz", "run", name, "--runs", str(runs)]
            + (["--max-seconds", str(max_seconds)] if max_seconds else []),
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        assert process.stderr is not None
        stats: dict[str, int] = {}
        for line in process.stderr:
            sys.stderr.write(line)
            match = _STAT.search(line)
            if match:
                stats[match.group(1)] = int(match.group(2))
        code = process.wait()
        elapsed = time.monotonic() - started
        rows.append((name, code, stats.get("number_of_executed_units", 0), elapsed, stats))
    # libFuzzer's rate counts whole seconds of fuzzing (0 under a second); the wall
    # rate includes the process's start and the instrumented imports.
    print(
        f"\n{'target':<20} {'result':<8} {'inputs':>10} {'seconds':>8} {'exec/s':>8} {'wall/s':>8}"
    )
    for name, code, units, elapsed, stats in rows:
        rate = stats.get("average_exec_per_sec", 0)
        result = "ok" if code == 0 else f"FAIL({code})"
        wall = units / elapsed if elapsed else 0
        print(f"{name:<20} {result:<8} {units:>10} {elapsed:>8.1f} {rate:>8} {wall:>8.0f}")
    total = sum(units for _, _, units, _, _ in rows)
    print(f"{'total':<20} {'':<8} {total:>10} {sum(r[3] for r in rows):>8.1f}")
    failed = [name for name, code, *_ in rows if code != 0]
    if failed:
        print(f"\nfailed: {', '.join(failed)} (inputs under {WORK_DIR / 'crashes'})")
        return 1
    return 0


def _write_seeds(names: Sequence[str] | None) -> None:
    from fuzz.seeds import seeds

    for name, inputs in sorted(seeds().items()):
        if names and name not in names:
            continue
        directory = SEED_DIR / name
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.iterdir():
            old.unlink()
        for data in inputs:
            (directory / hashlib.sha1(data).hexdigest()).write_bytes(data)
        print(f"{name}: {len(set(inputs))} seeds")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="name the targets")
    run = commands.add_parser("run", help="fuzz one target")
    run.add_argument("target")
    run.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    run.add_argument("--corpus", type=Path, help="work corpus (default .fuzz/corpus/TARGET)")
    run.add_argument("--max-seconds", type=int, default=0, help="stop after this long")
    run.add_argument("--crashes", type=Path, help="where crashes go (.fuzz/crashes/TARGET)")
    run.add_argument("--target-module", help="a module whose TARGETS dict adds targets")
    replay = commands.add_parser("replay", help="run files through a target, no fuzzing")
    replay.add_argument("target")
    replay.add_argument("files", nargs="+", type=Path)
    replay.add_argument("--target-module", help="a module whose TARGETS dict adds targets")
    every = commands.add_parser("all", help="fuzz every target, one after the other")
    every.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    every.add_argument("--max-seconds", type=int, default=0, help="per target")
    every.add_argument("targets", nargs="*", help="only these (default: all)")
    seeds = commands.add_parser("seeds", help="regenerate the seed corpus fuzz/corpus/")
    seeds.add_argument("targets", nargs="*", help="only these (default: all)")
    args = parser.parse_args(argv)

    if args.command == "list":
        from fuzz.targets import load_all

        for target in load_all().values():
            allowed = ", ".join(e.__name__ for e in target.allowed)
            print(f"{target.name:<20} {allowed:<32} {target.doc}")
        return 0
    if args.command == "run":
        _run(
            args.target, args.runs, args.corpus, args.crashes, args.target_module, args.max_seconds
        )
        return 0  # not reached: atheris.Fuzz exits
    if args.command == "replay":
        return _replay(args.target, args.files, args.target_module)
    if args.command == "all":
        from fuzz.targets import names

        return _all(args.targets or names(), args.runs, args.max_seconds)
    _write_seeds(args.targets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
