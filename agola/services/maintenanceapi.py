"""The maintenance, export and import API of a stateful role (spec §3.12), the same for the
configstore and the runservice:

* ``PUT|DELETE /maintenance``: request maintenance mode on or off (400 when it already is);
* ``GET /maintenance``: ``{"requested_status", "current_status", "instances": [...]}`` (the mode
  of every live instance, ``agola.services.instances``);
* ``GET /export[?force=true]`` (both modes): a checkpoint, then every object as the datamanager's
  export stream. A role may refuse it first (``ExportGuard``: the runservice while runs are
  active, since those live in coordination and an export would leave them out), unless forced;
* ``POST /import`` (maintenance mode only, else 400 "not in maintenance mode"): replace every
  object with an export stream; answers ``{"imported": <entries>}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web

from agola.errors import BadRequest, Unavailable
from agola.storage.datamanager import DataManager
from agola.types.maintenance import MaintenanceStatus
from agola.util.http import API_PREFIX, json_response, query_bool
from agola.util.log import get_logger

log = get_logger(__name__)

STREAM_HEADERS = {"Cache-Control": "no-cache"}
CHUNK = 64 * 1024

MAINTENANCE_PATHS = {f"{API_PREFIX}/maintenance", f"{API_PREFIX}/export", f"{API_PREFIX}/import"}


class MaintainedRole(Protocol):
    """What these handlers need of a ``StatefulRole``."""

    @property
    def maintenance(self) -> bool: ...

    @property
    def dm(self) -> DataManager | None: ...

    async def maintenance_status(self) -> MaintenanceStatus: ...


# Raises (typically ``Conflict``) when an unforced export would not hold everything.
ExportGuard = Callable[[web.Request], Awaitable[None]]


def add_routes(app: web.Application, service: str, role_of: Callable[[web.Request], MaintainedRole],
               *, export_guard: ExportGuard | None = None) -> None:
    def dm_of(request: web.Request) -> DataManager:
        dm = role_of(request).dm
        if dm is None:
            raise Unavailable(f"{service} not started")
        return dm

    async def enable(request: web.Request) -> web.Response:
        await dm_of(request).enable_maintenance()
        log.info("maintenance mode requested", role=service)
        return web.Response(status=200)

    async def disable(request: web.Request) -> web.Response:
        await dm_of(request).disable_maintenance()
        log.info("maintenance mode end requested", role=service)
        return web.Response(status=200)

    async def status(request: web.Request) -> web.Response:
        dm_of(request)
        return json_response((await role_of(request).maintenance_status()).to_json())

    async def export(request: web.Request) -> web.StreamResponse:
        guard = None if query_bool(request, "force") else export_guard
        if guard is not None:
            await guard(request)  # before the checkpoint's cost
        return await _stream_export(request, service, dm_of(request), guard)

    async def import_(request: web.Request) -> web.Response:
        if not role_of(request).maintenance:
            raise BadRequest("not in maintenance mode")
        count = await dm_of(request).import_data(request.content.iter_chunked(CHUNK))
        log.info("import done", role=service, entries=count)
        return json_response({"imported": count})

    app.router.add_put(f"{API_PREFIX}/maintenance", enable)
    app.router.add_delete(f"{API_PREFIX}/maintenance", disable)
    app.router.add_get(f"{API_PREFIX}/maintenance", status)
    app.router.add_get(f"{API_PREFIX}/export", export)
    app.router.add_post(f"{API_PREFIX}/import", import_)


async def _stream_export(request: web.Request, service: str, dm: DataManager,
                         guard: ExportGuard | None) -> web.StreamResponse:
    chunks = dm.export_data()
    # The first chunk comes after the checkpoint: an error before it is still a clean error
    # response; after it the connection is cut (spec §3.12), never a clean end.
    first = await anext(chunks, b"")
    if guard is not None:
        # Again after the checkpoint: what appeared since the first look would be missing too.
        try:
            await guard(request)
        except BaseException:
            aclose = getattr(chunks, "aclose", None)  # a generator: ends its checkpointed read
            if aclose is not None:
                await aclose()
            raise
    resp = web.StreamResponse(status=200, headers=STREAM_HEADERS)
    resp.content_type = "application/octet-stream"
    await resp.prepare(request)
    try:
        if first:
            await resp.write(first)
        async for chunk in chunks:
            await resp.write(chunk)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as exc:
        log.error("export failed after streaming started", role=service, error=repr(exc))
        if request.transport is not None:
            request.transport.close()
        raise ConnectionResetError("export aborted") from exc
    await resp.write_eof()
    return resp
