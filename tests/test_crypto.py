import json
import os
import stat

import pytest

from cloudchain import crypto
from cloudchain.codec import sha256


def test_sign_and_verify():
    key = crypto.PrivateKey.generate()
    sig = key.sign(b"message")
    assert len(sig) == crypto.SIGNATURE_BYTES
    assert crypto.verify(key.public_key, b"message", sig)
    assert not crypto.verify(key.public_key, b"messagE", sig)
    other = crypto.PrivateKey.generate()
    assert not crypto.verify(other.public_key, b"message", sig)
    assert not crypto.verify(key.public_key, b"message", sig[:-1])
    assert not crypto.verify(key.public_key[:31], b"message", sig)


def test_rfc8032_test_vector_1():
    # RFC 8032, section 7.1, TEST 1 (empty message).
    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    key = crypto.PrivateKey(seed)
    assert key.public_key.hex() == (
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    )
    assert key.sign(b"").hex() == (
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )


def test_address_is_first_20_bytes_of_sha256_of_public_key():
    key = crypto.PrivateKey.generate()
    assert key.address == sha256(key.public_key)[:20].hex()
    assert crypto.is_address(key.address)
    assert not crypto.is_address(key.address.upper())
    assert not crypto.is_address(key.address[:-1])
    assert not crypto.is_address(42)


def test_key_file_round_trip_with_mode_0600(tmp_path):
    key = crypto.PrivateKey.generate()
    path = tmp_path / "keys" / "node.json"
    crypto.write_key_file(path, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert crypto.read_key_file(path) == key
    document = json.loads(path.read_text())
    assert document["address"] == key.address.upper()
    assert document["pub_key"]["type"] == "tendermint/PubKeyEd25519"
    assert not list(tmp_path.glob("keys/*.tmp"))


def test_key_file_is_never_overwritten(tmp_path):
    path = tmp_path / "node.json"
    key = crypto.PrivateKey.generate()
    crypto.write_key_file(path, key)
    with pytest.raises(crypto.KeyFileError, match="already exists"):
        crypto.write_key_file(path, crypto.PrivateKey.generate())
    assert crypto.read_key_file(path) == key


def test_key_file_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "node.json"
    crypto.write_key_file(path, crypto.PrivateKey.generate())
    os.chmod(path, 0o644)
    with pytest.raises(crypto.KeyFileError, match="chmod 600"):
        crypto.read_key_file(path)


@pytest.mark.parametrize(
    "content, message",
    [
        ("not json", "malformed"),
        ('{"priv_key": {"type": "tendermint/PrivKeyEd25519", "value": "!!"}}', "malformed"),
        ('{"priv_key": {"type": "other", "value": ""}}', "unsupported key type"),
        ('{"priv_key": {"type": "tendermint/PrivKeyEd25519", "value": "AAAA"}}', "64 bytes"),
    ],
)
def test_malformed_key_files_are_refused(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    os.chmod(path, 0o600)
    with pytest.raises(crypto.KeyFileError, match=message):
        crypto.read_key_file(path)


def test_key_file_whose_public_key_does_not_match_is_refused(tmp_path):
    import base64

    a, b = crypto.PrivateKey.generate(), crypto.PrivateKey.generate()
    path = tmp_path / "mixed.json"
    value = base64.b64encode(a.seed + b.public_key).decode()
    path.write_text(json.dumps({"priv_key": {"type": crypto.PRIVKEY_TYPE, "value": value}}))
    os.chmod(path, 0o600)
    with pytest.raises(crypto.KeyFileError, match="does not match"):
        crypto.read_key_file(path)


def test_missing_key_file_is_a_clear_error(tmp_path):
    with pytest.raises(crypto.KeyFileError, match="cannot read"):
        crypto.read_key_file(tmp_path / "absent.json")


def test_private_key_repr_hides_the_secret():
    key = crypto.PrivateKey.generate()
    assert key.seed.hex() not in repr(key)
    assert key.address in repr(key)
