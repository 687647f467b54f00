"""An authenticated, encrypted connection between two nodes, after CometBFT's SecretConnection.

Handshake (both sides run the same steps; neither is "client" or "server"):

1. Each side sends a fresh ephemeral X25519 public key (32 bytes) in clear.
2. Each computes the shared secret, and the transcript hash
   T = SHA-256(DOMAIN || lo || hi) of the two ephemeral keys in sorted order.
3. HKDF-SHA256(shared secret, info = DOMAIN || T) gives 64 bytes: the first 32
   encrypt what the side with the lower ephemeral key sends, the other 32 what
   the higher one sends.
4. Over the encrypted channel, each side sends its Ed25519 node public key and
   its signature of T, and checks the other's. Signing T, which binds both
   ephemeral keys, proves the node key's owner took part in this very exchange
   (no replay, no man in the middle); a peer whose key `is_allowed` refuses is
   turned away.

Frames: a 4-byte big-endian length of the ciphertext, then ChaCha20-Poly1305
ciphertext of the payload, with the length as associated data (so a forged
length fails authentication) and a 96-bit nonce holding a per-direction counter.
A frame longer than MAX_FRAME_BYTES is refused before it is read. Messages are
split into frames and reassembled up to MAX_MESSAGE_BYTES.

Errors say whose fault they are: `PeerError` for anything the peer sent wrong
(bad key, bad signature, failed authentication, oversize); the caller closes
the connection and carries on.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cloudchain.crypto import PUBLIC_KEY_BYTES, SIGNATURE_BYTES, PrivateKey, address, verify

DOMAIN = b"cloudchain/secret-connection/v1"
KEY_BYTES = 32
TAG_BYTES = 16
# One frame carries at most 64 KiB of payload: large messages (blocks) are split,
# and a peer can make us buffer at most one frame before authenticating it.
MAX_FRAME_PAYLOAD = 64 * 1024
MAX_FRAME_BYTES = MAX_FRAME_PAYLOAD + 1 + TAG_BYTES
MAX_MESSAGE_BYTES = 32 * 1024 * 1024  # a block (16 MiB) and its framing, with room
HANDSHAKE_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 5.0  # the longest a close waits for queued bytes to drain
_LENGTH = struct.Struct(">I")
_MORE, _LAST = b"\x01", b"\x00"  # first payload byte: does the message continue?


class PeerError(Exception):
    """The peer broke the protocol; close the connection."""


@dataclass(frozen=True)
class _Direction:
    aead: ChaCha20Poly1305
    counter: list[int]  # a one-item box, so the frozen dataclass can count

    def nonce(self) -> bytes:
        value = self.counter[0]
        if value >= 2**64 - 1:
            raise PeerError("nonce space exhausted; reconnect")
        self.counter[0] = value + 1
        return b"\x00\x00\x00\x00" + value.to_bytes(8, "little")


class SecretConnection:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        send: _Direction,
        receive: _Direction,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._send = send
        self._receive = receive
        self.peer_public_key = b""
        self._write_lock = asyncio.Lock()

    @property
    def peer_address(self) -> str:
        return address(self.peer_public_key)

    async def send_message(self, message: bytes) -> None:
        """Send one message, split into frames; frames of one message are never interleaved."""
        if len(message) > MAX_MESSAGE_BYTES:
            raise ValueError(f"message of {len(message)} bytes exceeds {MAX_MESSAGE_BYTES}")
        async with self._write_lock:
            chunks = [
                message[i : i + MAX_FRAME_PAYLOAD]
                for i in range(0, len(message), MAX_FRAME_PAYLOAD)
            ] or [b""]
            for i, chunk in enumerate(chunks):
                flag = _LAST if i == len(chunks) - 1 else _MORE
                self._write_frame(flag + chunk)
            await self._writer.drain()

    async def receive_message(self) -> bytes:
        """The next whole message. Raises PeerError on any protocol violation,
        asyncio.IncompleteReadError when the peer hangs up."""
        parts: list[bytes] = []
        size = 0
        while True:
            payload = await self._read_frame()
            if not payload or payload[:1] not in (_MORE, _LAST):
                raise PeerError("frame without a continuation flag")
            parts.append(payload[1:])
            size += len(payload) - 1
            if size > MAX_MESSAGE_BYTES:
                raise PeerError(f"message exceeds {MAX_MESSAGE_BYTES} bytes")
            if payload[:1] == _LAST:
                return b"".join(parts)

    def _write_frame(self, payload: bytes) -> None:
        assert len(payload) <= MAX_FRAME_PAYLOAD + 1
        header = _LENGTH.pack(len(payload) + TAG_BYTES)
        sealed = self._send.aead.encrypt(self._send.nonce(), payload, header)
        self._writer.write(header + sealed)

    async def _read_frame(self) -> bytes:
        header = await self._reader.readexactly(_LENGTH.size)
        (length,) = _LENGTH.unpack(header)
        if not TAG_BYTES <= length <= MAX_FRAME_BYTES:
            raise PeerError(f"frame length {length} outside [{TAG_BYTES}, {MAX_FRAME_BYTES}]")
        sealed = await self._reader.readexactly(length)
        try:
            return self._receive.aead.decrypt(self._receive.nonce(), sealed, header)
        except InvalidTag:
            raise PeerError("frame failed authentication") from None

    async def close(self) -> None:
        """Close, flushing what is queued if the peer takes it within CLOSE_TIMEOUT_S;
        a peer that reads nothing more cannot hold a closing node up."""
        self._writer.close()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._writer.wait_closed()
        except TimeoutError:
            self._writer.transport.abort()
        except (ConnectionError, OSError):
            pass


async def handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    node_key: PrivateKey,
    is_allowed: Callable[[bytes], bool],
    timeout_s: float = HANDSHAKE_TIMEOUT_S,
) -> SecretConnection:
    """Run the handshake on a fresh TCP stream; returns an authenticated connection."""
    try:
        return await asyncio.wait_for(_handshake(reader, writer, node_key, is_allowed), timeout_s)
    except TimeoutError:
        raise PeerError(f"handshake did not complete in {timeout_s} s") from None
    except asyncio.IncompleteReadError:
        raise PeerError("peer closed the connection during the handshake") from None
    except (ConnectionError, OSError) as exc:  # a reset: a routine failure, not a crash
        raise PeerError(f"connection failed during the handshake: {exc}") from None


async def _handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    node_key: PrivateKey,
    is_allowed: Callable[[bytes], bool],
) -> SecretConnection:
    ephemeral = X25519PrivateKey.generate()
    ours = ephemeral.public_key().public_bytes_raw()
    writer.write(ours)
    await writer.drain()
    theirs = await reader.readexactly(KEY_BYTES)
    if theirs == ours:
        raise PeerError("peer echoed our ephemeral key")
    try:
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(theirs))
    except ValueError:
        raise PeerError("peer sent a degenerate ephemeral key") from None
    low, high = sorted((ours, theirs))
    transcript = hashlib.sha256(DOMAIN + low + high).digest()
    keys = HKDF(
        algorithm=hashes.SHA256(), length=2 * KEY_BYTES, salt=None, info=DOMAIN + transcript
    ).derive(shared)
    low_key, high_key = keys[:KEY_BYTES], keys[KEY_BYTES:]
    send_key, receive_key = (low_key, high_key) if ours == low else (high_key, low_key)
    connection = SecretConnection(
        reader,
        writer,
        _Direction(ChaCha20Poly1305(send_key), [0]),
        _Direction(ChaCha20Poly1305(receive_key), [0]),
    )
    await connection.send_message(node_key.public_key + node_key.sign(transcript))
    auth = await connection.receive_message()
    if len(auth) != PUBLIC_KEY_BYTES + SIGNATURE_BYTES:
        raise PeerError("malformed authentication message")
    peer_key, signature = auth[:PUBLIC_KEY_BYTES], auth[PUBLIC_KEY_BYTES:]
    if not verify(peer_key, transcript, signature):
        raise PeerError("peer's signature of the handshake does not verify")
    if not is_allowed(peer_key):
        raise PeerError("peer's node key is not in the genesis or the allow-list")
    connection.peer_public_key = peer_key
    return connection
