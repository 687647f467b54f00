"""The pin set on disk: one small JSON file, replaced whole and atomically.

    {"format": "cloudchain-pins", "version": 1, "pins": ["Qm...", "bafy...", ...]}

`save_pins` writes a temporary file beside the real one, fsyncs it, renames it
over the real one and fsyncs the directory, so after a crash the file holds the
old set or the new one. `load_pins` is strict: a pin file it cannot read whole
is an error, never an empty set, because forgetting a pin lets the garbage
collector delete what it protected. The file is rewritten on every change,
which is why the number of pins is bounded (`PINS_MAX`); a store with more
roots than that wants a LevelDB index instead.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from pathlib import Path

from cloudchain.blobs.cid import CID
from cloudchain.blobs.errors import CIDError
from cloudchain.fsutil import replace_file, temp_path

PINS_FORMAT = "cloudchain-pins"
PINS_VERSION = 1
# About 60 bytes a pin in the file: 100,000 pins is a 6 MB file rewritten per change.
PINS_MAX = 100_000


class PinFileError(RuntimeError):
    """The pin file exists but cannot be trusted; the store refuses to open."""


def load_pins(path: Path) -> frozenset[CID]:
    """The pins saved at `path`; none if there is no file yet."""
    with contextlib.suppress(FileNotFoundError):
        temp_path(path).unlink()  # a save interrupted before its rename
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return frozenset()
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise PinFileError(f"{path}: not JSON: {exc}") from exc
    # Verify that the file is a pin file of a version we know.
    if not isinstance(document, dict) or document.get("format") != PINS_FORMAT:
        raise PinFileError(f"{path}: not a {PINS_FORMAT} file")
    if document.get("version") != PINS_VERSION:
        raise PinFileError(f"{path}: version {document.get('version')!r}, not {PINS_VERSION}")
    texts = document.get("pins")
    if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
        raise PinFileError(f"{path}: 'pins' is not a list of CID strings")
    try:
        return frozenset(CID.parse(text) for text in texts)
    except CIDError as exc:
        raise PinFileError(f"{path}: {exc}") from exc


def save_pins(path: Path, pins: Iterable[CID]) -> None:
    """Replace the pin file with `pins`, atomically and durably."""
    document = {
        "format": PINS_FORMAT,
        "version": PINS_VERSION,
        "pins": sorted(str(cid) for cid in pins),
    }
    replace_file(path, json.dumps(document, indent=0) + "\n")
