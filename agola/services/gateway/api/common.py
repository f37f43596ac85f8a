"""What every gateway handler uses: the services, the caller's identity, JSON helpers."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from agola.errors import BadRequest
from agola.services.gateway.actions import Services
from agola.services.gateway.auth import Authenticator, Identity, extract_credentials
from agola.util.http import query_bool, query_int, read_json

SERVICES_KEY = web.AppKey("gateway_services", Services)
AUTH_KEY = web.AppKey("gateway_auth", Authenticator)
_IDENT = web.RequestKey("gateway_identity", Identity)


def services(request: web.Request) -> Services:
    return request.app[SERVICES_KEY]


async def identity(request: web.Request) -> Identity:
    """The caller (anonymous when no credentials); bad credentials are a 401 even on endpoints
    where authentication is optional."""
    cached = request.get(_IDENT)
    if cached is not None:
        return cached
    creds = extract_credentials(request.headers.get("Authorization", ""), request.query.get("access_token", ""))
    ident = await request.app[AUTH_KEY].identify(creds)
    request[_IDENT] = ident
    return ident


async def ctx(request: web.Request) -> tuple[Services, Identity]:
    return services(request), await identity(request)


async def json_object(request: web.Request) -> dict[str, Any]:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


def str_field(body: dict[str, Any], key: str, *, optional: bool = False) -> Any:
    value = body.get(key)
    if value is None:
        return None if optional else ""
    if not isinstance(value, str):
        raise BadRequest(f"{key}: expected a string")
    return value


def bool_field(body: dict[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise BadRequest(f"{key}: expected a boolean")
    return value


def paging(request: web.Request) -> tuple[str, int, bool]:
    return request.query.get("start", ""), query_int(request, "limit", 0), query_bool(request, "asc")


def no_content() -> web.Response:
    return web.Response(status=204)
