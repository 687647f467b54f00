"""Small filesystem helpers shared by everything that must survive a power loss."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def fsync_directory(directory: Path) -> None:
    """Make a directory's entries (a new, renamed or linked file) durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path(path: Path) -> Path:
    """Where `replace_file` writes before its rename: beside `path`, named after it."""
    return path.with_name(path.name + TEMP_SUFFIX)


def replace_file(path: Path, text: str) -> None:
    """Replace `path` with `text`, atomically and durably: a temporary file beside it,
    fsynced, renamed over it, then the directory fsynced. After a crash the file holds
    the old text or the new, whole; a temporary file left behind is `temp_path(path)`."""
    temp = temp_path(path)
    try:
        with open(temp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    fsync_directory(path.parent)
