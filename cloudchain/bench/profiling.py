"""Sampling node processes with py-spy while a benchmark loads them (`--profile`).

py-spy is an optional dependency (`pip install -e '.[bench]'`). It attaches to a
running process by its pid, which needs ptrace permission (root, CAP_SYS_PTRACE, or a
Yama ptrace_scope of 0): `check_py_spy` probes one node with `py-spy dump` before any
load, so a missing or forbidden py-spy stops the bench at once with a message rather
than after its sweeps. It samples with `--nonblocking` (the node is never paused, at
the price of an occasional torn stack) at SAMPLE_RATE_HZ, idle threads left out.

From each node's samples in py-spy's raw (folded) format this writes the folded
stacks (`profile-nodeI.txt`), a flame graph drawn with matplotlib
(`profile-nodeI.svg`), and the top functions by own samples (the leaf frame of a
stack: where the CPU was) and by total samples (anywhere on the stack).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SAMPLE_RATE_HZ = 50  # samples per second per node: low, so py-spy itself costs little
TOP_FUNCTIONS = 15
PROBE_TIMEOUT_S = 20.0
_LINE = re.compile(r":\d+\)$")  # "fn (path/file.py:123)" -> "fn (path/file.py)"


class ProfileError(RuntimeError):
    """py-spy is missing or may not attach; the message says what to do."""


def py_spy_path() -> str | None:
    """py-spy beside this Python (a venv's bin/, where pip puts it), else on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("py-spy")


def check_py_spy(pid: int) -> str:
    """The py-spy executable, once it has attached to `pid` (a `py-spy dump`)."""
    exe = py_spy_path()
    if exe is None:
        raise ProfileError(
            "--profile needs py-spy, which is not installed: .venv/bin/pip install -e '.[bench]'"
        )
    try:
        probe = subprocess.run(
            [exe, "dump", "--nonblocking", "--pid", str(pid)],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise ProfileError(
            f"py-spy dump --pid {pid} did not answer in {PROBE_TIMEOUT_S:g} s"
        ) from None
    if probe.returncode != 0:
        detail = (probe.stderr or probe.stdout).strip().splitlines()
        raise ProfileError(
            f"py-spy cannot attach to node process {pid} ({detail[-1] if detail else 'no output'}):"
            " it needs ptrace permission (run as root or with CAP_SYS_PTRACE, or set "
            "/proc/sys/kernel/yama/ptrace_scope to 0)"
        )
    return exe


def start_recording(exe: str, pid: int, duration_s: float, raw_path: Path) -> subprocess.Popen[str]:
    """`py-spy record` of `pid` for `duration_s` into `raw_path` (folded stacks)."""
    return subprocess.Popen(
        [
            exe,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, round(duration_s))),
            "--rate",
            str(SAMPLE_RATE_HZ),
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(raw_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


# --- reading folded stacks -------------------------------------------------------------


def parse_folded(text: str) -> Counter[tuple[str, ...]]:
    """py-spy's raw format, "frame;frame;...;leaf COUNT" per line, as stack -> samples."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def function_of(frame: str) -> str:
    """A frame without its line number, so one function's lines count together."""
    return _LINE.sub(")", frame)


@dataclass(frozen=True)
class TopLine:
    function: str
    own_samples: int
    own_share: float
    total_samples: int
    total_share: float


@dataclass(frozen=True)
class NodeProfile:
    node: str
    samples: int
    top_own: tuple[TopLine, ...]  # by own samples
    top_total: tuple[TopLine, ...]  # by total samples
    files: tuple[str, ...]  # the files written, by name


def summarise(
    stacks: Counter[tuple[str, ...]], top: int = TOP_FUNCTIONS
) -> tuple[int, list[TopLine], list[TopLine]]:
    """(samples, top functions by own samples, top by total samples)."""
    samples = sum(stacks.values())
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for stack, count in stacks.items():
        own[function_of(stack[-1])] += count
        for function in {function_of(frame) for frame in stack}:  # once per stack
            total[function] += count

    def line(function: str) -> TopLine:
        return TopLine(
            function,
            own[function],
            own[function] / samples if samples else 0.0,
            total[function],
            total[function] / samples if samples else 0.0,
        )

    return (
        samples,
        [line(f) for f, _ in own.most_common(top)],
        [line(f) for f, _ in total.most_common(top)],
    )


def format_top(profile: NodeProfile) -> list[str]:
    lines = [f"{profile.node}: {profile.samples} samples; top functions by own samples"]
    for t in profile.top_own:
        lines.append(f"  {t.own_share:6.1%} own {t.total_share:6.1%} total  {t.function}")
    return lines


def write_profile(node: str, raw_path: Path, out_dir: Path) -> NodeProfile:
    """The summary, top lines and flame graph of one node's recording."""
    text = raw_path.read_text() if raw_path.exists() else ""
    stacks = parse_folded(text)
    samples, top_own, top_total = summarise(stacks)
    svg = out_dir / f"profile-{node}.svg"
    top_path = out_dir / f"profile-{node}-top.txt"
    profile = NodeProfile(node, samples, tuple(top_own), tuple(top_total), ())
    lines = [*format_top(profile), "", "top functions by total samples (anywhere on the stack)"]
    lines += [f"  {t.total_share:6.1%} total  {t.function}" for t in top_total]
    top_path.write_text("\n".join(lines) + "\n")
    files = [raw_path.name, top_path.name]
    if stacks:
        flame_graph(stacks, svg, f"{node}: {samples} samples at {SAMPLE_RATE_HZ} Hz")
        files.append(svg.name)
    return NodeProfile(node, samples, tuple(top_own), tuple(top_total), tuple(files))


# --- the flame graph ------------------------------------------------------------------

MIN_FRAME_SHARE = 0.002  # frames narrower than this share of all samples are not drawn


@dataclass
class _Frame:
    name: str
    samples: int = 0
    children: dict[str, _Frame] | None = None


def _tree(stacks: Counter[tuple[str, ...]]) -> _Frame:
    root = _Frame("all", 0, {})
    for stack, count in stacks.items():
        root.samples += count
        node = root
        for frame in stack:
            assert node.children is not None
            child = node.children.get(frame)
            if child is None:
                child = node.children[frame] = _Frame(frame, 0, {})
            child.samples += count
            node = child
    return root


def flame_graph(stacks: Counter[tuple[str, ...]], path: Path, title: str) -> None:
    """A flame graph (root at the bottom, width = samples) as an SVG."""
    import matplotlib

    matplotlib.use("Agg")  # no screen: render to a file
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    root = _tree(stacks)
    total = root.samples
    rectangles: list[tuple[float, int, float, str]] = []  # x, depth, width, name
    depth_max = 0

    def place(frame: _Frame, x: float, depth: int) -> None:
        nonlocal depth_max
        width = frame.samples / total
        if width < MIN_FRAME_SHARE:
            return
        rectangles.append((x, depth, width, frame.name))
        depth_max = max(depth_max, depth)
        offset = x
        for child in sorted((frame.children or {}).values(), key=lambda c: c.name):
            place(child, offset, depth + 1)
            offset += child.samples / total

    place(root, 0.0, 0)
    figure, axes = plt.subplots(figsize=(16, max(4, 0.22 * (depth_max + 2))), dpi=100)
    palette = ("#e8743b", "#f2a541", "#f0c75e", "#d95d39", "#edae49")
    for x, depth, width, name in rectangles:
        axes.add_patch(
            Rectangle(
                (x, depth),
                width,
                0.95,
                facecolor=palette[zlib.crc32(name.encode()) % len(palette)],
                edgecolor="white",
                linewidth=0.3,
            )
        )
        if width > 0.03:
            label = f"{name} {width:.1%}"
            axes.text(x + 0.002, depth + 0.45, label[: int(width * 160)], fontsize=6, va="center")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, depth_max + 1)
    axes.set_axis_off()
    axes.set_title(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, format="svg")
    plt.close(figure)


def stop_recordings(recordings: Sequence[subprocess.Popen[str]], timeout_s: float) -> None:
    """Wait for py-spy to write its files; end any that does not within the timeout."""
    for process in recordings:
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
