"""``/remotesources``."""

from __future__ import annotations

from aiohttp import web

from agola.client import types as wire
from agola.services.gateway.actions import remotesources as actions
from agola.services.gateway.api import serialize
from agola.services.gateway.api.common import ctx, json_object, no_content, paging
from agola.services.gateway.openapi import PAGING, api_op
from agola.util.http import API_PREFIX, json_response


@api_op(response=wire.RemoteSourceResponse, auth="optional")
async def get_rs(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    return json_response(serialize.remote_source(await actions.get_remote_source(svc, ident, request.match_info["ref"])))


@api_op(response=wire.RemoteSourceResponse, many=True, query=PAGING, auth="optional")
async def list_rs(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    items = await actions.list_remote_sources(svc, ident, *paging(request))
    return json_response([serialize.remote_source(r) for r in items])


@api_op(body=wire.CreateRemoteSourceRequest, response=wire.RemoteSourceResponse, status=201)
async def create_rs(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    rs = await actions.create_remote_source(svc, ident, await json_object(request))
    return json_response(serialize.remote_source(rs), status=201)


@api_op(body=wire.UpdateRemoteSourceRequest, response=wire.RemoteSourceResponse, status=201)
async def update_rs(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    rs = await actions.update_remote_source(svc, ident, request.match_info["ref"], await json_object(request))
    return json_response(serialize.remote_source(rs), status=201)


@api_op(status=204)
async def delete_rs(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    await actions.delete_remote_source(svc, ident, request.match_info["ref"])
    return no_content()


def add_routes(app: web.Application) -> None:
    p = f"{API_PREFIX}/remotesources"
    app.router.add_get(p, list_rs)
    app.router.add_post(p, create_rs)
    app.router.add_get(f"{p}/{{ref}}", get_rs)
    app.router.add_put(f"{p}/{{ref}}", update_rs)
    app.router.add_delete(f"{p}/{{ref}}", delete_rs)
