"""``/user``, ``/users``: users, tokens, linked accounts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from agola.client import types as wire
from agola.errors import AgolaError
from agola.services.gateway.actions import linkedaccounts
from agola.services.gateway.actions import users as actions
from agola.services.gateway.api import serialize
from agola.services.gateway.api.common import ctx, json_object, no_content, paging, services, str_field
from agola.services.gateway.openapi import PAGING, Query, api_op
from agola.util.http import API_PREFIX, json_response


@api_op(response=wire.UserResponse)
async def current_user(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    return json_response(serialize.user(await actions.current_user(svc, ident)))


@api_op(response=wire.UserResponse)
async def get_user(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    return json_response(serialize.user(await actions.get_user(svc, ident, request.match_info["userref"])))


@api_op(response=wire.UserResponse, many=True, query=PAGING)
async def list_users(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    users = await actions.list_users(svc, ident, *paging(request))
    return json_response([serialize.user(u) for u in users])


@api_op(body=wire.CreateUserRequest, response=wire.UserResponse, status=201)
async def create_user(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    body = await json_object(request)
    user = await actions.create_user(svc, ident, str_field(body, "username"))
    return json_response(serialize.user(user), status=201)


@api_op(status=204)
async def delete_user(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    await actions.delete_user(svc, ident, request.match_info["userref"])
    return no_content()


@api_op(body=wire.CreateUserTokenRequest, response=wire.CreateUserTokenResponse, status=201)
async def create_token(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    body = await json_object(request)
    token = await actions.create_user_token(svc, ident, request.match_info["userref"], str_field(body, "token_name"))
    return json_response({"token": token}, status=201)


@api_op(status=204)
async def delete_token(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    await actions.delete_user_token(svc, ident, request.match_info["userref"], request.match_info["tokenname"])
    return no_content()


def _flow_response(request: web.Request, body: dict[str, Any], nonce: str, status: int = 201) -> web.Response:
    if nonce:
        body["oauth2_nonce"] = nonce  # for a client without cookies: send it back as X-Agola-OAuth2-Nonce
    resp = json_response(body, status=status)
    if nonce:
        # Binds the OAuth2 callback to this session (see actions/linkedaccounts.py).
        resp.set_cookie(linkedaccounts.NONCE_COOKIE, nonce, max_age=linkedaccounts.STATE_LIFETIME,
                        httponly=True, samesite="Lax", secure=request.secure, path="/")
    return resp


def _result(res: linkedaccounts.CallbackResult) -> dict[str, Any]:
    la, user = res.linked_account, res.user
    out: dict[str, Any] = {}
    if la is not None:
        out["linked_account"] = serialize.linked_account(la)
    if user is not None:
        out["user"] = serialize.user(user)
    if res.token:
        out["token"] = res.token
    return out


@api_op(body=wire.CreateUserLARequest, response=wire.CreateUserLAResponse, status=201)
async def create_linked_account(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    body = await json_object(request)
    res = await linkedaccounts.create_linked_account(
        svc, ident, request.match_info["userref"], str_field(body, "remote_source_name"),
        str_field(body, "remote_source_login_name"), str_field(body, "remote_source_login_password"))
    la = res.linked_account
    return _flow_response(request, {
        "linked_account": None if la is None else serialize.linked_account(la),
        "oauth2_redirect": res.oauth2_redirect,
    }, res.nonce)


@api_op(body=wire.LoginUserRequest, response=wire.LoginUserResponse, status=201, auth="none")
async def login(request: web.Request) -> web.Response:
    """``POST /api/login {remote_source_name, login_name, password}`` -> ``{oauth2_redirect, token, user}``."""
    svc = services(request)
    body = await json_object(request)
    res = await linkedaccounts.login_user(svc, str_field(body, "remote_source_name"), str_field(body, "login_name"),
                                          str_field(body, "password"))
    if isinstance(res, linkedaccounts.LinkResult):
        return _flow_response(request, {"oauth2_redirect": res.oauth2_redirect}, res.nonce)
    return _flow_response(request, _result(res), "")


@api_op(body=wire.RegisterUserRequest, response=wire.LoginUserResponse, status=201, auth="none")
async def register(request: web.Request) -> web.Response:
    """``POST /api/register {username, remote_source_name, remote_source_login_name,
    remote_source_login_password}`` -> ``{oauth2_redirect, user}``."""
    svc = services(request)
    body = await json_object(request)
    res = await linkedaccounts.register_user(
        svc, str_field(body, "username"), str_field(body, "remote_source_name"),
        str_field(body, "remote_source_login_name"), str_field(body, "remote_source_login_password"))
    if isinstance(res, linkedaccounts.LinkResult):
        return _flow_response(request, {"oauth2_redirect": res.oauth2_redirect}, res.nonce)
    return _flow_response(request, _result(res), "")


# Set by the web UI (agola.web.signin): how to answer a browser back from the forge, with the
# flow's result or why it failed.
BrowserAnswer = Callable[[web.Request, linkedaccounts.CallbackResult | AgolaError], Awaitable[web.Response]]
BROWSER_CALLBACK_KEY: web.AppKey[BrowserAnswer] = web.AppKey("oauth2_browser_callback")


@api_op(query=(Query("code"), Query("state")), response_media="application/json", auth="optional")
async def oauth2_callback(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    nonce = request.cookies.get(linkedaccounts.NONCE_COOKIE, "") or request.headers.get("X-Agola-OAuth2-Nonce", "")
    browser_answer = request.app.get(BROWSER_CALLBACK_KEY) if _browser(request) else None
    resp: web.Response
    try:
        res = await linkedaccounts.oauth2_callback(svc, ident, request.query.get("code", ""),
                                                   request.query.get("state", ""), nonce)
    except AgolaError as err:
        if browser_answer is None:
            raise
        resp = await browser_answer(request, err)
        resp.del_cookie(linkedaccounts.NONCE_COOKIE, path="/")
        return resp
    if browser_answer is not None:
        # The web UI's answer: a login signs the browser in (its token stays on the server).
        resp = await browser_answer(request, res)
    elif _browser(request) and res.request_type != linkedaccounts.REQUEST_LOGIN:
        # A browser back from the forge: to the web UI (a login token is only ever answered as JSON).
        resp = web.Response(status=302, headers={
            "Location": (svc.web_exposed_url or svc.api_exposed_url).rstrip("/") + "/"})
    else:
        resp = json_response({"request_type": res.request_type, "response": _result(res)})
    resp.del_cookie(linkedaccounts.NONCE_COOKIE, path="/")
    return resp


def _browser(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "text/html" in accept and "application/json" not in accept


@api_op(status=204)
async def delete_linked_account(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    await actions.delete_user_linked_account(svc, ident, request.match_info["userref"], request.match_info["laid"])
    return no_content()


@api_op(response=wire.RemoteRepoResponse, many=True)
async def remote_repos(request: web.Request) -> web.Response:
    svc, ident = await ctx(request)
    repos = await linkedaccounts.list_remote_repos(svc, ident, request.match_info["rsref"])
    return json_response([{"id": r.id, "path": r.path} for r in repos])


def add_routes(app: web.Application) -> None:
    p = API_PREFIX
    app.router.add_get(f"{p}/user", current_user)
    app.router.add_get(f"{p}/user/remoterepos/{{rsref}}", remote_repos)
    app.router.add_get(f"{p}/users", list_users)
    app.router.add_post(f"{p}/users", create_user)
    app.router.add_get(f"{p}/users/{{userref}}", get_user)
    app.router.add_delete(f"{p}/users/{{userref}}", delete_user)
    app.router.add_post(f"{p}/users/{{userref}}/tokens", create_token)
    app.router.add_delete(f"{p}/users/{{userref}}/tokens/{{tokenname}}", delete_token)
    app.router.add_post(f"{p}/users/{{userref}}/linkedaccounts", create_linked_account)
    app.router.add_delete(f"{p}/users/{{userref}}/linkedaccounts/{{laid}}", delete_linked_account)
    # The spec's callback paths (the forge redirects the browser to <webExposedURL>/oauth2/callback),
    # and the same under the API prefix for the public client.
    for path in ("/oauth2/callback", "/api/oauth2/callback", f"{p}/oauth2/callback"):
        app.router.add_get(path, oauth2_callback)
    # Login and registration through a remote source (no agola credentials needed).
    for prefix in ("/api", p):
        app.router.add_post(f"{prefix}/login", login)
        app.router.add_post(f"{prefix}/register", register)
