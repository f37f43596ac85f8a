"""What every configstore handler shares: the role, the action handler, refs and pagination."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

import attrs
from aiohttp import web

from agola.errors import BadRequest
from agola.services.configstore.actions import ActionHandler
from agola.storage.datamanager import DataManager
from agola.types.maintenance import MaintenanceStatus
from agola.util.http import json_response, query_bool, query_int, read_json

T = TypeVar("T")


class ConfigstoreService(Protocol):
    """The configstore as its handlers see it (``ConfigstoreRole`` in a server)."""

    @property
    def maintenance(self) -> bool: ...

    @property
    def dm(self) -> DataManager | None: ...

    def require_actions(self) -> ActionHandler: ...

    async def maintenance_status(self) -> MaintenanceStatus: ...


ROLE: web.AppKey[ConfigstoreService] = web.AppKey("configstore_role")


def role_of(request: web.Request) -> ConfigstoreService:
    return request.app[ROLE]


def actions_of(request: web.Request) -> ActionHandler:
    return role_of(request).require_actions()


def ref(request: web.Request, name: str) -> str:
    """A ref from the URL path, already unescaped (``user%2Fu1`` arrives as ``user/u1``)."""
    value = request.match_info[name]
    if not value:
        raise BadRequest(f"empty {name}")
    return value


def created(data: Any) -> web.Response:
    return json_response(_json(data), status=201)


def ok(data: Any) -> web.Response:
    return json_response(_json(data), status=200)


def no_content() -> web.Response:
    return web.Response(status=204)


def _json(data: Any) -> Any:
    if isinstance(data, list):
        return [_json(d) for d in data]
    to_json = getattr(data, "to_json", None)
    return to_json() if to_json is not None else data


@attrs.frozen
class Page:
    """``start`` (exclusive name), ``limit`` and ``asc`` of a list request."""

    start: str = ""
    limit: int = 0
    asc: bool = True

    @property
    def given(self) -> bool:
        return bool(self.start or self.limit)


def top_page(request: web.Request) -> Page:
    """Paging of the top-level lists (users, orgs, remote sources), as the reference: ``asc``
    present means ascending, absent descending; ``limit`` 0 means the default (10), at most 20."""
    return Page(request.query.get("start", ""), query_int(request, "limit", 0), query_bool(request, "asc", False))


def sub_page(request: web.Request) -> Page:
    """Paging of the lists below an object (subgroups, projects, members, orgs of a user,
    secrets, variables): by default everything in ascending name order; ``start`` (exclusive
    name), ``limit`` (0 = no limit) and ``asc=false`` narrow it."""
    return Page(request.query.get("start", ""), query_int(request, "limit", 0), query_bool(request, "asc", True))


def paginate(items: Iterable[T], key: Callable[[T], str], page: Page) -> list[T]:
    out = sorted(items, key=key, reverse=not page.asc)
    if page.start:
        out = [i for i in out if (key(i) > page.start if page.asc else key(i) < page.start)]
    if page.limit:
        out = out[: page.limit]
    return out


async def body(request: web.Request, cls: Callable[[Any], T]) -> T:
    """The JSON body decoded with ``cls`` (a ``from_json``); a wrong shape is a 400."""
    return cls(await read_json(request))
