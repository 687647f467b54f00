"""The blocks directory: one file per block, named by its multihash, as kubo's flatfs.

This module owns the files under `blocks/`: where a block's file lives, writing
one so that a crash never leaves a partial block under a valid name, finding,
listing, deleting and moving them. It does not know what a block means or
whether its bytes are right: `store.py` hashes every block it reads.

Layout, kubo's `blocks/` (flatfs with shardFunc `/repo/flatfs/shard/v1/next-to-last/2`):

    blocks/SHARDING              "/repo/flatfs/shard/v1/next-to-last/2\\n"
    blocks/_README               what this directory is
    blocks/XY/KEY.data           a block's bytes, exactly
    blocks/XY/.tmp-KEY-RRRRRRRR  a block being written: never a valid name

KEY is RFC 4648 base32 (upper case, no padding) of the block's multihash, the
name kubo gives a block (`dshelp.MultihashToDsKey`): every sha2-256 key is 55
characters starting "CIQ". XY, the shard, is the two characters before KEY's
last one. So kubo's empty directory `QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn`
is `blocks/X3/CIQFTFEEHEDF6KLBT32BFAGLXEZL4UWFNWM4LFTLMXQBCERZ6CMLX3Y.data`. A
CIDv0 and a CIDv1 of the same bytes share one file: the bytes are the same.

Theory of operation (crash safety). `write` creates a temporary file in the
block's own shard directory, writes every byte, fsyncs it, and only then
renames it over KEY.data with `os.replace`, which is atomic: after a crash at
any instant KEY.data is absent, or the old file, or the whole new one, never
part of one. The shard directory is fsynced afterwards (now, or by the caller
for a batch: `sync_dirs`) so that the rename itself survives a power loss. A
temporary name starts with ".tmp-", which no key can, so `clean_temp` (run when
the store opens) can remove what a crash left behind without guessing.

Deletions are not fsynced: a block that comes back after a crash is harmless.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path

from cloudchain.blobs.cid import CID
from cloudchain.fsutil import fsync_directory

SHARDING_FILE = "SHARDING"
SHARDING_SPEC = "/repo/flatfs/shard/v1/next-to-last/2\n"
README_FILE = "_README"
README_TEXT = """\
This directory holds the blocks of a CloudChain blob store, one block per file,
in the layout of kubo's flatfs (shardFunc /repo/flatfs/shard/v1/next-to-last/2):

    XY/KEY.data

where KEY is the upper-case unpadded RFC 4648 base32 of the block's multihash
and XY is the two characters of KEY before its last one. Every file is checked
against its name when read. Do not edit files here; a file that does not match
its name is moved to ../quarantine and fetched again.
"""
DATA_SUFFIX = ".data"
TEMP_PREFIX = ".tmp-"
SHARD_CHARS = 2
# A sha2-256 multihash (34 bytes) in unpadded base32: ceil(34 * 8 / 5) = 55 characters.
_KEY_PATTERN = re.compile(r"CIQ[A-Z2-7]{52}")
_SHARD_PATTERN = re.compile(r"[A-Z2-7]{2}")


def key_of(cid: CID) -> str:
    """The flatfs key of the block `cid` names: base32 of its multihash."""
    return base64.b32encode(cid.multihash).decode("ascii").rstrip("=")


def is_key(name: str) -> bool:
    return _KEY_PATTERN.fullmatch(name) is not None


def shard_of(key: str) -> str:
    """next-to-last/2: the two characters before the key's last one."""
    return key[-SHARD_CHARS - 1 : -1]


class FlatFS:
    """The files of one `blocks/` directory. Safe to use from several threads."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._shards: set[str] = set()  # shard directories known to exist and be durable
        self._prepare()

    def _prepare(self) -> None:
        created = not self.directory.exists()
        self.directory.mkdir(parents=True, exist_ok=True)
        sharding = self.directory / SHARDING_FILE
        if sharding.exists():
            spec = sharding.read_text(encoding="ascii", errors="replace")
            # Verify that the directory was sharded as we shard it.
            if spec != SHARDING_SPEC:
                raise OSError(f"{sharding} says {spec.strip()!r}, not {SHARDING_SPEC.strip()!r}")
        else:
            _write_small_file(sharding, SHARDING_SPEC)
            _write_small_file(self.directory / README_FILE, README_TEXT)
        if created:
            fsync_directory(self.directory.parent)
        self._shards.update(name for name in os.listdir(self.directory) if _is_shard(name))

    # -- paths -------------------------------------------------------------

    def path_of(self, key: str) -> Path:
        return self.directory / shard_of(key) / (key + DATA_SUFFIX)

    def _shard_dir(self, key: str) -> Path:
        """The key's shard directory, created (durably) if it does not exist yet."""
        shard = shard_of(key)
        path = self.directory / shard
        if shard not in self._shards:
            with contextlib.suppress(FileExistsError):
                path.mkdir()
            # Even if another thread made it: its entry may not be durable yet.
            fsync_directory(self.directory)
            self._shards.add(shard)
        return path

    # -- reading -----------------------------------------------------------

    def exists(self, key: str) -> bool:
        return self.path_of(key).is_file()

    def read(self, key: str, max_bytes: int) -> bytes | None:
        """The file's bytes (None if there is no file), at most `max_bytes` + 1 of them:
        a longer result means the file is longer than any block may be."""
        try:
            with open(self.path_of(key), "rb", buffering=0) as f:
                size = os.fstat(f.fileno()).st_size
                return f.read(min(size, max_bytes) + 1)
        except FileNotFoundError:
            return None

    def peek(self, key: str, head_bytes: int) -> tuple[bytes, int] | None:
        """The first `head_bytes` of the file and its size, or None if there is no file."""
        try:
            with open(self.path_of(key), "rb", buffering=0) as f:
                return f.read(head_bytes), os.fstat(f.fileno()).st_size
        except FileNotFoundError:
            return None

    def iter_keys(self) -> Iterator[str]:
        """Every key with a file, one shard directory at a time (files named otherwise,
        temporary files included, are not blocks and are skipped)."""
        for shard in sorted(name for name in os.listdir(self.directory) if _is_shard(name)):
            try:
                names = os.listdir(self.directory / shard)
            except FileNotFoundError:
                continue
            for name in sorted(names):
                key = name.removesuffix(DATA_SUFFIX)
                if name.endswith(DATA_SUFFIX) and is_key(key) and shard_of(key) == shard:
                    yield key

    # -- writing -----------------------------------------------------------

    def write(self, key: str, data: bytes, *, sync_dir: bool = True) -> Path:
        """Store `data` as the file of `key`, atomically; return its shard directory.

        With sync_dir=False the rename is not yet durable: the caller must pass the
        returned directory to `sync_dirs` before it reports the block as stored.
        """
        shard_dir = self._shard_dir(key)
        temp = shard_dir / f"{TEMP_PREFIX}{key}-{secrets.token_hex(4)}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, shard_dir / (key + DATA_SUFFIX))
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        if sync_dir:
            fsync_directory(shard_dir)
        return shard_dir

    def sync_dirs(self, directories: Iterable[Path]) -> None:
        """Make the renames of `write(..., sync_dir=False)` into these directories durable."""
        for directory in sorted(set(directories)):
            fsync_directory(directory)

    def delete(self, key: str) -> int | None:
        """Remove the key's file; return the bytes it held (None if it was not there)."""
        path = self.path_of(key)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return None
        return size

    def move_to(self, key: str, directory: Path) -> Path | None:
        """Move the key's file into `directory` (same file system), replacing an
        earlier file of the same name there; None if there was no file."""
        target = directory / (key + DATA_SUFFIX)
        try:
            os.replace(self.path_of(key), target)
        except FileNotFoundError:
            return None
        return target

    def clean_temp(self) -> int:
        """Remove the temporary files that writes interrupted by a crash left; count them."""
        removed = 0
        for shard in (name for name in os.listdir(self.directory) if _is_shard(name)):
            for name in os.listdir(self.directory / shard):
                if name.startswith(TEMP_PREFIX):
                    with contextlib.suppress(FileNotFoundError):
                        (self.directory / shard / name).unlink()
                        removed += 1
        return removed


def _is_shard(name: str) -> bool:
    return _SHARD_PATTERN.fullmatch(name) is not None


def _write_small_file(path: Path, text: str) -> None:
    """Write a file whole and durably, through a temporary name."""
    temp = path.with_name(f"{TEMP_PREFIX}{path.name}")
    with open(temp, "w", encoding="ascii") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)
    fsync_directory(path.parent)
