"""Maintenance mode, export and import (spec §3.12).

The mode is the existence of the coordination key ``maintenance``: every instance watches it and
switches (stops or restarts its loops, readdb and datamanager loops). In maintenance mode only
these handlers are served. Export and import are the datamanager's own (``DataManager.export_data``
/ ``import_data``: runs, run configs, counters after a forced checkpoint; import only in
maintenance mode).
"""

from __future__ import annotations

from aiohttp import web

from agola.errors import BadRequest, Unavailable
from agola.services.runservice.api.common import STREAM_HEADERS, request_chunks, role_of
from agola.util.http import API_PREFIX


async def enable(request: web.Request) -> web.Response:
    role = role_of(request)
    await role.store_required().set_maintenance(True)
    return web.Response(status=200)


async def disable(request: web.Request) -> web.Response:
    role = role_of(request)
    await role.store_required().set_maintenance(False)
    return web.Response(status=200)


async def export(request: web.Request) -> web.StreamResponse:
    role = role_of(request)
    dm = role.dm
    if dm is None:
        raise Unavailable("runservice not started")
    resp = web.StreamResponse(status=200, headers=STREAM_HEADERS)
    resp.content_type = "application/octet-stream"
    started = False
    async for line in dm.export_data():
        if not started:
            await resp.prepare(request)
            started = True
        await resp.write(line)
    if not started:
        await resp.prepare(request)
    await resp.write_eof()
    return resp


async def import_(request: web.Request) -> web.Response:
    role = role_of(request)
    if not role.maintenance:
        raise BadRequest("not in maintenance mode")
    if role.dm is None:
        raise Unavailable("runservice not started")
    count = await role.dm.import_data(request_chunks(request))
    return web.json_response({"imported": count})


MAINTENANCE_PATHS = {f"{API_PREFIX}/maintenance", f"{API_PREFIX}/export", f"{API_PREFIX}/import"}


def add_routes(app: web.Application) -> None:
    app.router.add_put(f"{API_PREFIX}/maintenance", enable)
    app.router.add_delete(f"{API_PREFIX}/maintenance", disable)
    app.router.add_get(f"{API_PREFIX}/export", export)
    app.router.add_post(f"{API_PREFIX}/import", import_)
