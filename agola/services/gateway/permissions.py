"""Permission rules of spec §6.1. The admin (admin token, or a user with ``admin``) may do anything.

* org owner: member of the org with role ``owner``;
* project owner (of a project/group owned by a user or an org): that user, or an owner of the org;
* project member: that user, or any member of the org;
* run visibility: project runs follow the project's global visibility (private -> members only);
  direct (user) runs are visible to their user only;
* run actions: project owners for project runs, the user for direct runs.

Failures raise ``Forbidden`` (403), or ``Unauthorized`` (401) when nobody is logged in.
"""

from __future__ import annotations

import attrs

from agola.errors import BadRequest, Forbidden, NotExist, Unauthorized
from agola.roleclients.configstore import ConfigstoreAPI
from agola.services.gateway.auth import Identity
from agola.types.configstore import ConfigType, MemberRole, Visibility


@attrs.frozen
class GroupRef:
    """The owner part of a run group: ``/project/<id>/...`` or ``/user/<id>/...``."""

    kind: str  # "project" | "user"
    id: str


def parse_run_group(group: str) -> GroupRef:
    parts = group.split("/")
    if len(parts) < 3 or parts[0] != "" or parts[1] not in ("project", "user") or not parts[2]:
        raise BadRequest(f"invalid run group {group!r}")
    return GroupRef(parts[1], parts[2])


def require_user(ident: Identity) -> None:
    if ident.anonymous:
        raise Unauthorized("authentication required")


def require_admin(ident: Identity) -> None:
    require_user(ident)
    if not ident.admin:
        raise Forbidden("only an administrator can do this")


async def _org_role(cs: ConfigstoreAPI, ident: Identity, org_id: str) -> str:
    if ident.user is None:
        return ""
    for membership in await cs.get_user_orgs(ident.user.id):
        if membership.organization.id == org_id:
            return str(membership.role)
    return ""


async def is_org_owner(cs: ConfigstoreAPI, ident: Identity, org_id: str) -> bool:
    if ident.admin:
        return True
    return await _org_role(cs, ident, org_id) == MemberRole.OWNER


async def is_project_owner(cs: ConfigstoreAPI, ident: Identity, owner_type: str, owner_id: str) -> bool:
    if ident.admin:
        return True
    if ident.user is None:
        return False
    if owner_type == ConfigType.USER:
        return owner_id == ident.user.id
    if owner_type == ConfigType.ORG:
        return await is_org_owner(cs, ident, owner_id)
    return False


async def is_project_member(cs: ConfigstoreAPI, ident: Identity, owner_type: str, owner_id: str) -> bool:
    if ident.admin:
        return True
    if ident.user is None:
        return False
    if owner_type == ConfigType.USER:
        return owner_id == ident.user.id
    if owner_type == ConfigType.ORG:
        return await _org_role(cs, ident, owner_id) != ""
    return False


def deny(ident: Identity, what: str) -> Exception:
    """The error for a refused action: 401 for anonymous callers, 403 otherwise."""
    if ident.anonymous:
        return Unauthorized("authentication required")
    return Forbidden(f"user not authorized to {what}")


async def check_project_owner(cs: ConfigstoreAPI, ident: Identity, owner_type: str, owner_id: str, what: str) -> None:
    if not await is_project_owner(cs, ident, owner_type, owner_id):
        raise deny(ident, what)


async def can_view(cs: ConfigstoreAPI, ident: Identity, global_visibility: str, owner_type: str, owner_id: str) -> bool:
    """Projects and project groups: public ones to everyone, private ones to members."""
    if global_visibility == Visibility.PUBLIC:
        return True
    return await is_project_member(cs, ident, owner_type, owner_id)


async def can_get_run(cs: ConfigstoreAPI, ident: Identity, group: str) -> bool:
    ref = parse_run_group(group)
    if ref.kind == "user":
        return ident.admin or (ident.user is not None and ident.user.id == ref.id)
    try:
        project = await cs.get_project(ref.id)
    except NotExist:
        # A run of a deleted project: only the admin still sees it.
        return ident.admin
    return await can_view(cs, ident, project.global_visibility, project.owner_type, project.owner_id)


async def can_do_run_actions(cs: ConfigstoreAPI, ident: Identity, group: str) -> bool:
    ref = parse_run_group(group)
    if ref.kind == "user":
        return ident.admin or (ident.user is not None and ident.user.id == ref.id)
    try:
        project = await cs.get_project(ref.id)
    except NotExist:
        return ident.admin
    return await is_project_owner(cs, ident, project.owner_type, project.owner_id)
