"""``/logs``: a step's (or the setup's) log, followed live if asked; deletion of archived logs."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from agola.errors import AgolaError, BadRequest
from agola.services.gateway.actions import runs as actions
from agola.services.gateway.api.common import ctx, no_content
from agola.services.gateway.openapi import Query, api_op
from agola.types.stepquery import StepQuery, parse_log_query
from agola.util.http import API_PREFIX, long_lived
from agola.util.log import get_logger

log = get_logger(__name__)

LOG_QUERY = (Query("runID", required=True), Query("taskID", required=True), Query("setup", "boolean"),
             Query("step", "integer"), Query("follow", "boolean"))


def _param(request: web.Request, camel: str) -> str:
    # The reference uses camelCase (runID, taskID); lower case is accepted too.
    return request.query.get(camel) or request.query.get(camel.lower()) or ""


def _target(request: web.Request) -> tuple[str, str, StepQuery]:
    run_id, task_id = _param(request, "runID"), _param(request, "taskID")
    if not run_id:
        raise BadRequest("empty run id")
    if not task_id:
        raise BadRequest("empty task id")
    return run_id, task_id, parse_log_query(request.query)


@api_op(query=LOG_QUERY, response_media="text/plain", auth="optional")
async def get_log(request: web.Request) -> web.StreamResponse:
    svc, ident = await ctx(request)
    run_id, task_id, query = _target(request)
    stream = await actions.get_log(svc, ident, run_id, task_id, setup=query.setup, step=query.step,
                                   follow=query.follow)
    iterator = stream.__aiter__()
    # Pull the first chunk before answering, so a missing log is a proper error status.
    try:
        first = await iterator.__anext__()
    except StopAsyncIteration:
        first = b""
    if not query.follow:
        return await _relay(request, first, iterator, run_id, task_id)
    with long_lived(request):  # a followed log lasts as long as its step: a stop cuts it
        return await _relay(request, first, iterator, run_id, task_id)


async def _relay(request: web.Request, first: bytes, iterator: AsyncIterator[bytes], run_id: str,
                 task_id: str) -> web.StreamResponse:
    resp = web.StreamResponse(status=200, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    resp.content_type = "text/plain"
    await resp.prepare(request)
    try:
        if first:
            await resp.write(first)
        async for chunk in iterator:
            await resp.write(chunk)
    except AgolaError as exc:
        log.warning("log relay ended early", run=run_id, task=task_id, error=exc.message)
    except ConnectionResetError:
        pass
    finally:
        # A client that went away must not keep the upstream follow open.
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()
    return resp


@api_op(query=LOG_QUERY, status=204)
async def delete_log(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    run_id, task_id, query = _target(request)
    await actions.delete_log(svc, ident, run_id, task_id, setup=query.setup, step=query.step)
    return no_content()


def add_routes(app: web.Application) -> None:
    app.router.add_get(f"{API_PREFIX}/logs", get_log)
    app.router.add_delete(f"{API_PREFIX}/logs", delete_log)
