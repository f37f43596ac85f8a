"""The notification role's internal API (Agola v0.9 paths, plus the same for users' direct runs):

    GET /api/v1alpha/{projects|users}/{id}/{runwebhookdeliveries|commitstatusdeliveries}
        ?deliverystatus=...&start=<id>&limit=N&sortdirection=asc|desc     -> [DeliveryResponse]
    PUT /api/v1alpha/{projects|users}/{id}/{kind}/{deliveryid}/redelivery   -> DeliveryResponse

Every route but ``/health`` requires the notification API token (``make_app``). The ids are
project and user ids: the gateway resolves refs and checks permissions.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from agola.errors import BadRequest, Unavailable
from agola.services.notification.store import DeliveryStore
from agola.types.notification import DeliveryKind, OwnerType
from agola.util.http import API_PREFIX, json_response, make_app, query_int

OWNER_PATHS: dict[str, OwnerType] = {"projects": OwnerType.PROJECT, "users": OwnerType.USER}
KIND_PATHS: dict[str, DeliveryKind] = {
    "runwebhookdeliveries": DeliveryKind.RUN_WEBHOOK,
    "commitstatusdeliveries": DeliveryKind.COMMIT_STATUS,
}

StoreSource = Callable[[], DeliveryStore | None]
STORE_KEY: web.AppKey[StoreSource] = web.AppKey("notification_store")
WAKE_KEY: web.AppKey[Callable[[], None]] = web.AppKey("notification_wake")


def _store(request: web.Request) -> DeliveryStore:
    store = request.app[STORE_KEY]()
    if store is None:
        raise Unavailable("the notification role is not started")
    return store


def _path(request: web.Request) -> tuple[OwnerType, str, DeliveryKind]:
    owner = OWNER_PATHS.get(request.match_info["owners"])
    kind = KIND_PATHS.get(request.match_info["kind"])
    if owner is None or kind is None:
        raise BadRequest(f"unknown path {request.path}")
    return owner, request.match_info["ownerid"], kind


def _ascending(request: web.Request) -> bool:
    """Agola's ``sortdirection`` (``asc``, the default, or ``desc``)."""
    direction = request.query.get("sortdirection", "asc") or "asc"
    if direction not in ("asc", "desc"):
        raise BadRequest(f"wrong sortdirection {direction!r} (expected asc or desc)")
    return direction == "asc"


async def list_deliveries(request: web.Request) -> web.Response:
    owner, owner_id, kind = _path(request)
    page = await _store(request).list(
        owner, owner_id, kind, statuses=request.query.getall("deliverystatus", []),
        start=request.query.get("start", ""), limit=query_int(request, "limit", 0),
        asc=_ascending(request))
    headers = {"X-Agola-HasMore": "true"} if page.has_more else None
    return json_response([d.response().to_json() for d in page.deliveries], headers=headers)


async def redeliver(request: web.Request) -> web.Response:
    owner, owner_id, kind = _path(request)
    d = await _store(request).redeliver(owner, owner_id, kind, request.match_info["deliveryid"])
    request.app[WAKE_KEY]()  # the sender sends it now
    return json_response(d.response().to_json(), status=201)


def build_app(store: StoreSource, wake: Callable[[], None], *, api_token: str) -> web.Application:
    app = make_app("notification", api_token=api_token)
    app[STORE_KEY] = store
    app[WAKE_KEY] = wake
    base = f"{API_PREFIX}/{{owners:projects|users}}/{{ownerid}}/{{kind:runwebhookdeliveries|commitstatusdeliveries}}"
    app.router.add_get(base, list_deliveries)
    app.router.add_put(f"{base}/{{deliveryid}}/redelivery", redeliver)
    return app
