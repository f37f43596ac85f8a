"""``/projectgroups``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from agola.client import types as wire
from agola.services.gateway.actions import projects as actions
from agola.services.gateway.api import serialize
from agola.services.gateway.api.common import ctx, json_object, no_content, str_field
from agola.services.gateway.openapi import api_op
from agola.util.http import API_PREFIX, json_response


def _ref(request: web.Request) -> str:
    return request.match_info["ref"]


def update_from(body: dict[str, Any]) -> actions.ProjectGroupUpdate:
    return actions.ProjectGroupUpdate(name=str_field(body, "name", optional=True),
                                      parent_ref=str_field(body, "parent_ref", optional=True),
                                      visibility=str_field(body, "visibility", optional=True))


@api_op(response=wire.ProjectGroupResponse, auth="optional")
async def get_group(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    return json_response(serialize.project_group(await actions.get_project_group(svc, ident, _ref(request))))


@api_op(response=wire.ProjectGroupResponse, many=True, auth="optional")
async def subgroups(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    groups = await actions.get_project_group_subgroups(svc, ident, _ref(request))
    return json_response([serialize.project_group(g) for g in groups])


@api_op(response=wire.ProjectResponse, many=True, auth="optional")
async def projects(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    items = await actions.get_project_group_projects(svc, ident, _ref(request))
    return json_response([serialize.project(p) for p in items])


@api_op(body=wire.CreateProjectGroupRequest, response=wire.ProjectGroupResponse, status=201)
async def create_group(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    body = await json_object(request)
    group = await actions.create_project_group(svc, ident, str_field(body, "name"), str_field(body, "parent_ref"),
                                               str_field(body, "visibility"))
    return json_response(serialize.project_group(group), status=201)


@api_op(body=wire.UpdateProjectGroupRequest, response=wire.ProjectGroupResponse, status=201)
async def update_group(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    body = await json_object(request)
    group = await actions.update_project_group(svc, ident, _ref(request), update_from(body))
    return json_response(serialize.project_group(group), status=201)


@api_op(status=204)
async def delete_group(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    await actions.delete_project_group(svc, ident, _ref(request))
    return no_content()


def add_routes(app: web.Application) -> None:
    p = f"{API_PREFIX}/projectgroups"
    app.router.add_post(p, create_group)
    app.router.add_get(f"{p}/{{ref}}", get_group)
    app.router.add_put(f"{p}/{{ref}}", update_group)
    app.router.add_delete(f"{p}/{{ref}}", delete_group)
    app.router.add_get(f"{p}/{{ref}}/subgroups", subgroups)
    app.router.add_get(f"{p}/{{ref}}/projects", projects)
