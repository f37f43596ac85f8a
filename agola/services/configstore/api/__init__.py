"""The configstore REST API (spec §5.6, internal, under ``/api/v1alpha``): one module per
resource, assembled by ``build_app``. Handlers parse the request, call one method of the
``ActionHandler`` and serialize its result; errors are the typed ``agola.errors`` (400 for a
failed check, 404 for a missing object on a get, 409 for lost races, 503 while not serving)."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Middleware

from agola.errors import Unavailable
from agola.services.configstore.api import (
    maintenance,
    orgs,
    projectgroups,
    projects,
    remotesources,
    secrets,
    users,
)
from agola.services.configstore.api.common import ROLE, ConfigstoreService
from agola.util.http import API_PREFIX, Handler, make_app

ALWAYS = {"/health", f"{API_PREFIX}/version"}


def _maintenance_gate(role: ConfigstoreService) -> Middleware:
    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if role.maintenance and path not in maintenance.MAINTENANCE_PATHS and path not in ALWAYS:
            raise Unavailable("configstore is in maintenance mode: only maintenance, export and import are served")
        return await handler(request)

    return gate


def build_app(role: ConfigstoreService, *, api_token: str | None = None) -> web.Application:
    """``api_token``: required on every request but ``/health`` (the gateway sends it)."""
    # Bodies are capped at 1 MiB (make_app's default); import streams its body instead of reading it.
    app = make_app("configstore", api_token=api_token)
    app.middlewares.append(_maintenance_gate(role))
    app[ROLE] = role
    users.add_routes(app)
    orgs.add_routes(app)
    projectgroups.add_routes(app)
    projects.add_routes(app)
    secrets.add_routes(app)
    remotesources.add_routes(app)
    maintenance.add_routes(app)
    return app
