"""Small asyncio helpers."""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds pass; True if it was set.

    Not ``asyncio.wait_for``: on Python 3.11 a cancellation racing the event comes out swallowed
    (or as a ``TimeoutError``), so a loop waiting this way could never be stopped. ``asyncio.timeout``
    tells its own timeout apart from an outside cancellation.
    """
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True
