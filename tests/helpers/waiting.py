"""Waiting for a condition with a deadline: the one place in the tests that sleeps.

A test never sleeps to let something happen: it waits for the condition it needs and
fails, naming that condition, once the deadline has passed. Where something announces
the condition (a commit listener, an asyncio.Event, a child's line of output), a test
waits on that; what nothing announces is polled here, every POLL_S, by `wait_until`
(on an event loop) or `wait_until_blocking` (in a test of threads or processes).

This module knows nothing of nodes or stores; tests/helpers/network.py waits on commits.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

DEADLINE_S = 60.0  # long enough for a loaded CI machine; a wait that passes is short
POLL_S = 0.01


async def wait_until(
    condition: Callable[[], T],
    deadline_s: float = DEADLINE_S,
    *,
    what: str | None = None,
    poll_s: float = POLL_S,
) -> T:
    """Poll `condition()` until it returns something true, and return that.

    Raises TimeoutError naming `what` (by default the condition's source line) when it
    still does not hold `deadline_s` seconds after the first check. The sleep between
    checks is a poll interval: what ends the wait is the condition or the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    while not (value := condition()):
        if loop.time() >= deadline:
            raise TimeoutError(f"waited {deadline_s} s for {what or describe(condition)}")
        await asyncio.sleep(poll_s)
    return value


def wait_until_blocking(
    condition: Callable[[], T],
    deadline_s: float = DEADLINE_S,
    *,
    what: str | None = None,
    poll_s: float = POLL_S,
) -> T:
    """`wait_until` for a test without an event loop: the same polling, blocking the thread."""
    deadline = time.monotonic() + deadline_s
    while not (value := condition()):
        if time.monotonic() >= deadline:
            raise TimeoutError(f"waited {deadline_s} s for {what or describe(condition)}")
        time.sleep(poll_s)
    return value


async def give_other_tasks_a_turn() -> None:
    """Let the event loop run the other ready tasks once before this one goes on.

    `asyncio.sleep(0)` waits for no time and for no condition: it is a scheduling
    point, for a test's producer loop that must not starve the consumer it loads
    (a deliberately fast publisher against a slow client). A test may use it only
    where no assertion depends on how far the other tasks got."""
    await asyncio.sleep(0)


def describe(condition: Callable[[], object]) -> str:
    """The condition's source, in one line, for a timeout's message."""
    try:
        source = inspect.getsource(condition)
    except (OSError, TypeError):
        return repr(condition)
    return " ".join(source.split())
