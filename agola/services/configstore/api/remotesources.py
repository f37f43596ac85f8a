"""Remote sources (spec §5.6)."""

from __future__ import annotations

from aiohttp import web

from agola.services.configstore.api.common import actions_of, body, created, no_content, ok, ref, top_page
from agola.types.configstore import RemoteSource
from agola.util.http import API_PREFIX


async def list_remote_sources(request: web.Request) -> web.Response:
    page = top_page(request)
    return ok(await actions_of(request).list_remote_sources(page.start, page.limit, page.asc))


async def get_remote_source(request: web.Request) -> web.Response:
    return ok(await actions_of(request).get_remote_source(ref(request, "rsref")))


async def create_remote_source(request: web.Request) -> web.Response:
    rs = await body(request, RemoteSource.from_json)
    return created(await actions_of(request).create_remote_source(rs))


async def update_remote_source(request: web.Request) -> web.Response:
    rs = await body(request, RemoteSource.from_json)
    return created(await actions_of(request).update_remote_source(ref(request, "rsref"), rs))


async def delete_remote_source(request: web.Request) -> web.Response:
    await actions_of(request).delete_remote_source(ref(request, "rsref"))
    return no_content()


def add_routes(app: web.Application) -> None:
    p = f"{API_PREFIX}/remotesources"
    r = app.router
    r.add_get(p, list_remote_sources)
    r.add_post(p, create_remote_source)
    r.add_get(p + "/{rsref}", get_remote_source)
    r.add_put(p + "/{rsref}", update_remote_source)
    r.add_delete(p + "/{rsref}", delete_remote_source)
