"""``GET /version`` and ``GET /health``."""

from __future__ import annotations

from aiohttp import web

from agola import __version__
from agola.client import types as wire
from agola.services.gateway.openapi import api_op
from agola.util.http import API_PREFIX, json_response


@api_op(response=wire.VersionResponse, auth="none")
async def version(request: web.Request) -> web.Response:
    return json_response({"service": "gateway", "version": __version__})


@api_op(response_media="application/json", auth="none")
async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok", "role": "gateway", "version": __version__})


def add_routes(app: web.Application) -> None:
    app.router.add_get(f"{API_PREFIX}/version", version)
    app.router.add_get("/health", health)
