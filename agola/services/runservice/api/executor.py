"""The executor-facing API (spec §3.11, documented in docs/runservice.md "Executor protocol").

Executors register and heartbeat, list and fetch their tasks (with spec data generated from the
run and its run config), report task statuses, upload logs/archives (optional: the runservice
otherwise fetches them), download workspace archives of parent tasks, and get/put caches.
Bodies are streamed both ways with bounded memory.
"""

from __future__ import annotations

from aiohttp import web

from agola.errors import AlreadyExists, BadRequest, NotExist
from agola.services.runservice.api.common import core_of, request_chunks, stream_body
from agola.services.runservice.archives import find_cache, open_object, put_cache, workspace_archive
from agola.services.runservice.logic.fetching import archive_object_path, log_object_path, validate_cache_key
from agola.types.runservice import Executor, ExecutorTask, ExecutorTaskPhase
from agola.types.stepquery import parse_archive_step, parse_log_query
from agola.util.http import API_PREFIX, json_response, read_json

P = f"{API_PREFIX}/executor"


async def heartbeat(request: web.Request) -> web.Response:
    executor = Executor.from_json(await read_json(request))
    if executor.id != request.match_info["executorid"]:
        raise BadRequest(f"executor id {executor.id!r} does not match the path")
    stored = await core_of(request).heartbeat(executor)
    return json_response(stored.to_json())


async def delete_executor(request: web.Request) -> web.Response:
    core = core_of(request)
    if not await core.store.delete_executor(request.match_info["executorid"]):
        raise NotExist(f"executor {request.match_info['executorid']} does not exist")
    core.wake()
    return web.Response(status=204)


async def list_executors(request: web.Request) -> web.Response:
    executors = await core_of(request).store.list_executors()
    return json_response([e.to_json() for e in executors])


async def list_tasks(request: web.Request) -> web.Response:
    """The executor's tasks; spec data only with the tasks not started yet (an executor starts
    those; of the others it needs the status and ``stop``, and generating the spec data of every
    task, on every poll, cost a run read and a spec each)."""
    core = core_of(request)
    tasks = await core.executor_tasks(request.match_info["executorid"])
    return json_response([await core.task_with_data(et) if et.status.phase is ExecutorTaskPhase.NOT_STARTED
                          else et.to_json(None) for et in tasks])


async def get_task(request: web.Request) -> web.Response:
    core = core_of(request)
    found = await core.store.get_executor_task(request.match_info["taskid"])
    if found is None or found[0].spec.executor_id != request.match_info["executorid"]:
        raise NotExist(f"executor task {request.match_info['taskid']} does not exist")
    return json_response(await core.task_with_data(found[0]))


async def update_task(request: web.Request) -> web.Response:
    et = ExecutorTask.from_json(await read_json(request))
    if et.id != request.match_info["taskid"]:
        raise BadRequest(f"executor task id {et.id!r} does not match the path")
    await core_of(request).executor_task_update(request.match_info["executorid"], et)
    return web.Response(status=200)


async def _upload(request: web.Request, path: str) -> web.Response:
    core = core_of(request)
    task_id = request.query.get("taskid", "")
    if await core.store.get_executor_task(task_id) is None:
        raise NotExist(f"executor task {task_id!r} does not exist")
    await core.ost.write(path, request_chunks(request), size=request.content_length)
    return web.Response(status=200)


async def upload_log(request: web.Request) -> web.Response:
    step = parse_log_query(request.query).step
    return await _upload(request, log_object_path(request.query.get("taskid", ""), step))


async def upload_archive(request: web.Request) -> web.Response:
    step = parse_archive_step(request.query)
    return await _upload(request, archive_object_path(request.query.get("taskid", ""), step))


async def get_archive(request: web.Request) -> web.StreamResponse:
    task_id = request.query.get("taskid", "")
    if not task_id:
        raise BadRequest("taskid is required")
    step = parse_archive_step(request.query)
    info, chunks = await workspace_archive(core_of(request).ost, task_id, step)
    return await stream_body(request, chunks, size=info.size)


async def get_cache(request: web.Request) -> web.StreamResponse:
    ost = core_of(request).ost
    key = request.match_info["key"]
    info = await find_cache(ost, key, "prefix" in request.query)
    if request.method == "HEAD":
        return web.Response(status=200, headers={"Content-Length": str(info.size)})
    _, chunks = await open_object(ost, info.path, f"cache {key!r}")
    return await stream_body(request, chunks, size=info.size)


async def post_cache(request: web.Request) -> web.Response:
    key = request.match_info["key"]
    validate_cache_key(key)
    try:
        await put_cache(core_of(request).ost, key, request_chunks(request), request.content_length)
    except AlreadyExists:
        return web.Response(status=304)
    return web.Response(status=200)


def add_routes(app: web.Application) -> None:
    r = app.router
    # Static paths first: "archives", "caches" and "logs" are not executor ids.
    r.add_get(f"{P}/archives", get_archive)
    r.add_put(f"{P}/archives", upload_archive)
    r.add_put(f"{P}/logs", upload_log)
    r.add_route("HEAD", f"{P}/caches/{{key}}", get_cache)
    r.add_get(f"{P}/caches/{{key}}", get_cache, allow_head=False)
    r.add_post(f"{P}/caches/{{key}}", post_cache)
    r.add_get(f"{API_PREFIX}/executors", list_executors)
    r.add_post(f"{P}/{{executorid}}", heartbeat)
    r.add_delete(f"{P}/{{executorid}}", delete_executor)
    r.add_get(f"{P}/{{executorid}}/tasks", list_tasks)
    r.add_get(f"{P}/{{executorid}}/tasks/{{taskid}}", get_task)
    r.add_post(f"{P}/{{executorid}}/tasks/{{taskid}}", update_task)
