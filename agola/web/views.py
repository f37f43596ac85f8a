"""The UI's pages and the few endpoints its JavaScript uses, each a thin layer over the gateway's
actions: the caller is the signed-in session's identity, and every permission check is the
action's own (a refusal becomes a 403 page, never data).

Pages render on the server and work without JavaScript (lists, filters, paging, actions, raw log
download); the script adds live updates, the log viewer and confirmations.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from agola.errors import AgolaError, BadRequest, NotExist, Unauthorized
from agola.services.gateway.actions import events
from agola.services.gateway.actions import projects as project_actions
from agola.services.gateway.actions import runs as run_actions
from agola.services.gateway.api import serialize
from agola.services.gateway.api.runs import relay_run_events
from agola.types.runservice import RunPhase, RunResult
from agola.types.stepquery import parse_log_query
from agola.util.log import get_logger
from agola.web import logwindow
from agola.web.graph import layout, task_state
from agola.web.handlers import (
    PAGE_SIZE,
    Caller,
    Handler,
    SignIn,
    caller_of,
    form_caller,
    page_handler,
    query_int,
    run_rows,
)
from agola.web.home import home
from agola.web.render import SECURITY_HEADERS, page, redirect

__all__ = ["add_routes"]

log = get_logger(__name__)

PHASES = tuple(str(p) for p in RunPhase)
RESULTS = tuple(str(r) for r in RunResult)


# ---------------------------------------------------------------------------------------------
# runs


async def runs_list(request: web.Request) -> web.Response:
    """The runs of a group (``/user/<id>``, ``/project/<id>``, ``.../branch/<name>``, ...);
    ``latest=1``: the newest run of each group under it (one per branch, tag or pull request)."""
    caller = await caller_of(request)
    q = request.query
    group = q.get("group", "")
    phase, result, start, latest = q.get("phase", ""), q.get("result", ""), q.get("start", ""), q.get("latest") == "1"
    if phase and phase not in PHASES:
        raise BadRequest(f"unknown phase {phase!r}")
    if result and result not in RESULTS:
        raise BadRequest(f"unknown result {result!r}")
    if not group:
        if caller.ident.user is None:
            raise BadRequest("no run group given (e.g. /user/<id>/branch/main)")
        group = f"/user/{caller.ident.user.id}"
    query = run_actions.RunsQuery(group=group, phases=(phase,) if phase else (), results=(result,) if result else (),
                                  last_run=latest, start=start, limit=PAGE_SIZE)
    runs = run_rows(await run_actions.list_runs(caller.svc, caller.ident, query))
    base = {"group": group, **({"phase": phase} if phase else {}), **({"result": result} if result else {}),
            **({"latest": "1"} if latest else {})}
    older = "/runs?" + urlencode({**base, "start": runs[-1]["id"]}) if len(runs) == PAGE_SIZE else ""
    newest = "/runs?" + urlencode(base) if start else ""
    owner, owner_href = await _group_owner(caller, group)
    return page("runs.html", **caller.context(
        runs=runs, group=group, phase=phase, result=result, latest=latest, phases=PHASES, results=RESULTS,
        older=older, newest=newest, owner=owner, owner_href=owner_href, views=_group_views(group, latest),
        live_events=True))


def _group_views(group: str, latest: bool) -> list[dict[str, Any]]:
    """Links to the other views of the group's owner: all its runs, the latest per branch, tag, PR."""
    root = "/".join(group.split("/")[:3])
    views = [("All runs", root, False), ("Branches", f"{root}/branch", True), ("Tags", f"{root}/tag", True),
             ("Pull requests", f"{root}/pr", True)]
    return [{"label": label, "href": "/runs?" + urlencode({"group": g, **({"latest": "1"} if last else {})}),
             "current": g == group and last == latest} for label, g, last in views]


async def _group_owner(caller: Caller, group: str) -> tuple[str, str]:
    """The owner of a run group as a name and a page: a project, or a user's direct runs."""
    parts = group.split("/")
    if len(parts) >= 3 and parts[1] == "project":
        try:
            project = await project_actions.get_project(caller.svc, caller.ident, parts[2])
        except NotExist:
            return "a deleted project", ""  # its runs stay readable (for the admin)
        return f"project {project.path}", f"/projects/{project.path}"
    return "direct runs", ""


async def run_detail(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    resp = await run_actions.get_run(caller.svc, caller.ident, request.match_info["runid"])
    run = serialize.run(resp)
    return page("run.html", **caller.context(run=run, group=resp.run.group, graph=layout(run["tasks"]),
                                              active=not resp.run.phase.is_finished, live_events=True))


async def run_action(request: web.Request) -> web.Response:
    caller, form = await form_caller(request)
    run_id = request.match_info["runid"]
    action = str(form.get("action") or "")
    if action not in ("stop", "cancel", "restart"):
        raise BadRequest(f"unknown run action {action!r}")
    resp = await run_actions.run_action(caller.svc, caller.ident, run_id, action, form.get("from_start") == "1")
    return redirect(f"/runs/{resp.run.id}")


def _first_open_step(steps: list[dict[str, Any]]) -> int:
    """The step whose log the page opens: the first failed, else the running one, else the last."""
    for phase in ("failed", "running"):
        for i, step in enumerate(steps):
            if step["phase"] == phase:
                return i
    return len(steps) - 1


async def task_detail(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    view = await run_actions.get_task(caller.svc, caller.ident, request.match_info["runid"],
                                      request.match_info["taskid"])
    task = serialize.task(view)
    run = serialize.runs_row(view.run)
    return page("task.html", **caller.context(
        run=run, group=view.run.group, task=task, state=task_state(task), open_step=_first_open_step(task["steps"]),
        active=not view.run.phase.is_finished, live_events=False))


async def task_approve(request: web.Request) -> web.Response:
    caller, _ = await form_caller(request)
    run_id, task_id = request.match_info["runid"], request.match_info["taskid"]
    await run_actions.task_action(caller.svc, caller.ident, run_id, task_id, "approve")
    return redirect(f"/runs/{run_id}/tasks/{task_id}")


# ---------------------------------------------------------------------------------------------
# endpoints of the page script


async def task_log(request: web.Request) -> web.StreamResponse:
    """A window of a step's log: ``tail=<bytes>``, ``start=&end=`` or ``start=&follow``; plain
    ``download`` for the whole raw log. Sizes and offsets in ``X-Log-*`` headers."""
    caller = await caller_of(request)
    run_id, task_id = request.match_info["runid"], request.match_info["taskid"]
    q = request.query
    step = parse_log_query(q)
    follow = step.follow
    stream = await run_actions.get_log(caller.svc, caller.ident, run_id, task_id, setup=step.setup, step=step.step,
                                       follow=follow)
    iterator: AsyncIterator[bytes] = stream.__aiter__()
    try:
        if "tail" in q or ("end" in q and not follow):
            if "tail" in q:
                window = await logwindow.tail(iterator, query_int(q, "tail"))
            else:
                window = await logwindow.byte_range(iterator, query_int(q, "start"), query_int(q, "end"))
            return web.Response(body=window.data, content_type="text/plain", charset="utf-8", headers={
                **SECURITY_HEADERS, "X-Log-Start": str(window.start), "X-Log-Start-Line": str(window.start_line),
                "X-Log-End": str(window.end)})
        headers = {**SECURITY_HEADERS, "X-Accel-Buffering": "no"}
        if "download" in q:
            name = f"{run_id}-{task_id}-{'setup' if step.setup else f'step{step.step}'}.log"
            headers["Content-Disposition"] = f'attachment; filename="{name}"'
        resp = web.StreamResponse(status=200, headers=headers)
        resp.content_type = "text/plain"
        resp.charset = "utf-8"
        await resp.prepare(request)
        try:
            async for chunk in logwindow.after(iterator, query_int(q, "start") if "start" in q else 0):
                await resp.write(chunk)
        except (ConnectionResetError, AgolaError):
            pass
        return resp
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


async def run_events(request: web.Request) -> web.StreamResponse:
    """The run events the signed-in user may see (the API's ``/runs/events``, by session)."""
    try:
        caller = await caller_of(request)
    except SignIn:
        raise Unauthorized("sign in first") from None
    return await relay_run_events(request, await events.run_events(caller.svc, caller.ident))


def _script_endpoint(handler: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except SignIn:
            raise Unauthorized("sign in first") from None

    return wrapped


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/", page_handler(home))
    r.add_get("/runs", page_handler(runs_list))
    r.add_get("/runs/{runid}", page_handler(run_detail))
    r.add_post("/runs/{runid}/actions", page_handler(run_action))
    r.add_get("/runs/{runid}/tasks/{taskid}", page_handler(task_detail))
    r.add_post("/runs/{runid}/tasks/{taskid}/approve", page_handler(task_approve))
    r.add_get("/runs/{runid}/tasks/{taskid}/log", _script_endpoint(task_log))
    r.add_get("/events", run_events)

