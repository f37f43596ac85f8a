"""The remote source flows of spec §6.3: linked accounts (an agola user's account on a remote
source), login and registration through a remote source, and the forge driver of a linked account
(``account_driver``), whose refreshed OAuth2 tokens are stored back.

Password sources (Gitea): the login and password make a personal access token on the forge, named
``agola-<user id>`` (``agola-<user name>`` at registration); the password is never stored. OAuth2
sources: the answer is the forge's authorization URL, with a ``state`` signed by the gateway (10
minutes; claims: remote source, request, user, a nonce). The callback
(``<webExposedURL>/oauth2/callback?code&state``, also under ``/api/oauth2/callback``) completes the
flow only for the session that started it: the caller presents the nonce (the HttpOnly cookie set
when the flow started, or the ``X-Agola-OAuth2-Nonce`` header for a non-browser client that got it
in the answer), or, for a linked account, is authenticated as the user of the state.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import attrs

from agola.errors import BadRequest, Forbidden, NotExist, Unauthorized
from agola.forges import ForgeDriver, ForgeUnauthorized, OAuth2Token, RemoteUser, RepoInfo, driver_for
from agola.forges.rest import REFRESH_MARGIN
from agola.roleclients.configstore import token_refused_marker
from agola.services.gateway.actions import Services
from agola.services.gateway.auth import Identity
from agola.services.gateway.permissions import deny, require_user
from agola.types.configstore import (
    CreateUserLARequest,
    CreateUserRequest,
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
REQUEST_LOGIN = "loginuser"
REQUEST_REGISTER = "registeruser"


@attrs.frozen
class LinkResult:
    linked_account: LinkedAccount | None = None
    oauth2_redirect: str = ""
    # The per-flow nonce, set as a cookie by the API layer (binds the callback to this session).
    nonce: str = attrs.field(default="", repr=False)


def callback_url(svc: Services) -> str:
    return f"{(svc.web_exposed_url or svc.api_exposed_url).rstrip('/')}/oauth2/callback"


async def account_driver(svc: Services, rs: RemoteSource, user_id: str, la: LinkedAccount) -> ForgeDriver:
    """The driver of a linked account; a refreshed OAuth2 token is saved on the account.

    A token about to expire is refreshed here first, one request at a time per account in this
    gateway (the account re-read under the lock): concurrent requests (a burst of deliveries)
    would otherwise all refresh with the same refresh token, which the forge accepts once."""

    async def save(token: OAuth2Token) -> None:
        await svc.configstore.update_user_la(user_id, la.id, UpdateUserLARequest(
            remote_user_id=la.remote_user_id, remote_user_name=la.remote_user_name,
            oauth2_access_token=token.access_token, oauth2_refresh_token=token.refresh_token,
            oauth2_access_token_expires_at=token.expires_at))

    if _expiring(rs, la):
        async with _REFRESH_LOCKS.setdefault(la.id, asyncio.Lock()):
            user: User = await svc.configstore.get_user(user_id)
            la = user.linked_accounts.get(la.id, la)
            if _expiring(rs, la):
                try:
                    async with driver_for(rs) as forge:
                        token = await forge.oauth2_refresh(la.oauth2_refresh_token)
                except ForgeUnauthorized as exc:
                    await token_refused_marker(svc.configstore, user_id, la)(str(exc))
                    raise
                await save(token)
                la = attrs.evolve(la, oauth2_access_token=token.access_token,
                                  oauth2_refresh_token=token.refresh_token,
                                  oauth2_access_token_expires_at=token.expires_at)
    return driver_for(rs, la, on_token_refresh=save, on_token_refused=token_refused_marker(svc.configstore, user_id, la))


_REFRESH_LOCKS: dict[str, asyncio.Lock] = {}


def _expiring(rs: RemoteSource, la: LinkedAccount) -> bool:
    expires = la.oauth2_access_token_expires_at
    return (rs.auth_type == RemoteSourceAuthType.OAUTH2 and expires is not None and bool(la.oauth2_refresh_token)
            and expires - datetime.now(UTC) <= REFRESH_MARGIN)


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
    _check_can_link(user, rs)
    if rs.auth_type == RemoteSourceAuthType.OAUTH2:
        return await _oauth2_start(svc, rs, REQUEST_CREATE_LA, user_id=user.id)
    if not login or not password:
        raise BadRequest("remote source login name and password required for a password remote source")
    async with driver_for(rs) as forge:
        token = await forge.create_access_token(login, password, f"agola-{user.id}")
    la = await _link(svc, user, rs, OAuth2Token(token), password_source=True)
    return LinkResult(linked_account=la)


async def _oauth2_start(svc: Services, rs: RemoteSource, request_type: str, **request: str) -> LinkResult:
    nonce = secrets.token_urlsafe(24)
    state = svc.signer.encode({
        "typ": STATE_TYPE, "exp": int(time.time() + STATE_LIFETIME), "remote_source_name": rs.name,
        # Only a digest of the nonce: the state travels in URLs (the forge's, the callback's), and
        # whoever reads one must not learn the cookie value that completes the flow.
        "request_type": request_type, "nonce_sha256": _nonce_digest(nonce), **request,
    })
    async with driver_for(rs) as forge:
        return LinkResult(oauth2_redirect=forge.oauth2_authorize_url(callback_url(svc), state), nonce=nonce)


async def _remote_user(rs: RemoteSource, la: LinkedAccount) -> tuple[RemoteUser, LinkedAccount]:
    """The forge user of fresh credentials, and the credentials to store: a token that expires
    within minutes is refreshed on this first call already, and the forge then invalidates the old
    refresh token."""
    current = la

    async def keep(token: OAuth2Token) -> None:
        nonlocal current
        current = attrs.evolve(current, oauth2_access_token=token.access_token,
                               oauth2_refresh_token=token.refresh_token,
                               oauth2_access_token_expires_at=token.expires_at)

    async with driver_for(rs, la, on_token_refresh=keep) as forge:
        remote = await forge.current_user()
    return remote, current


def _check_can_link(user: User, rs: RemoteSource) -> None:
    """One linked account per remote source; one the forge refused may be linked again."""
    la = user_account(user, rs)
    if la is not None and not la.needs_reauthorization:
        raise BadRequest(f"user {user.name!r} already has a linked account for remote source {rs.name!r}")


async def _link(svc: Services, user: User, rs: RemoteSource, token: OAuth2Token, *,
                password_source: bool) -> LinkedAccount:
    """A new linked account, or new credentials for one the forge refused (re-authorization:
    the mark is cleared, the projects using the account keep it)."""
    remote, probe = await _remote_user(rs, _probe(token, password_source))
    current = user_account(await svc.configstore.get_user(user.id), rs)
    if current is not None:
        updated: LinkedAccount = await svc.configstore.update_user_la(user.id, current.id, UpdateUserLARequest(
            remote_user_id=remote.id, remote_user_name=remote.login, user_access_token=probe.user_access_token,
            oauth2_access_token=probe.oauth2_access_token, oauth2_refresh_token=probe.oauth2_refresh_token,
            oauth2_access_token_expires_at=probe.oauth2_access_token_expires_at))
        log.info("linked account re-authorized", user=user.name, remote_source=rs.name, remote_user=remote.login)
        return updated
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
    user: User | None = None
    # A login token (JWT) for loginuser.
    token: str = attrs.field(default="", repr=False)


def _nonce_digest(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def _verify_state(svc: Services, ident: Identity, state: str, nonce: str) -> dict[str, Any]:
    try:
        claims = svc.signer.decode(state)
    except Unauthorized:
        raise BadRequest("invalid or expired oauth2 state") from None
    if claims.get("typ") != STATE_TYPE:
        raise BadRequest("invalid or expired oauth2 state")
    same_user = bool(claims.get("user_id")) and ident.user is not None and ident.user.id == claims.get("user_id")
    same_session = bool(nonce) and secrets.compare_digest(_nonce_digest(nonce), str(claims.get("nonce_sha256", "")))
    if not (same_user or same_session):
        raise Forbidden("this authorization was started by another session")
    return claims


async def oauth2_callback(svc: Services, ident: Identity, code: str, state: str, nonce: str) -> CallbackResult:
    if not code or not state:
        raise BadRequest("code and state required")
    claims = _verify_state(svc, ident, state, nonce)
    request_type = claims.get("request_type")
    if request_type not in (REQUEST_CREATE_LA, REQUEST_LOGIN, REQUEST_REGISTER):
        raise BadRequest(f"unsupported oauth2 request {request_type!r}")
    rs = await _source(svc, str(claims.get("remote_source_name", "")))
    if request_type == REQUEST_CREATE_LA:
        try:
            user: User = await svc.configstore.get_user(str(claims.get("user_id", "")))
        except NotExist:
            raise BadRequest("the user of this authorization doesn't exist anymore") from None
        _check_can_link(user, rs)
    async with driver_for(rs) as forge:
        token = await forge.oauth2_exchange_code(code, callback_url(svc))
    if request_type == REQUEST_LOGIN:
        user, jwt = await _login(svc, rs, token, password_source=False)
        return CallbackResult(REQUEST_LOGIN, user=user, token=jwt)
    if request_type == REQUEST_REGISTER:
        user = await _register(svc, rs, str(claims.get("username", "")), token, password_source=False)
        return CallbackResult(REQUEST_REGISTER, user=user)
    la = await _link(svc, user, rs, token, password_source=False)
    return CallbackResult(REQUEST_CREATE_LA, linked_account=la)


# --- login and registration through a remote source ---------------------------------------------


async def _source(svc: Services, name: str) -> RemoteSource:
    if not name:
        raise BadRequest("remote source name required")
    try:
        rs: RemoteSource = await svc.configstore.get_remote_source(name)
    except NotExist:
        raise BadRequest(f"remote source {name!r} doesn't exist") from None
    return rs


def _probe(token: OAuth2Token, password_source: bool) -> LinkedAccount:
    if password_source:
        return LinkedAccount(user_access_token=token.access_token)
    return LinkedAccount(oauth2_access_token=token.access_token, oauth2_refresh_token=token.refresh_token,
                         oauth2_access_token_expires_at=token.expires_at)


async def _password_token(rs: RemoteSource, login: str, password: str, token_name: str) -> OAuth2Token:
    if not login or not password:
        raise BadRequest("remote source login name and password required for a password remote source")
    async with driver_for(rs) as forge:
        return OAuth2Token(await forge.create_access_token(login, password, token_name))


async def login_user(svc: Services, rs_name: str, login: str = "", password: str = "") -> CallbackResult | LinkResult:
    """Sign in as the agola user linked to this remote account: a login token (JWT), or the OAuth2
    redirect to follow first."""
    rs = await _source(svc, rs_name)
    if not rs.login_enabled:
        raise BadRequest(f"remote source {rs.name!r} doesn't allow logging in")
    if rs.auth_type == RemoteSourceAuthType.OAUTH2:
        return await _oauth2_start(svc, rs, REQUEST_LOGIN)
    token = await _password_token(rs, login, password, f"agola-login-{login}")
    user, jwt = await _login(svc, rs, token, password_source=True)
    return CallbackResult(REQUEST_LOGIN, user=user, token=jwt)


async def _login(svc: Services, rs: RemoteSource, token: OAuth2Token, *, password_source: bool) -> tuple[User, str]:
    remote, probe = await _remote_user(rs, _probe(token, password_source))
    try:
        user: User = await svc.configstore.get_user_by_remote_user(rs.id, remote.id)
    except NotExist:
        raise NotExist(f"no agola user is linked to {rs.name} user {remote.login!r}: register first") from None
    la = user_account(user, rs)
    if la is not None:
        # The account's tokens are the freshest ones now.
        await svc.configstore.update_user_la(user.id, la.id, UpdateUserLARequest(
            remote_user_id=remote.id, remote_user_name=remote.login, user_access_token=probe.user_access_token,
            oauth2_access_token=probe.oauth2_access_token, oauth2_refresh_token=probe.oauth2_refresh_token,
            oauth2_access_token_expires_at=probe.oauth2_access_token_expires_at))
    log.info("user logged in through a remote source", user=user.name, remote_source=rs.name)
    return user, svc.signer.login_token(user.id)


async def register_user(svc: Services, username: str, rs_name: str, login: str = "",
                        password: str = "") -> CallbackResult | LinkResult:
    """A new agola user with a linked account on the remote source."""
    if not username:
        raise BadRequest("user name required")
    rs = await _source(svc, rs_name)
    if not rs.registration_enabled:
        raise BadRequest(f"remote source {rs.name!r} doesn't allow registration")
    if rs.auth_type == RemoteSourceAuthType.OAUTH2:
        return await _oauth2_start(svc, rs, REQUEST_REGISTER, username=username)
    token = await _password_token(rs, login, password, f"agola-{username}")
    return CallbackResult(REQUEST_REGISTER, user=await _register(svc, rs, username, token, password_source=True))


async def _register(svc: Services, rs: RemoteSource, username: str, token: OAuth2Token, *,
                    password_source: bool) -> User:
    remote, probe = await _remote_user(rs, _probe(token, password_source))
    la = CreateUserLARequest(
        remote_source_name=rs.name, remote_user_id=remote.id, remote_user_name=remote.login,
        user_access_token=probe.user_access_token, oauth2_access_token=probe.oauth2_access_token,
        oauth2_refresh_token=probe.oauth2_refresh_token,
        oauth2_access_token_expires_at=probe.oauth2_access_token_expires_at)
    user: User = await svc.configstore.create_user(CreateUserRequest(user_name=username, create_user_la_request=la))
    log.info("user registered through a remote source", user=user.name, remote_source=rs.name)
    return user
