"""What every page handler shares: the signed-in caller (session cookie -> the gateway's
``Authenticator``), the CSRF checks of form posts, and the wrapper turning errors into HTML pages
(no session -> the sign-in form; a refusal of the API's actions -> a 403 page without data)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import attrs
from aiohttp import web

from agola.errors import AgolaError, BadRequest, Forbidden, Unauthorized
from agola.services.gateway.actions import Services
from agola.services.gateway.api import serialize
from agola.services.gateway.api.common import AUTH_KEY, SERVICES_KEY
from agola.services.gateway.auth import Identity, extract_credentials
from agola.types.runservice import Run
from agola.util.log import get_logger
from agola.web.render import error_page, redirect
from agola.web.sessions import Session, SessionStore

__all__ = [
    "COOKIE_POLICY_KEY",
    "PAGE_SIZE",
    "SESSIONS_KEY",
    "Caller",
    "CookiePolicy",
    "Handler",
    "SignIn",
    "caller_of",
    "cookie_name",
    "form_caller",
    "local_path",
    "page_handler",
    "query_int",
    "run_rows",
    "same_origin",
    "session_of",
]

log = get_logger(__name__)

SESSIONS_KEY = web.AppKey("web_sessions", SessionStore)
PAGE_SIZE = 25


@attrs.frozen
class CookiePolicy:
    """``secure``: always mark the cookie Secure (TLS listener or an https webExposedURL);
    ``unsecure``: never (``gateway.unsecureCookies``, plain-HTTP development)."""

    secure: bool = False
    unsecure: bool = False

    def is_secure(self, request: web.Request) -> bool:
        return not self.unsecure and (self.secure or request.secure)


COOKIE_POLICY_KEY = web.AppKey("web_cookie_policy", CookiePolicy)


@attrs.frozen
class Caller:
    svc: Services
    ident: Identity
    session: Session

    @property
    def name(self) -> str:
        return self.ident.user.name if self.ident.user is not None else "admin"

    def context(self, **more: Any) -> dict[str, Any]:
        """What every page's header needs: who is signed in (the admin link only shows to
        admins; the admin pages themselves ask the API), and the CSRF token of its forms."""
        return {"signed_in": self.name, "csrf": self.session.csrf, "is_admin": self.ident.admin,
                "my_name": self.ident.user.name if self.ident.user is not None else "", **more}


class SignIn(Exception):
    """No valid session: the page redirects to the sign-in form."""


def cookie_name(request: web.Request) -> str:
    # The __Host- prefix makes the browser refuse the cookie unless Secure, path /, no domain.
    return "__Host-agola-session" if request.app[COOKIE_POLICY_KEY].is_secure(request) else "agola-session"


def session_of(request: web.Request) -> Session | None:
    raw = request.cookies.get(cookie_name(request), "")
    return request.app[SESSIONS_KEY].get(raw) if raw else None


async def caller_of(request: web.Request) -> Caller:
    session = session_of(request)
    if session is None:
        raise SignIn()
    try:
        ident = await request.app[AUTH_KEY].identify(extract_credentials("", session.token))
    except Unauthorized:
        # The token was deleted (or the login token expired) since sign-in: the session ends with it.
        await request.app[SESSIONS_KEY].delete(session)
        raise SignIn() from None
    return Caller(request.app[SERVICES_KEY], ident, session)


def same_origin(request: web.Request) -> bool:
    """A browser's state-changing request names its page's origin; another site's form fails."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None
    return origin == f"{request.scheme}://{request.host}"


async def form_caller(request: web.Request) -> tuple[Caller, Any]:
    """The caller of a form post, after the CSRF checks (origin, and the session's token)."""
    caller = await caller_of(request)
    form = await request.post()
    token = form.get("csrf_token")
    if not same_origin(request) or not isinstance(token, str) or not caller.session.csrf_ok(token):
        raise Forbidden("the form is stale or came from another site (CSRF check failed): reload the page")
    return caller, form


def local_path(value: str) -> str:
    """Where to go after sign-in: only a path of this site (no ``//host`` or scheme)."""
    if value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def query_int(q: Any, name: str) -> int:
    raw = q.get(name, "0")
    try:
        return max(0, int(raw))
    except ValueError:
        raise BadRequest(f"{name}: {raw!r} is not a number") from None


def run_rows(runs: list[Run]) -> list[dict[str, Any]]:
    """Runs as the API lists them, plus their group (for links to the group's runs)."""
    return [serialize.runs_row(r) | {"group": r.group} for r in runs]


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def page_handler(handler: Handler) -> Handler:
    """Errors of a page handler as HTML pages; no session -> the sign-in form."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except SignIn:
            return redirect("/login?" + urlencode({"next": request.path_qs}))
        except AgolaError as err:
            if err.status >= 500:
                log.warning("web page failed", path=request.path, error=err.message)
                return error_page(err.status, "The server could not answer this page.")
            try:
                context = (await caller_of(request)).context()
            except (SignIn, AgolaError):
                context = {"signed_in": "", "csrf": ""}
            return error_page(err.status, err.message, **context)

    return wrapped
