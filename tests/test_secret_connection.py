"""The encrypted, authenticated transport, over real TCP on loopback (free ports)."""

import asyncio
import contextlib
import socket
import struct

import pytest

from cloudchain.network.secret_connection import (
    MAX_FRAME_BYTES,
    MAX_FRAME_PAYLOAD,
    PeerError,
    SecretConnection,
    handshake,
)
from tests.helpers.chain import key

ALICE, BOB, MALLORY = key("node-alice"), key("node-bob"), key("node-mallory")
DEADLINE_S = 10


@contextlib.asynccontextmanager
async def pair(server_key=BOB, client_key=ALICE, server_allows=None, client_allows=None):
    """A server and a client that both ran the handshake; yields (client, server result)."""
    server_allows = server_allows or (lambda k: True)
    client_allows = client_allows or (lambda k: True)
    accepted: asyncio.Future = asyncio.get_running_loop().create_future()

    async def on_connect(reader, writer):
        try:
            accepted.set_result(await handshake(reader, writer, server_key, server_allows))
        except PeerError as exc:
            accepted.set_exception(exc)
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = None
    try:
        client = await handshake(reader, writer, client_key, client_allows)
        yield client, accepted
    finally:
        if client is not None:
            await client.close()
        if accepted.done() and not accepted.exception():
            await accepted.result().close()
        server.close()
        await server.wait_closed()


async def test_both_sides_learn_each_others_node_key_and_exchange_messages():
    async with pair() as (client, accepted):
        server: SecretConnection = await asyncio.wait_for(accepted, DEADLINE_S)
        assert client.peer_public_key == BOB.public_key
        assert server.peer_public_key == ALICE.public_key
        assert server.peer_address == ALICE.address
        big = bytes(range(256)) * (3 * MAX_FRAME_PAYLOAD // 256 + 7)  # several frames
        for message in (b"hello", b"", big):
            await client.send_message(message)
            assert await asyncio.wait_for(server.receive_message(), DEADLINE_S) == message
        await server.send_message(b"and back")
        assert await asyncio.wait_for(client.receive_message(), DEADLINE_S) == b"and back"


async def test_a_peer_that_is_not_allowed_is_refused():
    async with pair(client_key=MALLORY, server_allows=lambda k: k == ALICE.public_key) as (
        _,
        accepted,
    ):
        with pytest.raises(PeerError, match="not in the genesis or the allow-list"):
            await asyncio.wait_for(accepted, DEADLINE_S)


async def test_a_tampered_frame_fails_authentication():
    async with pair() as (client, accepted):
        server = await asyncio.wait_for(accepted, DEADLINE_S)
        await client.send_message(b"first")
        assert await server.receive_message() == b"first"
        # Bytes on the wire changed by someone in the middle: a well-formed length,
        # garbage ciphertext.
        client._writer.write((100).to_bytes(4, "big") + b"\x55" * 100)
        await client._writer.drain()
        with pytest.raises(PeerError, match="failed authentication"):
            await asyncio.wait_for(server.receive_message(), DEADLINE_S)


async def test_an_oversized_frame_is_refused_before_it_is_read():
    async with pair() as (client, accepted):
        server = await asyncio.wait_for(accepted, DEADLINE_S)
        client._writer.write((MAX_FRAME_BYTES + 1).to_bytes(4, "big"))
        await client._writer.drain()
        with pytest.raises(PeerError, match="frame length"):
            await asyncio.wait_for(server.receive_message(), DEADLINE_S)


async def test_a_silent_peer_times_out_the_handshake():
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        with pytest.raises(PeerError, match="did not complete"):
            await handshake(reader, writer, ALICE, lambda k: True, timeout_s=0.2)
    finally:
        writer.close()
        server.close()
        await server.wait_closed()


async def test_a_peer_that_resets_mid_handshake_is_a_peer_error():
    """A reset (what a relay cutting a link or a crashing peer gives) is a PeerError, not
    a ConnectionResetError escaping the server's accept task (the nemesis found that)."""

    async def reset(reader, writer):
        await reader.readexactly(1)  # our side's key has started to arrive
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # with linger 0: an RST

    server = await asyncio.start_server(reset, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        with pytest.raises(PeerError, match="closed the connection|connection failed"):
            await handshake(reader, writer, ALICE, lambda k: True)
    finally:
        writer.close()
        server.close()
        await server.wait_closed()


async def test_a_peer_that_hangs_up_mid_handshake_is_a_peer_error():
    async def hang_up(reader, writer):
        writer.write(b"\x01" * 10)  # part of an ephemeral key, then gone
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        with pytest.raises(PeerError, match="closed the connection"):
            await handshake(reader, writer, ALICE, lambda k: True)
    finally:
        writer.close()
        server.close()
        await server.wait_closed()
