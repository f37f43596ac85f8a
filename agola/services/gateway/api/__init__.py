"""The gateway's HTTP API (spec §6.2): one module per resource; ``build_app`` wires them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import aiohttp
from aiohttp import web

from agola.errors import PayloadTooLarge
from agola.services.gateway import openapi
from agola.services.gateway.actions import Services
from agola.services.gateway.api import (
    badges,
    createrun,
    deliveries,
    logs,
    maintenance,
    orgs,
    projectgroups,
    projects,
    remotesources,
    repos,
    runs,
    secrets,
    users,
    variables,
    version,
    webhooks,
)
from agola.services.gateway.api.common import AUTH_KEY, SERVICES_KEY
from agola.services.gateway.auth import Authenticator
from agola.services.gateway.cors import add_cors
from agola.util.http import ROLE_KEY, Handler, error_middleware, error_response, request_log_middleware

MAX_BODY = 1024 * 1024
# Forge deliveries under /webhooks have their own 5 MiB limit (api/webhooks.py).
UNLIMITED_BODIES = ("/repos/", maintenance.IMPORT_PREFIX, "/webhooks")


@web.middleware
async def body_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """API requests announcing a body over 1 MiB get a 413 with a message before anything is read
    (the reference answered 417). Git traffic under ``/repos`` and imports (streamed through to
    the service) are not limited."""
    length = request.content_length
    if length is not None and length > MAX_BODY and not request.path.startswith(UNLIMITED_BODIES):
        return error_response(PayloadTooLarge(f"request body too large ({length} bytes, limit {MAX_BODY} bytes)"))
    return await handler(request)


def build_app(svc: Services, auth: Authenticator, *, allowed_origins: Sequence[str] = ()) -> web.Application:
    """``allowed_origins``: ``gateway.web.allowedOrigins``, the other sites whose pages may call
    the API (CORS)."""
    app = web.Application(
        middlewares=[request_log_middleware("gateway"), error_middleware, body_limit],
        # /repos bodies are streamed, never read whole: the limit only applies to API bodies.
        client_max_size=MAX_BODY,
    )
    app[ROLE_KEY] = "gateway"
    app[SERVICES_KEY] = svc
    app[AUTH_KEY] = auth
    add_cors(app, allowed_origins)

    async def git_session(app: web.Application) -> AsyncIterator[None]:
        session = aiohttp.ClientSession(auto_decompress=False)
        app[repos.GIT_SESSION_KEY] = session
        yield
        await session.close()

    app.cleanup_ctx.append(git_session)
    for module in (version, users, orgs, projectgroups, projects, secrets, variables, remotesources, runs, logs,
                   createrun, badges, maintenance, deliveries, webhooks, repos):
        module.add_routes(app)
    openapi.register(app)
    return app
