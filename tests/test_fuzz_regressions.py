"""Every crash the fuzzers found, replayed: fuzz/regressions/<target>/<file> through its
target must now decode or be refused with one of the target's allowed errors.

A new crash is added by copying libFuzzer's artifact (.fuzz/crashes/<target>/crash-...)
here, under the target's name, once the decoder is fixed.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from fuzz import REGRESSION_DIR
from fuzz.targets import load


def _regressions() -> list[Path]:
    if not REGRESSION_DIR.is_dir():
        return []
    return sorted(p for p in REGRESSION_DIR.glob("*/*") if p.is_file())


@pytest.mark.parametrize("path", _regressions(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_crash_found_by_fuzzing_is_now_refused_as_documented(path: Path) -> None:
    target = load(path.parent.name)
    with contextlib.suppress(*target.allowed):
        target.decode(path.read_bytes())
