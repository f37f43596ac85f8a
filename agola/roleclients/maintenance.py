"""The maintenance, export and import calls shared by the clients of the stateful roles
(configstore, runservice; spec §3.12, served by ``agola.services.maintenanceapi``)."""

from __future__ import annotations

from agola.roleclients.base import NO_TIMEOUT, Body, HTTPClient, ResponseStream
from agola.types.maintenance import MaintenanceStatus


class MaintenanceCalls(HTTPClient):
    async def set_maintenance(self, enabled: bool) -> None:
        """Request maintenance mode on or off (``BadRequest`` if already requested so)."""
        await self.json("PUT" if enabled else "DELETE", "/maintenance")

    async def maintenance_status(self) -> MaintenanceStatus:
        """The requested mode and the mode of every live instance."""
        return MaintenanceStatus.from_json(await self.json("GET", "/maintenance"))

    def export(self, *, force: bool = False) -> ResponseStream:
        """Every object, as the datamanager's export stream. The runservice refuses (``Conflict``)
        while runs are not archived yet, unless ``force`` (they are left out)."""
        return self.stream("GET", "/export", params={"force": True} if force else None)

    async def import_(self, data: Body) -> int:
        """Replace every object with an export stream (maintenance mode only); the entry count."""
        out = await self.json("POST", "/import", data=data, timeout=NO_TIMEOUT)
        return int((out or {}).get("imported", 0))
