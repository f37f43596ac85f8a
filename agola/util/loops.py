"""The one loop runner of every background job (datamanager jobs, runservice loops, scheduler).

A job is a small object with a ``name`` and ``run_once()`` (one pass, callable directly from a
test). ``LoopRunner`` repeats it::

    runner = LoopRunner(job, interval=2.0, lock=lambda: coord.mutex("locks/myjob", ttl=10))
    runner.start()        # a task running passes until stop()
    runner.wake()         # a pass as soon as the current one (if any) is over
    await runner.stop()

One place for the policy (after Prefect's ``LoopService``):

- a pass runs right after start, then when woken (push) or every ``interval`` seconds (the
  safety net); with ``follow_up`` a woken pass is followed by one more pass that many seconds
  later (for readers that lag behind the writes which woke the pass);
- an error is logged and the next pass waits an exponential backoff (``min_backoff`` doubling
  up to ``max_backoff``, not cut short by wake-ups); a success resets it;
- a pass longer than ``overrun`` seconds (default ``interval``) logs a warning;
- cancellation stops the loop at once and is never swallowed, also when a callee swallowed it;
- with ``lock`` (a factory of coordination mutexes), every pass runs under the mutex taken with
  ``try_lock``: several instances on one coordination never run a pass of the same job at once.
  When another instance holds it the pass is skipped and tried again within ``busy_retry``.

``run(loops=N)`` runs exactly N passes and returns (deterministic tests).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

from agola.util.aio import cancel_and_wait, wait_event
from agola.util.backoff import Backoff
from agola.util.log import get_logger

log = get_logger(__name__)

# When the lock is held elsewhere, look again this soon (the holder may miss our wake-up).
BUSY_RETRY = 0.2


class Job(Protocol):
    @property
    def name(self) -> str: ...

    async def run_once(self) -> object: ...


class LockedJob(Job, Protocol):
    """A job naming the coordination mutex its passes run under ("" = none); its owner turns the
    name into a key of its own namespace and gives ``LoopRunner`` the mutex factory."""

    @property
    def lock(self) -> str: ...


class PassLock(Protocol):
    """What a pass needs of a coordination mutex (``agola.storage.coord.base.Mutex`` is one)."""

    async def try_lock(self) -> bool: ...

    async def unlock(self) -> None: ...


class MutexSource(Protocol):
    """Where pass locks come from (``agola.storage.coord.base.Coordination`` is one)."""

    def mutex(self, key: str, *, ttl: float = ...) -> PassLock: ...


class LoopRunner:
    def __init__(
        self,
        job: Job,
        interval: float,
        *,
        lock: Callable[[], PassLock] | None = None,
        min_backoff: float = 0.05,
        max_backoff: float = 5.0,
        overrun: float | None = None,
        follow_up: float | None = None,
        busy_retry: float = BUSY_RETRY,
    ) -> None:
        self.job = job
        self.interval = interval
        self._new_lock = lock
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._overrun = interval if overrun is None else overrun
        self._follow_up = follow_up
        self._busy_retry = busy_retry
        self._wake = asyncio.Event()
        # One idle mutex (and so one coordination session) kept between passes; a pass started
        # while another is in flight (run_once() from outside) takes a mutex of its own.
        self._idle_lock: PassLock | None = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def for_locked_job(
        cls,
        job: LockedJob,
        interval: float,
        mutexes: MutexSource,
        *,
        lock_key: Callable[[str], str],
        lock_ttl: float,
        min_backoff: float = 0.05,
        max_backoff: float = 5.0,
    ) -> LoopRunner:
        """A runner whose passes hold the mutex ``lock_key(job.lock)`` (none if ``job.lock`` is "")."""
        lock: Callable[[], PassLock] | None = None
        if job.lock:
            key = lock_key(job.lock)

            def lock() -> PassLock:
                return mutexes.mutex(key, ttl=lock_ttl)

        return cls(job, interval, lock=lock, min_backoff=min_backoff, max_backoff=max_backoff)

    @property
    def name(self) -> str:
        return self.job.name

    def wake(self) -> None:
        """Ask for a pass as soon as the current one (if any) is over."""
        self._wake.set()

    async def run_once(self) -> bool:
        """One pass now, under the lock if any; False when another instance holds it.

        Errors of the job propagate (the loop logs them and backs off)."""
        if self._new_lock is None:
            await self.job.run_once()
            return True
        lock = self._idle_lock or self._new_lock()
        self._idle_lock = None
        if not await lock.try_lock():
            self._keep_idle(lock)
            return False
        try:
            await self.job.run_once()
        finally:
            try:
                await lock.unlock()
            except Exception as exc:  # noqa: BLE001 - the lease expires anyway; use a new mutex
                log.warning("loop unlock failed", loop=self.name, error=repr(exc))
            else:
                self._keep_idle(lock)
        return True

    def _keep_idle(self, lock: PassLock) -> None:
        # Another pass may have parked its own mutex meanwhile: then this one is dropped.
        if self._idle_lock is None:
            self._idle_lock = lock

    async def run(self, loops: int | None = None) -> None:
        """Run passes until cancelled, or ``loops`` passes when given."""
        backoff = Backoff(self._min_backoff, self._max_backoff)
        woken = True  # the first pass counts as woken: it gets its follow-up
        done = 0
        me = asyncio.current_task()
        while loops is None or done < loops:
            if me is not None and me.cancelling():
                # A cancellation swallowed by a callee must still stop the loop.
                raise asyncio.CancelledError()
            self._wake.clear()
            started = time.monotonic()
            try:
                ran = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a loop outlives any error of one pass
                delay = backoff.next()
                log.warning("loop pass failed", loop=self.name, error=repr(exc), retry_in=round(delay, 2))
                done += 1
                if loops is None or done < loops:
                    await asyncio.sleep(delay)
                woken = False
                continue
            backoff.reset()
            done += 1
            took = time.monotonic() - started
            if took > self._overrun:
                log.warning("loop pass overran its interval", loop=self.name, took=round(took, 3),
                            interval=self.interval)
            if loops is not None and done >= loops:
                return
            if not ran:
                timeout = min(self.interval, self._busy_retry)
            elif woken and self._follow_up is not None:
                timeout = self._follow_up
            else:
                timeout = self.interval
            woken = await wait_event(self._wake, timeout)

    def start(self) -> asyncio.Task[None]:
        """Run the loop in a task of its own (once); ``stop()`` ends it."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=f"loop-{self.name}")
        return self._task

    async def stop(self) -> None:
        """Stop the loop (waiting for it to end) and release the idle mutex's session."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait([task])
        await self.close()

    async def close(self) -> None:
        lock, self._idle_lock = self._idle_lock, None
        if lock is not None:
            try:
                await lock.unlock()
            except Exception:  # noqa: BLE001 - the lease expires anyway
                pass


async def stop_all(runners: list[LoopRunner]) -> None:
    """Stop several runners at once."""
    await asyncio.gather(*(r.stop() for r in runners))
