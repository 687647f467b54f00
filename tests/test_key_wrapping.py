"""HPKE key wrapping (cloudchain/privacy/wrapping.py): a grant's key opens only with
the grantee's key and only for that grant."""

from __future__ import annotations

import stat
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cloudchain.privacy.sealed import new_data_key
from cloudchain.privacy.wrapping import (
    WRAPPED_BYTES,
    GrantContext,
    WrapError,
    public_bytes,
    read_encryption_key,
    unwrap_key,
    wrap_key,
    write_encryption_key,
)

GRANT = GrantContext("cloudchain-local", "7", "ab" * 20, "task:12")


def test_a_wrapped_key_opens_with_the_grantees_key_for_its_grant() -> None:
    provider = X25519PrivateKey.generate()
    data_key = new_data_key()
    wrapped = wrap_key(data_key, public_bytes(provider.public_key()), GRANT)
    assert len(wrapped) == WRAPPED_BYTES and data_key not in wrapped
    assert unwrap_key(wrapped, provider, GRANT) == data_key
    assert wrap_key(data_key, public_bytes(provider.public_key()), GRANT) != wrapped


def test_another_key_another_grant_or_a_flipped_bit_does_not_open() -> None:
    provider, stranger = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    wrapped = wrap_key(new_data_key(), public_bytes(provider.public_key()), GRANT)
    with pytest.raises(WrapError, match="does not open"):
        unwrap_key(wrapped, stranger, GRANT)
    for other in (replace(GRANT, scope="task:13"), replace(GRANT, dataset="8"),
                  replace(GRANT, grantee="cd" * 20), replace(GRANT, chain_id="other")):  # fmt: skip
        with pytest.raises(WrapError):
            unwrap_key(wrapped, provider, other)
    for position in (0, 40, WRAPPED_BYTES - 1):
        tampered = bytearray(wrapped)
        tampered[position] ^= 1
        with pytest.raises(WrapError):
            unwrap_key(bytes(tampered), provider, GRANT)
    with pytest.raises(WrapError, match="80 bytes"):
        unwrap_key(wrapped[:-1], provider, GRANT)


def test_an_encryption_key_file_is_private_and_reads_back(tmp_path: Path) -> None:
    key = X25519PrivateKey.generate()
    path = tmp_path / "enc.json"
    write_encryption_key(path, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert public_bytes(read_encryption_key(path).public_key()) == public_bytes(key.public_key())
    path.write_text('{"type": "ed25519"}')
    with pytest.raises(WrapError, match="not an encryption key file"):
        read_encryption_key(path)
