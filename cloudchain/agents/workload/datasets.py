"""Reading a manifest's datasets: CSV or `.npz`, checked, never unpickled.

CSV: a header row, then rows of as many cells; every feature cell a number or empty (a
missing value, NaN, for an `impute` step to fill). The target column may hold any text
for a classifier (labels such as "setosa"), a number otherwise. `.npz`: `np.load` with
`allow_pickle=False`, so an object array (which would need pickle) is refused; the
features are the array `X`, the target the array the manifest names.

A dataset of another size than the manifest says is refused before a byte of it is
parsed: the size is part of what the requester signed.
"""

from __future__ import annotations

import csv
import io
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cloudchain.workload.algorithms import CLASSIFY
from cloudchain.workload.manifest import MAX_ROWS, Dataset

PASSTHROUGH = "passthrough"  # a target carried through a preprocess job: numbers or labels
MAX_COLUMNS = 100_000


class DatasetError(ValueError):
    """A dataset that does not hold what its manifest says."""


@dataclass(frozen=True)
class Table:
    """A dataset's rows: features X (float64, rows first) and the target y, if it has
    one (strings for a classifier read from CSV, numbers otherwise)."""

    X: np.ndarray
    y: np.ndarray | None

    @property
    def rows(self) -> int:
        return int(self.X.shape[0])

    def take(self, rows: np.ndarray) -> Table:
        return Table(self.X[rows], None if self.y is None else self.y[rows])


def load_dataset(path: Path, dataset: Dataset, name: str, problem: str | None) -> Table:
    """The rows of `dataset` (`name` in the manifest), read from `path`; `problem` is
    what the model predicts (None: the target is not read)."""
    size = path.stat().st_size
    # A sealed dataset's size is its ciphertext's, checked when it was fetched.
    if size != dataset.bytes and dataset.sealed is None:
        raise DatasetError(f"dataset {name}: {size} bytes, the manifest says {dataset.bytes}")
    target = dataset.target if problem is not None else None
    if dataset.format == "csv":
        table = _load_csv(path.read_bytes(), target, problem, name)
    else:
        table = _load_npz(path, target, name, problem)
    if table.rows < 1:
        raise DatasetError(f"dataset {name}: no rows")
    return table


def _load_csv(data: bytes, target: str | None, problem: str | None, name: str) -> Table:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"dataset {name}: not UTF-8 text ({exc})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header:
        raise DatasetError(f"dataset {name}: no header row")
    if len(header) > MAX_COLUMNS or len(set(header)) != len(header):
        raise DatasetError(f"dataset {name}: the header names a column twice, or too many")
    if target is not None and target not in header:
        raise DatasetError(f"dataset {name}: no column {target!r} (columns: {header[:8]})")
    at = header.index(target) if target is not None else -1
    features: list[list[float]] = []
    labels: list[str] = []
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise DatasetError(f"dataset {name}, line {line}: {len(row)} cells, not {len(header)}")
        if len(features) >= MAX_ROWS:
            raise DatasetError(f"dataset {name}: more than {MAX_ROWS} rows")
        features.append(
            [_cell(cell, name, line, header[i]) for i, cell in enumerate(row) if i != at]
        )
        if at >= 0:
            labels.append(row[at].strip())
    X = np.array(features, dtype=np.float64).reshape(len(features), len(header) - (at >= 0))
    y = None
    if at >= 0:
        y = _target(labels, problem, name)
    return Table(X, y)


def _cell(text: str, name: str, line: int, column: str) -> float:
    text = text.strip()
    if not text:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise DatasetError(
            f"dataset {name}, line {line}, {column}: {text[:20]!r} is not a number"
        ) from None
    if math.isinf(value):
        raise DatasetError(f"dataset {name}, line {line}, {column}: infinite")
    return value


def _target(labels: list[str], problem: str | None, name: str) -> np.ndarray:
    if any(not label for label in labels):
        raise DatasetError(f"dataset {name}: a row has no target")
    if problem == CLASSIFY:
        return np.array(labels, dtype=np.str_)
    if problem == PASSTHROUGH:
        try:
            return np.array([float(label) for label in labels], dtype=np.float64)
        except ValueError:
            return np.array(labels, dtype=np.str_)
    try:
        values = np.array([float(label) for label in labels], dtype=np.float64)
    except ValueError:
        raise DatasetError(f"dataset {name}: the target is not numeric") from None
    if not np.all(np.isfinite(values)):
        raise DatasetError(f"dataset {name}: the target is not finite everywhere")
    return values


def _load_npz(path: Path, target: str | None, name: str, problem: str | None) -> Table:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in ("X", target) if key and key in archive}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(f"dataset {name}: not a .npz of plain arrays ({exc})") from None
    if "X" not in arrays:
        raise DatasetError(f"dataset {name}: no array X")
    X = arrays["X"]
    if X.dtype.kind not in "biuf" or X.ndim < 2:
        raise DatasetError(f"dataset {name}: X is {X.dtype} of {X.ndim} dimensions")
    X = X.astype(np.float64)
    if np.isinf(X).any():
        raise DatasetError(f"dataset {name}: X has an infinite value")
    y = None
    if target is not None:
        if target not in arrays:
            raise DatasetError(f"dataset {name}: no array {target!r}")
        y = arrays[target]
        if y.ndim != 1 or len(y) != len(X) or y.dtype.kind not in "biufU":
            raise DatasetError(f"dataset {name}: {target} is not one value per row of X")
        if problem not in (CLASSIFY, PASSTHROUGH):
            if y.dtype.kind == "U":
                raise DatasetError(f"dataset {name}: the target {target} is not numeric")
            y = y.astype(np.float64)
    return Table(X, y)


def holdout_rows(rows: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, held-out rows): ceil(fraction x rows) held out, drawn with the
    seed, each part in row order; the same on every machine (numpy's PCG64)."""
    held = math.ceil(rows * fraction)
    if held < 1 or held >= rows:
        raise DatasetError(f"a holdout of {fraction} leaves no rows on one side of {rows}")
    order = np.random.default_rng(seed).permutation(rows)
    return np.sort(order[held:]), np.sort(order[:held])


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    """Arrays stored as `.npz` (what np.load reads) with every entry dated 1980-01-01,
    in name order: np.savez dates entries with the clock, so the same arrays would be
    other bytes every time."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            buffer = io.BytesIO()
            np.lib.format.write_array(
                buffer, np.ascontiguousarray(arrays[name]), allow_pickle=False
            )
            archive.writestr(info, buffer.getvalue())
