"""Data keys wrapped to a provider's encryption key with HPKE (RFC 9180).

The suite is RFC 9180's base mode with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and
AES-256-GCM, from `cryptography`'s implementation. A wrapped key is `enc || ciphertext`
(32 + 32 + 16 bytes). The HPKE `info` binds it to the grant it was made for (the chain,
the dataset, the grantee, and the task or expiry the grant names), so a wrapped key
copied into another grant does not open.

A provider's encryption key is an X25519 key of its own, apart from its Ed25519 signing
key: its public half goes in its registration, its private half in a key file of mode
0600 that never leaves the provider.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
PUBLIC_KEY_BYTES = 32
WRAPPED_BYTES = 32 + 32 + 16  # enc, the sealed 32-byte data key, its tag
INFO_LABEL = "cloudchain grant v1"


class WrapError(ValueError):
    """A wrapped key that does not open with this key for this grant."""


@dataclass(frozen=True)
class GrantContext:
    """What a wrapped key is bound to."""

    chain_id: str
    dataset: str  # the dataset's id on chain
    grantee: str  # the provider's address
    scope: str  # "task:<id>" or "until:<height>"

    def info(self) -> bytes:
        fields = [INFO_LABEL, self.chain_id, self.dataset, self.grantee, self.scope]
        return json.dumps(fields, separators=(",", ":")).encode()


def public_bytes(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def wrap_key(data_key: bytes, recipient: bytes, context: GrantContext) -> bytes:
    """`data_key` sealed to the X25519 public key `recipient` (32 raw bytes)."""
    if len(recipient) != PUBLIC_KEY_BYTES:
        raise WrapError(f"an encryption key is {PUBLIC_KEY_BYTES} bytes, not {len(recipient)}")
    public = X25519PublicKey.from_public_bytes(recipient)
    return SUITE.encrypt(data_key, public, info=context.info())


def unwrap_key(wrapped: bytes, key: X25519PrivateKey, context: GrantContext) -> bytes:
    if len(wrapped) != WRAPPED_BYTES:
        raise WrapError(f"a wrapped key is {WRAPPED_BYTES} bytes, not {len(wrapped)}")
    try:
        return SUITE.decrypt(wrapped, key, info=context.info())
    except (InvalidTag, ValueError) as exc:
        raise WrapError(
            "the wrapped key does not open: not wrapped to this key, or for another grant"
        ) from exc


def write_encryption_key(path: Path, key: X25519PrivateKey) -> None:
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    body = {
        "type": "x25519",
        "private_key": raw.hex(),
        "public_key": public_bytes(key.public_key()).hex(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump(body, file)


def read_encryption_key(path: Path) -> X25519PrivateKey:
    try:
        body = json.loads(path.read_text())
        if body.get("type") != "x25519":
            raise ValueError("not an x25519 key file")
        return X25519PrivateKey.from_private_bytes(bytes.fromhex(body["private_key"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WrapError(f"{path}: not an encryption key file ({exc})") from None
