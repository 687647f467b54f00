"""Waiting for a wake-up or a deadline, whichever comes first.

A fetch and a replication each sleep on one asyncio.Event that their inputs
set, until the nearest of their deadlines; this is that sleep. It knows nothing
of either.
"""

from __future__ import annotations

import asyncio
import contextlib


async def wait_for_wake(event: asyncio.Event, timeout_s: float) -> None:
    """Until `event` is set or `timeout_s` passes. asyncio.timeout, not wait_for: on
    Python 3.11 wait_for can swallow a cancellation that comes as the event is set."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(timeout_s, 0)):
            await event.wait()
