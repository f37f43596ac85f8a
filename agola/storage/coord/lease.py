"""A lease kept alive by a background task, shared by every Coordination implementation.

The backend gives two primitives: ``refresh()`` (one keepalive round trip returning the TTL the
server granted, ``<= 0`` when the lease is gone) and ``revoke()``. This class runs the loop that
etcd's Go client runs for you and aetcd does not: refresh every ``ttl / 3``.

A lease is declared *lost* when the server says it expired (TTL <= 0), or when refreshes keep
failing until the moment the server would have expired it by our own clock: a brief outage that
ends in time keeps the lease, a long one loses it. Once lost, a lease never comes back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from agola.storage.coord.base import Lease
from agola.util.log import get_logger

log = get_logger(__name__)

RefreshFn = Callable[[], Awaitable[float]]
RevokeFn = Callable[[], Awaitable[None]]


class KeepaliveLease(Lease):
    def __init__(self, lease_id: int, ttl: float, refresh: RefreshFn, revoke: RevokeFn) -> None:
        self.id = lease_id
        self.ttl = ttl
        self._refresh = refresh
        self._revoke = revoke
        self._lost = asyncio.Event()
        self._revoked = False
        # When the server would expire the lease if we never reached it again.
        self._deadline = time.monotonic() + ttl
        self._task = asyncio.create_task(self._keepalive(), name=f"lease-keepalive-{lease_id:x}")

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    async def wait_lost(self) -> None:
        await self._lost.wait()

    def mark_lost(self, reason: str) -> None:
        if not self._lost.is_set():
            if not self._revoked:
                log.warning("lease lost", lease=f"{self.id:x}", reason=reason)
            self._lost.set()

    async def revoke(self) -> None:
        """Stop the keepalive and tell the server; the lease counts as lost afterwards.

        A lease already reported lost may still exist server side (we lost contact, the server
        kept it): it is revoked too, best effort."""
        if self._revoked:
            return
        self._revoked = True
        await self._stop_task()
        was_lost = self.lost
        self._lost.set()
        try:
            await self._revoke()
        except Exception:
            if not was_lost:
                raise

    async def close(self) -> None:
        """Stop the keepalive without revoking (the server expires the lease after its TTL)."""
        self._revoked = True
        await self._stop_task()
        self._lost.set()

    async def _stop_task(self) -> None:
        if self._task is asyncio.current_task():
            return
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            # The keepalive's own cancellation is expected; ours (the caller being cancelled while
            # waiting here) must propagate, or the caller's task would never stop.
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
        except Exception:  # noqa: BLE001 - the task reports its own errors
            pass

    async def _keepalive(self) -> None:
        interval = max(self.ttl / 3, 0.05)
        while not self._lost.is_set():
            await asyncio.sleep(interval)
            while True:
                if time.monotonic() >= self._deadline:
                    self.mark_lost("keepalive did not reach the server before the TTL ran out")
                    return
                sent = time.monotonic()
                try:
                    # Not wait_for: on 3.11 it can swallow the cancellation that stops this loop.
                    async with asyncio.timeout(max(self._deadline - time.monotonic(), 0.01)):
                        granted = await self._refresh()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - retried until the TTL runs out
                    log.debug("lease keepalive failed, retrying", lease=f"{self.id:x}", error=repr(exc))
                    await asyncio.sleep(min(interval / 2, max(self._deadline - time.monotonic(), 0.01)))
                    continue
                if granted <= 0:
                    self.mark_lost("server reports the lease expired")
                    return
                self._deadline = sent + granted
                break
