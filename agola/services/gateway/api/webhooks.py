"""``POST /webhooks?projectid=<id>``: forge deliveries (no agola authentication: the delivery's
signature is checked with the project's webhook secret, ``actions/webhooks.py``)."""

from __future__ import annotations

from aiohttp import web

from agola.errors import PayloadTooLarge
from agola.services.gateway.actions import webhooks as actions
from agola.services.gateway.api.common import services
from agola.services.gateway.openapi import Query, api_op
from agola.util.http import json_response


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The whole body, or 413 past ``limit`` bytes (whatever Content-Length says)."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"webhook body too large ({request.content_length} bytes, limit {limit} bytes)")
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"webhook body too large (limit {limit} bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


@api_op(body_media="application/json", query=(Query("projectid"),), auth="none")
async def webhook(request: web.Request) -> web.Response:
    svc = services(request)
    body = await read_limited(request, actions.MAX_BODY)
    res = await actions.handle_webhook(svc, request.query.get("projectid", ""), request.headers, body)
    return json_response({"runs": [{"id": r.id, "counter": r.counter, "name": r.name} for r in res.runs],
                          "message": res.note or f"{len(res.runs)} run(s) created"})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/webhooks", webhook)
