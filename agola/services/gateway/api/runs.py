"""``/runs``: list, get, actions; ``/runs/{id}/tasks/{id}``: get, approve; ``/runs/events``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from aiohttp import web

from agola.client import types as wire
from agola.errors import AgolaError, BadRequest
from agola.services.gateway.actions import events
from agola.services.gateway.actions import runs as actions
from agola.services.gateway.api import serialize
from agola.services.gateway.api.common import bool_field, ctx, json_object, str_field
from agola.services.gateway.openapi import PAGING, Query, api_op
from agola.types.runservice import RunEvent
from agola.util.http import API_PREFIX, json_response, long_lived, query_bool, query_int
from agola.util.log import get_logger

log = get_logger(__name__)

CLIENT_CHECK_INTERVAL = 0.5
KEEPALIVE_INTERVAL = 15.0

RUNS_QUERY = (Query("group", many=True), Query("phase", many=True), Query("result", many=True),
              Query("changegroup", many=True), Query("lastrun", "boolean"), *PAGING)


def _query(request: web.Request) -> actions.RunsQuery:
    q = request.query
    groups = q.getall("group", [])
    return actions.RunsQuery(
        group=groups[0] if groups else "",  # only the first group is used, as in the reference
        phases=tuple(q.getall("phase", [])),
        results=tuple(q.getall("result", [])),
        change_groups=tuple(q.getall("changegroup", [])),
        last_run=query_bool(request, "lastrun"),
        start=q.get("start", ""),
        limit=query_int(request, "limit", 0),
        asc=query_bool(request, "asc"),
    )


@api_op(response=wire.RunsResponse, many=True, query=RUNS_QUERY, auth="optional")
async def list_runs(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    runs = await actions.list_runs(svc, ident, _query(request))
    return json_response([serialize.runs_row(r) for r in runs])


@api_op(response=wire.RunResponse, auth="optional")
async def get_run(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    return json_response(serialize.run(await actions.get_run(svc, ident, request.match_info["runid"])))


@api_op(body=wire.RunActionsRequest, response=wire.RunResponse)
async def run_actions(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    body = await json_object(request)
    resp = await actions.run_action(svc, ident, request.match_info["runid"], str_field(body, "action_type"),
                                    bool_field(body, "from_start"))
    return json_response(serialize.run(resp))


@api_op(response=wire.RunTaskResponse, auth="optional")
async def get_task(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    view = await actions.get_task(svc, ident, request.match_info["runid"], request.match_info["taskid"])
    return json_response(serialize.task(view))


@api_op(body=wire.RunTaskActionsRequest)
async def task_actions(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    body = await json_object(request)
    await actions.task_action(svc, ident, request.match_info["runid"], request.match_info["taskid"],
                              str_field(body, "action_type"))
    return web.Response(status=200)


@api_op(response_media="text/event-stream")
async def run_events(request: web.Request) -> web.StreamResponse:
    svc, ident = await ctx(request)
    return await relay_run_events(request, await events.run_events(svc, ident))


async def relay_run_events(request: web.Request, stream: AsyncIterator[RunEvent]) -> web.StreamResponse:
    """Server-sent events of ``stream`` to the client, with keepalives, until either side ends
    (the API's ``/runs/events`` and the web UI's ``/events``)."""
    with long_lived(request):
        resp = web.StreamResponse(status=200, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        resp.content_type = "text/event-stream"
        await resp.prepare(request)
        await resp.write(b": connected\n\n")
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=1000)

        async def pump() -> None:
            try:
                async for event in stream:
                    await queue.put(b"data: " + json.dumps(event.to_json()).encode() + b"\n\n")
            except AgolaError as exc:
                log.warning("run events relay ended", error=exc.message)
            finally:
                await queue.put(None)

        pump_task = asyncio.create_task(pump())
        idle = 0.0
        try:
            while True:
                # A silent stream must still notice a client that went away, to drop the upstream.
                if request.transport is None or request.transport.is_closing():
                    break
                try:
                    # asyncio.timeout, not wait_for: 3.11's wait_for can swallow the cancellation
                    # of a client gone away when it races the timeout, leaving this loop running.
                    async with asyncio.timeout(CLIENT_CHECK_INTERVAL):
                        item = await queue.get()
                except TimeoutError:
                    idle += CLIENT_CHECK_INTERVAL
                    if idle >= KEEPALIVE_INTERVAL:
                        idle = 0.0
                        await resp.write(b": keepalive\n\n")
                    continue
                if item is None:
                    break
                idle = 0.0
                await resp.write(item)
        except ConnectionResetError:
            pass
        finally:
            pump_task.cancel()
            await asyncio.gather(pump_task, return_exceptions=True)
    return resp


def add_routes(app: web.Application) -> None:
    p = f"{API_PREFIX}/runs"
    app.router.add_get(p, list_runs)
    app.router.add_get(f"{p}/events", run_events)
    app.router.add_get(f"{p}/{{runid}}", get_run)
    app.router.add_put(f"{p}/{{runid}}/actions", run_actions)
    app.router.add_get(f"{p}/{{runid}}/tasks/{{taskid}}", get_task)
    app.router.add_put(f"{p}/{{runid}}/tasks/{{taskid}}/actions", task_actions)


__all__ = ["BadRequest", "add_routes"]
