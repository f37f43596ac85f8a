"""The runservice HTTP API: one module per resource, assembled by ``build_app``."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Middleware

from agola.errors import BadRequest, Unavailable
from agola.services.runservice.api import events, executor, logs, maintenance, runs
from agola.services.runservice.api.common import ROLE, RunserviceService
from agola.util.http import API_PREFIX, Handler, make_app

ALWAYS = {"/health", f"{API_PREFIX}/version"}


def _maintenance_gate(role: RunserviceService) -> Middleware:
    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if role.maintenance and path not in maintenance.MAINTENANCE_PATHS and path not in ALWAYS:
            raise Unavailable("runservice is in maintenance mode: only maintenance, export and import are served")
        return await handler(request)

    return gate


async def _unknown(request: web.Request) -> web.Response:
    # The reference's runservice router answers 400 (not 404) for unknown routes.
    raise BadRequest(f"unknown route {request.method} {request.path}")


def build_app(role: RunserviceService, *, api_token: str | None = None) -> web.Application:
    """``api_token``: required on every request but ``/health`` (gateway, scheduler, executors)."""
    app = make_app("runservice", api_token=api_token, client_max_size=16 * 1024 * 1024)
    app.middlewares.append(_maintenance_gate(role))
    app[ROLE] = role
    events.add_routes(app)  # before /runs/{runid}
    runs.add_routes(app)
    logs.add_routes(app)
    executor.add_routes(app)
    maintenance.add_routes(app)
    app.router.add_route("*", f"{API_PREFIX}/{{tail:.*}}", _unknown)
    return app
