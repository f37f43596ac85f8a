"""Maintenance mode (spec §3.12): the existence of the key ``maintenance`` under the service prefix.

In maintenance mode a service stops its datamanager loops, readdb and schedulers and only serves
maintenance, export and import. Every instance follows the key with ``MaintenanceWatcher`` and
switches mode when its state changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from agola.errors import BadRequest
from agola.storage.coord.base import Compare, Coordination, Delete, Put
from agola.storage.datamanager.types import MAINTENANCE_KEY
from agola.util.log import get_logger

log = get_logger(__name__)


async def is_maintenance_enabled(coord: Coordination) -> bool:
    return await coord.get(MAINTENANCE_KEY) is not None


async def enable_maintenance(coord: Coordination) -> None:
    res = await coord.txn([Compare.create(MAINTENANCE_KEY, "==", 0)], [Put(MAINTENANCE_KEY, b"")])
    if not res.succeeded:
        raise BadRequest("maintenance mode already enabled")


async def disable_maintenance(coord: Coordination) -> None:
    res = await coord.txn([Compare.create(MAINTENANCE_KEY, "!=", 0)], [Delete(MAINTENANCE_KEY)])
    if not res.succeeded:
        raise BadRequest("maintenance mode already disabled")


class MaintenanceWatcher:
    """Follows the maintenance key: iterate it for the current state, then every change.

    ``enabled`` holds the last state seen (None before the first read). Coordination outages are
    logged and retried; after one, the state is re-read so no change is missed.
    """

    def __init__(self, coord: Coordination, *, retry_interval: float = 1.0) -> None:
        self._coord = coord
        self._retry = retry_interval
        self.enabled: bool | None = None

    def __aiter__(self) -> AsyncIterator[bool]:
        return self._states()

    async def _states(self) -> AsyncIterator[bool]:
        while True:
            try:
                rr = await self._coord.range(MAINTENANCE_KEY)
                state = any(kv.key == MAINTENANCE_KEY for kv in rr.kvs)
                if state != self.enabled:
                    self.enabled = state
                    yield state
                async with self._coord.watch(MAINTENANCE_KEY, start_revision=rr.revision + 1) as watcher:
                    async for ev in watcher:
                        if ev.kv.key != MAINTENANCE_KEY:
                            continue
                        state = ev.type == "put"
                        if state != self.enabled:
                            self.enabled = state
                            yield state
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep following through outages
                log.warning("maintenance watch failed", error=repr(exc), retry_in=self._retry)
                await asyncio.sleep(self._retry)
