"""The nemesis's peer links (cloudchain/chaos/relay.py) against an echo server on loopback:
bytes pass through unchanged, a block cuts and refuses, latency delays, resets cut."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from cloudchain.chaos.relay import HEALTHY, Links, LinkState, Relay


@contextlib.asynccontextmanager
async def echo_relay(seed: int = 1):
    async def echo(reader, writer):
        with contextlib.suppress(OSError):
            while data := await reader.read(1024):
                writer.write(data)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    relay = Relay("test", ("127.0.0.1", server.sockets[0].getsockname()[1]), seed)
    await relay.start()
    try:
        yield relay
    finally:
        await relay.close()
        server.close()
        await server.wait_closed()


async def roundtrip(relay: Relay, payload: bytes = b"ping") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(len(payload)), 10)
    finally:
        writer.close()


async def test_a_healthy_link_passes_bytes_unchanged():
    async with echo_relay() as relay:
        payload = bytes(range(256)) * 400  # several chunks
        assert await roundtrip(relay, payload) == payload
        assert relay.connections == 1


async def test_a_blocked_link_cuts_open_connections_and_refuses_new_ones():
    async with echo_relay() as relay:
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        writer.write(b"a")
        assert await asyncio.wait_for(reader.readexactly(1), 10) == b"a"
        relay.set_state(LinkState(blocked=True))
        assert await asyncio.wait_for(reader.read(), 10) == b""  # cut
        writer.close()
        with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
            await roundtrip(relay)
        relay.set_state(HEALTHY)
        assert await roundtrip(relay) == b"ping"


async def test_latency_holds_each_chunk_back():
    async with echo_relay() as relay:
        await roundtrip(relay)  # connect once, so the timing below is the link's alone
        relay.set_state(LinkState(latency_ms=150))
        started = time.monotonic()
        assert await roundtrip(relay) == b"ping"
        assert time.monotonic() - started >= 0.3  # there and back


async def test_resets_cut_the_connection_as_drawn_from_the_seed():
    async with echo_relay() as relay:
        relay.set_state(LinkState(reset_per_mille=1000))
        with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
            await roundtrip(relay)
        assert relay.resets == 1


def test_a_link_state_is_checked():
    with pytest.raises(ValueError):
        LinkState(reset_per_mille=1001)
    with pytest.raises(ValueError):
        LinkState(latency_ms=-1)


async def test_a_partition_blocks_only_the_links_between_groups():
    links = Links([("127.0.0.1", 1)] * 5, seed=3)  # not started: states only
    blocked = links.partition([[0, 1], [2, 3]])  # node 4 is the bridge
    assert blocked == [(0, 2), (0, 3), (1, 2), (1, 3)]
    assert links.relay(2, 0).state.blocked and links.relay(0, 2).state.blocked
    assert not links.relay(0, 1).state.blocked and not links.relay(4, 0).state.blocked
    links.heal()
    assert all(not r.state.blocked for r in links.relays.values())
