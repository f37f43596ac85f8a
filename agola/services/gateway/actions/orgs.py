"""Organizations and their members (spec §6.2)."""

from __future__ import annotations

import attrs

from agola.errors import BadRequest
from agola.services.gateway.actions import Services
from agola.services.gateway.auth import Identity
from agola.services.gateway.permissions import deny, is_org_owner, require_user
from agola.types.configstore import MemberRole, Organization, OrgMemberResponse, User, Visibility


@attrs.frozen
class OrgMembers:
    organization: Organization
    members: list[OrgMemberResponse]


@attrs.frozen
class OrgMember:
    organization: Organization
    user: User
    role: str


async def _member_org_ids(svc: Services, ident: Identity) -> set[str]:
    if ident.user is None:
        return set()
    return {m.organization.id for m in await svc.configstore.get_user_orgs(ident.user.id)}


async def _visible(svc: Services, ident: Identity, org: Organization) -> bool:
    if ident.admin or org.visibility == Visibility.PUBLIC:
        return True
    return org.id in await _member_org_ids(svc, ident)


async def get_org(svc: Services, ident: Identity, org_ref: str) -> Organization:
    require_user(ident)
    org: Organization = await svc.configstore.get_org(org_ref)
    if not await _visible(svc, ident, org):
        raise deny(ident, "see this organization")
    return org


async def list_orgs(svc: Services, ident: Identity, start: str, limit: int, asc: bool) -> list[Organization]:
    require_user(ident)
    orgs: list[Organization] = await svc.configstore.list_orgs(start, limit, asc)
    if ident.admin:
        return orgs
    mine = await _member_org_ids(svc, ident)
    return [o for o in orgs if o.visibility == Visibility.PUBLIC or o.id in mine]


async def create_org(svc: Services, ident: Identity, name: str, visibility: str) -> Organization:
    require_user(ident)
    if not name:
        raise BadRequest("organization name required")
    org = Organization(name=name, visibility=visibility or Visibility.PUBLIC, creator_user_id=ident.user_id)
    return await svc.configstore.create_org(org)


async def _owned_org(svc: Services, ident: Identity, org_ref: str, what: str) -> Organization:
    require_user(ident)
    org: Organization = await svc.configstore.get_org(org_ref)
    if not await is_org_owner(svc.configstore, ident, org.id):
        raise deny(ident, what)
    return org


async def delete_org(svc: Services, ident: Identity, org_ref: str) -> None:
    org = await _owned_org(svc, ident, org_ref, "delete this organization")
    await svc.configstore.delete_org(org.id)


async def get_org_members(svc: Services, ident: Identity, org_ref: str) -> OrgMembers:
    org = await get_org(svc, ident, org_ref)
    return OrgMembers(org, await svc.configstore.get_org_members(org.id))


async def add_org_member(svc: Services, ident: Identity, org_ref: str, user_ref: str, role: str) -> OrgMember:
    org = await _owned_org(svc, ident, org_ref, "change the members of this organization")
    role = role or MemberRole.MEMBER
    user = await svc.configstore.get_user(user_ref)
    member = await svc.configstore.add_org_member(org.id, user.id, role)
    return OrgMember(org, user, str(member.member_role))


async def remove_org_member(svc: Services, ident: Identity, org_ref: str, user_ref: str) -> None:
    org = await _owned_org(svc, ident, org_ref, "change the members of this organization")
    await svc.configstore.remove_org_member(org.id, user_ref)
