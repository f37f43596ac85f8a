"""Users, their linked accounts and API tokens, and the user queries (spec §5.6)."""

from __future__ import annotations

from aiohttp import web

from agola.errors import BadRequest
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
from agola.types.configstore import (
    CreateUserLARequest,
    CreateUserRequest,
    CreateUserTokenRequest,
    UpdateUserLARequest,
    UpdateUserRequest,
    User,
)
from agola.util.http import API_PREFIX


def _query(request: web.Request, name: str) -> str:
    value = request.query.get(name, "")
    if not value:
        raise BadRequest(f"query parameter {name!r} is required")
    return value


async def list_users(request: web.Request) -> web.Response:
    """``GET /users``: a page of users, or one of the reference's queries (``query_type``)
    answered as a one-user list (404 when nobody matches)."""
    actions = actions_of(request)
    query_type = request.query.get("query_type", "")
    user: User
    if query_type == "":
        page = top_page(request)
        return ok(await actions.list_users(page.start, page.limit, page.asc))
    if query_type == "bytoken":
        user = await actions.get_user_by_token(_query(request, "token"))
    elif query_type == "bylinkedaccount":
        user = await actions.get_user_by_linked_account(_query(request, "linkedaccountid"))
    elif query_type == "byremoteuser":
        user = await actions.get_user_by_remote_user(_query(request, "remotesourceid"), _query(request, "remoteuserid"))
    else:
        raise BadRequest(f"unknown query_type {query_type!r}")
    return ok([user])


async def get_user(request: web.Request) -> web.Response:
    return ok(await actions_of(request).get_user(ref(request, "userref")))


async def create_user(request: web.Request) -> web.Response:
    req = await body(request, CreateUserRequest.from_json)
    return created(await actions_of(request).create_user(req))


async def update_user(request: web.Request) -> web.Response:
    req = await body(request, UpdateUserRequest.from_json)
    return created(await actions_of(request).update_user(ref(request, "userref"), req))


async def delete_user(request: web.Request) -> web.Response:
    await actions_of(request).delete_user(ref(request, "userref"))
    return no_content()


async def create_linked_account(request: web.Request) -> web.Response:
    req = await body(request, CreateUserLARequest.from_json)
    return created(await actions_of(request).create_user_la(ref(request, "userref"), req))


async def update_linked_account(request: web.Request) -> web.Response:
    req = await body(request, UpdateUserLARequest.from_json)
    la = await actions_of(request).update_user_la(ref(request, "userref"), ref(request, "laid"), req)
    return ok(la)


async def delete_linked_account(request: web.Request) -> web.Response:
    await actions_of(request).delete_user_la(ref(request, "userref"), ref(request, "laid"))
    return no_content()


async def create_token(request: web.Request) -> web.Response:
    req = await body(request, CreateUserTokenRequest.from_json)
    # The only time the token value is ever sent: only its hash is stored.
    return created(await actions_of(request).create_user_token(ref(request, "userref"), req.token_name))


async def delete_token(request: web.Request) -> web.Response:
    await actions_of(request).delete_user_token(ref(request, "userref"), ref(request, "tokenname"))
    return no_content()


async def user_orgs(request: web.Request) -> web.Response:
    orgs = await actions_of(request).get_user_orgs(ref(request, "userref"))
    return ok(paginate(orgs, lambda o: o.organization.name, sub_page(request)))


def add_routes(app: web.Application) -> None:
    p = f"{API_PREFIX}/users"
    r = app.router
    r.add_get(p, list_users)
    r.add_post(p, create_user)
    r.add_get(p + "/{userref}", get_user)
    r.add_put(p + "/{userref}", update_user)
    r.add_delete(p + "/{userref}", delete_user)
    r.add_post(p + "/{userref}/linkedaccounts", create_linked_account)
    r.add_put(p + "/{userref}/linkedaccounts/{laid}", update_linked_account)
    r.add_delete(p + "/{userref}/linkedaccounts/{laid}", delete_linked_account)
    r.add_post(p + "/{userref}/tokens", create_token)
    r.add_delete(p + "/{userref}/tokens/{tokenname}", delete_token)
    r.add_get(p + "/{userref}/orgs", user_orgs)
