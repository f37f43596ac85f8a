"""Organizations and their members (spec §5.6)."""

from __future__ import annotations

from aiohttp import web

from agola.services.configstore.api.common import (
    actions_of,
    body,
    created,
    no_content,
    ok,
    paginate,
    ref,
    sub_page,
    top_page,
)
from agola.types.configstore import AddOrgMemberRequest, Organization
from agola.util.http import API_PREFIX


async def list_orgs(request: web.Request) -> web.Response:
    page = top_page(request)
    return ok(await actions_of(request).list_orgs(page.start, page.limit, page.asc))


async def get_org(request: web.Request) -> web.Response:
    return ok(await actions_of(request).get_org(ref(request, "orgref")))


async def create_org(request: web.Request) -> web.Response:
    org = await body(request, Organization.from_json)
    return created(await actions_of(request).create_org(org))


async def delete_org(request: web.Request) -> web.Response:
    await actions_of(request).delete_org(ref(request, "orgref"))
    return no_content()


async def members(request: web.Request) -> web.Response:
    out = await actions_of(request).get_org_members(ref(request, "orgref"))
    return ok(paginate(out, lambda m: m.user.name, sub_page(request)))


async def add_member(request: web.Request) -> web.Response:
    req = await body(request, AddOrgMemberRequest.from_json)
    member = await actions_of(request).add_org_member(ref(request, "orgref"), ref(request, "userref"), req.role)
    return created(member)


async def remove_member(request: web.Request) -> web.Response:
    await actions_of(request).remove_org_member(ref(request, "orgref"), ref(request, "userref"))
    return no_content()


def add_routes(app: web.Application) -> None:
    p = f"{API_PREFIX}/orgs"
    r = app.router
    r.add_get(p, list_orgs)
    r.add_post(p, create_org)
    r.add_get(p + "/{orgref}", get_org)
    r.add_delete(p + "/{orgref}", delete_org)
    r.add_get(p + "/{orgref}/members", members)
    r.add_put(p + "/{orgref}/members/{userref}", add_member)
    r.add_delete(p + "/{orgref}/members/{userref}", remove_member)
