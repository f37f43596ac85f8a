"""``/logs``: a task step's log, archived or relayed live from its executor (``follow``)."""

from __future__ import annotations

from aiohttp import web

from agola.errors import NotExist
from agola.services.runservice.api.common import core_of, stream_body
from agola.services.runservice.logs import LogRef, archived_log, delete_log, live_log, resolve_log
from agola.types.stepquery import StepQuery, parse_log_query
from agola.util.http import API_PREFIX, long_lived


async def _ref(request: web.Request, query: StepQuery) -> LogRef:
    return await resolve_log(
        core_of(request), request.query.get("runid", ""), request.query.get("taskid", ""),
        setup=query.setup, step=query.step,
    )


async def get_log(request: web.Request) -> web.StreamResponse:
    core = core_of(request)
    query = parse_log_query(request.query)
    ref = await _ref(request, query)
    if ref.archived:
        return await stream_body(request, await archived_log(core, ref), content_type="text/plain")
    try:
        chunks = await live_log(core, ref, query.follow)
    except NotExist:
        # Archived between the look-up and the relay: the executor may have dropped its copy since.
        ref = await _ref(request, query)
        if not ref.archived:
            raise
        return await stream_body(request, await archived_log(core, ref), content_type="text/plain")
    if not query.follow:
        return await stream_body(request, chunks, content_type="text/plain")
    with long_lived(request):  # a followed log lasts as long as its step: a stop cuts it
        return await stream_body(request, chunks, content_type="text/plain")


async def remove_log(request: web.Request) -> web.Response:
    await delete_log(core_of(request), await _ref(request, parse_log_query(request.query)))
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_get(f"{API_PREFIX}/logs", get_log)
    app.router.add_delete(f"{API_PREFIX}/logs", remove_log)
