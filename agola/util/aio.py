"""Small asyncio helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Generic, TypeVar

from agola.util.log import get_logger

log = get_logger(__name__)

T = TypeVar("T")
R = TypeVar("R")


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



class BatchingQueue(Generic[T, R]):
    """Calls on one key (a run group, a sequence) queue up instead of racing each other: one
    worker per busy key hands every call waiting (up to ``batch_size``) to ``run_batch(key,
    items)`` at once, which returns one result per item. A burst of N calls costs about
    N / batch_size batches, and a caller going away (cancelled) fails nobody else's call.

    ``run_batch`` raising gives every call of that batch the exception.
    """

    def __init__(self, run_batch: Callable[[str, list[T]], Awaitable[list[R]]], batch_size: int) -> None:
        self._run_batch = run_batch
        self._batch_size = batch_size
        self._waiting: dict[str, list[tuple[T, asyncio.Future[R]]]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}

    async def submit(self, key: str, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append((item, future))
        if key not in self._workers:
            self._workers[key] = asyncio.create_task(self._work(key), name=f"batching-queue {key}")
        return await future

    async def _work(self, key: str) -> None:
        try:
            while self._waiting.get(key):
                queue = self._waiting.pop(key)
                batch, rest = queue[: self._batch_size], queue[self._batch_size :]
                if rest:
                    self._waiting[key] = rest
                batch = [(item, f) for item, f in batch if not f.done()]  # cancelled callers
                if batch:
                    await self._run(key, batch)
        finally:
            del self._workers[key]
            for _, future in self._waiting.pop(key, []):  # the worker itself was cancelled
                future.cancel()

    async def _run(self, key: str, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._run_batch(key, [item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batch of {len(batch)} calls on {key!r} gave {len(results)} results")
        except Exception as exc:  # noqa: BLE001 - handed to the callers
            outcome: list[R] | Exception = exc
        except BaseException:
            for _, future in batch:
                future.cancel()
            raise
        else:
            outcome = results
        for i, (_, future) in enumerate(batch):
            if future.done():
                continue
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome[i])
