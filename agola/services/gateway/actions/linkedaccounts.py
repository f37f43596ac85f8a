"""Linked accounts: an agola user's account on a remote source (spec §6.3), and the forge driver
of a linked account (``account_driver``), whose refreshed OAuth2 tokens are stored back.

Password sources (Gitea): the login and password make a personal access token on the forge, named
``agola-<user id>``; the password is never stored. OAuth2 sources: the answer is the forge's
authorization URL, with a ``state`` signed by the gateway (10 minutes, claims: remote source,
request, user, a nonce). The callback (``<webExposedURL>/oauth2/callback?code&state``, also under
``/api/oauth2/callback``) completes the flow only for the session that started it: the caller is
authenticated as the user of the state, or presents the nonce cookie set when the flow started.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import attrs

from agola.errors import BadRequest, Forbidden, NotExist, Unauthorized
from agola.forges import ForgeDriver, OAuth2Token, RemoteUser, RepoInfo, driver_for
from agola.services.gateway.actions import Services
from agola.services.gateway.auth import Identity
from agola.services.gateway.permissions import deny, require_user
from agola.types.configstore import (
    CreateUserLARequest,
    LinkedAccount,
    RemoteSource,
    RemoteSourceAuthType,
    UpdateUserLARequest,
    User,
)
from agola.util.log import get_logger

log = get_logger(__name__)

STATE_LIFETIME = 600
STATE_TYPE = "oauth2_state"
NONCE_COOKIE = "agola_oauth2_nonce"
REQUEST_CREATE_LA = "createuserla"


@attrs.frozen
class LinkResult:
    linked_account: LinkedAccount | None = None
    oauth2_redirect: str = ""
    # The per-flow nonce, set as a cookie by the API layer (binds the callback to this session).
    nonce: str = attrs.field(default="", repr=False)


def callback_url(svc: Services) -> str:
    return f"{(svc.web_exposed_url or svc.api_exposed_url).rstrip('/')}/oauth2/callback"


async def account_driver(svc: Services, rs: RemoteSource, user_id: str, la: LinkedAccount) -> ForgeDriver:
    """The driver of a linked account; a refreshed OAuth2 token is saved on the account."""

    async def save(token: OAuth2Token) -> None:
        await svc.configstore.update_user_la(user_id, la.id, UpdateUserLARequest(
            remote_user_id=la.remote_user_id, remote_user_name=la.remote_user_name,
            oauth2_access_token=token.access_token, oauth2_refresh_token=token.refresh_token,
            oauth2_access_token_expires_at=token.expires_at))

    return driver_for(rs, la, on_token_refresh=save)


def user_account(user: User, rs: RemoteSource) -> LinkedAccount | None:
    return next((la for la in user.linked_accounts.values() if la.remote_source_id == rs.id), None)


async def _target_user(svc: Services, ident: Identity, user_ref: str) -> User:
    require_user(ident)
    user: User = await svc.configstore.get_user(user_ref)
    if ident.user is None or ident.user.id != user.id:
        # Spec §6.3: only the user themself can link their accounts (the admin neither: it would
        # need the user's forge credentials).
        raise deny(ident, "link an account of another user")
    return user


async def create_linked_account(svc: Services, ident: Identity, user_ref: str, rs_name: str,
                                login: str = "", password: str = "") -> LinkResult:
    user = await _target_user(svc, ident, user_ref)
    if not rs_name:
        raise BadRequest("remote source name required")
    rs: RemoteSource = await svc.configstore.get_remote_source(rs_name)
    if user_account(user, rs) is not None:
        raise BadRequest(f"user {user.name!r} already has a linked account for remote source {rs.name!r}")
    if rs.auth_type == RemoteSourceAuthType.OAUTH2:
        nonce = secrets.token_urlsafe(24)
        state = svc.signer.encode({
            "typ": STATE_TYPE, "exp": int(time.time() + STATE_LIFETIME), "remote_source_name": rs.name,
            "request_type": REQUEST_CREATE_LA, "user_id": user.id, "nonce": nonce,
        })
        async with driver_for(rs) as forge:
            return LinkResult(oauth2_redirect=forge.oauth2_authorize_url(callback_url(svc), state), nonce=nonce)
    if not login or not password:
        raise BadRequest("remote source login name and password required for a password remote source")
    async with driver_for(rs) as forge:
        token = await forge.create_access_token(login, password, f"agola-{user.id}")
    la = await _link(svc, user, rs, OAuth2Token(token), password_source=True)
    return LinkResult(linked_account=la)


async def _remote_user(rs: RemoteSource, la: LinkedAccount) -> RemoteUser:
    async with driver_for(rs, la) as forge:
        return await forge.current_user()


async def _link(svc: Services, user: User, rs: RemoteSource, token: OAuth2Token, *,
                password_source: bool) -> LinkedAccount:
    probe = (LinkedAccount(user_access_token=token.access_token) if password_source else
             LinkedAccount(oauth2_access_token=token.access_token, oauth2_refresh_token=token.refresh_token,
                           oauth2_access_token_expires_at=token.expires_at))
    remote = await _remote_user(rs, probe)
    req = CreateUserLARequest(
        remote_source_name=rs.name, remote_user_id=remote.id, remote_user_name=remote.login,
        user_access_token=probe.user_access_token, oauth2_access_token=probe.oauth2_access_token,
        oauth2_refresh_token=probe.oauth2_refresh_token,
        oauth2_access_token_expires_at=probe.oauth2_access_token_expires_at)
    la: LinkedAccount = await svc.configstore.create_user_la(user.id, req)
    log.info("linked account created", user=user.name, remote_source=rs.name, remote_user=remote.login)
    return la


async def list_remote_repos(svc: Services, ident: Identity, rs_ref: str) -> list[RepoInfo]:
    """The caller's repositories on a remote source where they can add deploy keys and hooks."""
    require_user(ident)
    if ident.user is None:
        raise BadRequest("the admin token has no linked accounts: use a user's token")
    rs: RemoteSource = await svc.configstore.get_remote_source(rs_ref)
    user: User = await svc.configstore.get_user(ident.user.id)
    la = user_account(user, rs)
    if la is None:
        raise BadRequest(f"user {user.name!r} has no linked account for remote source {rs.name!r}")
    async with await account_driver(svc, rs, user.id, la) as forge:
        return await forge.list_user_repos()


@attrs.frozen
class CallbackResult:
    request_type: str
    linked_account: LinkedAccount | None = None

    def to_json(self) -> dict[str, Any]:
        la = self.linked_account
        response = {} if la is None else {"linked_account": {
            "id": la.id, "remote_source_id": la.remote_source_id, "remote_user_name": la.remote_user_name,
            "remote_user_avatar_url": la.remote_user_avatar_url}}
        return {"request_type": self.request_type, "response": response}


async def oauth2_callback(svc: Services, ident: Identity, code: str, state: str, nonce_cookie: str) -> CallbackResult:
    if not code or not state:
        raise BadRequest("code and state required")
    try:
        claims = svc.signer.decode(state)
    except Unauthorized:
        raise BadRequest("invalid or expired oauth2 state") from None
    if claims.get("typ") != STATE_TYPE:
        raise BadRequest("invalid or expired oauth2 state")
    same_user = ident.user is not None and ident.user.id == claims.get("user_id")
    same_session = bool(nonce_cookie) and secrets.compare_digest(nonce_cookie, str(claims.get("nonce", "")))
    if not (same_user or same_session):
        raise Forbidden("this authorization was started by another session")
    if claims.get("request_type") != REQUEST_CREATE_LA:
        raise BadRequest(f"unsupported oauth2 request {claims.get('request_type')!r}")
    rs: RemoteSource = await svc.configstore.get_remote_source(str(claims.get("remote_source_name", "")))
    try:
        user: User = await svc.configstore.get_user(str(claims.get("user_id", "")))
    except NotExist:
        raise BadRequest("the user of this authorization doesn't exist anymore") from None
    if user_account(user, rs) is not None:
        raise BadRequest(f"user {user.name!r} already has a linked account for remote source {rs.name!r}")
    async with driver_for(rs) as forge:
        token = await forge.oauth2_exchange_code(code, callback_url(svc))
    la = await _link(svc, user, rs, token, password_source=False)
    return CallbackResult(REQUEST_CREATE_LA, la)
