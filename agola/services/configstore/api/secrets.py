"""Secrets and variables of projects and project groups (spec §5.5, §5.6).

``GET .../secrets`` lists one level; with ``tree`` every level from the object up to its root
group, nearest first; with ``removeoverridden`` too, only the nearest of each name. Variables
follow the same pattern under ``.../variables``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web

from agola.errors import BadRequest
from agola.services.configstore.api.common import (
    actions_of,
    body,
    created,
    no_content,
    ok,
    paginate,
    ref,
    sub_page,
)
from agola.services.configstore.tree import remove_overridden
from agola.types.configstore import ConfigType, Secret, Variable
from agola.util.http import API_PREFIX, query_bool

# URL collection -> parent type
PARENTS = {"projects": ConfigType.PROJECT, "projectgroups": ConfigType.PROJECTGROUP}


def _parent(request: web.Request) -> tuple[str, str]:
    return PARENTS[request.match_info["parents"]], ref(request, "parentref")


def _listing(request: web.Request, items: Sequence[Any], tree: bool, name: Any) -> list[Any]:
    page = sub_page(request)
    if query_bool(request, "removeoverridden"):
        items = remove_overridden(items)
    if not tree:
        return paginate(items, name, page)
    # A tree keeps its order (nearest level first): only a limit applies.
    if page.start or not page.asc:
        raise BadRequest("start and asc cannot be used with tree (the order is nearest level first)")
    return list(items[: page.limit] if page.limit else items)


def _tree(request: web.Request) -> bool:
    tree = query_bool(request, "tree")
    if query_bool(request, "removeoverridden") and not tree:
        raise BadRequest("removeoverridden needs tree")
    return tree


async def list_secrets(request: web.Request) -> web.Response:
    tree = _tree(request)
    items = await actions_of(request).get_secrets(*_parent(request), tree=tree)
    return ok(_listing(request, items, tree, lambda s: s.secret.name))


async def create_secret(request: web.Request) -> web.Response:
    req = await body(request, Secret.from_json)
    return created(await actions_of(request).create_secret(*_parent(request), req))


async def update_secret(request: web.Request) -> web.Response:
    req = await body(request, Secret.from_json)
    return ok(await actions_of(request).update_secret(*_parent(request), ref(request, "name"), req))


async def delete_secret(request: web.Request) -> web.Response:
    await actions_of(request).delete_secret(*_parent(request), ref(request, "name"))
    return no_content()


async def list_variables(request: web.Request) -> web.Response:
    tree = _tree(request)
    items = await actions_of(request).get_variables(*_parent(request), tree=tree)
    return ok(_listing(request, items, tree, lambda v: v.variable.name))


async def create_variable(request: web.Request) -> web.Response:
    req = await body(request, Variable.from_json)
    return created(await actions_of(request).create_variable(*_parent(request), req))


async def update_variable(request: web.Request) -> web.Response:
    req = await body(request, Variable.from_json)
    return ok(await actions_of(request).update_variable(*_parent(request), ref(request, "name"), req))


async def delete_variable(request: web.Request) -> web.Response:
    await actions_of(request).delete_variable(*_parent(request), ref(request, "name"))
    return no_content()


def add_routes(app: web.Application) -> None:
    r = app.router
    base = API_PREFIX + "/{parents:projects|projectgroups}/{parentref}"
    r.add_get(base + "/secrets", list_secrets)
    r.add_post(base + "/secrets", create_secret)
    r.add_put(base + "/secrets/{name}", update_secret)
    r.add_delete(base + "/secrets/{name}", delete_secret)
    r.add_get(base + "/variables", list_variables)
    r.add_post(base + "/variables", create_variable)
    r.add_put(base + "/variables/{name}", update_variable)
    r.add_delete(base + "/variables/{name}", delete_variable)
