"""Chain-wide records kept by the application itself: nonces and the authority.

auth/nonce/<address>   transactions of that sender included so far (int)
auth/authority         the genesis-named authority's address (str)
auth/genesis_hash      hash of the genesis the state was initialised from
"""

from __future__ import annotations

from cloudchain.chaincode.context import StateReader, read_value
from cloudchain.chaincode.module import Module, query_address

AUTHORITY_KEY = b"auth/authority"
GENESIS_HASH_KEY = b"auth/genesis_hash"


def nonce_key(address: str) -> bytes:
    return b"auth/nonce/" + address.encode()


def get_nonce(state: StateReader, address: str) -> int:
    """The nonce the sender's next transaction must carry."""
    return read_value(state, nonce_key(address), 0)


def get_authority(state: StateReader) -> str:
    authority = read_value(state, AUTHORITY_KEY)
    assert authority is not None, "the authority is written at genesis"
    return authority


def _query_nonce(state: StateReader, data: bytes) -> dict[str, object]:
    address = query_address(data)
    return {"address": address, "nonce": get_nonce(state, address)}


# The auth records have no transactions of their own, only this query:
# /auth/nonce with an address as data gives the nonce its next transaction needs.
AUTH = Module("auth")
AUTH.query("nonce")(_query_nonce)
