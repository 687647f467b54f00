"""The RPC server's TCP connections: how many may be open, and how long a silent one lives.

`ConnectionGate` is the listening socket's protocol factory. It wraps each
accepted connection around aiohttp's protocol (`web.Server`, itself a protocol
factory) and counts it from `connection_made` to `connection_lost`, so the
limit holds for connections, idle or slow ones included, not for requests in
flight. Beyond `max_open` a new connection is closed at once, before aiohttp
sees it. A connection that has not delivered a complete request head within
`first_request_timeout_s` is aborted (a client trickling its headers holds no
slot for long); once it has, aiohttp's keep-alive timeout bounds the wait for
the next one.

What the bytes mean is aiohttp's business; this module only counts and cuts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import cast

log = logging.getLogger(__name__)


class ConnectionGate:
    def __init__(
        self, factory: Callable[[], asyncio.Protocol], max_open: int, first_request_timeout_s: float
    ) -> None:
        assert max_open >= 1
        self._factory = factory
        self._max_open = max_open
        self._first_request_timeout_s = first_request_timeout_s
        self._open: dict[asyncio.BaseTransport, _Connection] = {}
        self.refused = 0  # connections closed at once because max_open were open

    @property
    def open_count(self) -> int:
        return len(self._open)

    def __call__(self) -> asyncio.Protocol:
        return _Connection(self)

    def note_request(self, transport: asyncio.BaseTransport | None) -> None:
        """A complete request head arrived on `transport`: it is no longer silent."""
        connection = self._open.get(transport) if transport is not None else None
        if connection is not None:
            connection.disarm()

    def abort_all(self) -> None:
        """Drop every connection still open, without waiting for unsent bytes."""
        for connection in list(self._open.values()):
            connection.abort()


class _Connection(asyncio.Protocol):
    """One accepted connection: aiohttp's protocol behind a counter and a deadline."""

    def __init__(self, gate: ConnectionGate) -> None:
        self._gate = gate
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        gate = self._gate
        if len(gate._open) >= gate._max_open:
            gate.refused += 1
            transport.close()
            return
        self._transport = cast(asyncio.Transport, transport)  # a TCP connection's
        gate._open[transport] = self
        self._deadline = asyncio.get_running_loop().call_later(
            gate._first_request_timeout_s, self._expire
        )
        self._inner = gate._factory()
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is None:
            return  # refused: aiohttp never saw it
        self.disarm()
        assert self._transport is not None
        self._gate._open.pop(self._transport, None)
        self._inner.connection_lost(exc)

    def disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _expire(self) -> None:
        self._deadline = None
        log.info("RPC connection sent no complete request in time; closing it")
        self.abort()

    # --- the rest of the protocol goes straight to aiohttp ---------------------------------

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()
