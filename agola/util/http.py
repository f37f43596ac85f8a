"""aiohttp server helpers shared by every role: errors, request logging, JSON in and out.

Handlers raise ``agola.errors`` types; ``error_middleware`` turns them into the JSON error body and
status of ``agola.errors.http_status`` (the one mapping). ``make_app`` builds a role's application
with ``GET /health`` and ``GET /api/v1alpha/version`` already routed.
"""

from __future__ import annotations

import json
import time
from typing import Any, Awaitable, Callable, Mapping

from aiohttp import web

from agola import __version__
from agola.errors import AgolaError, BadRequest, PayloadTooLarge, http_status, public_body
from agola.util.log import get_logger

log = get_logger("agola.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ROLE_KEY = web.AppKey("agola_role", str)

API_PREFIX = "/api/v1alpha"


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(data, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def error_response(err: BaseException) -> web.Response:
    return json_response(public_body(err), status=http_status(err))


async def read_json(request: web.Request) -> Any:
    """The decoded JSON body; a malformed body is a 400 naming the problem."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise PayloadTooLarge(f"request body too large (limit {request.client_max_size} bytes)") from None
    if not raw:
        raise BadRequest("request body is empty, expected JSON")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None


def query_int(request: web.Request, name: str, default: int, *, minimum: int = 0) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"query parameter {name!r}: {raw!r} is not an integer") from None
    if value < minimum:
        raise BadRequest(f"query parameter {name!r}: must be >= {minimum}")
    return value


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    return query_flag(request.query, name, default)


def query_flag(query: Mapping[str, str], name: str, default: bool = False) -> bool:
    """A boolean query parameter: present with an empty value (``?follow``), ``1``/``true``/``yes``
    set it, ``0``/``false``/``no`` clear it, anything else is a 400."""
    raw = query.get(name)
    if raw is None:
        return default
    if raw in ("", "1", "true", "True", "yes"):
        return True
    if raw in ("0", "false", "False", "no"):
        return False
    raise BadRequest(f"query parameter {name!r}: {raw!r} is not a boolean")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except AgolaError as err:
        if err.status >= 500:
            log.warning("request failed", method=request.method, path=request.path, error=err.message)
        return error_response(err)
    except web.HTTPRequestEntityTooLarge:
        return error_response(PayloadTooLarge(f"request body too large (limit {request.client_max_size} bytes)"))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_response({"message": exc.reason, "code": _code_for_status(exc.status)}, status=exc.status)
    except (ConnectionResetError, web.HTTPException):
        raise
    except Exception as exc:  # noqa: BLE001 - the one place untyped errors become a 500
        log.error("unhandled error", method=request.method, path=request.path, exc_info=exc)
        return error_response(exc)


def _code_for_status(status: int) -> str:
    return {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_exist",
            405: "bad_request", 409: "conflict", 413: "payload_too_large"}.get(status, "internal")


def request_log_middleware(role: str) -> Callable[..., Any]:
    role_log = get_logger(f"agola.{role}.http")

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        finally:
            role_log.debug(
                "request",
                method=request.method,
                path=request.path,
                status=status,
                ms=round((time.perf_counter() - start) * 1000, 1),
            )

    return middleware


async def _health(request: web.Request) -> web.Response:
    return json_response({"status": "ok", "role": request.app[ROLE_KEY], "version": __version__})


async def _version(request: web.Request) -> web.Response:
    return json_response({"version": __version__})


def make_app(role: str, *, client_max_size: int = 1024 * 1024) -> web.Application:
    """A role's aiohttp application with error handling, request logging, /health and version."""
    app = web.Application(
        middlewares=[request_log_middleware(role), error_middleware],
        client_max_size=client_max_size,
    )
    app[ROLE_KEY] = role
    app.router.add_get("/health", _health)
    app.router.add_get(f"{API_PREFIX}/version", _version)
    return app
