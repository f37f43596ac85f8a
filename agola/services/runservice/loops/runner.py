"""The loop runner shared by every runservice background job.

A job is a small object with ``name``, ``lock`` (a coordination mutex name under
``scheduler/locks/``, "" = none) and ``run_once()``. ``LoopRunner`` runs it when woken (pushed by
coordination watches) or every ``interval`` seconds (the safety net), under its mutex taken with
``try_lock`` so that several runservice instances never run the same job at once. Errors are
logged and retried with exponential backoff; only cancellation stops the loop.
"""

from __future__ import annotations

import asyncio
import random
from typing import Protocol

from agola.services.runservice.store import lock_key
from agola.storage.coord.base import Coordination, Mutex
from agola.util.log import get_logger

log = get_logger(__name__)

# When the lock is held elsewhere, look again this soon (the holder may miss our wake-up).
LOCK_BUSY_RETRY = 0.2


class Job(Protocol):
    name: str
    lock: str

    async def run_once(self) -> object: ...


class LoopRunner:
    def __init__(
        self,
        job: Job,
        coord: Coordination,
        interval: float,
        *,
        lock_ttl: float = 10.0,
        max_backoff: float = 5.0,
    ) -> None:
        self.job = job
        self.coord = coord
        self.interval = interval
        self.lock_ttl = lock_ttl
        self.max_backoff = max_backoff
        self._wake = asyncio.Event()
        self._mutex: Mutex | None = None
        self.errors = 0
        self.passes = 0
        self.last_error: BaseException | None = None

    def wake(self) -> None:
        self._wake.set()

    async def run_locked(self) -> bool:
        """One pass now if the lock is free; False when another instance holds it."""
        if not self.job.lock:
            await self.job.run_once()
            self.passes += 1
            return True
        if self._mutex is None:
            self._mutex = self.coord.mutex(lock_key(self.job.lock), ttl=self.lock_ttl)
        mutex = self._mutex
        if not await mutex.try_lock():
            return False
        try:
            await self.job.run_once()
            self.passes += 1
        finally:
            try:
                await mutex.unlock()
            except Exception as exc:  # noqa: BLE001 - the lease expires anyway
                log.warning("unlock failed", job=self.job.name, error=repr(exc))
                self._mutex = None
        return True

    async def loop(self) -> None:
        delay = 0.0
        me = asyncio.current_task()
        while True:
            if me is not None and me.cancelling():
                # A cancellation swallowed by a callee must still stop the loop.
                raise asyncio.CancelledError()
            self._wake.clear()
            wait = self.interval
            try:
                if not await self.run_locked():
                    wait = min(self.interval, LOCK_BUSY_RETRY)
                delay = 0.0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a loop outlives any error
                self.errors += 1
                self.last_error = exc
                delay = min(self.max_backoff, max(0.05, delay * 2))
                log.warning("runservice loop failed", job=self.job.name, error=repr(exc), retry_in=round(delay, 2))
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                continue
            # Not asyncio.wait_for: on 3.11 it swallows a cancellation that races with the
            # event being set, and the loop would never stop.
            try:
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def close(self) -> None:
        if self._mutex is not None:
            try:
                await self._mutex.unlock()
            except Exception:  # noqa: BLE001
                pass
            self._mutex = None
