"""wait_event: set, timeout, and a cancellation that is never swallowed."""

from __future__ import annotations

import asyncio

import pytest

from agola.util.aio import BatchingQueue, wait_event


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


async def test_batching_queue_batches_waiting_calls_and_spares_the_others_of_a_cancelled_caller() -> None:
    batches: list[list[int]] = []
    release = asyncio.Event()

    async def run_batch(key: str, items: list[int]) -> list[str]:
        batches.append(items)
        await release.wait()
        if -1 in items:
            raise ValueError("bad item")
        return [f"{key}{i}" for i in items]

    queue: BatchingQueue[int, str] = BatchingQueue(run_batch, batch_size=3)
    calls = [asyncio.create_task(queue.submit("k", i)) for i in range(5)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    calls[1].cancel()  # in the batch being run: the others of the batch still get theirs
    calls[4].cancel()  # waiting for the next batch: left out of it
    release.set()
    assert [await c for c in (calls[0], calls[2], calls[3])] == ["k0", "k2", "k3"]
    assert batches == [[0, 1, 2], [3]]
    failing = [asyncio.create_task(queue.submit("k", i)) for i in (-1, 7)]
    for call in failing:
        with pytest.raises(ValueError, match="bad item"):
            await call
