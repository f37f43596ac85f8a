"""Project groups, their subgroups and projects (spec §5.6). Refs are ids or paths
(``org/org01/group01``, sent escaped as one path segment)."""

from __future__ import annotations

from aiohttp import web

from agola.services.configstore.api.common import actions_of, body, created, no_content, ok, paginate, ref, sub_page
from agola.types.configstore import ProjectGroup
from agola.util.http import API_PREFIX


async def get_project_group(request: web.Request) -> web.Response:
    return ok(await actions_of(request).get_project_group(ref(request, "pgref")))


async def subgroups(request: web.Request) -> web.Response:
    out = await actions_of(request).get_project_group_subgroups(ref(request, "pgref"))
    return ok(paginate(out, lambda g: g.project_group.name, sub_page(request)))


async def projects(request: web.Request) -> web.Response:
    out = await actions_of(request).get_project_group_projects(ref(request, "pgref"))
    return ok(paginate(out, lambda p: p.project.name, sub_page(request)))


async def create_project_group(request: web.Request) -> web.Response:
    req = await body(request, ProjectGroup.from_json)
    return created(await actions_of(request).create_project_group(req))


async def update_project_group(request: web.Request) -> web.Response:
    req = await body(request, ProjectGroup.from_json)
    return created(await actions_of(request).update_project_group(ref(request, "pgref"), req))


async def delete_project_group(request: web.Request) -> web.Response:
    await actions_of(request).delete_project_group(ref(request, "pgref"))
    return no_content()


def add_routes(app: web.Application) -> None:
    p = f"{API_PREFIX}/projectgroups"
    r = app.router
    r.add_post(p, create_project_group)
    r.add_get(p + "/{pgref}", get_project_group)
    r.add_put(p + "/{pgref}", update_project_group)
    r.add_delete(p + "/{pgref}", delete_project_group)
    r.add_get(p + "/{pgref}/subgroups", subgroups)
    r.add_get(p + "/{pgref}/projects", projects)
