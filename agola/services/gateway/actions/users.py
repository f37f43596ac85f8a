"""Users, their API tokens and linked accounts (spec §6.2)."""

from __future__ import annotations

from agola.errors import BadRequest
from agola.services.gateway.actions import Services
from agola.services.gateway.auth import Identity
from agola.services.gateway.permissions import deny, require_admin, require_user
from agola.types.configstore import CreateUserRequest, User


def _is_self(ident: Identity, user_ref: str) -> bool:
    return ident.user is not None and user_ref in (ident.user.id, ident.user.name)


async def current_user(svc: Services, ident: Identity) -> User:
    require_user(ident)
    if ident.user is None:
        raise BadRequest("the admin token has no user: use a user's token")
    # Fresh from the configstore: tokens or linked accounts may have changed since auth.
    return await svc.configstore.get_user(ident.user.id)


async def get_user(svc: Services, ident: Identity, user_ref: str) -> User:
    require_user(ident)
    return await svc.configstore.get_user(user_ref)


async def list_users(svc: Services, ident: Identity, start: str, limit: int, asc: bool) -> list[User]:
    require_admin(ident)
    return await svc.configstore.list_users(start, limit, asc)


async def create_user(svc: Services, ident: Identity, username: str) -> User:
    require_admin(ident)
    if not username:
        raise BadRequest("user name required")
    return await svc.configstore.create_user(CreateUserRequest(user_name=username))


async def delete_user(svc: Services, ident: Identity, user_ref: str) -> None:
    require_admin(ident)
    await svc.configstore.delete_user(user_ref)


async def _check_self_or_admin(ident: Identity, user_ref: str, what: str) -> None:
    # Quirk 10 of the reference inverted this test; here: the admin, or the user themself.
    require_user(ident)
    if not ident.admin and not _is_self(ident, user_ref):
        raise deny(ident, what)


async def create_user_token(svc: Services, ident: Identity, user_ref: str, token_name: str) -> str:
    await _check_self_or_admin(ident, user_ref, "create a token for another user")
    if not token_name:
        raise BadRequest("token name required")
    res = await svc.configstore.create_user_token(user_ref, token_name)
    return str(res.token)


async def delete_user_token(svc: Services, ident: Identity, user_ref: str, token_name: str) -> None:
    await _check_self_or_admin(ident, user_ref, "delete a token of another user")
    await svc.configstore.delete_user_token(user_ref, token_name)


async def delete_user_linked_account(svc: Services, ident: Identity, user_ref: str, la_id: str) -> None:
    await _check_self_or_admin(ident, user_ref, "delete a linked account of another user")
    await svc.configstore.delete_user_la(user_ref, la_id)
