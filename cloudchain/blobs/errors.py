"""The errors of the blob formats, and whose fault each one is.

Every error here is about bytes or text that came from outside: a CID typed by a
user or sent by a peer, a block read from disk or received over the wire. They
are all `ValueError`s, so a caller at the boundary can map the whole family to a
"bad input" response in one place. Our own invariants are `assert`s, never these.
"""

from __future__ import annotations


class BlobFormatError(ValueError):
    """Malformed content-addressing input (CID text, CID bytes, or a block)."""


class CIDError(BlobFormatError):
    """A CID (text or binary) that is malformed or that this store cannot use."""


class DecodeError(BlobFormatError):
    """Bytes that do not decode: a bad varint, or a block that is not valid protobuf,
    dag-pb or UnixFS."""


class BlockMismatchError(BlobFormatError):
    """A block whose bytes do not hash to the CID it was stored or sent under."""
