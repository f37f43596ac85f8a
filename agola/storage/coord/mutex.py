"""The queued mutex of etcd's clientv3 ``concurrency`` package, on any Coordination.

Each locker owns a session (a lease kept alive) and creates the key ``<lock>/<lease id hex>``
under it. The owner is the key with the lowest create revision; the others wait, each for the
deletion of the key created just before its own, so the lock is granted in arrival order and a
release wakes only the next in line. A crashed holder's key disappears with its lease.
"""

from __future__ import annotations

import asyncio

from agola.storage.coord.base import Compare, Coordination, Get, KeyValue, Lease, Mutex, Put


class QueuedMutex(Mutex):
    def __init__(self, coord: Coordination, key: str, ttl: float) -> None:
        self._coord = coord
        self._pfx = key.rstrip("/") + "/"
        self._ttl = ttl
        self._lease: Lease | None = None
        self._my_key = ""
        self._my_rev = 0
        self._held = False

    @property
    def key(self) -> str:
        """Our own key under the lock (empty when not queued or holding)."""
        return self._my_key

    @property
    def held(self) -> bool:
        return self._held

    @property
    def waiting(self) -> bool:
        return self._my_rev != 0 and not self._held

    @property
    def lost(self) -> bool:
        """True when the session of the held lock was lost: another locker may own it now."""
        return self._held and self._lease is not None and self._lease.lost

    async def wait_lost(self) -> None:
        if self._lease is None:
            await asyncio.Event().wait()
        else:
            await self._lease.wait_lost()

    async def try_lock(self) -> bool:
        self._check_not_held()
        try:
            owner_rev = await self._enqueue()
        except BaseException:
            # Never leave a session (and its keepalive task) behind a failed attempt.
            try:
                await asyncio.shield(self._leave())
            except Exception:  # noqa: BLE001 - the original error matters more
                pass
            raise
        if owner_rev == self._my_rev:
            self._held = True
            return True
        await self._leave()
        return False

    async def lock(self, timeout: float | None = None) -> None:
        self._check_not_held()
        try:
            async with asyncio.timeout(timeout):
                while True:
                    owner_rev = await self._enqueue()
                    if owner_rev == self._my_rev or await self._wait_turn():
                        break
                    # Our session expired while we waited (and took our key with it): queue
                    # again, at the back, with a new session.
                    await self._leave()
        except BaseException:
            try:
                await asyncio.shield(self._leave())
            except Exception:  # noqa: BLE001 - the original error matters more; the key expires anyway
                pass
            raise
        self._held = True

    async def _wait_turn(self) -> bool:
        """Wait until we own the lock (True) or our session is lost (False)."""
        assert self._lease is not None
        waiting = asyncio.ensure_future(self._wait_predecessors())
        lost = asyncio.ensure_future(self._lease.wait_lost())
        try:
            await asyncio.wait([waiting, lost], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (waiting, lost):
                t.cancel()
            await asyncio.gather(waiting, lost, return_exceptions=True)
        if waiting.done() and not waiting.cancelled():
            exc = waiting.exception()
            if exc is not None:
                raise exc
            return await self._coord.get(self._my_key) is not None
        return False

    async def unlock(self) -> None:
        self._held = False
        await self._leave()

    def _check_not_held(self) -> None:
        if self._held:
            raise RuntimeError(f"mutex {self._pfx!r} already held by this object")

    async def _enqueue(self) -> int:
        """Create our key (once per session); return the create revision of the current owner."""
        if self._lease is None or self._lease.lost:
            self._lease = await self._coord.grant_lease(self._ttl)
            self._my_key = f"{self._pfx}{self._lease.id:x}"
        res = await self._coord.txn(
            [Compare.create(self._my_key, "==", 0)],
            [Put(self._my_key, b"", lease=self._lease.id), Get(self._pfx, prefix=True)],
            [Get(self._my_key), Get(self._pfx, prefix=True)],
        )
        waiters = res.responses[1]
        assert waiters is not None
        if res.succeeded:
            self._my_rev = res.revision
        else:
            mine = res.responses[0]
            assert mine is not None
            self._my_rev = mine.kvs[0].create_revision
        return min(kv.create_revision for kv in waiters.kvs)

    async def _wait_predecessors(self) -> None:
        """Return once no key older than ours remains (clientv3 ``waitDeletes``)."""
        while True:
            rr = await self._coord.range(self._pfx)
            older = [kv for kv in rr.kvs if kv.create_revision < self._my_rev]
            if not older:
                return
            pred = max(older, key=lambda kv: kv.create_revision)
            await self._wait_deleted(pred, rr.revision + 1)

    async def _wait_deleted(self, kv: KeyValue, from_revision: int) -> None:
        async with self._coord.watch(kv.key, start_revision=from_revision) as watcher:
            async for ev in watcher:
                if ev.kv.key == kv.key and ev.type == "delete":
                    return

    async def _leave(self) -> None:
        """Drop our key and session (the key goes with the lease)."""
        lease, self._lease = self._lease, None
        key, self._my_key, self._my_rev = self._my_key, "", 0
        if lease is None:
            return
        try:
            if not lease.lost:
                await self._coord.delete(key)
        finally:
            await lease.revoke()
