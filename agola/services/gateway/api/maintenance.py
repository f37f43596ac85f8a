"""``/maintenance/{servicename}``, ``/export/{servicename}``, ``/import/{servicename}``: the
admin's maintenance mode, export and import of the configstore and the runservice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from agola.client import types as wire
from agola.errors import AgolaError
from agola.services.gateway.actions import maintenance as actions
from agola.services.gateway.api.common import ctx
from agola.services.gateway.openapi import Query, api_op
from agola.util.http import API_PREFIX, json_response, query_bool
from agola.util.log import get_logger

log = get_logger(__name__)

CHUNK = 64 * 1024
IMPORT_PREFIX = f"{API_PREFIX}/import/"


def _service(request: web.Request) -> str:
    return request.match_info["servicename"]


@api_op()
async def enable(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    await actions.set_maintenance(svc, ident, _service(request), True)
    return web.Response(status=200)


@api_op()
async def disable(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    await actions.set_maintenance(svc, ident, _service(request), False)
    return web.Response(status=200)


@api_op(response=wire.MaintenanceStatusResponse)
async def status(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    return json_response((await actions.maintenance_status(svc, ident, _service(request))).to_json())


@api_op(query=(Query("force", "boolean"),), response_media="application/octet-stream")
async def export(request: web.Request) -> web.StreamResponse:
    svc, ident = await ctx(request)
    service = _service(request)
    stream = await actions.export(svc, ident, service, force=query_bool(request, "force"))
    resp = web.StreamResponse(status=200, headers={"Cache-Control": "no-cache"})
    resp.content_type = "application/octet-stream"
    await resp.prepare(request)
    try:
        async for chunk in stream:
            await resp.write(chunk)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except AgolaError as exc:
        # Headers are gone: a cut (unterminated) stream is how the client learns it is incomplete.
        log.error("export relay failed", service=service, error=exc.message)
        if request.transport is not None:
            request.transport.close()
        raise ConnectionResetError("export aborted") from exc
    finally:
        await stream.aclose()
    await resp.write_eof()
    return resp


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(CHUNK):
        yield chunk


@api_op(body_media="application/octet-stream", response=wire.ImportResponse)
async def import_(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    count = await actions.import_(svc, ident, _service(request), _body(request))
    return json_response({"imported": count})


def add_routes(app: web.Application) -> None:
    app.router.add_put(f"{API_PREFIX}/maintenance/{{servicename}}", enable)
    app.router.add_delete(f"{API_PREFIX}/maintenance/{{servicename}}", disable)
    app.router.add_get(f"{API_PREFIX}/maintenance/{{servicename}}", status)
    app.router.add_get(f"{API_PREFIX}/export/{{servicename}}", export)
    app.router.add_post(f"{API_PREFIX}/import/{{servicename}}", import_)
