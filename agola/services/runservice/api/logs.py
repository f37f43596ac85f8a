"""``/logs``: a task step's log, archived or relayed live from its executor (``follow``)."""

from __future__ import annotations

from aiohttp import web

from agola.services.runservice.api.common import core_of, query_step, stream_body
from agola.services.runservice.logs import archived_log, delete_log, live_log, resolve_log
from agola.util.http import API_PREFIX


async def _ref(request: web.Request):  # type: ignore[no-untyped-def]
    setup, step = query_step(request)
    return await resolve_log(
        core_of(request), request.query.get("runid", ""), request.query.get("taskid", ""), setup=setup, step=step
    )


async def get_log(request: web.Request) -> web.StreamResponse:
    core = core_of(request)
    ref = await _ref(request)
    if ref.archived:
        chunks = await archived_log(core, ref)
    else:
        chunks = await live_log(core, ref, "follow" in request.query)
    return await stream_body(request, chunks, content_type="text/plain")


async def remove_log(request: web.Request) -> web.Response:
    await delete_log(core_of(request), await _ref(request))
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_get(f"{API_PREFIX}/logs", get_log)
    app.router.add_delete(f"{API_PREFIX}/logs", remove_log)
