"""``/projects/{ref}/{runwebhookdeliveries|commitstatusdeliveries}`` (Agola v0.9) and the same
under ``/users/{ref}`` for direct runs: list (``deliverystatus``, ``start``, ``limit``,
``sortdirection``) and ``PUT .../{deliveryid}/redelivery``."""

from __future__ import annotations

from aiohttp import web

from agola.errors import BadRequest
from agola.services.gateway.actions import deliveries as actions
from agola.services.gateway.api.common import ctx
from agola.services.gateway.openapi import Query, api_op
from agola.types.notification import DeliveryKind, DeliveryResponse, OwnerType
from agola.util.http import API_PREFIX, json_response, query_int

_OWNERS = {"projects": OwnerType.PROJECT, "users": OwnerType.USER}
_KINDS = {"runwebhookdeliveries": DeliveryKind.RUN_WEBHOOK, "commitstatusdeliveries": DeliveryKind.COMMIT_STATUS}

DELIVERIES_QUERY = (Query("deliverystatus", many=True), Query("start"), Query("limit", "integer"),
                    Query("sortdirection", enum=("asc", "desc")))


def _target(request: web.Request) -> tuple[OwnerType, str, DeliveryKind]:
    return (_OWNERS[request.match_info["owners"]], request.match_info["ref"], _KINDS[request.match_info["kind"]])


@api_op(response=DeliveryResponse, many=True, query=DELIVERIES_QUERY)
async def list_deliveries(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    owner_type, ref, kind = _target(request)
    direction = request.query.get("sortdirection", "asc") or "asc"
    if direction not in ("asc", "desc"):
        raise BadRequest(f"wrong sortdirection {direction!r} (expected asc or desc)")
    q = actions.DeliveriesQuery(statuses=tuple(request.query.getall("deliverystatus", [])),
                                start=request.query.get("start", ""), limit=query_int(request, "limit", 0),
                                asc=direction == "asc")
    found, more = await actions.list_deliveries(svc, ident, owner_type, ref, kind, q)
    headers = {"X-Agola-HasMore": "true"} if more else None
    return json_response([d.to_json() for d in found], headers=headers)


@api_op(response=DeliveryResponse, status=201)
async def redeliver(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    owner_type, ref, kind = _target(request)
    d = await actions.redeliver(svc, ident, owner_type, ref, kind, request.match_info["deliveryid"])
    return json_response(d.to_json(), status=201)


def add_routes(app: web.Application) -> None:
    base = f"{API_PREFIX}/{{owners:projects|users}}/{{ref}}/{{kind:runwebhookdeliveries|commitstatusdeliveries}}"
    app.router.add_get(base, list_deliveries)
    app.router.add_put(f"{base}/{{deliveryid}}/redelivery", redeliver)
