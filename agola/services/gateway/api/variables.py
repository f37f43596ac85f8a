"""``/projects/{ref}/variables`` and ``/projectgroups/{ref}/variables``."""

from __future__ import annotations

from aiohttp import web

from agola.client import types as wire
from agola.services.gateway.actions import secrets as actions
from agola.services.gateway.api import serialize
from agola.services.gateway.api.common import ctx, json_object, no_content, str_field
from agola.services.gateway.api.secrets import PARENT_QUERY, parent
from agola.services.gateway.openapi import api_op
from agola.util.http import API_PREFIX, json_response, query_bool


@api_op(response=wire.VariableResponse, many=True, query=PARENT_QUERY)
async def list_variables(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    items = await actions.list_variables(svc, ident, *parent(request), query_bool(request, "tree"),
                                         query_bool(request, "removeoverridden"))
    return json_response([serialize.variable(v) for v in items])


@api_op(body=wire.CreateVariableRequest, response=wire.VariableResponse, status=201)
async def create_variable(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    body = await json_object(request)
    v = await actions.create_variable(svc, ident, *parent(request), str_field(body, "name"), body.get("values"))
    return json_response({"id": v.id, "name": v.name}, status=201)


@api_op(body=wire.UpdateVariableRequest, response=wire.VariableResponse)
async def update_variable(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    body = await json_object(request)
    v = await actions.update_variable(svc, ident, *parent(request), request.match_info["name"],
                                      str_field(body, "name"), body.get("values"))
    return json_response({"id": v.id, "name": v.name})


@api_op(status=204)
async def delete_variable(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    await actions.delete_variable(svc, ident, *parent(request), request.match_info["name"])
    return no_content()


def add_routes(app: web.Application) -> None:
    p = f"{API_PREFIX}/{{collection:projects|projectgroups}}/{{ref}}/variables"
    app.router.add_get(p, list_variables)
    app.router.add_post(p, create_variable)
    app.router.add_put(f"{p}/{{name}}", update_variable)
    app.router.add_delete(f"{p}/{{name}}", delete_variable)
