"""The UI's pages and the few endpoints its JavaScript uses, each a thin layer over the gateway's
actions: the caller is the signed-in session's identity, and every permission check is the
action's own (a refusal becomes a 403 page, never data).

Pages render on the server and work without JavaScript (lists, filters, paging, actions, raw log
download); the script adds live updates, the log viewer and confirmations.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import attrs
from aiohttp import web

from agola.errors import AgolaError, BadRequest, Forbidden, Unauthorized
from agola.services.gateway.actions import Services, events
from agola.services.gateway.actions import runs as run_actions
from agola.services.gateway.api import serialize
from agola.services.gateway.api.common import AUTH_KEY, SERVICES_KEY
from agola.services.gateway.api.runs import relay_run_events
from agola.services.gateway.auth import Credentials, Identity
from agola.types.runservice import RunPhase, RunResult
from agola.types.stepquery import parse_log_query
from agola.util.log import get_logger
from agola.web import logwindow
from agola.web.graph import layout, task_state
from agola.web.render import SECURITY_HEADERS, error_page, page, redirect
from agola.web.sessions import Session, SessionStore

__all__ = ["COOKIE_POLICY_KEY", "SESSIONS_KEY", "CookiePolicy", "add_routes"]

log = get_logger(__name__)

SESSIONS_KEY = web.AppKey("web_sessions", SessionStore)


@attrs.frozen
class CookiePolicy:
    """``secure``: always mark the cookie Secure (TLS listener or an https webExposedURL);
    ``unsecure``: never (``gateway.unsecureCookies``, plain-HTTP development)."""

    secure: bool = False
    unsecure: bool = False

    def is_secure(self, request: web.Request) -> bool:
        return not self.unsecure and (self.secure or request.secure)


COOKIE_POLICY_KEY = web.AppKey("web_cookie_policy", CookiePolicy)

PHASES = tuple(str(p) for p in RunPhase)
RESULTS = tuple(str(r) for r in RunResult)
PAGE_SIZE = 25


@attrs.frozen
class Caller:
    svc: Services
    ident: Identity
    session: Session

    @property
    def name(self) -> str:
        return self.ident.user.name if self.ident.user is not None else "admin"

    def context(self, **more: Any) -> dict[str, Any]:
        return {"signed_in": self.name, "csrf": self.session.csrf, **more}


class _SignIn(Exception):
    """No valid session: the page redirects to the sign-in form."""


def _cookie_name(request: web.Request) -> str:
    # The __Host- prefix makes the browser refuse the cookie unless Secure, path /, no domain.
    return "__Host-agola-session" if request.app[COOKIE_POLICY_KEY].is_secure(request) else "agola-session"


def _session(request: web.Request) -> Session | None:
    raw = request.cookies.get(_cookie_name(request), "")
    return request.app[SESSIONS_KEY].get(raw) if raw else None


async def _caller(request: web.Request) -> Caller:
    session = _session(request)
    if session is None:
        raise _SignIn()
    try:
        ident = await request.app[AUTH_KEY].identify(Credentials("token", session.token))
    except Unauthorized:
        # The token was deleted since sign-in: the session ends with it.
        await request.app[SESSIONS_KEY].delete(session)
        raise _SignIn() from None
    return Caller(request.app[SERVICES_KEY], ident, session)


def _same_origin(request: web.Request) -> bool:
    """A browser's state-changing request names its page's origin; another site's form fails."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None
    return origin == f"{request.scheme}://{request.host}"


async def _form_caller(request: web.Request) -> tuple[Caller, Any]:
    """The caller of a form post, after the CSRF checks (origin, and the session's token)."""
    caller = await _caller(request)
    form = await request.post()
    token = form.get("csrf_token")
    if not _same_origin(request) or not isinstance(token, str) or not caller.session.csrf_ok(token):
        raise Forbidden("the form is stale or came from another site (CSRF check failed): reload the page")
    return caller, form


def _local_path(value: str) -> str:
    """Where to go after sign-in: only a path of this site (no ``//host`` or scheme)."""
    if value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _page(handler: Handler) -> Handler:
    """Errors of a page handler as HTML pages; no session -> the sign-in form."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except _SignIn:
            return redirect("/login?" + urlencode({"next": request.path_qs}))
        except AgolaError as err:
            if err.status >= 500:
                log.warning("web page failed", path=request.path, error=err.message)
                return error_page(err.status, "The server could not answer this page.")
            try:
                context = (await _caller(request)).context()
            except (_SignIn, AgolaError):
                context = {"signed_in": "", "csrf": ""}
            return error_page(err.status, err.message, **context)

    return wrapped


# ---------------------------------------------------------------------------------------------
# sign in / out


async def login_form(request: web.Request) -> web.Response:
    if _session(request) is not None:
        return redirect(_local_path(request.query.get("next", "/")))
    return page("login.html", next=_local_path(request.query.get("next", "/")), error="", signed_in="", csrf="")


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    token = str(form.get("token") or "").strip()
    next_path = _local_path(str(form.get("next") or "/"))
    if not _same_origin(request):
        return error_page(403, "sign-in from another site refused", signed_in="", csrf="")
    try:
        ident = await request.app[AUTH_KEY].identify(Credentials("token", token)) if token else None
    except Unauthorized:
        ident = None
    if ident is None or ident.anonymous:
        return page("login.html", status=401, next=next_path, error="This token is not valid.", signed_in="",
                    csrf="")
    store = request.app[SESSIONS_KEY]
    _, cookie = await store.create(token)
    resp = redirect(next_path)
    resp.set_cookie(_cookie_name(request), cookie, max_age=int(store.duration), path="/", httponly=True,
                    samesite="Lax", secure=request.app[COOKIE_POLICY_KEY].is_secure(request))
    return resp


async def logout(request: web.Request) -> web.StreamResponse:
    try:
        caller, _ = await _form_caller(request)
    except _SignIn:
        return redirect("/login")
    await request.app[SESSIONS_KEY].delete(caller.session)
    resp = redirect("/login")
    resp.del_cookie(_cookie_name(request), path="/")
    return resp


# ---------------------------------------------------------------------------------------------
# runs


def _run_rows(runs: list[Any]) -> list[dict[str, Any]]:
    return [serialize.runs_row(r) | {"group": r.group} for r in runs]


async def home(request: web.Request) -> web.Response:
    caller = await _caller(request)
    runs: list[dict[str, Any]] = []
    group = ""
    if caller.ident.user is not None:
        group = f"/user/{caller.ident.user.id}"
        runs = _run_rows(await run_actions.list_runs(caller.svc, caller.ident,
                                                     run_actions.RunsQuery(group=group, limit=PAGE_SIZE)))
    return page("home.html", **caller.context(runs=runs, group=group, live_events=True))


async def runs_list(request: web.Request) -> web.Response:
    caller = await _caller(request)
    q = request.query
    group = q.get("group", "")
    phase, result, start = q.get("phase", ""), q.get("result", ""), q.get("start", "")
    if phase and phase not in PHASES:
        raise BadRequest(f"unknown phase {phase!r}")
    if result and result not in RESULTS:
        raise BadRequest(f"unknown result {result!r}")
    if not group:
        if caller.ident.user is None:
            raise BadRequest("no run group given (e.g. /user/<id>/branch/main)")
        group = f"/user/{caller.ident.user.id}"
    query = run_actions.RunsQuery(group=group, phases=(phase,) if phase else (), results=(result,) if result else (),
                                  start=start, limit=PAGE_SIZE)
    runs = _run_rows(await run_actions.list_runs(caller.svc, caller.ident, query))
    base = {"group": group, **({"phase": phase} if phase else {}), **({"result": result} if result else {})}
    older = "/runs?" + urlencode({**base, "start": runs[-1]["id"]}) if len(runs) == PAGE_SIZE else ""
    newest = "/runs?" + urlencode(base) if start else ""
    return page("runs.html", **caller.context(runs=runs, group=group, phase=phase, result=result, phases=PHASES,
                                              results=RESULTS, older=older, newest=newest, live_events=True))


async def run_detail(request: web.Request) -> web.Response:
    caller = await _caller(request)
    resp = await run_actions.get_run(caller.svc, caller.ident, request.match_info["runid"])
    run = serialize.run(resp)
    return page("run.html", **caller.context(run=run, group=resp.run.group, graph=layout(run["tasks"]),
                                              active=not resp.run.phase.is_finished, live_events=True))


async def run_action(request: web.Request) -> web.Response:
    caller, form = await _form_caller(request)
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
    caller = await _caller(request)
    view = await run_actions.get_task(caller.svc, caller.ident, request.match_info["runid"],
                                      request.match_info["taskid"])
    task = serialize.task(view)
    run = serialize.runs_row(view.run)
    return page("task.html", **caller.context(
        run=run, group=view.run.group, task=task, state=task_state(task), open_step=_first_open_step(task["steps"]),
        active=not view.run.phase.is_finished, live_events=False))


async def task_approve(request: web.Request) -> web.Response:
    caller, _ = await _form_caller(request)
    run_id, task_id = request.match_info["runid"], request.match_info["taskid"]
    await run_actions.task_action(caller.svc, caller.ident, run_id, task_id, "approve")
    return redirect(f"/runs/{run_id}/tasks/{task_id}")


# ---------------------------------------------------------------------------------------------
# endpoints of the page script


async def task_log(request: web.Request) -> web.StreamResponse:
    """A window of a step's log: ``tail=<bytes>``, ``start=&end=`` or ``start=&follow``; plain
    ``download`` for the whole raw log. Sizes and offsets in ``X-Log-*`` headers."""
    caller = await _caller(request)
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
                window = await logwindow.tail(iterator, _int(q, "tail"))
            else:
                window = await logwindow.byte_range(iterator, _int(q, "start"), _int(q, "end"))
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
            async for chunk in logwindow.after(iterator, _int(q, "start") if "start" in q else 0):
                await resp.write(chunk)
        except (ConnectionResetError, AgolaError):
            pass
        return resp
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


def _int(q: Any, name: str) -> int:
    raw = q.get(name, "0")
    try:
        return max(0, int(raw))
    except ValueError:
        raise BadRequest(f"{name}: {raw!r} is not a number") from None


async def run_events(request: web.Request) -> web.StreamResponse:
    """The run events the signed-in user may see (the API's ``/runs/events``, by session)."""
    try:
        caller = await _caller(request)
    except _SignIn:
        raise Unauthorized("sign in first") from None
    return await relay_run_events(request, await events.run_events(caller.svc, caller.ident))


def _log_page(handler: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except _SignIn:
            raise Unauthorized("sign in first") from None

    return wrapped


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/login", login_form)
    r.add_post("/login", login)
    r.add_post("/logout", logout)
    r.add_get("/", _page(home))
    r.add_get("/runs", _page(runs_list))
    r.add_get("/runs/{runid}", _page(run_detail))
    r.add_post("/runs/{runid}/actions", _page(run_action))
    r.add_get("/runs/{runid}/tasks/{taskid}", _page(task_detail))
    r.add_post("/runs/{runid}/tasks/{taskid}/approve", _page(task_approve))
    r.add_get("/runs/{runid}/tasks/{taskid}/log", _log_page(task_log))
    r.add_get("/events", run_events)

