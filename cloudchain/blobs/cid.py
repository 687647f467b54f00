"""Content identifiers: multihash, CIDv0 and CIDv1, in binary and in text.

A CID names a block by the hash of its bytes and says how to read them
(https://github.com/multiformats/cid):

    CIDv0  binary: <multihash>                       text: base58btc, "Qm..." (46 chars)
    CIDv1  binary: <0x01><codec varint><multihash>   text: multibase prefix + payload
    multihash:     <hash code varint><digest length varint><digest>

This module knows exactly the CIDs that an `ipfs add` with kubo's defaults (or
with `--cid-version=1`) produces: hash function sha2-256 (0x12, 32-byte digest)
and codec dag-pb (0x70, UnixFS nodes) or raw (0x55, raw leaves). Anything else
is a `CIDError` that names what is wrong, because a block we cannot hash or
decode is a block we cannot verify. CIDv1 is written in base32 ("b...", kubo's
default); base58btc ("z...") and upper-case base32 ("B...") are also read.

It does not know about blocks or DAGs: see `block.py`, `dagpb.py`, `importer.py`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cloudchain.blobs.errors import CIDError
from cloudchain.blobs.multibase import (
    MultibaseError,
    decode_base32,
    decode_base58btc,
    encode_base32,
    encode_base58btc,
)
from cloudchain.blobs.varint import VarintError, decode_uvarint, encode_uvarint

# Multicodec table (https://github.com/multiformats/multicodec/blob/master/table.csv).
SHA2_256 = 0x12
DAG_PB = 0x70
RAW = 0x55
CODEC_NAMES = {DAG_PB: "dag-pb", RAW: "raw"}

SHA2_256_DIGEST_BYTES = 32
MULTIHASH_SHA2_256_PREFIX = bytes([SHA2_256, SHA2_256_DIGEST_BYTES])
CIDV0_BINARY_BYTES = 2 + SHA2_256_DIGEST_BYTES
CIDV0_TEXT_CHARS = 46
# Longest text we try to decode: a sha2-256 CIDv1 is 59 base32 characters; the
# bound stops a huge string reaching the (quadratic) base58 decoder.
CID_TEXT_CHARS_MAX = 128

MULTIBASE_BASE32 = "b"
MULTIBASE_BASE32_UPPER = "B"
MULTIBASE_BASE58BTC = "z"


def encode_multihash(digest: bytes) -> bytes:
    """The sha2-256 multihash of a 32-byte digest."""
    assert len(digest) == SHA2_256_DIGEST_BYTES
    return MULTIHASH_SHA2_256_PREFIX + digest


def decode_multihash(buf: bytes, offset: int = 0) -> tuple[bytes, int]:
    """Read a sha2-256 multihash at `offset`; return (digest, offset past it)."""
    try:
        code, offset = decode_uvarint(buf, offset)
        length, offset = decode_uvarint(buf, offset)
    except VarintError as exc:
        raise CIDError(f"malformed multihash: {exc}") from exc
    if code != SHA2_256:
        raise CIDError(f"unsupported multihash function 0x{code:x} (only sha2-256, 0x12)")
    if length != SHA2_256_DIGEST_BYTES:
        raise CIDError(f"sha2-256 multihash declares a {length}-byte digest, not 32")
    end = offset + length
    if end > len(buf):
        raise CIDError(f"multihash digest truncated: {len(buf) - offset} of {length} bytes")
    return bytes(buf[offset:end]), end


@dataclass(frozen=True, slots=True)
class CID:
    """A sha2-256 CID: version 0 or 1, codec dag-pb or raw, and the digest."""

    version: int
    codec: int
    digest: bytes

    def __post_init__(self) -> None:
        if self.version not in (0, 1):
            raise CIDError(f"unsupported CID version {self.version}")
        if self.codec not in CODEC_NAMES:
            raise CIDError(f"unsupported codec 0x{self.codec:x} (only dag-pb 0x70 and raw 0x55)")
        if self.version == 0 and self.codec != DAG_PB:
            raise CIDError(f"CIDv0 is always dag-pb, not {CODEC_NAMES[self.codec]}")
        if len(self.digest) != SHA2_256_DIGEST_BYTES:
            raise CIDError(f"sha2-256 digest must be 32 bytes, not {len(self.digest)}")

    # -- construction ------------------------------------------------------

    @classmethod
    def for_data(cls, data: bytes, codec: int, version: int) -> CID:
        """The CID of the block `data` (hashes it)."""
        return cls(version, codec, hashlib.sha256(data).digest())

    @classmethod
    def from_bytes(cls, data: bytes) -> CID:
        """Parse a binary CID that fills `data` exactly (as in a dag-pb link)."""
        data = bytes(data)
        if len(data) == CIDV0_BINARY_BYTES and data.startswith(MULTIHASH_SHA2_256_PREFIX):
            return cls(0, DAG_PB, data[2:])
        if not data:
            raise CIDError("empty binary CID")
        try:
            version, offset = decode_uvarint(data, 0)
            codec, offset = decode_uvarint(data, offset)
        except VarintError as exc:
            raise CIDError(f"malformed binary CID: {exc}") from exc
        if version != 1:
            raise CIDError(f"unsupported CID version {version} in binary CID")
        digest, end = decode_multihash(data, offset)
        if end != len(data):
            raise CIDError(f"{len(data) - end} trailing bytes after binary CID")
        return cls(version, codec, digest)

    @classmethod
    def parse(cls, text: str) -> CID:
        """Parse CID text: "Qm..." (CIDv0) or multibase CIDv1 ("b...", "B...", "z...")."""
        if not isinstance(text, str):
            raise CIDError(f"CID text must be a string, not {type(text).__name__}")
        if not text:
            raise CIDError("empty CID")
        shown = repr(text[:CID_TEXT_CHARS_MAX])
        if len(text) > CID_TEXT_CHARS_MAX:
            raise CIDError(f"CID {shown}... is longer than {CID_TEXT_CHARS_MAX} characters")
        if text.strip() != text:
            raise CIDError(f"CID {shown} has leading or trailing whitespace")
        try:
            if text.startswith("Qm"):
                return cls._from_v0_text(text)
            prefix, payload = text[0], text[1:]
            if prefix == MULTIBASE_BASE32:
                binary = decode_base32(payload, start=1)
            elif prefix == MULTIBASE_BASE32_UPPER:
                if payload != payload.upper():
                    raise CIDError("upper-case base32 ('B') text has lower-case characters")
                binary = decode_base32(payload.lower(), start=1)
            elif prefix == MULTIBASE_BASE58BTC:
                binary = decode_base58btc(payload, start=1)
            else:
                raise CIDError(
                    f"unsupported multibase prefix {prefix!r} (expected a CIDv0 'Qm...'"
                    " or CIDv1 in base32 'b...' or base58btc 'z...')"
                )
        except (MultibaseError, CIDError) as exc:
            raise CIDError(f"invalid CID {shown}: {exc}") from exc
        if len(binary) == CIDV0_BINARY_BYTES and binary.startswith(MULTIHASH_SHA2_256_PREFIX):
            raise CIDError(f"invalid CID {shown}: a CIDv0 is never multibase-prefixed")
        try:
            return cls.from_bytes(binary)
        except CIDError as exc:
            raise CIDError(f"invalid CID {shown}: {exc}") from exc

    @classmethod
    def _from_v0_text(cls, text: str) -> CID:
        if len(text) != CIDV0_TEXT_CHARS:
            raise CIDError(f"a CIDv0 ('Qm...') has {CIDV0_TEXT_CHARS} characters, not {len(text)}")
        binary = decode_base58btc(text)
        if len(binary) != CIDV0_BINARY_BYTES or not binary.startswith(MULTIHASH_SHA2_256_PREFIX):
            raise CIDError("CIDv0 text does not hold a sha2-256 multihash")
        return cls(0, DAG_PB, binary[2:])

    # -- encoding ----------------------------------------------------------

    @property
    def multihash(self) -> bytes:
        return encode_multihash(self.digest)

    def to_bytes(self) -> bytes:
        """The binary CID (what a dag-pb link's Hash field holds)."""
        if self.version == 0:
            return self.multihash
        return b"\x01" + encode_uvarint(self.codec) + self.multihash

    def __str__(self) -> str:
        if self.version == 0:
            return encode_base58btc(self.multihash)
        return MULTIBASE_BASE32 + encode_base32(self.to_bytes())

    def __repr__(self) -> str:
        return f"CID({self})"

    # -- conversions -------------------------------------------------------

    def to_v1(self) -> CID:
        """The same content as a CIDv1 (what `ipfs cid base32` prints)."""
        return CID(1, self.codec, self.digest)

    def to_v0(self) -> CID:
        """The same content as a CIDv0; only dag-pb CIDs have one."""
        if self.codec != DAG_PB:
            raise CIDError(f"a {CODEC_NAMES[self.codec]} CID has no CIDv0 form")
        return CID(0, DAG_PB, self.digest)
