"""``GET /badges/{projectref}?branch=``: SVG badge of the project's last run."""

from __future__ import annotations

from aiohttp import web

from agola.services.gateway.actions import badges as actions
from agola.services.gateway.api.common import ctx
from agola.services.gateway.openapi import Query, api_op
from agola.util.http import API_PREFIX


@api_op(query=(Query("branch"),), response_media="image/svg+xml", auth="optional")
async def badge(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    svg = await actions.project_badge(svc, ident, request.match_info["ref"], request.query.get("branch", ""))
    return web.Response(text=svg, content_type="image/svg+xml", headers={"Cache-Control": "no-cache"})


def add_routes(app: web.Application) -> None:
    app.router.add_get(f"{API_PREFIX}/badges/{{ref}}", badge)
