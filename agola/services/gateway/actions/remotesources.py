"""Remote sources (git hosts). Reading is open (login pages list them); changes are for admins."""

from __future__ import annotations

from typing import Any

import attrs

from agola.errors import BadRequest
from agola.services.gateway.actions import Services
from agola.services.gateway.auth import Identity
from agola.services.gateway.permissions import require_admin, require_user
from agola.types.configstore import RemoteSource

# request key -> RemoteSource attribute
_FIELDS = {
    "name": "name",
    "apiurl": "api_url",
    "type": "type",
    "auth_type": "auth_type",
    "skip_verify": "skip_verify",
    "oauth_2_client_id": "oauth2_client_id",
    "oauth_2_client_secret": "oauth2_client_secret",
    "ssh_host_key": "ssh_host_key",
    "skip_ssh_host_key_check": "skip_ssh_host_key_check",
    "registration_enabled": "registration_enabled",
    "login_enabled": "login_enabled",
}
_BOOLS = {"skip_verify", "skip_ssh_host_key_check", "registration_enabled", "login_enabled"}


def _fields(body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, attr in _FIELDS.items():
        value = body.get(key)
        if value is None:
            continue
        if attr in _BOOLS:
            if not isinstance(value, bool):
                raise BadRequest(f"{key}: expected a boolean")
        elif not isinstance(value, str):
            raise BadRequest(f"{key}: expected a string")
        out[attr] = value
    return out


async def get_remote_source(svc: Services, ident: Identity, ref: str) -> RemoteSource:
    require_user(ident)
    return await svc.configstore.get_remote_source(ref)


async def list_remote_sources(svc: Services, ident: Identity, start: str, limit: int, asc: bool) -> list[RemoteSource]:
    return await svc.configstore.list_remote_sources(start, limit, asc)


async def create_remote_source(svc: Services, ident: Identity, body: dict[str, Any]) -> RemoteSource:
    require_admin(ident)
    return await svc.configstore.create_remote_source(RemoteSource(**_fields(body)))


async def update_remote_source(svc: Services, ident: Identity, ref: str, body: dict[str, Any]) -> RemoteSource:
    require_admin(ident)
    current: RemoteSource = await svc.configstore.get_remote_source(ref)
    return await svc.configstore.update_remote_source(ref, attrs.evolve(current, **_fields(body)))


async def delete_remote_source(svc: Services, ident: Identity, ref: str) -> None:
    require_admin(ident)
    await svc.configstore.delete_remote_source(ref)
