"""``GET /runs/events``: server-sent run events (phase/result changes), pushed from the
coordination watch on ``scheduler/runevents`` (every write of it is a revision: none is lost
while connected; no replay of older events, as in the reference)."""

from __future__ import annotations

from aiohttp import web

from agola.services.runservice.api.common import STREAM_HEADERS, core_of
from agola.services.runservice.store import RUN_EVENTS_KEY
from agola.util.http import API_PREFIX, long_lived


async def run_events(request: web.Request) -> web.StreamResponse:
    core = core_of(request)
    with long_lived(request):
        watcher = core.store.coord.watch(RUN_EVENTS_KEY)
        async with watcher:
            resp = web.StreamResponse(status=200, headers=STREAM_HEADERS)
            resp.content_type = "text/event-stream"
            await resp.prepare(request)
            try:
                await resp.write(b": connected\n\n")
                async for ev in watcher:
                    if ev.type != "put" or ev.kv.key != RUN_EVENTS_KEY:
                        continue
                    # The SSE id is the event's coordination revision: a listing asked with
                    # ``minrevision`` set to it shows the run as the event announced it.
                    await resp.write(b"id: %d\ndata: %s\n\n" % (ev.revision, ev.kv.value))
            except ConnectionResetError:
                pass  # the client went away: the normal end of a stream, nothing to log
    return resp


def add_routes(app: web.Application) -> None:
    app.router.add_get(f"{API_PREFIX}/runs/events", run_events)
