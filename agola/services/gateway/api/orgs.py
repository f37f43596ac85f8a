"""``/orgs``: organizations and members."""

from __future__ import annotations

from aiohttp import web

from agola.client import types as wire
from agola.services.gateway.actions import orgs as actions
from agola.services.gateway.api import serialize
from agola.services.gateway.api.common import ctx, json_object, no_content, paging, str_field
from agola.services.gateway.openapi import PAGING, api_op
from agola.util.http import API_PREFIX, json_response


@api_op(response=wire.OrgResponse, auth="optional")
async def get_org(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    return json_response(serialize.org(await actions.get_org(svc, ident, request.match_info["orgref"])))


@api_op(response=wire.OrgResponse, many=True, query=PAGING, auth="optional")
async def list_orgs(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    return json_response([serialize.org(o) for o in await actions.list_orgs(svc, ident, *paging(request))])


@api_op(body=wire.CreateOrgRequest, response=wire.OrgResponse, status=201)
async def create_org(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    body = await json_object(request)
    org = await actions.create_org(svc, ident, str_field(body, "name"), str_field(body, "visibility"))
    return json_response(serialize.org(org), status=201)


@api_op(status=204)
async def delete_org(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    await actions.delete_org(svc, ident, request.match_info["orgref"])
    return no_content()


@api_op(response=wire.OrgMembersResponse, auth="optional")
async def members(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    return json_response(serialize.org_members(await actions.get_org_members(svc, ident, request.match_info["orgref"])))


@api_op(body=wire.AddOrgMemberRequest, response=wire.AddOrgMemberResponse)
async def add_member(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    body = await json_object(request)
    member = await actions.add_org_member(svc, ident, request.match_info["orgref"], request.match_info["userref"],
                                          str_field(body, "role"))
    return json_response(serialize.org_member(member))


@api_op(status=204)
async def remove_member(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    await actions.remove_org_member(svc, ident, request.match_info["orgref"], request.match_info["userref"])
    return no_content()


def add_routes(app: web.Application) -> None:
    p = API_PREFIX
    app.router.add_get(f"{p}/orgs", list_orgs)
    app.router.add_post(f"{p}/orgs", create_org)
    app.router.add_get(f"{p}/orgs/{{orgref}}", get_org)
    app.router.add_delete(f"{p}/orgs/{{orgref}}", delete_org)
    app.router.add_get(f"{p}/orgs/{{orgref}}/members", members)
    app.router.add_put(f"{p}/orgs/{{orgref}}/members/{{userref}}", add_member)
    app.router.add_delete(f"{p}/orgs/{{orgref}}/members/{{userref}}", remove_member)
