"""``/runs``: creation (new and restart), queries, run and run task actions, change groups."""

from __future__ import annotations

import json

from aiohttp import web

from agola.errors import BadRequest
from agola.services.runservice import logic
from agola.services.runservice.api.common import core_of, readdb_of
from agola.services.runservice.readdb import RunsQuery
from agola.services.runservice.store import RunChangeGroupsToken
from agola.types.runservice import (
    RunActionsRequest,
    RunActionType,
    RunCreateRequest,
    RunResponse,
    RunTaskActionsRequest,
    RunTaskActionType,
)
from agola.util.http import API_PREFIX, json_response, query_bool, read_json


async def create_run(request: web.Request) -> web.Response:
    core = core_of(request)
    req = RunCreateRequest.from_json(await read_json(request))
    run, rc = await core.create_run(req)
    return json_response(RunResponse(run=run, run_config=rc).to_json(), status=201)


def _runs_query(request: web.Request) -> RunsQuery:
    q = request.query
    raw_limit = q.get("limit", "")
    try:
        limit = int(raw_limit) if raw_limit else 0
    except ValueError:
        raise BadRequest(f"limit {raw_limit!r} is not an integer") from None
    if limit < 0:
        raise BadRequest("limit must be >= 0")
    return RunsQuery(
        phases=tuple(q.getall("phase", [])),
        results=tuple(q.getall("result", [])),
        groups=tuple(g for g in q.getall("group", []) if g),
        last_run=query_bool(request, "lastrun"),
        start=q.get("start", ""),
        limit=limit,
        asc=query_bool(request, "asc"),
    )


async def _token(request: web.Request) -> str:
    groups = request.query.getall("changegroup", [])
    if not groups:
        return ""
    token = await core_of(request).store.change_groups_token(list(groups))
    return token.encode()


def _min_revision(request: web.Request) -> int:
    """Ours: ``minrevision=N`` lists once the readdb has applied coordination revision N (the
    revision of a run event the caller saw), so the run it announced is listed as it now is."""
    raw = request.query.get("minrevision", "")
    try:
        return int(raw) if raw else 0
    except ValueError:
        raise BadRequest(f"minrevision {raw!r} is not an integer") from None


async def list_runs(request: web.Request) -> web.Response:
    query = _runs_query(request)
    min_revision = _min_revision(request)
    readdb = readdb_of(request)
    if min_revision:
        await readdb.wait_revision(min_revision)
    token = await _token(request)  # before the read: it then protects what we return
    runs = await readdb.list_runs(query)
    # The stored JSON texts go out as they are: no decode/encode per run.
    body = b'{"runs":[' + ",".join(runs).encode() + b'],"change_groups_update_tokens":' + json.dumps(token).encode() + b"}"
    return web.Response(body=body, content_type="application/json")


async def get_run(request: web.Request) -> web.Response:
    core = core_of(request)
    token = await _token(request)
    run_id = request.match_info["runid"]
    stored = await core.store.get_run(run_id)
    if stored is None:
        from agola.errors import NotExist

        raise NotExist(f"run {run_id} does not exist")
    rc = await core.store.get_run_config(run_id)
    return json_response(RunResponse(run=stored.run, run_config=rc, change_groups_update_token=token).to_json())


async def run_actions(request: web.Request) -> web.Response:
    core = core_of(request)
    req = RunActionsRequest.from_json(await read_json(request))
    token = RunChangeGroupsToken.decode(req.change_groups_update_token)
    now = core.now()
    if req.action_type is RunActionType.CHANGE_PHASE:
        if req.phase is None:
            raise BadRequest("changephase needs a phase")
        phase = req.phase
        run = await core.update_run(request.match_info["runid"], lambda r: logic.change_run_phase(r, phase, now),
                                    token=token)
    else:
        run = await core.update_run(request.match_info["runid"], logic.stop_run, token=token)
    return json_response({"run": run.to_json()})


async def task_actions(request: web.Request) -> web.Response:
    core = core_of(request)
    req = RunTaskActionsRequest.from_json(await read_json(request))
    token = RunChangeGroupsToken.decode(req.change_groups_update_token)
    task_id = request.match_info["taskid"]
    if req.action_type is RunTaskActionType.APPROVE:
        run = await core.update_run(request.match_info["runid"], lambda r: logic.approve_task(r, task_id), token=token)
    else:
        annotations = dict(req.annotations)
        run = await core.update_run(
            request.match_info["runid"], lambda r: logic.set_task_annotations(r, task_id, annotations), token=token
        )
    return json_response({"run": run.to_json()})


async def change_groups(request: web.Request) -> web.Response:
    return json_response(await _token(request))


def add_routes(app: web.Application) -> None:
    p = API_PREFIX
    app.router.add_post(f"{p}/runs", create_run)
    app.router.add_get(f"{p}/runs", list_runs)
    app.router.add_get(f"{p}/runs/{{runid}}", get_run)
    app.router.add_put(f"{p}/runs/{{runid}}/actions", run_actions)
    app.router.add_put(f"{p}/runs/{{runid}}/tasks/{{taskid}}/actions", task_actions)
    app.router.add_get(f"{p}/changegroups", change_groups)
