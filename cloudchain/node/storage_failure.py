"""What a node does when its disk fails under it: it stops, with its own exit code.

A write that fails (the disk is full, the process's file size limit is reached, the
device errors) leaves the WAL refusing appends and LevelDB refusing writes until they are
reopened; going on would only fail again. So the node logs one clear ERROR, stops, and
exits with STORAGE_FAILURE_EXIT, which a supervisor (systemd, the nemesis) can tell from
a crash. Started again once there is room, it recovers from what is on disk.
"""

from __future__ import annotations

import errno

# EX_IOERR of sysexits.h: "an error occurred while doing I/O on some file".
STORAGE_FAILURE_EXIT = 74
_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
# LevelDB reports a failed write as text ("IO error: ...: No space left on device").
_DISK_FULL_TEXT = ("No space left on device", "File too large", "Disk quota exceeded")


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc`, or what caused it, says the disk (or the file size limit) is full."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _DISK_FULL_ERRNOS:
            return True
        if any(text in str(seen) for text in _DISK_FULL_TEXT):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def failure_kind(exc: BaseException) -> str:
    """How the node's ERROR names the failure: "disk full" or "storage failure"."""
    return "disk full" if is_disk_full(exc) else "storage failure"


def describe(exc: BaseException) -> str:
    """The failure's message as text (plyvel's errors carry LevelDB's message as bytes)."""
    if exc.args and isinstance(exc.args[0], bytes):
        return exc.args[0].decode(errors="replace")
    return str(exc)
