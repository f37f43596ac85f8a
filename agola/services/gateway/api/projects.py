"""``/projects``."""

from __future__ import annotations

from aiohttp import web

from agola.client import types as wire
from agola.errors import BadRequest
from agola.services.gateway.actions import projects as actions
from agola.services.gateway.api import serialize
from agola.services.gateway.api.common import bool_field, ctx, json_object, no_content, str_field
from agola.services.gateway.api.projectgroups import update_from
from agola.services.gateway.openapi import api_op
from agola.util.http import API_PREFIX, json_response


def _ref(request: web.Request) -> str:
    return request.match_info["ref"]


@api_op(response=wire.ProjectResponse, auth="optional")
async def get_project(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    return json_response(serialize.project(await actions.get_project(svc, ident, _ref(request))))


@api_op(body=wire.CreateProjectRequest, response=wire.ProjectResponse, status=201)
async def create_project(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    body = await json_object(request)
    project = await actions.create_project(
        svc, ident, str_field(body, "name"), str_field(body, "parent_ref"), str_field(body, "visibility"),
        repo_path=str_field(body, "repo_path"), remote_source_name=str_field(body, "remote_source_name"),
        skip_ssh_host_key_check=bool_field(body, "skip_ssh_host_key_check"))
    return json_response(serialize.project(project), status=201)


@api_op(body=wire.UpdateProjectRequest, response=wire.ProjectResponse, status=201)
async def update_project(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    body = await json_object(request)
    forked = body.get("pass_vars_to_forked_pr")
    if forked is not None and not isinstance(forked, bool):
        raise BadRequest("pass_vars_to_forked_pr: expected a boolean")
    project = await actions.update_project(svc, ident, _ref(request), update_from(body), forked)
    return json_response(serialize.project(project), status=201)


@api_op(status=204)
async def delete_project(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    await actions.delete_project(svc, ident, _ref(request))
    return no_content()


@api_op(status=204)
async def reconfig(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    await actions.reconfig_project(svc, ident, _ref(request))
    return no_content()


@api_op(body=wire.ProjectCreateRunRequest, response=wire.CreatedRunsResponse, status=201)
async def create_run(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    body = await json_object(request)
    runs = await actions.project_create_run(
        svc, ident, _ref(request), branch=str_field(body, "branch"), tag=str_field(body, "tag"),
        git_ref=str_field(body, "ref"), commit_sha=str_field(body, "commit_sha"))
    return json_response({"runs": [{"id": r.id, "counter": r.counter, "name": r.name} for r in runs]}, status=201)


def add_routes(app: web.Application) -> None:
    p = f"{API_PREFIX}/projects"
    app.router.add_post(p, create_project)
    app.router.add_get(f"{p}/{{ref}}", get_project)
    app.router.add_put(f"{p}/{{ref}}", update_project)
    app.router.add_delete(f"{p}/{{ref}}", delete_project)
    app.router.add_put(f"{p}/{{ref}}/reconfig", reconfig)
    app.router.add_post(f"{p}/{{ref}}/createrun", create_run)
