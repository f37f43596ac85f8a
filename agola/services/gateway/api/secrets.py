"""``/projects/{ref}/secrets`` and ``/projectgroups/{ref}/secrets``."""

from __future__ import annotations

from aiohttp import web

from agola.client import types as wire
from agola.services.gateway.actions import secrets as actions
from agola.services.gateway.api import serialize
from agola.services.gateway.api.common import ctx, json_object, no_content, str_field
from agola.services.gateway.openapi import Query, api_op
from agola.util.http import API_PREFIX, json_response, query_bool

COLLECTIONS = {"projects": "project", "projectgroups": "projectgroup"}

PARENT_QUERY = (Query("tree", "boolean"), Query("removeoverridden", "boolean"))


def parent(request: web.Request) -> tuple[str, str]:
    return COLLECTIONS[request.match_info["collection"]], request.match_info["ref"]


@api_op(response=wire.SecretResponse, many=True, query=PARENT_QUERY)
async def list_secrets(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    items = await actions.list_secrets(svc, ident, *parent(request), query_bool(request, "tree"),
                                       query_bool(request, "removeoverridden"))
    return json_response([serialize.secret(s) for s in items])


@api_op(body=wire.CreateSecretRequest, response=wire.SecretResponse, status=201)
async def create_secret(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    body = await json_object(request)
    s = await actions.create_secret(svc, ident, *parent(request), str_field(body, "name"), str_field(body, "type"),
                                    body.get("data"))
    return json_response({"id": s.id, "name": s.name}, status=201)


@api_op(body=wire.UpdateSecretRequest, response=wire.SecretResponse)
async def update_secret(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    body = await json_object(request)
    s = await actions.update_secret(svc, ident, *parent(request), request.match_info["name"], str_field(body, "name"),
                                    str_field(body, "type"), body.get("data"))
    return json_response({"id": s.id, "name": s.name})


@api_op(status=204)
async def delete_secret(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    await actions.delete_secret(svc, ident, *parent(request), request.match_info["name"])
    return no_content()


def add_routes(app: web.Application) -> None:
    p = f"{API_PREFIX}/{{collection:projects|projectgroups}}/{{ref}}/secrets"
    app.router.add_get(p, list_secrets)
    app.router.add_post(p, create_secret)
    app.router.add_put(f"{p}/{{name}}", update_secret)
    app.router.add_delete(f"{p}/{{name}}", delete_secret)
