"""Projects (spec §5.6). Refs are ids or paths (``org/org01/group01/project01``)."""

from __future__ import annotations

from aiohttp import web

from agola.services.configstore.api.common import actions_of, body, created, no_content, ok, ref
from agola.types.configstore import Project
from agola.util.http import API_PREFIX


async def get_project(request: web.Request) -> web.Response:
    return ok(await actions_of(request).get_project(ref(request, "projectref")))


async def create_project(request: web.Request) -> web.Response:
    req = await body(request, Project.from_json)
    return created(await actions_of(request).create_project(req))


async def update_project(request: web.Request) -> web.Response:
    req = await body(request, Project.from_json)
    return created(await actions_of(request).update_project(ref(request, "projectref"), req))


async def delete_project(request: web.Request) -> web.Response:
    await actions_of(request).delete_project(ref(request, "projectref"))
    return no_content()


def add_routes(app: web.Application) -> None:
    p = f"{API_PREFIX}/projects"
    r = app.router
    r.add_post(p, create_project)
    r.add_get(p + "/{projectref}", get_project)
    r.add_put(p + "/{projectref}", update_project)
    r.add_delete(p + "/{projectref}", delete_project)
