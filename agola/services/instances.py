"""Which instances of a stateful role run, and in which mode: what the maintenance status reports.

Every instance of the configstore or the runservice keeps one key ``instances/<id>`` under its
role's coordination prefix, bound to a lease: it goes when the instance stops, and within the
lease TTL when its process dies. The value says the mode the instance is *in* (not the requested
one: the ``maintenance`` key), updated once a switch is complete. Coordination outages are
retried; when the lease comes back the key is written again.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid

import attrs

from agola.storage.coord.base import Coordination, Lease
from agola.types.maintenance import InstanceState
from agola.util.aio import cancel_and_wait
from agola.util.log import get_logger

log = get_logger(__name__)

INSTANCES_PREFIX = "instances/"
LEASE_TTL = 10.0
RETRY = 1.0


async def list_instances(coord: Coordination) -> list[InstanceState]:
    """The live instances, by id (a value that does not decode is skipped)."""
    out: list[InstanceState] = []
    for kv in (await coord.range(INSTANCES_PREFIX)).kvs:
        try:
            out.append(InstanceState.from_json(kv.value))
        except Exception:  # noqa: BLE001 - one bad value must not hide the others
            log.warning("undecodable instance key", key=kv.key)
    return sorted(out, key=lambda i: i.id)


class InstanceRegistration:
    """Keeps this instance's key while started; ``set_mode()`` after every completed switch."""

    def __init__(self, coord: Coordination, *, ttl: float = LEASE_TTL, retry: float = RETRY) -> None:
        self._coord = coord
        self._ttl = ttl
        self._retry = retry
        self.state = InstanceState(uuid.uuid4().hex[:12], socket.gethostname(), os.getpid(), False)
        self._lease: Lease | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def key(self) -> str:
        return INSTANCES_PREFIX + self.state.id

    def start(self, maintenance: bool) -> None:
        self.state = attrs.evolve(self.state, current_status=maintenance)
        self._task = asyncio.create_task(self._keep(), name=f"instance-{self.state.id}")

    async def set_mode(self, maintenance: bool) -> None:
        self.state = attrs.evolve(self.state, current_status=maintenance)
        lease = self._lease
        if lease is None or lease.lost:
            return  # _keep writes the new state with the next lease
        try:
            await self._put(lease)
        except Exception as exc:  # noqa: BLE001 - the status is informative; _keep retries
            log.warning("instance state not written", id=self.state.id, error=repr(exc))

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait([task])
        lease, self._lease = self._lease, None
        if lease is not None and not lease.lost:
            try:
                await lease.revoke()  # the key goes with it
            except Exception as exc:  # noqa: BLE001 - it expires anyway
                log.warning("instance lease not revoked", id=self.state.id, error=repr(exc))

    async def _put(self, lease: Lease) -> None:
        await self._coord.put(self.key, self.state.to_json_bytes(), lease=lease.id)

    async def _keep(self) -> None:
        while True:
            try:
                lease = self._lease = await self._coord.grant_lease(self._ttl)
                await self._put(lease)
                await lease.wait_lost()
                log.warning("instance lease lost", id=self.state.id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep registering through outages
                log.warning("instance registration failed", id=self.state.id, error=repr(exc))
            await asyncio.sleep(self._retry)

