"""Following the chain: an agent's loop of "something may have changed, look again".

An agent does not trust the event stream to be complete: each new block header it sees
over the WebSocket (`tm.event='NewBlockHeader'`) wakes it, and so does a timer every
`reconcile_s`, and either way it reads the state it acts on from the chain afresh
(`reconcile`). So a dropped connection, a missed event or a restart loses nothing: the
next look finds what is due. The connection is opened again after a failure with
exponential backoff (1 s, doubling, at most 30 s), as CometBFT's own clients do, and
`reconcile` keeps running on its timer meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from prometheus_client import Counter

from cloudchain.agents.chain import TxRefused
from cloudchain.client import Client, RPCClientError
from cloudchain.logfields import fields

BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 30.0
HEADERS = "tm.event='NewBlockHeader'"
log = logging.getLogger(__name__)


def backoff_delays(start: float = BACKOFF_START_S, cap: float = BACKOFF_MAX_S) -> list[float]:
    """The waits before each reconnection attempt until the cap is reached."""
    delays, delay = [], start
    while delay < cap:
        delays.append(delay)
        delay *= 2
    return [*delays, cap]


async def follow_chain(
    client: Client,
    reconcile: Callable[[int | None], Awaitable[None]],
    reconcile_s: float,
    stop: asyncio.Event,
    reconnects: Counter,
) -> None:
    """Call `reconcile(height)` on every new block (its height) and at least every
    `reconcile_s` (None), until `stop` is set. A failing reconcile is logged, not fatal:
    the next wake-up tries again."""
    wake = asyncio.Event()
    heights: list[int] = []
    listener = asyncio.create_task(_listen(client, wake, heights, stop, reconnects))
    try:
        while not stop.is_set():
            height = heights[-1] if heights else None
            heights.clear()
            try:
                await reconcile(height)
            except (TimeoutError, RPCClientError, OSError) as exc:
                log.warning("chain unreachable", extra=fields(error=str(exc)))
            except TxRefused as exc:  # e.g. a re-price the chain would not take
                log.warning("transaction refused", extra=fields(error=str(exc)))
            wake.clear()
            with contextlib.suppress(TimeoutError):
                stopping = asyncio.ensure_future(stop.wait())
                woken = asyncio.ensure_future(wake.wait())
                try:
                    await asyncio.wait(
                        {stopping, woken},
                        timeout=reconcile_s,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    stopping.cancel()
                    woken.cancel()
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait `seconds`, or less if `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _listen(
    client: Client,
    wake: asyncio.Event,
    heights: list[int],
    stop: asyncio.Event,
    reconnects: Counter,
) -> None:
    delays = backoff_delays()
    attempt = 0
    while not stop.is_set():
        try:
            async with client.subscribe(HEADERS) as events:
                if attempt:
                    log.info("event stream reconnected", extra=fields(attempts=attempt))
                attempt = 0
                async for event in events:
                    heights.append(event.height)
                    wake.set()
        except (TimeoutError, RPCClientError, OSError) as exc:
            delay = delays[min(attempt, len(delays) - 1)]
            attempt += 1
            reconnects.inc()
            log.warning("event stream lost", extra=fields(error=str(exc), retry_in_s=delay))
            wake.set()  # look at the chain now: blocks may have gone by unseen
            await pause(stop, delay)
