"""Fuzzers for every decoder that reads bytes from a peer or a client (issue 19).

`python -m fuzz list` names the targets (targets.py), `python -m fuzz run TARGET`
fuzzes one with atheris, `python -m fuzz all` runs them all one after the other
(`make fuzz`), and `python -m fuzz seeds` regenerates the checked-in seed corpus
(fuzz/corpus/<target>/) from real encodings made by the project's own code. A crash
found becomes an input under fuzz/regressions/<target>/, which
tests/test_fuzz_regressions.py replays.

This package imports nothing of cloudchain at import time: the runner imports the
targets under atheris' instrumentation, which only sees modules imported after it.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED_DIR = ROOT / "fuzz" / "corpus"  # checked in: never written by a run
REGRESSION_DIR = ROOT / "fuzz" / "regressions"  # checked in: crashes found, fixed
WORK_DIR = ROOT / ".fuzz"  # gitignored: what runs add to the corpus, and crashes
