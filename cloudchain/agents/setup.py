"""What every daemon checks before it starts: its node's URL, its key file, its home.

A value that cannot work is a ConfigError naming the option; `cloudchain provider run`
and `oracle run` print it and exit 2, before anything touches the chain.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cloudchain.crypto import PrivateKey, read_key_file
from cloudchain.privacy.wrapping import WrapError, read_encryption_key, write_encryption_key

ENCRYPTION_KEY_FILE = "encryption.key"


class ConfigError(ValueError):
    """A configuration that cannot work: the message names the option."""


def check_node_url(url: str) -> None:
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"--node {url!r}: expected an http:// or https:// URL")


def check_home(home: Path) -> None:
    if home.exists() and not home.is_dir():
        raise ConfigError(f"--home {home}: not a directory")


def read_agent_key(path: Path) -> PrivateKey:
    if not path.is_file():
        raise ConfigError(f"--key {path}: no such file")
    try:
        return read_key_file(path)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"--key {path}: not a key file ({exc})") from None


def prepare_home(home: Path, subdirectory: str) -> None:
    """HOME/subdirectory made if need be, and HOME writable."""
    try:
        (home / subdirectory).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--home {home}: {exc.strerror}") from None
    if not os.access(home, os.W_OK):
        raise ConfigError(f"--home {home}: not writable")


def prepare_encryption_key(given: Path | None, home: Path) -> Path:
    """The agent's X25519 key file, that data owners wrap dataset keys to: `given`
    (--encryption-key) must be one; by default HOME/encryption.key, made on first use."""
    if given is None:
        path = home / ENCRYPTION_KEY_FILE
        if not path.exists():
            write_encryption_key(path, X25519PrivateKey.generate())
    else:
        path = given
    try:
        read_encryption_key(path)
    except WrapError as exc:
        option = "--encryption-key" if given is not None else "--home"
        raise ConfigError(f"{option}: {exc}") from None
    return path
