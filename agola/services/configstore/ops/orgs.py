"""Organization operations: orgs and their members (spec §5.4)."""

from __future__ import annotations

import attrs

from agola.errors import BadRequest
from agola.services.configstore import changegroups as cg
from agola.services.configstore.ops.cascade import owner_tree
from agola.services.configstore.ops.plan import Env, Plan, Write, plan
from agola.services.configstore.ops.users import existing_user
from agola.services.configstore.state import ConfigState
from agola.services.configstore.validation import check_member_role, check_org
from agola.types.configstore import (
    ConfigType,
    MemberRole,
    Organization,
    OrganizationMember,
    Parent,
    ProjectGroup,
)


def existing_org(state: ConfigState, ref: str) -> Organization:
    org = state.org_by_ref(ref)
    if org is None:
        raise BadRequest(f"organization {ref!r} doesn't exist")
    return org


def create_org(state: ConfigState, org: Organization, env: Env = Env()) -> Plan[Organization]:
    """A new org, its root project group (with the org's visibility) and, if a creator is given,
    the creator as owner."""
    check_org(org)
    if state.org_by_name(org.name) is not None:
        raise BadRequest(f"organization with name {org.name!r} already exists")
    groups = [cg.org_name(org.name)]
    if org.creator_user_id:
        if state.user(org.creator_user_id) is None:
            raise BadRequest(f"creator user {org.creator_user_id!r} doesn't exist")
        groups.append(cg.user_id(org.creator_user_id))
    created = attrs.evolve(org, id=env.new_id(), created_at=env.now())
    writes = [Write.put(created)]
    if org.creator_user_id:
        member = OrganizationMember(
            id=env.new_id(),
            organization_id=created.id,
            user_id=org.creator_user_id,
            member_role=MemberRole.OWNER,
        )
        writes.append(Write.put(member))
        groups.append(cg.org_member(created.id, org.creator_user_id))
    root = ProjectGroup(id=env.new_id(), parent=Parent(ConfigType.ORG, created.id), visibility=org.visibility)
    writes.append(Write.put(root))
    return plan(writes, groups, created)


def delete_org(state: ConfigState, ref: str) -> Plan[Organization]:
    """Delete an org with its members and its whole project tree."""
    org = existing_org(state, ref)
    writes, groups, _ = owner_tree(state, ConfigType.ORG, org.id)
    writes.append(Write.delete(ConfigType.ORG, org.id))
    return plan(writes, [cg.org_id(org.id), cg.org_name(org.name), *groups], org)


def add_org_member(state: ConfigState, org_ref: str, user_ref: str, role: str, env: Env = Env()) -> Plan[OrganizationMember]:
    """Add a user to an org, or change its role (nothing is written if the role is the same)."""
    check_member_role(role)
    org = existing_org(state, org_ref)
    user = existing_user(state, user_ref)
    groups = [cg.org_member(org.id, user.id), cg.org_id(org.id), cg.user_id(user.id)]
    member = state.org_member(org.id, user.id)
    if member is not None:
        if member.member_role == role:
            return plan([], groups, member)
        updated = attrs.evolve(member, member_role=role)
        return plan([Write.put(updated)], groups, updated)
    member = OrganizationMember(id=env.new_id(), organization_id=org.id, user_id=user.id, member_role=role)
    return plan([Write.put(member)], groups, member)


def remove_org_member(state: ConfigState, org_ref: str, user_ref: str) -> Plan[None]:
    org = existing_org(state, org_ref)
    user = existing_user(state, user_ref)
    member = state.org_member(org.id, user.id)
    if member is None:
        raise BadRequest(f"user {user.name!r} is not a member of organization {org.name!r}")
    groups = [cg.org_member(org.id, user.id), cg.org_id(org.id), cg.user_id(user.id)]
    return plan([Write.delete(ConfigType.ORGMEMBER, member.id)], groups, None)
