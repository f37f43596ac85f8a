"""The shared maintenance/export/import handlers: an export guard looks before the checkpoint and
again after it, so what appears meanwhile (a run created during the checkpoint) is not silently
left out; ``force`` skips it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agola.errors import Conflict
from agola.services import maintenanceapi
from agola.types.maintenance import MaintenanceStatus
from agola.util.http import error_middleware


class FakeDataManager:
    def __init__(self) -> None:
        self.checkpoints = 0
        self.closed = False

    async def export_data(self) -> AsyncIterator[bytes]:
        self.checkpoints += 1
        try:
            yield b'{"format":"agola-datamanager-export","version":1,"datatypes":["run"]}\n'
        finally:
            self.closed = True


class FakeRole:
    maintenance = False

    def __init__(self) -> None:
        self.dm: Any = FakeDataManager()

    async def maintenance_status(self) -> MaintenanceStatus:
        return MaintenanceStatus.of(False, [])


async def test_a_run_appearing_during_the_checkpoint_refuses_the_export() -> None:
    role = FakeRole()
    looks: list[int] = []

    async def guard(request: web.Request) -> None:
        looks.append(1)
        if len(looks) == 2:  # the first look found nothing; a run was created meanwhile
            raise Conflict("1 run(s) not archived yet would be left out of the export: run 1")

    app = web.Application(middlewares=[error_middleware])
    maintenanceapi.add_routes(app, "runservice", lambda request: role, export_guard=guard)
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/api/v1alpha/export")
        assert resp.status == 409 and "run 1" in (await resp.json())["message"]
        assert role.dm.checkpoints == 1 and role.dm.closed
        resp = await client.get("/api/v1alpha/export", params={"force": "true"})
        assert resp.status == 200 and (await resp.read()).startswith(b'{"format"')
        assert len(looks) == 2  # forced: not looked at
