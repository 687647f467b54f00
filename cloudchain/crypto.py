"""Ed25519 keys, signatures, addresses and key files.

An address is the lower-case hex of the first 20 bytes of SHA-256(public key),
as in CometBFT. Signatures are made with OpenSSL (through `cryptography`) and checked
with libsodium (through PyNaCl): its verification takes half the time, and its rules
are stricter where strictness is safety (see `verify`). Key files are JSON in the
shape of CometBFT's ``priv_validator_key.json`` and are written with mode 0600,
atomically (a temporary file renamed into place), so a crash never leaves half a key.
"""

from __future__ import annotations

import base64
import json
import os
import re
import stat
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

from cloudchain.codec import sha256
from cloudchain.fsutil import fsync_directory

PUBLIC_KEY_BYTES = 32
PRIVATE_KEY_BYTES = 32  # the Ed25519 seed
SIGNATURE_BYTES = 64
ADDRESS_BYTES = 20
ADDRESS_HEX_CHARS = 2 * ADDRESS_BYTES

PUBKEY_TYPE = "tendermint/PubKeyEd25519"
PRIVKEY_TYPE = "tendermint/PrivKeyEd25519"


class KeyFileError(ValueError):
    """A key file is missing, malformed, or readable by others."""


def address_bytes(public_key: bytes) -> bytes:
    """The 20-byte address of a 32-byte Ed25519 public key."""
    if len(public_key) != PUBLIC_KEY_BYTES:
        raise ValueError(f"public key must be {PUBLIC_KEY_BYTES} bytes, got {len(public_key)}")
    return sha256(public_key)[:ADDRESS_BYTES]


def address(public_key: bytes) -> str:
    """The address of a public key as 40 lower-case hex characters."""
    return address_bytes(public_key).hex()


_ADDRESS = re.compile(rf"[0-9a-f]{{{ADDRESS_HEX_CHARS}}}")


def is_address(value: object) -> bool:
    """True if `value` is a well-formed address string (40 lower-case hex chars)."""
    return isinstance(value, str) and _ADDRESS.fullmatch(value) is not None


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True if `signature` is a valid Ed25519 signature of `message` by `public_key`.

    libsodium's rules (RFC 8032's cofactorless equation, with s < L), and besides them
    it refuses a public key or an R of small order and a non-canonical public key. No
    honest signer makes one; OpenSSL accepts some, and with the identity as public key
    anyone could sign for its address (tests/test_crypto_rules.py). Every node runs the
    same rule, so the outcome is the same everywhere: it is part of what is decided.
    """
    if len(public_key) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    try:
        crypto_sign_open(signature + message, public_key)
    except (BadSignatureError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class PrivateKey:
    """An Ed25519 signing key; `seed` is its 32 secret bytes."""

    seed: bytes

    def __post_init__(self) -> None:
        if len(self.seed) != PRIVATE_KEY_BYTES:
            raise ValueError(f"private key seed must be {PRIVATE_KEY_BYTES} bytes")

    def __repr__(self) -> str:  # never print the secret
        return f"PrivateKey(address={self.address})"

    @classmethod
    def generate(cls) -> PrivateKey:
        key = Ed25519PrivateKey.generate()
        seed = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return cls(seed)

    @cached_property
    def public_key(self) -> bytes:
        return self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @cached_property
    def address(self) -> str:
        return address(self.public_key)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    @cached_property
    def _key(self) -> Ed25519PrivateKey:
        """Made from the seed once (about 33 us), not at every signature."""
        return Ed25519PrivateKey.from_private_bytes(self.seed)


def write_key_file(path: str | os.PathLike[str], key: PrivateKey) -> None:
    """Write `key` as JSON with mode 0600; refuses to overwrite an existing file."""
    path = Path(path)
    if path.exists():
        raise KeyFileError(f"{path} already exists; refusing to overwrite a key")
    public = key.public_key
    document = {
        "address": address_bytes(public).hex().upper(),
        "pub_key": {"type": PUBKEY_TYPE, "value": base64.b64encode(public).decode()},
        "priv_key": {
            "type": PRIVKEY_TYPE,
            # CometBFT stores seed || public key (64 bytes); so do we.
            "value": base64.b64encode(key.seed + public).decode(),
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    fd = os.open(tmp, flags, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(document, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            # link, unlike rename, fails if the name exists: a key is never overwritten,
            # even by a writer racing this one.
            os.link(tmp, path)
        except FileExistsError:
            raise KeyFileError(f"{path} already exists; refusing to overwrite a key") from None
    finally:
        tmp.unlink(missing_ok=True)
    fsync_directory(path.parent)


def read_key_file(path: str | os.PathLike[str]) -> PrivateKey:
    """Load a key file written by `write_key_file`, checking mode and consistency."""
    path = Path(path)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise KeyFileError(f"key file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise KeyFileError(
            f"key file {path} has mode {mode:04o}; it must not be readable by others "
            f"(chmod 600 {path})"
        )
    try:
        document = json.loads(text)
        priv = document["priv_key"]
        if priv["type"] != PRIVKEY_TYPE:
            raise KeyFileError(f"key file {path}: unsupported key type {priv['type']!r}")
        raw = base64.b64decode(priv["value"], validate=True)
    except KeyFileError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyFileError(f"key file {path} is malformed: {exc}") from None
    if len(raw) != PRIVATE_KEY_BYTES + PUBLIC_KEY_BYTES:
        raise KeyFileError(f"key file {path}: private key must be 64 bytes, got {len(raw)}")
    key = PrivateKey(raw[:PRIVATE_KEY_BYTES])
    if key.public_key != raw[PRIVATE_KEY_BYTES:]:
        raise KeyFileError(f"key file {path}: public key does not match private key")
    return key
