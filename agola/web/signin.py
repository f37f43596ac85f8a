"""Signing in and out of the web UI.

Two ways in, both ending in a server-side session (``agola.web.sessions``) whose cookie is all the
browser gets: an **API token** (checked by the gateway's ``Authenticator``), or the login name and
password of an account on a **password remote source** that allows logging in (the API's
``/login`` action: the forge checks the password, the session keeps the gateway's login token, a
JWT that expires after ``gateway.tokenSigning.duration``). A password remote source that allows
registration also registers a new agola user from that page (the API's ``/register``), signed in
at once. An **OAuth2 remote source** that allows logging in is a "Sign in with <source>" button:
the browser goes to the forge's authorize page with the flow's nonce cookie, comes back to the
gateway's ``/oauth2/callback``, and ``oauth2_done`` answers it: a login becomes a session here (the
token never travels to the browser), a linked account (started from the settings) goes back to the
settings, a registration (from this page) back here to sign in, a failure to an error page.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from agola.errors import AgolaError, Unauthorized
from agola.services.gateway.actions import linkedaccounts
from agola.services.gateway.actions import remotesources as rs_actions
from agola.services.gateway.api import serialize
from agola.services.gateway.api.common import AUTH_KEY, SERVICES_KEY
from agola.services.gateway.api.users import BROWSER_CALLBACK_KEY
from agola.services.gateway.auth import ANONYMOUS, extract_credentials
from agola.types.configstore import RemoteSourceAuthType
from agola.util.log import get_logger
from agola.web.handlers import (
    COOKIE_POLICY_KEY,
    SESSIONS_KEY,
    SignIn,
    cookie_name,
    form_caller,
    local_path,
    same_origin,
    session_of,
)
from agola.web.render import error_page, page, redirect

__all__ = ["add_routes", "to_forge"]

log = get_logger(__name__)

# The sign-in page names at most this many remote sources.
MAX_SOURCES = 20


async def _sources(request: web.Request, auth_type: RemoteSourceAuthType) -> list[dict[str, Any]]:
    """Remote sources of this auth type that allow signing in or registering (the list is public)."""
    try:
        sources = await rs_actions.list_remote_sources(request.app[SERVICES_KEY], ANONYMOUS, "", MAX_SOURCES, True)
    except AgolaError as err:
        log.warning("sign-in page without remote sources", error=err.message)
        return []
    return [serialize.remote_source(rs) for rs in sources
            if (rs.login_enabled or rs.registration_enabled) and rs.auth_type == auth_type]


async def _password_sources(request: web.Request) -> list[dict[str, Any]]:
    return await _sources(request, RemoteSourceAuthType.PASSWORD)


async def _form(request: web.Request, next_path: str, error: str = "", status: int = 200, *, source: str = "",
                login: str = "", username: str = "", notice: str = "") -> web.Response:
    """The sign-in page; after a failed remote sign-in it keeps the source and login (never the password)."""
    sources = await _password_sources(request)
    oauth2 = await _sources(request, RemoteSourceAuthType.OAUTH2)
    return page("login.html", status=status, next=next_path, error=error, notice=notice, source=source, login=login,
                username=username, sources=[s for s in sources if s["login_enabled"]],
                oauth2=[s["name"] for s in oauth2 if s["login_enabled"]],
                oauth2_registration=[s["name"] for s in oauth2 if s["registration_enabled"]],
                registration=[s for s in sources if s["registration_enabled"]], signed_in="", csrf="")


async def login_form(request: web.Request) -> web.Response:
    next_path = local_path(request.query.get("next", "/"))
    if session_of(request) is not None:
        return redirect(next_path)
    return await _form(request, next_path)


async def _signed_in(request: web.Request, token: str, next_path: str) -> web.Response:
    store = request.app[SESSIONS_KEY]
    _, cookie = await store.create(token)
    resp = redirect(next_path)
    resp.set_cookie(cookie_name(request), cookie, max_age=int(store.duration), path="/", httponly=True,
                    samesite="Lax", secure=request.app[COOKIE_POLICY_KEY].is_secure(request))
    return resp


async def login(request: web.Request) -> web.Response:
    """Sign in with an API token."""
    form = await request.post()
    token = str(form.get("token") or "").strip()
    next_path = local_path(str(form.get("next") or "/"))
    if not same_origin(request):
        return error_page(403, "sign-in from another site refused", signed_in="", csrf="")
    try:
        ident = await request.app[AUTH_KEY].identify(extract_credentials("", token)) if token else None
    except Unauthorized:
        ident = None
    if ident is None or ident.anonymous:
        return await _form(request, next_path, "This token is not valid.", 401)
    return await _signed_in(request, token, next_path)


async def login_remote(request: web.Request) -> web.Response:
    """Sign in with the login and password of a password remote source's account."""
    return await _remote(request, register=False)


async def register(request: web.Request) -> web.Response:
    """Register a new agola user with an account of a password remote source, then sign in."""
    return await _remote(request, register=True)


async def _remote(request: web.Request, *, register: bool) -> web.Response:
    form = await request.post()
    next_path = local_path(str(form.get("next") or "/"))
    if not same_origin(request):
        return error_page(403, "sign-in from another site refused", signed_in="", csrf="")
    source, login = str(form.get("remote_source") or ""), str(form.get("login") or "")
    username, password = str(form.get("username") or "").strip(), str(form.get("password") or "")
    flag = "registration_enabled" if register else "login_enabled"
    if source not in {s["name"] for s in await _password_sources(request) if s[flag]}:
        what = "registering" if register else "signing in"
        return await _form(request, next_path, f"Choose a remote source that allows {what} with a password.", 400)
    svc = request.app[SERVICES_KEY]
    try:
        if register:
            await linkedaccounts.register_user(svc, username, source, login, password)
        res = await linkedaccounts.login_user(svc, source, login, password)
    except Unauthorized:
        return await _form(request, next_path, f"Wrong login or password for {source}.", 401, source=source,
                           login=login, username=username)
    except AgolaError as err:
        if err.status >= 500:
            log.warning("remote sign-in failed", remote_source=source, error=err.message)
            return await _form(request, next_path, f"{source} could not be reached: try again later.", 502,
                               source=source, login=login, username=username)
        return await _form(request, next_path, err.message, err.status, source=source, login=login,
                           username=username)
    if not isinstance(res, linkedaccounts.CallbackResult) or not res.token:
        return await _form(request, next_path, f"{source} signs in through its own page: use agola login -r.", 400)
    return await _signed_in(request, res.token, next_path)


def to_forge(request: web.Request, flow: linkedaccounts.LinkResult, source: str, **context: Any) -> web.Response:
    """Sends the browser on to the forge's authorize page, with the cookie binding the callback to
    it. A page that goes on by itself (meta refresh) rather than a redirect: the CSP's
    ``form-action 'self'`` stops a form post redirected to another site."""
    resp = page("forge.html", source=source, url=flow.oauth2_redirect, **context)
    resp.set_cookie(linkedaccounts.NONCE_COOKIE, flow.nonce, max_age=linkedaccounts.STATE_LIFETIME, path="/",
                    httponly=True, samesite="Lax", secure=request.app[COOKIE_POLICY_KEY].is_secure(request))
    return resp


async def login_oauth2(request: web.Request) -> web.Response:
    """Sign in through an OAuth2 remote source: to its authorize page; ``oauth2_done`` ends it."""
    form = await request.post()
    if not same_origin(request):
        return error_page(403, "sign-in from another site refused", signed_in="", csrf="")
    source = str(form.get("remote_source") or "")
    if source not in [s["name"] for s in await _sources(request, RemoteSourceAuthType.OAUTH2) if s["login_enabled"]]:
        return await _form(request, "/", "Choose a remote source that allows signing in.", 400)
    try:
        flow = await linkedaccounts.login_user(request.app[SERVICES_KEY], source)
    except AgolaError as err:
        log.warning("oauth2 sign-in not started", remote_source=source, error=err.message)
        return await _form(request, "/", f"{source} could not be reached: try again later.", 502)
    if not isinstance(flow, linkedaccounts.LinkResult) or not flow.oauth2_redirect:
        return await _form(request, "/", f"{source} did not answer an authorization page.", 502)
    return to_forge(request, flow, source, signed_in="", csrf="")


async def register_oauth2(request: web.Request) -> web.Response:
    """Register through an OAuth2 remote source: to its authorize page; back, the sign-in page."""
    form = await request.post()
    if not same_origin(request):
        return error_page(403, "registration from another site refused", signed_in="", csrf="")
    source, username = str(form.get("remote_source") or ""), str(form.get("username") or "").strip()
    allowed = [s["name"] for s in await _sources(request, RemoteSourceAuthType.OAUTH2) if s["registration_enabled"]]
    if source not in allowed:
        return await _form(request, "/", "Choose a remote source that allows registering.", 400)
    try:
        flow = await linkedaccounts.register_user(request.app[SERVICES_KEY], username, source)
    except AgolaError as err:
        if err.status >= 500:
            log.warning("oauth2 registration not started", remote_source=source, error=err.message)
            return await _form(request, "/", f"{source} could not be reached: try again later.", 502)
        return await _form(request, "/", err.message, err.status, source=source, username=username)
    if not isinstance(flow, linkedaccounts.LinkResult) or not flow.oauth2_redirect:
        return await _form(request, "/", f"{source} did not answer an authorization page.", 502)
    return to_forge(request, flow, source, signed_in="", csrf="")


async def oauth2_done(request: web.Request, res: linkedaccounts.CallbackResult | AgolaError) -> web.Response:
    """The answer to a browser back from the forge (the gateway's callback checked code and state)."""
    if isinstance(res, AgolaError):
        if res.status >= 500:
            log.warning("oauth2 callback failed", error=res.message)
            return error_page(502, "The git host could not be reached: try again later.", signed_in="", csrf="")
        return error_page(res.status, res.message, signed_in="", csrf="")
    if res.request_type == linkedaccounts.REQUEST_REGISTER and res.user is not None:
        return await _form(request, "/", notice=f"Registered as {res.user.name}: sign in.")
    if res.request_type == linkedaccounts.REQUEST_LOGIN and res.token:
        return await _signed_in(request, res.token, "/")
    if res.request_type == linkedaccounts.REQUEST_CREATE_LA:
        return redirect("/settings")
    return redirect("/")


async def logout(request: web.Request) -> web.StreamResponse:
    try:
        caller, _ = await form_caller(request)
    except SignIn:
        return redirect("/login")
    await request.app[SESSIONS_KEY].delete(caller.session)
    resp = redirect("/login")
    resp.del_cookie(cookie_name(request), path="/")
    return resp


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/login", login_form)
    r.add_post("/login", login)
    r.add_post("/login/remote", login_remote)
    r.add_post("/login/oauth2", login_oauth2)
    r.add_post("/register/oauth2", register_oauth2)
    r.add_post("/register", register)
    r.add_post("/logout", logout)
    app[BROWSER_CALLBACK_KEY] = oauth2_done
