"""The requester's rules for a task, with no I/O: what tasks.py decides before it uploads,
and how it reads what the chain says of a task.

- which local file is which dataset of the manifest (`name_data`, from `--data
  [NAME=]PATH` or a `{name: path}` map);
- the manifest checked before anything is uploaded (`check_before_upload`: every
  dataset's CID a placeholder and its size the file's), then filled in with what the
  uploads returned (`fill_datasets`);
- the terms: units (by default the manifest's CPU limit: one unit is one CPU-second),
  the price per unit from a budget, or else from the class's reference price
  (`price_per_unit`), and the warning for a balance that will not cover the next such
  task (`balance_warning`);
- the chain's task as a typed record (`TaskRecord.from_obj`).

Amounts are integer token units, as on the chain.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudchain.crypto import is_address
from cloudchain.workload.manifest import Manifest, ManifestError, parse_manifest

StrPath = str | os.PathLike[str]
# Local files for the manifest's datasets: {name: path}, one path (the manifest names
# exactly one dataset), or (name or None, path) pairs as `--data [NAME=]PATH` gives them.
DataArg = Mapping[str, StrPath] | StrPath | Sequence[tuple[str | None, StrPath]] | None

# The task's states from which it moves no more (market/lifecycle.py's FINAL).
FINAL_STATES = ("refunded", "resolved", "settled")
# A dataset's CID while the manifest is checked before its upload: the UnixFS CID of the
# empty file (any CID would do; only the form is checked then).
PLACEHOLDER_CID = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
# With neither a budget nor a price: pay up to this many times the class's reference
# price, so that a task is still assigned after the price moves up an epoch or two.
DEFAULT_PRICE_FACTOR = 2
_DATASET_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")  # as manifest.py names a dataset


class TaskUsageError(ValueError):
    """The caller's arguments do not make a task (a data file not named, a budget below
    one token a unit...): the caller's to fix, found before anything is sent."""


# --- the datasets ------------------------------------------------------------------------


def parse_data_arg(text: str) -> tuple[str | None, Path]:
    """`train=data/train.csv` -> ("train", path); `train.csv` -> (None, path). A prefix
    before `=` names a dataset only if it is a dataset's name ([a-z][a-z0-9_]*), so that
    a path holding `=` may still be given whole."""
    name, sep, path = text.partition("=")
    if sep and _DATASET_NAME.fullmatch(name):
        if not path:
            raise TaskUsageError(f"--data {text!r}: no path after {name}=")
        return name, Path(path)
    if not text:
        raise TaskUsageError("--data: expected [NAME=]PATH")
    return None, Path(text)


def data_entries(data: DataArg) -> list[tuple[str | None, Path]]:
    """The (name or None, path) pairs of any form of `data`."""
    if data is None:
        return []
    if isinstance(data, str | os.PathLike):
        return [(None, Path(data))]
    if isinstance(data, Mapping):
        return [(str(name), Path(path)) for name, path in data.items()]
    return [(name, Path(path)) for name, path in data]


def dataset_names(manifest_obj: Any) -> tuple[str, ...]:
    """The names of the datasets a (not yet checked) manifest's `data` holds."""
    data = manifest_obj.get("data") if isinstance(manifest_obj, Mapping) else None
    return tuple(sorted(str(name) for name in data)) if isinstance(data, Mapping) else ()


def name_data(names: Sequence[str], entries: Sequence[tuple[str | None, Path]]) -> dict[str, Path]:
    """{dataset name: local file} from `entries`; a path without a name is the manifest's
    only dataset. TaskUsageError for a name the manifest does not have, one given twice,
    or a path without a name when the manifest names several datasets (or none)."""
    named: dict[str, Path] = {}
    for name, path in entries:
        if name is None:
            # Verify that an unnamed file can only be one dataset.
            if len(names) != 1:
                listed = ", ".join(names) or "none"
                raise TaskUsageError(
                    f"--data {path}: name the dataset (NAME=PATH); the manifest's are: {listed}"
                )
            name = names[0]
        # Verify that the dataset is the manifest's, and given once.
        if name not in names:
            listed = ", ".join(names) or "none"
            raise TaskUsageError(
                f"--data {name}={path}: the manifest has no dataset {name!r} (it has: {listed})"
            )
        if name in named:
            raise TaskUsageError(f"--data: dataset {name!r} is given twice")
        named[name] = path
    return named


def file_sizes(files: Mapping[str, Path]) -> dict[str, int]:
    """The size of each dataset's file; TaskUsageError for one that is not a readable,
    non-empty regular file."""
    sizes = {}
    for name, path in sorted(files.items()):
        try:
            if not path.is_file():
                raise TaskUsageError(f"--data {name}={path}: no such file")
            size = path.stat().st_size
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise TaskUsageError(f"--data {name}={path}: {exc.strerror or exc}") from None
        if size == 0:
            raise TaskUsageError(f"--data {name}={path}: the file is empty")
        sizes[name] = size
    return sizes


def fill_datasets(manifest_obj: Any, blobs: Mapping[str, tuple[str, int]]) -> Any:
    """A copy of the manifest's JSON with each named dataset's `cid` and `bytes` set to
    `blobs[name]` (CID, size); the others are left as the manifest has them."""
    filled = copy.deepcopy(manifest_obj)
    if not isinstance(filled, dict) or not isinstance(filled.get("data"), dict):
        return filled  # parse_manifest names what is wrong with it
    for name, (cid, size) in blobs.items():
        entry = filled["data"].get(name)
        if isinstance(entry, dict):
            entry["cid"], entry["bytes"] = cid, size
    return filled


def check_before_upload(manifest_obj: Any, sizes: Mapping[str, int]) -> Manifest:
    """The manifest checked as it will be once the files given are uploaded, each with
    a placeholder CID and its file's size: ManifestError names the bad field before a
    byte is sent. A dataset without a file must already have its cid and bytes."""
    for name in dataset_names(manifest_obj):
        entry = manifest_obj["data"][name]
        if name not in sizes and isinstance(entry, Mapping) and "cid" not in entry:
            raise ManifestError(
                f"manifest.data.{name}.cid",
                f"missing: give the file (--data {name}=PATH) or the CID of one uploaded",
            )
    placeholders = {name: (PLACEHOLDER_CID, size) for name, size in sizes.items()}
    return parse_manifest(fill_datasets(manifest_obj, placeholders))


# --- the terms -----------------------------------------------------------------------------


def units_for(manifest: Manifest, units: int | None) -> int:
    """The compute units to buy: as given, or the manifest's CPU limit (one unit is one
    CPU-second, workload/metering.py)."""
    if units is None:
        return manifest.limits.cpu_seconds
    if units < 1:
        raise TaskUsageError(f"--units {units}: expected at least 1")
    return units


def price_per_unit(
    units: int,
    *,
    budget: int | None = None,
    max_price: int | None = None,
    reference_price: int | None = None,
) -> int:
    """The most the task pays per unit: `max_price` as given; else the whole `budget`
    spread over the units (rounded down: the deposit never exceeds the budget); else
    DEFAULT_PRICE_FACTOR times the class's reference price."""
    assert units >= 1
    if budget is not None and max_price is not None:
        raise TaskUsageError("give a budget or a max price per unit, not both")
    if max_price is not None:
        if max_price < 1:
            raise TaskUsageError(f"--max-price {max_price}: expected at least 1")
        return max_price
    if budget is not None:
        # Verify that the budget buys every unit at one token at least.
        if budget < units:
            raise TaskUsageError(
                f"--budget {budget} is less than one token for each of the {units} units"
            )
        return budget // units
    if reference_price is None:
        raise TaskUsageError(
            "the market has no reference price for this resource class: give --budget"
        )
    return DEFAULT_PRICE_FACTOR * reference_price


# market.submit's bounds on the SLA terms (chaincode/market/tasks.py), checked here too so
# that terms the chain would refuse are refused before the data is uploaded.
MAX_DEADLINE_S = 400 * 24 * 3600
MAX_LATENCY_MS = 10**9
BPS = 10_000


def check_terms(
    *,
    deadline_s: int,
    min_uptime_bps: int,
    max_latency_ms: int,
    penalty: int,
    deposit: int,
    provider: str,
) -> None:
    """TaskUsageError naming the first term market.submit would refuse."""
    for option, value, low, high in (
        ("--deadline-s", deadline_s, 1, MAX_DEADLINE_S),
        ("--min-uptime-bps", min_uptime_bps, 0, BPS),
        ("--max-latency-ms", max_latency_ms, 1, MAX_LATENCY_MS),
        ("--penalty", penalty, 0, deposit),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise TaskUsageError(f"{option} {value!r}: expected {low} to {high}")
    if provider and not is_address(provider):
        raise TaskUsageError(f"--provider {provider!r}: expected an address (40 hex digits)")


def balance_warning(balance: int, deposit: int, fees: int = 0) -> str | None:
    """The warning for a requester whose balance will not cover what the same task
    would take again: its deposit, and the fees its transactions paid (None when it
    will)."""
    if balance >= deposit + fees:
        return None
    also = f" and fees {fees}" if fees else ""
    return f"your balance {balance} will not cover the next such task's deposit {deposit}{also}"


def reference_prices(prices: Any) -> dict[str, int]:
    """{class: reference price} of a /market/prices answer."""
    rows = prices.get("classes", []) if isinstance(prices, Mapping) else []
    return {
        row["resource_class"]: row["price"]
        for row in rows
        if isinstance(row, Mapping) and isinstance(row.get("price"), int)
    }


def choose_class(resource_class: str | None, prices: Mapping[str, int]) -> str:
    """The class given, or the market's only priced one when none is."""
    if resource_class is not None:
        return resource_class
    if len(prices) != 1:
        listed = ", ".join(sorted(prices)) or "none yet"
        raise TaskUsageError(f"name the resource class (--resource-class); priced: {listed}")
    return next(iter(prices))


# --- the chain's task ----------------------------------------------------------------------


class TaskRecordError(ValueError):
    """A /market/task answer without the shape of a task (the node's fault)."""


@dataclass(frozen=True)
class TaskRecord:
    """A task as /market/task answers it; `raw` keeps the whole answer."""

    id: int
    state: str
    requester: str
    provider: str  # "" until assigned
    kind: str
    inputs: tuple[str, ...]  # the manifest's CID first
    resource_class: str
    units: int
    max_price: int  # per unit
    deposit: int
    price: int  # per unit, the offer it was assigned at
    units_used: int
    output: tuple[str, ...] | None  # [index, *files, log] once completed
    history: tuple[tuple[str, int], ...]  # (state, height)
    outcome: Mapping[str, Any] | None
    payout: Mapping[str, Any] | None
    raw: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        """The field `name` of the chain's answer, as it gave it (`task["outcome"]`)."""
        return self.raw[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.raw.get(name, default)

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def paid(self) -> int | None:
        """What the provider was paid, once final."""
        return None if self.payout is None else int(self.payout["provider"])

    @property
    def refunded(self) -> int | None:
        """What came back to the requester (the unspent deposit, any slashed stake)."""
        return None if self.payout is None else int(self.payout["requester"])

    @classmethod
    def from_obj(cls, obj: Any) -> TaskRecord:
        if not isinstance(obj, Mapping):
            raise TaskRecordError(f"/market/task: expected a task, got {obj!r:.60}")
        try:
            output = obj["output"]
            return cls(
                id=_int(obj["id"]),
                state=str(obj["state"]),
                requester=str(obj["requester"]),
                provider=str(obj["provider"]),
                kind=str(obj["kind"]),
                inputs=tuple(str(cid) for cid in obj["inputs"]),
                resource_class=str(obj["resource_class"]),
                units=_int(obj["units"]),
                max_price=_int(obj["max_price"]),
                deposit=_int(obj["deposit"]),
                price=_int(obj["price"]),
                units_used=_int(obj["units_used"]),
                output=tuple(str(cid) for cid in output) if isinstance(output, list) else None,
                history=tuple((str(s), _int(h)) for s, h in obj["history"]),
                outcome=_optional_map(obj["outcome"]),
                payout=_optional_map(obj["payout"]),
                raw=obj,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TaskRecordError(f"/market/task: not a task ({exc!r:.80})") from None


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {value!r:.40}")
    return value


def _optional_map(value: Any) -> Mapping[str, Any] | None:
    if value is None or isinstance(value, Mapping):
        return value
    raise TypeError(f"expected a map or null, got {value!r:.40}")
