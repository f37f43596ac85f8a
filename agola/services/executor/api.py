"""The executor HTTP API (spec §7.2), served on the executor for the runservice.

| method & path | behaviour |
|---|---|
| ``POST /api/v1alpha/executor`` | a task pushed by the runservice (ExecutorTask with spec data) |
| ``GET /api/v1alpha/executor/logs?taskid=&(setup|step=N)[&follow]`` | a task log; ``follow`` streams a running step's log until it ends |
| ``GET /api/v1alpha/executor/archives?taskid=&step=N`` | a ``save_to_workspace`` archive |

Bodies are streamed from the files with bounded memory. Non-follow responses carry a
Content-Length (the size when the request came: a log still written to is cut there).
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from agola.errors import NotExist, Unavailable
from agola.services.executor.logs import log_path, read_log
from agola.types.runservice import ExecutorTask
from agola.types.stepquery import parse_archive_step, parse_log_query
from agola.util.http import API_PREFIX, json_response, long_lived, make_app, read_json

if TYPE_CHECKING:
    from agola.services.executor.agent import ExecutorAgent

AGENT = web.AppKey["Callable[[], ExecutorAgent | None]"]("executor_agent_source")
STREAM_HEADERS = {"Cache-Control": "no-cache", "Connection": "keep-alive"}
CHUNK = 256 * 1024
# A pushed task carries its whole spec (environment, secrets, registry auth): allow a large one.
MAX_TASK_BODY = 16 * 1024 * 1024


def _agent(request: web.Request) -> ExecutorAgent:
    agent = request.app[AGENT]()
    if agent is None:
        raise Unavailable("executor not started")
    return agent


async def push_task(request: web.Request) -> web.Response:
    et, data = ExecutorTask.from_json_with_data(await read_json(request))
    outcome = _agent(request).receive(et, data)
    return json_response({"result": outcome})


async def get_log(request: web.Request) -> web.StreamResponse:
    query = parse_log_query(request.query)
    setup, step = query.setup, query.step
    agent = _agent(request)
    task_id = request.query.get("taskid", "")
    task_dir = agent.task_dir(task_id)
    follow = query.follow
    live = agent.live_logs(task_id)
    live_log = live.live(setup, step) if live is not None else None
    if not (follow and live_log is not None):
        # A finished (or not followed) log: a plain file response with its length.
        path = log_path(task_dir, setup=setup, step=step)
        if not path.exists():
            raise NotExist(f"no log for task {task_id}")
        size = live_log.size if live_log is not None and not live_log.finished else os.path.getsize(path)
        return await _stream(request, _file_chunks(path, size), size)
    chunks = read_log(task_dir, live, setup=setup, step=step, follow=True)
    with long_lived(request):  # a followed log lasts as long as its step: a stop cuts it
        return await _stream(request, chunks, None)


async def get_archive(request: web.Request) -> web.StreamResponse:
    step = parse_archive_step(request.query)
    agent = _agent(request)
    task_id = request.query.get("taskid", "")
    path = agent.task_dir(task_id) / "archives" / f"{step}.tar"
    try:
        size = os.path.getsize(path)
    except OSError:
        raise NotExist(f"no archive for task {task_id} step {step}") from None
    return await _stream(request, _file_chunks(path, size), size)


async def _file_chunks(path: os.PathLike[str] | str, size: int) -> AsyncGenerator[bytes, None]:
    with open(path, "rb") as f:
        remaining = size
        while remaining > 0:
            data = f.read(min(CHUNK, remaining))
            if not data:
                break
            remaining -= len(data)
            yield data


async def _stream(request: web.Request, chunks: AsyncGenerator[bytes, None], size: int | None) -> web.StreamResponse:
    resp = web.StreamResponse(status=200, headers=STREAM_HEADERS)
    resp.content_type = "application/octet-stream"
    if size is not None:
        resp.content_length = size
    await resp.prepare(request)  # headers out now: a follower knows the log exists
    try:
        async for chunk in chunks:
            await resp.write(chunk)
    finally:
        await chunks.aclose()
    await resp.write_eof()
    return resp


def build_app(
    agent_source: Callable[[], ExecutorAgent | None], *, api_token: str | None = None
) -> web.Application:
    """The executor's application; ``agent_source()`` returns the running agent (or None);
    ``api_token``: required on every request but ``/health`` (the runservice sends it)."""
    app = make_app("executor", api_token=api_token, client_max_size=MAX_TASK_BODY)
    app[AGENT] = agent_source
    app.router.add_post(f"{API_PREFIX}/executor", push_task)
    app.router.add_get(f"{API_PREFIX}/executor/logs", get_log)
    app.router.add_get(f"{API_PREFIX}/executor/archives", get_archive)
    return app


__all__ = ["build_app"]
