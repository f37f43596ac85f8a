"""``GET /version`` and ``GET /health``."""

from __future__ import annotations

from aiohttp import web

from agola import __version__
from agola.util.http import API_PREFIX, json_response


async def version(request: web.Request) -> web.Response:
    return json_response({"service": "gateway", "version": __version__})


async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok", "role": "gateway", "version": __version__})


def add_routes(app: web.Application) -> None:
    app.router.add_get(f"{API_PREFIX}/version", version)
    app.router.add_get("/health", health)
