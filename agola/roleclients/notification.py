"""Typed client of the notification role's internal API (used by the gateway): run webhook and
commit status deliveries of a project (``projects``) or of a user's direct runs (``users``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from agola.roleclients.base import HTTPClient
from agola.types.notification import DeliveryKind, DeliveryResponse, OwnerType

_OWNERS = {OwnerType.PROJECT: "projects", OwnerType.USER: "users"}
_KINDS = {DeliveryKind.RUN_WEBHOOK: "runwebhookdeliveries", DeliveryKind.COMMIT_STATUS: "commitstatusdeliveries"}


def _path(owner_type: OwnerType, owner_id: str, kind: DeliveryKind) -> str:
    return f"/{_OWNERS[owner_type]}/{quote(owner_id, safe='')}/{_KINDS[kind]}"


class NotificationClient(HTTPClient):
    async def list_deliveries(self, owner_type: OwnerType, owner_id: str, kind: DeliveryKind, *,
                              statuses: Sequence[str] = (), start: str = "", limit: int = 0,
                              asc: bool = True) -> tuple[list[DeliveryResponse], bool]:
        """A page of deliveries and whether more follow."""
        params: dict[str, Any] = {"sortdirection": "asc" if asc else "desc"}
        if statuses:
            params["deliverystatus"] = list(statuses)
        if start:
            params["start"] = start
        if limit:
            params["limit"] = limit
        resp = await self.request("GET", _path(owner_type, owner_id, kind), params=params)
        async with resp:
            raw = await resp.json()
            more = resp.headers.get("X-Agola-HasMore") == "true"
        return [DeliveryResponse.from_json(d, path=f"[{i}]") for i, d in enumerate(raw)], more

    async def redeliver(self, owner_type: OwnerType, owner_id: str, kind: DeliveryKind,
                        delivery_id: str) -> DeliveryResponse:
        path = f"{_path(owner_type, owner_id, kind)}/{quote(delivery_id, safe='')}/redelivery"
        return DeliveryResponse.from_json(await self.json("PUT", path))


__all__ = ["NotificationClient"]
