"""aiohttp server helpers shared by every role: errors, request logging, JSON in and out.

Handlers raise ``agola.errors`` types; ``error_middleware`` turns them into the JSON error body and
status of ``agola.errors.http_status`` (the one mapping). ``make_app`` builds a role's application
with ``GET /health`` and ``GET /api/v1alpha/version`` already routed; given an ``api_token`` (an
internal role API), every route but ``/health`` requires it (``api_token_middleware``).

Long-lived responses (run event streams, followed logs) run inside ``long_lived(request)``: when the
server stops they are ended at once (their handler is cancelled when the application shuts down,
see ``track_long_lived``), while short in-flight requests still get the shutdown timeout to finish.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from agola import __version__
from agola.errors import AgolaError, BadRequest, PayloadTooLarge, Unauthorized, http_status, public_body
from agola.util.log import get_logger

log = get_logger("agola.http")


class _ClientProtocolErrors(logging.Filter):
    """aiohttp logs a request it cannot parse (a request line or header over 8 KiB, a malformed
    header) at ERROR with a traceback, though it is the client's error, answered 400: anyone could
    fill the logs with tracebacks. Such records become one warning line naming the error's type
    (not its text: it quotes the request line, which may hold an ``access_token``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 400) < 500:
            record.msg, record.args = f"{record.getMessage()}: {type(exc).__name__}", ()
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_SERVER_LOGGER = logging.getLogger("aiohttp.server")
if not any(isinstance(f, _ClientProtocolErrors) for f in _SERVER_LOGGER.filters):
    _SERVER_LOGGER.addFilter(_ClientProtocolErrors())

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ROLE_KEY = web.AppKey("agola_role", str)
LONG_LIVED_KEY: web.AppKey[set[asyncio.Task[Any]]] = web.AppKey("agola_long_lived")
# Why the role cannot serve right now (None: it can); ``/health`` answers 503 "not synced" then.
HEALTH_PROBE_KEY: web.AppKey[Callable[[], str | None]] = web.AppKey("agola_health_probe")

API_PREFIX = "/api/v1alpha"
HEALTH_PATH = "/health"
# Agola's internal clients send "Authorization: token <t>"; "Bearer <t>" is accepted too.
TOKEN_SCHEMES = ("token", "bearer")


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
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"request body too large (limit {request.client_max_size} bytes)") from None
    if not raw:
        raise BadRequest("request body is empty, expected JSON")
    return parse_json_body(raw)


# No wire type nests nearly this deep; a deeper body is refused before anything recursive sees it.
MAX_JSON_DEPTH = 64


def parse_json_body(raw: bytes | str) -> Any:
    """A request body decoded from JSON; a 400 when it is not JSON or nests deeper than
    ``MAX_JSON_DEPTH`` arrays/objects (``[[[[...]]]]`` would otherwise be a RecursionError, a 500)."""
    too_deep = BadRequest(f"request body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(raw)
    except RecursionError:
        raise too_deep from None
    except ValueError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if _json_depth_exceeds(value, MAX_JSON_DEPTH):
        raise too_deep
    return value


def _json_depth_exceeds(value: Any, limit: int) -> bool:
    """Whether ``value`` nests more than ``limit`` containers (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth + 1 > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


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
    except ConnectionResetError:
        raise
    except Exception as exc:
        log.error("unhandled error", method=request.method, path=request.path, exc_info=exc)
        return error_response(exc)


def _code_for_status(status: int) -> str:
    return {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_exist",
            405: "bad_request", 409: "conflict", 413: "payload_too_large"}.get(status, "internal")


def request_token(request: web.Request) -> str:
    """The token of ``Authorization: token <t>`` (or ``Bearer <t>``), "" when absent."""
    scheme, _, value = request.headers.get("Authorization", "").strip().partition(" ")
    return value.strip() if scheme.lower() in TOKEN_SCHEMES else ""


def api_token_middleware(api_token: str) -> Callable[..., Any]:
    """Every route but ``/health`` requires ``api_token`` (compared in constant time)."""
    expected = api_token.encode()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path != HEALTH_PATH:
            given = request_token(request)
            if not given:
                raise Unauthorized("no API token provided (Authorization: token <internal API token>)")
            if not hmac.compare_digest(given.encode(), expected):
                raise Unauthorized("wrong API token")
        return await handler(request)

    return middleware


@contextmanager
def long_lived(request: web.Request) -> Iterator[None]:
    """Mark the current handler as a long-lived response (an event stream, a followed log): when the
    server stops it is cancelled at once instead of holding the stop for the shutdown timeout."""
    streams = request.app.get(LONG_LIVED_KEY)
    task = asyncio.current_task()
    if streams is None or task is None:
        yield
        return
    streams.add(task)
    try:
        yield
    finally:
        streams.discard(task)


def track_long_lived(app: web.Application) -> None:
    """Let ``long_lived`` responses of ``app`` end when it shuts down (before it is started;
    idempotent). The role host does it for every role's application."""
    if LONG_LIVED_KEY in app:
        return
    app[LONG_LIVED_KEY] = set()
    app.on_shutdown.append(_end_long_lived)


async def _end_long_lived(app: web.Application) -> None:
    # on_shutdown runs after the listener is closed and before in-flight requests are awaited.
    streams = app[LONG_LIVED_KEY]
    for task in list(streams):
        task.cancel()


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
    """200 ``{"status": "ok", ...}``, or 503 ``{"status": "not synced", ..., "reason": ...}`` while
    the role's ``HEALTH_PROBE_KEY`` says it cannot serve (a readdb not caught up, corrupt data)."""
    body = {"status": "ok", "role": request.app[ROLE_KEY], "version": __version__}
    probe = request.app.get(HEALTH_PROBE_KEY)
    problem = probe() if probe is not None else None
    if problem:
        return json_response({**body, "status": "not synced", "reason": problem}, status=503)
    return json_response(body)


async def _version(request: web.Request) -> web.Response:
    return json_response({"version": __version__})


def make_app(role: str, *, api_token: str | None = None, client_max_size: int = 1024 * 1024) -> web.Application:
    """A role's aiohttp application with error handling, request logging, /health and version.

    ``api_token``: the internal API token every route but ``/health`` requires (None or "": open,
    as Agola without a token; config validation only allows that on loopback).
    """
    middlewares = [request_log_middleware(role), error_middleware]
    if api_token:
        middlewares.append(api_token_middleware(api_token))
    app = web.Application(middlewares=middlewares, client_max_size=client_max_size)
    app[ROLE_KEY] = role
    app.router.add_get(HEALTH_PATH, _health)
    app.router.add_get(f"{API_PREFIX}/version", _version)
    return app
