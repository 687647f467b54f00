"""The verification rules: what `verify` refuses that OpenSSL would accept.

Every node checks signatures with libsodium (crypto.py). These tests pin the rules
that differ from OpenSSL's, so a change of library cannot slip through as "only
faster": a signature accepted by one node's rule and refused by another's would
split the chain.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cloudchain.crypto import PrivateKey, address, verify

# Encodings (RFC 8032, 5.1.2): the identity point (x = 0, y = 1) and the base point B.
IDENTITY = bytes([1]) + bytes(31)
BASE_POINT = bytes.fromhex("58" + "66" * 31)
GROUP_ORDER = 2**252 + 27742317777372353535851937790883648493  # L


def _openssl_accepts(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except InvalidSignature:
        return False
    return True


def test_the_identity_as_public_key_signs_nothing():
    # R = B, s = 1: [s]B = R + [k]A holds for every message when A is the identity, so
    # anyone could "sign" for this key's address. OpenSSL accepts it; we refuse it.
    forged = BASE_POINT + (1).to_bytes(32, "little")
    for message in (b"", b"pay me", b"transfer everything to mallory"):
        assert _openssl_accepts(IDENTITY, message, forged)
        assert not verify(IDENTITY, message, forged)
    assert address(IDENTITY)  # an address like any other: only the rule protects it


def test_a_signature_with_s_not_below_the_group_order_is_refused():
    key = PrivateKey.generate()
    signature = key.sign(b"m")
    s = int.from_bytes(signature[32:], "little")
    malleated = signature[:32] + (s + GROUP_ORDER).to_bytes(32, "little")
    assert verify(key.public_key, b"m", signature)
    assert not verify(key.public_key, b"m", malleated)


def test_honest_signatures_verify_the_same_under_both_rules():
    for i in range(20):
        key = PrivateKey.generate()
        message = bytes([i]) * i
        signature = key.sign(message)
        assert verify(key.public_key, message, signature)
        assert _openssl_accepts(key.public_key, message, signature)
        tampered = bytes([signature[0] ^ 1]) + signature[1:]
        assert not verify(key.public_key, message, tampered)
        assert not _openssl_accepts(key.public_key, message, tampered)


def test_wrong_lengths_are_refused_not_raised():
    key = PrivateKey.generate()
    signature = key.sign(b"m")
    assert not verify(key.public_key[:31], b"m", signature)
    assert not verify(key.public_key, b"m", signature[:63])
    assert not verify(key.public_key, b"m", signature + b"\0")
