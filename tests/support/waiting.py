"""Wait on conditions, never on the clock."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def wait_for(
    condition: Callable[[], Any | Awaitable[Any]],
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str = "",
) -> Any:
    """Call ``condition`` (sync or async) until it returns a truthy value; return that value.

    Raises ``TimeoutError`` naming ``message`` (or the condition) when ``timeout`` passes. Exceptions
    raised by the condition count as "not yet" and the last one is chained to the timeout.
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            result = condition()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return result
            last_exc = None
        except Exception as exc:  # noqa: BLE001 - a failing probe means "not ready yet"
            last_exc = exc
        if time.monotonic() >= deadline:
            what = message or getattr(condition, "__name__", repr(condition))
            raise TimeoutError(f"condition not met within {timeout}s: {what}") from last_exc
        await asyncio.sleep(interval)


def wait_for_sync(
    condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02, message: str = ""
) -> Any:
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            result = condition()
            if result:
                return result
            last_exc = None
        except Exception as exc:  # noqa: BLE001
            last_exc = exc
        if time.monotonic() >= deadline:
            what = message or getattr(condition, "__name__", repr(condition))
            raise TimeoutError(f"condition not met within {timeout}s: {what}") from last_exc
        time.sleep(interval)
