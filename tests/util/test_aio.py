"""wait_event: set, timeout, and a cancellation that is never swallowed."""

from __future__ import annotations

import asyncio

import pytest

from agola.util.aio import wait_event


async def test_returns_true_when_set_and_false_on_timeout() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await wait_event(event, 5) is True


async def test_a_cancelled_waiter_stops_even_when_the_event_is_set_at_the_same_time() -> None:
    for _ in range(50):
        event = asyncio.Event()
        stopped = asyncio.Event()

        async def loop(event: asyncio.Event = event, stopped: asyncio.Event = stopped) -> None:
            try:
                while True:
                    await wait_event(event, 0.001)
                    event.clear()
            finally:
                stopped.set()

        task = asyncio.create_task(loop())
        await asyncio.sleep(0)
        event.set()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert stopped.is_set()
