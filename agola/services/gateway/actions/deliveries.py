"""Run webhook and commit status deliveries (Agola v0.9), kept by the notification role: listed
and redelivered by whoever may act on the runs they are about (``CanDoRunActions``: a project's
owners, a user for their own direct runs, the admin)."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from agola.errors import BadRequest, NotExist, Unavailable
from agola.roleclients.notification import NotificationClient
from agola.services.gateway.actions import Services
from agola.services.gateway.auth import Identity
from agola.services.gateway.permissions import can_do_run_actions, deny, require_user
from agola.types.notification import DeliveryKind, DeliveryResponse, OwnerType

MAX_LIMIT = 100


@attrs.frozen
class DeliveriesQuery:
    statuses: tuple[str, ...] = ()
    start: str = ""
    limit: int = 0
    asc: bool = True


def _client(svc: Services) -> NotificationClient:
    client = svc.extra.get("notification")
    if not isinstance(client, NotificationClient):
        raise Unavailable("no notification role is configured (gateway.notificationURL)")
    return client


async def _owner(svc: Services, ident: Identity, owner_type: OwnerType, ref: str) -> str:
    """The owner id behind ``ref``, once the caller may act on its runs."""
    require_user(ident)
    if owner_type is OwnerType.PROJECT:
        owner_id = (await svc.configstore.get_project(ref)).project.id
    else:
        owner_id = (await svc.configstore.get_user(ref)).id
    if not await can_do_run_actions(svc.configstore, ident, f"/{owner_type}/{owner_id}"):
        raise deny(ident, "see the deliveries of these runs")
    return owner_id


async def list_deliveries(svc: Services, ident: Identity, owner_type: OwnerType, ref: str, kind: DeliveryKind,
                          q: DeliveriesQuery) -> tuple[list[DeliveryResponse], bool]:
    if q.start and q.statuses:
        raise BadRequest("only one of start or deliverystatus should be provided")
    owner_id = await _owner(svc, ident, owner_type, ref)
    limit = min(q.limit, MAX_LIMIT) if q.limit > 0 else 0
    return await _client(svc).list_deliveries(owner_type, owner_id, kind, statuses=q.statuses, start=q.start,
                                              limit=limit, asc=q.asc)


async def redeliver(svc: Services, ident: Identity, owner_type: OwnerType, ref: str, kind: DeliveryKind,
                    delivery_id: str) -> DeliveryResponse:
    owner_id = await _owner(svc, ident, owner_type, ref)
    if not delivery_id:
        raise NotExist("delivery '' does not exist")
    return await _client(svc).redeliver(owner_type, owner_id, kind, delivery_id)


__all__: Sequence[str] = ["DeliveriesQuery", "list_deliveries", "redeliver"]
