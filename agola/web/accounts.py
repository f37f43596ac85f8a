"""Account pages: the signed-in user's settings (API tokens: list, create with the value shown
once, delete; linked accounts: list, link one of a password remote source, unlink) and the admin
pages (users, remote sources). Each calls the gateway's actions as the signed-in user, so the API
decides who may see what."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from agola.errors import BadRequest, Unauthorized
from agola.services.gateway.actions import linkedaccounts
from agola.services.gateway.actions import remotesources as rs_actions
from agola.services.gateway.actions import users as user_actions
from agola.services.gateway.api import serialize
from agola.services.gateway.permissions import require_admin
from agola.types.configstore import RemoteSourceAuthType
from agola.web.handlers import Caller, caller_of, form_caller, page_handler
from agola.web.render import page, redirect
from agola.web.signin import to_forge

__all__ = ["CONFIG_PAGE_SIZE", "add_routes", "next_page"]

# The configstore answers at most 20 items a list request.
CONFIG_PAGE_SIZE = 20


def next_page(path: str, items: list[dict[str, Any]], key: str = "name") -> str:
    """The link to the next page of a list paged by name (``start`` is exclusive)."""
    return f"{path}?{urlencode({'start': items[-1][key]})}" if len(items) == CONFIG_PAGE_SIZE else ""


async def _settings(caller: Caller, status: int = 200, **more: Any) -> web.Response:
    user = serialize.user(await user_actions.current_user(caller.svc, caller.ident))
    sources = await rs_actions.list_remote_sources(caller.svc, caller.ident, "", CONFIG_PAGE_SIZE, True)
    names = {rs.id: rs.name for rs in sources}
    linked = {la["remote_source_id"] for la in user["linked_accounts"]}
    # Password sources link with a login and password; OAuth2 ones through the forge's authorize page.
    unlinked = [rs for rs in sources if rs.id not in linked]
    linkable = [rs.name for rs in unlinked if rs.auth_type == RemoteSourceAuthType.PASSWORD]
    linkable_oauth2 = [rs.name for rs in unlinked if rs.auth_type == RemoteSourceAuthType.OAUTH2]
    return page("settings.html", status=status, **caller.context(
        user=user, source_names=names, linkable=linkable, linkable_oauth2=linkable_oauth2, **{"new_token": None, "link_error": "", **more}))


async def settings(request: web.Request) -> web.Response:
    return await _settings(await caller_of(request))


async def create_token(request: web.Request) -> web.Response:
    """Creates a token and shows its value in this answer only (never again, never in a URL)."""
    caller, form = await form_caller(request)
    user = await user_actions.current_user(caller.svc, caller.ident)
    name = str(form.get("name") or "").strip()
    value = await user_actions.create_user_token(caller.svc, caller.ident, user.id, name)
    return await _settings(caller, status=201, new_token={"name": name, "value": value})


async def delete_token(request: web.Request) -> web.Response:
    caller, form = await form_caller(request)
    user = await user_actions.current_user(caller.svc, caller.ident)
    await user_actions.delete_user_token(caller.svc, caller.ident, user.id, str(form.get("name") or ""))
    # Deleting the token this session signed in with ends the session: /settings asks to sign in.
    return redirect("/settings")


async def link_account(request: web.Request) -> web.Response:
    """Links an account of a password remote source (the forge checks the password, never kept), or
    sends the browser to an OAuth2 source's authorize page (its callback comes back to the settings)."""
    caller, form = await form_caller(request)
    user = await user_actions.current_user(caller.svc, caller.ident)
    source = str(form.get("remote_source") or "")
    try:
        flow = await linkedaccounts.create_linked_account(caller.svc, caller.ident, user.id, source,
                                                   str(form.get("login") or ""), str(form.get("password") or ""))
    except Unauthorized:
        return await _settings(caller, 401, link_error=f"Wrong login or password for {source}.")
    except BadRequest as err:
        return await _settings(caller, 400, link_error=err.message)
    if flow.oauth2_redirect:
        return to_forge(request, flow, source, **caller.context())
    return redirect("/settings")


async def unlink_account(request: web.Request) -> web.Response:
    caller, form = await form_caller(request)
    user = await user_actions.current_user(caller.svc, caller.ident)
    await user_actions.delete_user_linked_account(caller.svc, caller.ident, user.id, str(form.get("id") or ""))
    return redirect("/settings")


async def admin_users(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    start = request.query.get("start", "")
    users = [serialize.user(u) for u in
             await user_actions.list_users(caller.svc, caller.ident, start, CONFIG_PAGE_SIZE, True)]
    return page("admin_users.html", **caller.context(users=users, start=start,
                                                     older=next_page("/admin/users", users, "username")))


async def admin_remote_sources(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    # Remote sources are listed to anyone (sign-in pages name them); this page is the admin's.
    require_admin(caller.ident)
    start = request.query.get("start", "")
    sources = [serialize.remote_source(rs) for rs in
               await rs_actions.list_remote_sources(caller.svc, caller.ident, start, CONFIG_PAGE_SIZE, True)]
    columns = sorted({k for s in sources for k in s} - {"id", "name"})
    return page("admin_remotesources.html", **caller.context(
        sources=sources, columns=columns, start=start, older=next_page("/admin/remotesources", sources)))


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/settings", page_handler(settings))
    r.add_post("/settings/tokens", page_handler(create_token))
    r.add_post("/settings/tokens/delete", page_handler(delete_token))
    r.add_post("/settings/linkedaccounts", page_handler(link_account))
    r.add_post("/settings/linkedaccounts/delete", page_handler(unlink_account))
    r.add_get("/admin/users", page_handler(admin_users))
    r.add_get("/admin/remotesources", page_handler(admin_remote_sources))
