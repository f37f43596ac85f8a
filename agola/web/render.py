"""HTML out: the Jinja2 environment (autoescaped), the page and error responses, and the headers
every UI response carries (Content-Security-Policy without inline scripts, no framing, no
sniffing)."""

from __future__ import annotations

from typing import Any

import jinja2
from aiohttp import web

from agola import __version__
from agola.web.timefmt import ago, elapsed

__all__ = ["SECURITY_HEADERS", "error_page", "page", "redirect"]

# Scripts and styles only from our own static files: no inline script, no inline style attribute.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("agola.web", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters["ago"] = ago
_ENV.globals["elapsed"] = elapsed
_ENV.globals["version"] = __version__


def page(template: str, status: int = 200, **context: Any) -> web.Response:
    html = _ENV.get_template(template).render(**context)
    return web.Response(text=html, status=status, content_type="text/html", headers=SECURITY_HEADERS)


def redirect(location: str, headers: dict[str, str] | None = None) -> web.Response:
    """A 303 (see other): after a form post the browser GETs ``location``."""
    return web.Response(status=303, headers={**SECURITY_HEADERS, "Location": location, **(headers or {})})


_TITLES = {400: "Bad request", 401: "Sign in needed", 403: "Forbidden", 404: "Not found", 409: "Conflict"}


def error_page(status: int, message: str, **context: Any) -> web.Response:
    title = _TITLES.get(status, "Something went wrong")
    return page("error.html", status=status, title=title, status_code=status, message=message, **context)
