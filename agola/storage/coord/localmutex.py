"""The embedded store's mutex: a lock table in the process's memory, with no store write.

The embedded store is opened by one process at a time (``flock`` on ``<dir>/lock``) and every
handle of that process on the directory shares one store object, which owns one ``LockTable``:
every possible locker of a key lives in this process and meets the others in that table. So the
table is as exclusive as etcd's lock keys, and a lock or unlock is a few dictionary operations
instead of the four store writes of the queued mutex (lease grant, txn, delete, lease revoke).

Semantics kept from the queued mutex (``agola.storage.coord.mutex``): ``try_lock`` gives up at
once, ``lock(timeout)`` waits in arrival order and leaves the line on timeout, ``unlock``
releases to the next in line. A lock is *lost* only when its handle is closed while it is held
(the process is shutting down: another handle of this process may take the lock). A stalled event
loop loses nothing: every other locker is in the same stalled process. A crash frees every lock
with the process, as the reaper frees a crashed holder's lease keys.

The table is guarded by a ``threading.Lock`` and wakes a waiter on its own event loop, so handles
used from several loops of one process share it safely.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Protocol

from agola.storage.coord.base import Closed, Mutex


class Owner(Protocol):
    """The handle a mutex was made by (``EmbeddedCoordination``)."""

    @property
    def closed(self) -> bool: ...


class _Entry:
    __slots__ = ("owner", "waiters")

    def __init__(self, owner: LocalMutex) -> None:
        self.owner: LocalMutex | None = owner
        self.waiters: deque[LocalMutex] = deque()


def _resolve(fut: asyncio.Future[None], exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is None:
        fut.set_result(None)
    else:
        fut.set_exception(exc)


class LockTable:
    """The held and awaited locks of one store: full key -> owner and waiters in arrival order."""

    def __init__(self) -> None:
        self._mu = threading.Lock()
        self._locks: dict[bytes, _Entry] = {}

    def held_keys(self) -> list[bytes]:
        """The keys locked now (tests and diagnostics)."""
        with self._mu:
            return sorted(self._locks)

    def _take(self, m: LocalMutex, queue: bool) -> bool:
        """Own ``m``'s key if free (True); else join its line when ``queue`` (False)."""
        with self._mu:
            entry = self._locks.get(m.name)
            if entry is None:
                self._locks[m.name] = _Entry(m)
                return True
            if queue:
                entry.waiters.append(m)
            return False

    def _leave(self, m: LocalMutex) -> None:
        """``m`` stops holding or waiting (unlock, timeout, cancellation): the next in line, if
        any, owns the lock from now on and is woken."""
        with self._mu:
            entry = self._locks.get(m.name)
            if entry is None:
                return
            if entry.owner is m:
                self._hand_over(m.name, entry)
            else:
                try:
                    entry.waiters.remove(m)
                except ValueError:
                    pass

    def _hand_over(self, name: bytes, entry: _Entry) -> None:
        # Called with self._mu held.
        while entry.waiters:
            nxt = entry.waiters.popleft()
            if nxt._wake(None):
                entry.owner = nxt
                return
        entry.owner = None
        del self._locks[name]

    def drop_owner(self, owner: Owner) -> None:
        """``owner`` (a handle) is closing: its locks are lost and passed on, its waiters fail."""
        closed = Closed("embedded coordination handle is closed")
        with self._mu:
            for name, entry in list(self._locks.items()):
                for w in [w for w in entry.waiters if w.owner is owner]:
                    entry.waiters.remove(w)
                    w._wake(closed)
                if entry.owner is not None and entry.owner.owner is owner:
                    entry.owner._mark_lost()
                    self._hand_over(name, entry)


class LocalMutex(Mutex):
    def __init__(self, table: LockTable, owner: Owner, name: bytes) -> None:
        self.table = table
        self.owner = owner
        self.name = name
        self._held = False
        self._lost = False
        self._lost_event: asyncio.Event | None = None
        self._waiting: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None = None

    @property
    def held(self) -> bool:
        return self._held

    @property
    def waiting(self) -> bool:
        return self._waiting is not None

    @property
    def lost(self) -> bool:
        """True when the handle was closed while the lock was held: another handle may own it."""
        return self._held and self._lost

    async def wait_lost(self) -> None:
        if self._lost_event is None:
            self._lost_event = asyncio.Event()
            if self._lost:
                self._lost_event.set()
        await self._lost_event.wait()

    def _check(self) -> None:
        if self._held:
            raise RuntimeError(f"mutex {self.name!r} already held by this object")
        if self.owner.closed:
            raise Closed("embedded coordination handle is closed")

    async def try_lock(self) -> bool:
        self._check()
        if not self.table._take(self, queue=False):
            return False
        self._got()
        return True

    async def lock(self, timeout: float | None = None) -> None:
        self._check()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._waiting = (loop, fut)
        try:
            if not self.table._take(self, queue=True):
                async with asyncio.timeout(timeout):
                    await fut
        except BaseException:
            # Timed out, cancelled or closed: leave the line, or pass on a lock handed to us in
            # the meantime.
            self._waiting = None
            self.table._leave(self)
            raise
        self._waiting = None
        self._got()

    async def unlock(self) -> None:
        if not self._held:
            return
        self._held = False
        self.table._leave(self)

    def _got(self) -> None:
        self._held = True
        self._lost = False
        if self._lost_event is not None:
            self._lost_event.clear()

    def _wake(self, exc: BaseException | None) -> bool:
        """Wake this waiter (called with the table's lock held); False if it stopped waiting."""
        waiting = self._waiting
        if waiting is None or waiting[1].done():
            return False
        loop, fut = waiting
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            _resolve(fut, exc)
        else:
            try:
                loop.call_soon_threadsafe(_resolve, fut, exc)
            except RuntimeError:  # its loop is closed: nobody waits there any more
                return False
        return True

    def _mark_lost(self) -> None:
        self._lost = True
        if self._lost_event is not None:
            self._lost_event.set()
