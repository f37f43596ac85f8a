"""Run webhook and commit status deliveries through the gateway (Agola v0.9 endpoints, plus the
same under ``/users/{ref}`` for direct runs). Kept beside ``GatewayClient`` as functions taking
it; like the rest of ``agola.client`` it imports nothing from the server.

    async with GatewayClient(url, token=t) as gw:
        for d in await list_deliveries(gw, "user", "user01"):
            print(d.id, d.delivery_status, d.status_code)
        await redeliver(gw, "user", "user01", d.id)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import attrs

from agola.client.gateway import GatewayClient, Query, ref
from agola.client.types import Wire

OwnerKind = Literal["project", "user"]
DeliveryKind = Literal["runwebhook", "commitstatus"]
_OWNERS = {"project": "projects", "user": "users"}
_KINDS = {"runwebhook": "runwebhookdeliveries", "commitstatus": "commitstatusdeliveries"}


@attrs.frozen
class DeliveryResponse(Wire):
    id: str = ""
    sequence: int = 0
    delivery_status: str = ""  # notDelivered | delivered | deliveryError
    delivered_at: str | None = None
    status_code: int = 0
    attempts: int = 0
    run_id: str = ""
    created_at: str | None = None
    last_error: str = ""
    redelivery_of: str = ""
    commit_status_state: str = ""


def _path(owner: OwnerKind, owner_ref: str, kind: DeliveryKind) -> str:
    return f"/{_OWNERS[owner]}/{ref(owner_ref)}/{_KINDS[kind]}"


async def list_deliveries(gw: GatewayClient, owner: OwnerKind, owner_ref: str, kind: DeliveryKind = "runwebhook", *,
                          statuses: Sequence[str] = (), start: str = "", limit: int = 0,
                          desc: bool = False) -> list[DeliveryResponse]:
    """The deliveries of a project's runs (``owner="project"``) or of a user's direct runs."""
    query: Query = [("deliverystatus", s) for s in statuses]
    if start:
        query = [*query, ("start", start)]
    if limit:
        query = [*query, ("limit", str(limit))]
    query = [*query, ("sortdirection", "desc" if desc else "asc")]
    raw = await gw.call("GET", _path(owner, owner_ref, kind), query=query)
    return [DeliveryResponse.from_json(d) for d in raw or []]


async def redeliver(gw: GatewayClient, owner: OwnerKind, owner_ref: str, delivery_id: str,
                    kind: DeliveryKind = "runwebhook") -> DeliveryResponse:
    """Send a delivery's message again, as a new delivery (refused while one is in progress)."""
    raw = await gw.call("PUT", f"{_path(owner, owner_ref, kind)}/{ref(delivery_id)}/redelivery")
    return DeliveryResponse.from_json(raw or {})


__all__ = ["DeliveryResponse", "list_deliveries", "redeliver"]
