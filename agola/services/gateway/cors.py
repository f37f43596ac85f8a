"""CORS for ``gateway.web.allowedOrigins``: pages of those sites (another web client, such as
agola-web on its own host) may call the API from a browser.

* A listed origin gets ``Access-Control-Allow-Origin: <that origin>`` (with ``Vary: Origin``) and
  may send credentials; a preflight ``OPTIONS`` is answered here (204) with the methods and
  headers of Agola's gateway, ``Authorization`` among them.
* ``*`` in the list allows any origin, but then without credentials: the wildcard is never
  combined with ``Access-Control-Allow-Credentials``.
* An unlisted origin gets no CORS header at all (its browser blocks the answer), and its preflight
  falls through to the router (405 for paths without an ``OPTIONS`` route).
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from agola.util.http import Handler

__all__ = ["ALLOWED_HEADERS", "ALLOWED_METHODS", "MAX_AGE", "add_cors"]

ALLOWED_METHODS = "GET, HEAD, POST, PUT, DELETE"
ALLOWED_HEADERS = "Accept, Accept-Encoding, Authorization, Content-Length, Content-Type, X-CSRF-Token"
MAX_AGE = "600"


def add_cors(app: web.Application, allowed_origins: Sequence[str]) -> None:
    """Answer preflights (first middleware) and mark every answer to a listed origin, streams
    included (headers are added as a response is prepared, before its first byte)."""
    origins = frozenset(o.rstrip("/") for o in allowed_origins if o and o != "*")
    any_origin = "*" in allowed_origins
    if not origins and not any_origin:
        return

    def allow(request: web.Request) -> dict[str, str]:
        origin = request.headers.get("Origin", "")
        if origin and origin in origins:
            return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true",
                    "Vary": "Origin"}
        if origin and any_origin:
            return {"Access-Control-Allow-Origin": "*"}
        return {}

    @web.middleware
    async def preflight(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers and allow(request):
            return web.Response(status=204, headers={
                "Access-Control-Allow-Methods": ALLOWED_METHODS, "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                "Access-Control-Max-Age": MAX_AGE})
        return await handler(request)

    async def mark(request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(allow(request))

    app.middlewares.insert(0, preflight)
    app.on_response_prepare.append(mark)
