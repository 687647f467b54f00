"""Encrypted datasets: a file sealed in chunks under a data key, streamed both ways.

The format (all integers big-endian):

    header   MAGIC (8) | chunk_size (4) | salt (16) | nonce_prefix (7)      = 35 bytes
    chunk i  AES-256-GCM(file_key, nonce_prefix | i (4) | last (1), plaintext_i, header)

The file key is HKDF-SHA256(data key, salt, "cloudchain sealed dataset v1"): one data
key may seal many files (a rotation seals the same dataset anew) without two of them
sharing a (key, nonce). Each chunk's nonce holds its index and whether it is the last
(the STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár, as Tink's streaming
AEAD uses it), and every chunk authenticates the header: chunks cannot be reordered,
dropped, duplicated, moved from another file or cut off at the end without decryption
failing. Every chunk is full but the last, which may be empty (an empty file is one
empty last chunk), so the ciphertext's length alone says where chunks begin.

`open_stream` writes a chunk's plaintext only once that chunk has authenticated, so it
never writes wrong bytes; it can have written a correct prefix before it finds the
stream cut short, which `open_file` hides by writing to a temporary file renamed only
when the whole stream is good. Memory stays at a chunk or two whatever the file's size.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"CCSEAL1\x00"
KEY_BYTES = 32
SALT_BYTES = 16
PREFIX_BYTES = 7
TAG_BYTES = 16
HEADER = struct.Struct(f">8sI{SALT_BYTES}s{PREFIX_BYTES}s")
DEFAULT_CHUNK = 64 * 1024
MIN_CHUNK, MAX_CHUNK = 1024, 16 * 1024 * 1024
MAX_CHUNKS = 2**32  # the index's four bytes
INFO = b"cloudchain sealed dataset v1"
NOISE_INFO = b"cloudchain dp-sgd noise v1|"


class SealError(ValueError):
    """A sealed stream that does not open: wrong key, tampered, cut short or not one."""


def new_data_key() -> bytes:
    return os.urandom(KEY_BYTES)


def dp_noise_seed(data_key: bytes, manifest_cid: str) -> int:
    """The seed of a DP job's sampling and noise, from the sealed dataset's data key:
    known to the owner and its grantees (an oracle with a grant re-runs the job to the
    same bytes), and to nobody who has only the manifest and the model. One manifest,
    one seed; another manifest, other noise."""
    info = NOISE_INFO + manifest_cid.encode()
    derived = HKDF(hashes.SHA256(), length=8, salt=None, info=info).derive(data_key)
    return int.from_bytes(derived, "big") >> 1  # torch takes a seed below 2^63


def _file_key(data_key: bytes, salt: bytes) -> AESGCM:
    if len(data_key) != KEY_BYTES:
        raise ValueError(f"a data key is {KEY_BYTES} bytes, not {len(data_key)}")
    key = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=INFO).derive(data_key)
    return AESGCM(key)


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    if index >= MAX_CHUNKS:
        raise SealError(f"more than {MAX_CHUNKS} chunks")
    return prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def _read_full(src: BinaryIO, size: int) -> bytes:
    """Up to `size` bytes, short only at the end of the stream."""
    parts, wanted = [], size
    while wanted:
        part = src.read(wanted)
        if not part:
            break
        parts.append(part)
        wanted -= len(part)
    return b"".join(parts)


def seal_stream(
    src: BinaryIO, dst: BinaryIO, data_key: bytes, chunk_size: int = DEFAULT_CHUNK
) -> int:
    """Seal everything `src` holds into `dst`; the bytes written."""
    if not MIN_CHUNK <= chunk_size <= MAX_CHUNK:
        raise ValueError(f"chunk size {chunk_size}: expected {MIN_CHUNK} to {MAX_CHUNK}")
    salt, prefix = os.urandom(SALT_BYTES), os.urandom(PREFIX_BYTES)
    header = HEADER.pack(MAGIC, chunk_size, salt, prefix)
    aead = _file_key(data_key, salt)
    dst.write(header)
    written, index = len(header), 0
    chunk = _read_full(src, chunk_size)
    while True:
        following = _read_full(src, chunk_size) if len(chunk) == chunk_size else b""
        last = not following
        sealed = aead.encrypt(_nonce(prefix, index, last), chunk, header)
        dst.write(sealed)
        written += len(sealed)
        if last:
            return written
        chunk, index = following, index + 1


def open_stream(src: BinaryIO, dst: BinaryIO, data_key: bytes) -> int:
    """Open a sealed stream into `dst`, chunk by chunk; the plaintext bytes written.
    SealError if any chunk fails to authenticate or the stream does not end where its
    last chunk says."""
    header = _read_full(src, HEADER.size)
    if len(header) != HEADER.size:
        raise SealError("not a sealed dataset: shorter than its header")
    magic, chunk_size, salt, prefix = HEADER.unpack(header)
    if magic != MAGIC:
        raise SealError("not a sealed dataset (its magic bytes are not CCSEAL1)")
    if not MIN_CHUNK <= chunk_size <= MAX_CHUNK:
        raise SealError(f"chunk size {chunk_size} out of range: not a sealed dataset")
    aead = _file_key(data_key, salt)
    sealed_size = chunk_size + TAG_BYTES
    written, index = 0, 0
    sealed = _read_full(src, sealed_size)
    while True:
        if len(sealed) < TAG_BYTES:
            raise SealError(f"cut short: chunk {index} is missing or incomplete")
        following = _read_full(src, sealed_size) if len(sealed) == sealed_size else b""
        last = not following
        try:
            plain = aead.decrypt(_nonce(prefix, index, last), sealed, header)
        except InvalidTag:
            raise SealError(
                f"chunk {index} does not authenticate: a wrong key, or the data was "
                "tampered with, reordered or cut short"
            ) from None
        dst.write(plain)
        written += len(plain)
        if last:
            return written
        sealed, index = following, index + 1


def seal_file(src: Path, dst: Path, data_key: bytes, chunk_size: int = DEFAULT_CHUNK) -> int:
    with open(src, "rb") as source, open(dst, "wb") as sink:
        return seal_stream(source, sink, data_key, chunk_size)


def open_file(src: Path, dst: Path, data_key: bytes) -> int:
    """Open a sealed file to `dst`, which appears only if all of it opened."""
    partial = dst.with_name(dst.name + ".partial")
    try:
        with open(src, "rb") as source, open(partial, "wb") as sink:
            size = open_stream(source, sink, data_key)
        os.replace(partial, dst)
        return size
    finally:
        partial.unlink(missing_ok=True)
