"""Small asyncio helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from agola.util.log import get_logger

log = get_logger(__name__)


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


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], *, recancel_every: float = 0.5) -> None:
    """Cancel ``tasks`` and return once every one of them is done.

    A task is cancelled again every ``recancel_every`` seconds while it runs: a library below may
    swallow one cancellation (Python 3.11's ``asyncio.wait_for`` does when it races its timeout).
    What the tasks returned or raised is dropped; a cancellation of the caller still propagates.
    """
    tasks = list(tasks)
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=recancel_every)
        for task in pending:
            log.warning("task slow to stop, cancelling again", task=task.get_name())
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" noise
