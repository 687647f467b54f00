"""The peer links under the nemesis's hand: one TCP relay per ordered pair of nodes.

This machine has no netem, and network namespaces need privileges a test run may not
have; so every node's persistent peers point at relays on loopback instead of at each
other (cluster.py rewrites them), and each relay forwards bytes to the real peer while
the nemesis sets its link's state:

- blocked: connections are cut and new ones refused at once (a partition: the
  dialing node sees a refused or reset connection, and keeps redialing);
- latency_ms: every chunk is held that long before it is passed on, in order;
- reset_per_mille: each chunk cuts the connection with that chance (a lossy link: TCP
  hides lost packets as delay, until it gives up and the connection breaks). Draws come
  from the relay's own seeded generator, so a seed replays the same cuts for the same
  traffic.

The relays are transparent: the secret connection's handshake and MACs run end to end
through them (they never see plaintext), so a relay can delay or cut a link, never
forge on it. A node dials both ways (each names the other as a persistent peer), so a
link between two nodes is two relays; `Links` sets both at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

from cloudchain.logfields import fields

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class LinkState:
    blocked: bool = False
    latency_ms: int = 0
    reset_per_mille: int = 0

    def __post_init__(self) -> None:
        if self.latency_ms < 0 or not 0 <= self.reset_per_mille <= 1000:
            raise ValueError("latency_ms must be >= 0 and reset_per_mille in 0..1000")


HEALTHY = LinkState()


class Relay:
    """Listens on loopback and forwards each connection to `target` (host, port), as the
    current `state` says. Start with `start()`, stop with `close()`."""

    def __init__(self, name: str, target: tuple[str, int], seed: int) -> None:
        self.name = name
        self.target = target
        self.state = HEALTHY
        self.port = 0
        self.connections = 0  # accepted and forwarded, in all
        self.resets = 0  # cut by reset_per_mille
        self._random = random.Random(seed)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def set_state(self, state: LinkState) -> None:
        """Takes effect at once: a block cuts the connections open now."""
        self.state = state
        if state.blocked:
            for task in list(self._open):
                task.cancel()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._open):
            task.cancel()
        for task in list(self._open):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.state.blocked:
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._open.add(task)
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                writer.transport.abort()  # the peer is down: the dialer sees it so
                return
            self.connections += 1
            try:
                await _first_to_end(self._pump(reader, up_writer), self._pump(up_reader, writer))
            finally:
                up_writer.transport.abort()
        except asyncio.CancelledError:
            pass
        finally:
            writer.transport.abort()
            self._open.discard(task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy one direction until EOF, an error, or the link's state cuts it."""
        held: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        sender = asyncio.create_task(_send_when_due(held, writer))
        try:
            while True:
                data = await reader.read(CHUNK_BYTES)
                if not data or self.state.blocked:
                    return
                state = self.state
                if state.reset_per_mille and self._random.randrange(1000) < state.reset_per_mille:
                    self.resets += 1
                    return
                held.put_nowait((time.monotonic() + state.latency_ms / 1000, data))
                if sender.done():
                    return  # the other end went away
        except OSError:
            return
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await sender


async def _send_when_due(
    held: asyncio.Queue[tuple[float, bytes]], writer: asyncio.StreamWriter
) -> None:
    while True:
        due, data = await held.get()
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # the link's latency, not a synchronisation
        writer.write(data)
        await writer.drain()


async def _first_to_end(*coroutines: Coroutine[Any, Any, None]) -> None:
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task


class Links:
    """Every relay of an n-node network: `relay(i, j)` carries i's connections to j."""

    def __init__(self, targets: list[tuple[str, int]], seed: int) -> None:
        self.size = len(targets)
        self.relays = {
            (i, j): Relay(f"node{i}->node{j}", targets[j], seed * 1_000_003 + i * 1_009 + j)
            for i in range(self.size)
            for j in range(self.size)
            if i != j
        }

    async def start(self) -> None:
        for relay in self.relays.values():
            await relay.start()

    async def close(self) -> None:
        for relay in self.relays.values():
            await relay.close()

    def relay(self, i: int, j: int) -> Relay:
        return self.relays[(i, j)]

    def set(self, pairs: Iterable[tuple[int, int]], state: LinkState) -> None:
        """Set the links between each (unordered) pair, both directions."""
        pairs = list(pairs)
        for i, j in pairs:
            self.relays[(i, j)].set_state(state)
            self.relays[(j, i)].set_state(state)
        named = " ".join(f"{i}-{j}" for i, j in pairs)
        log.info("links set", extra=fields(state=str(state), pairs=named))

    def partition(self, groups: Iterable[Iterable[int]]) -> list[tuple[int, int]]:
        """Block every link between nodes of different groups (a node in no group keeps
        every link: a bridge); returns the pairs blocked."""
        group_of = {n: g for g, members in enumerate(groups) for n in members}
        blocked = [
            (i, j)
            for i in range(self.size)
            for j in range(i + 1, self.size)
            if i in group_of and j in group_of and group_of[i] != group_of[j]
        ]
        self.heal()
        self.set(blocked, LinkState(blocked=True))
        return blocked

    def heal(self) -> None:
        for relay in self.relays.values():
            relay.set_state(HEALTHY)

    @property
    def resets(self) -> int:
        return sum(r.resets for r in self.relays.values())
