"""The two text encodings of CIDs that this store speaks: base58btc and base32.

- base58btc (Bitcoin's alphabet) is how CIDv0 is written: 46 characters "Qm...".
  CIDv0 carries no multibase prefix; CIDv1 in base58btc has the prefix "z".
- base32 is RFC 4648 lower-case without padding, with multibase prefix "b":
  the default text form of CIDv1 ("bafy...", "bafk...").

Both decoders are strict: a character outside the alphabet, or a base32 string
whose unused trailing bits are not zero (so that two strings would name the same
bytes), is an error. Multibase prefixes are handled in `cid.py`; these functions
see only the payload.
"""

from __future__ import annotations

import base64
import binascii

from cloudchain.blobs.errors import BlobFormatError

BASE58BTC_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
BASE32_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"

_BASE58_INDEX = {char: index for index, char in enumerate(BASE58BTC_ALPHABET)}
_BASE32_CHARS = frozenset(BASE32_ALPHABET)
# A base32 string of n characters with n % 8 in this set cannot come from any input.
_BASE32_IMPOSSIBLE_REMAINDERS = frozenset({1, 3, 6})


class MultibaseError(BlobFormatError):
    """Text that is not valid in the expected base encoding."""


def encode_base58btc(data: bytes) -> str:
    """base58btc text of `data`; each leading zero byte becomes a '1'."""
    zeros = len(data) - len(data.lstrip(b"\x00"))
    number = int.from_bytes(data, "big")
    digits: list[str] = []
    while number:
        number, remainder = divmod(number, 58)
        digits.append(BASE58BTC_ALPHABET[remainder])
    return "1" * zeros + "".join(reversed(digits))


def decode_base58btc(text: str, start: int = 0) -> bytes:
    """The bytes that `encode_base58btc` turns into `text`.

    `start` is where `text` begins in the string the user gave (after a multibase
    prefix, say), so that error messages point at the right character.
    """
    number = 0
    for position, char in enumerate(text, start):
        digit = _BASE58_INDEX.get(char)
        if digit is None:
            raise MultibaseError(f"invalid base58btc character {char!r} at position {position}")
        number = number * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\x00" * zeros + body


def encode_base32(data: bytes) -> str:
    """RFC 4648 base32, lower case, without '=' padding."""
    return base64.b32encode(data).decode("ascii").lower().rstrip("=")


def decode_base32(text: str, start: int = 0) -> bytes:
    """The bytes that `encode_base32` turns into `text` (lower case only)."""
    for position, char in enumerate(text, start):
        if char not in _BASE32_CHARS:
            raise MultibaseError(f"invalid base32 character {char!r} at position {position}")
    if len(text) % 8 in _BASE32_IMPOSSIBLE_REMAINDERS:
        raise MultibaseError(f"base32 text of impossible length {len(text)}")
    padded = text.upper() + "=" * (-len(text) % 8)
    try:
        data = base64.b32decode(padded)
    except binascii.Error as exc:  # pragma: no cover - the checks above catch these
        raise MultibaseError(f"invalid base32 text: {exc}") from exc
    # Verify that the unused trailing bits are zero (one text per byte string).
    if encode_base32(data) != text:
        raise MultibaseError("base32 text has non-zero trailing bits")
    return data
