"""User operations: users, their linked accounts and API tokens (spec §5.4)."""

from __future__ import annotations

import attrs

from agola.errors import BadRequest
from agola.services.configstore import changegroups as cg
from agola.services.configstore.names import check_name
from agola.services.configstore.ops.cascade import owner_tree
from agola.services.configstore.ops.plan import Env, Plan, Write, plan
from agola.services.configstore.state import ConfigState
from agola.services.configstore.tokens import hash_token
from agola.services.configstore.validation import check_token_name
from agola.types.configstore import (
    ConfigType,
    CreateUserLARequest,
    CreateUserRequest,
    CreateUserTokenResponse,
    LinkedAccount,
    Parent,
    ProjectGroup,
    RemoteSource,
    UpdateUserLARequest,
    UpdateUserRequest,
    User,
    Visibility,
)


def existing_user(state: ConfigState, ref: str) -> User:
    user = state.user_by_ref(ref)
    if user is None:
        raise BadRequest(f"user {ref!r} doesn't exist")
    return user


def _check_remote_user_free(state: ConfigState, rs: RemoteSource, remote_user_id: str, la_id: str = "") -> None:
    other = state.user_by_remote_user(rs.id, remote_user_id)
    if other is None:
        return
    if la_id and other.linked_accounts.get(la_id) is not None:
        la = other.linked_accounts[la_id]
        if la.remote_source_id == rs.id and la.remote_user_id == remote_user_id:
            return
    raise BadRequest(f"remote user {remote_user_id!r} of remote source {rs.name!r} is already linked to a user")


def _new_linked_account(state: ConfigState, req: CreateUserLARequest, env: Env) -> tuple[LinkedAccount, RemoteSource]:
    if not req.remote_source_name:
        raise BadRequest("remote source name required")
    if not req.remote_user_id:
        raise BadRequest("remote user id required")
    rs = state.remote_source_by_name(req.remote_source_name)
    if rs is None:
        raise BadRequest(f"remote source {req.remote_source_name!r} doesn't exist")
    _check_remote_user_free(state, rs, req.remote_user_id)
    la = LinkedAccount(
        id=env.new_id(),
        remote_user_id=req.remote_user_id,
        remote_user_name=req.remote_user_name,
        remote_source_id=rs.id,
        user_access_token=req.user_access_token,
        oauth2_access_token=req.oauth2_access_token,
        oauth2_refresh_token=req.oauth2_refresh_token,
        oauth2_access_token_expires_at=req.oauth2_access_token_expires_at,
    )
    return la, rs


def create_user(state: ConfigState, req: CreateUserRequest, env: Env = Env()) -> Plan[User]:
    """A new user, optionally with a first linked account, and its root project group."""
    check_name("user", req.user_name)
    if state.user_by_name(req.user_name) is not None:
        raise BadRequest(f"user with name {req.user_name!r} already exists")
    groups = [cg.user_name(req.user_name)]
    linked: dict[str, LinkedAccount] = {}
    if req.create_user_la_request is not None:
        la, rs = _new_linked_account(state, req.create_user_la_request, env)
        linked[la.id] = la
        groups.append(cg.remote_source_id(rs.id))
    user = User(id=env.new_id(), name=req.user_name, secret=env.new_secret(), linked_accounts=linked)
    root = ProjectGroup(
        id=env.new_id(), parent=Parent(ConfigType.USER, user.id), visibility=Visibility.PUBLIC
    )
    return plan([Write.put(user), Write.put(root)], groups, user)


def update_user(state: ConfigState, ref: str, req: UpdateUserRequest) -> Plan[User]:
    """Rename a user. Unlike the reference, the new name's change group is enforced (§11.1.9)."""
    user = existing_user(state, ref)
    check_name("user", req.user_name)
    if req.user_name != user.name and state.user_by_name(req.user_name) is not None:
        raise BadRequest(f"user with name {req.user_name!r} already exists")
    updated = attrs.evolve(user, name=req.user_name)
    groups = [cg.user_id(user.id), cg.user_name(user.name), cg.user_name(req.user_name)]
    return plan([Write.put(updated)], groups, updated)


def delete_user(state: ConfigState, ref: str) -> Plan[User]:
    """Delete a user with its whole project tree and org memberships.

    Refused while projects outside that tree (in orgs) use one of its linked accounts: they would
    be left unable to reach their repository.
    """
    user = existing_user(state, ref)
    writes, groups, own_projects = owner_tree(state, ConfigType.USER, user.id)
    own_ids = {p.id for p in own_projects}
    users_projects = [
        p for p in state.projects_using_linked_accounts(user.linked_accounts) if p.id not in own_ids
    ]
    if users_projects:
        paths = ", ".join(sorted(state.project_path(p) for p in users_projects))
        raise BadRequest(
            f"user {user.name!r} can't be deleted: projects use its linked accounts ({paths}); "
            "delete them or change their linked account first"
        )
    # Orgs keep existing; they just no longer name a creator (the reference allows an empty one).
    for org in state.all(ConfigType.ORG):
        if org.creator_user_id == user.id:
            writes.append(Write.put(attrs.evolve(org, creator_user_id="")))
            groups.append(cg.org_id(org.id))
    writes.append(Write.delete(ConfigType.USER, user.id))
    groups = [cg.user_id(user.id), cg.user_name(user.name), *groups]
    return plan(writes, groups, user)


def create_user_la(state: ConfigState, user_ref: str, req: CreateUserLARequest, env: Env = Env()) -> Plan[LinkedAccount]:
    user = existing_user(state, user_ref)
    la, rs = _new_linked_account(state, req, env)
    updated = attrs.evolve(user, linked_accounts={**user.linked_accounts, la.id: la})
    return plan([Write.put(updated)], [cg.user_id(user.id), cg.remote_source_id(rs.id)], la)


def _existing_la(user: User, la_id: str) -> LinkedAccount:
    la = user.linked_accounts.get(la_id)
    if la is None:
        raise BadRequest(f"linked account {la_id!r} of user {user.name!r} doesn't exist")
    return la


def update_user_la(state: ConfigState, user_ref: str, la_id: str, req: UpdateUserLARequest) -> Plan[LinkedAccount]:
    """Update a linked account's remote user and credentials (its remote source never changes)."""
    user = existing_user(state, user_ref)
    la = _existing_la(user, la_id)
    if not req.remote_user_id:
        raise BadRequest("remote user id required")
    rs = state.remote_source(la.remote_source_id)
    if rs is not None and req.remote_user_id != la.remote_user_id:
        _check_remote_user_free(state, rs, req.remote_user_id)
    updated_la = attrs.evolve(
        la,
        remote_user_id=req.remote_user_id,
        remote_user_name=req.remote_user_name,
        user_access_token=req.user_access_token,
        oauth2_access_token=req.oauth2_access_token,
        oauth2_refresh_token=req.oauth2_refresh_token,
        oauth2_access_token_expires_at=req.oauth2_access_token_expires_at,
        needs_reauthorization=req.needs_reauthorization,
    )
    updated = attrs.evolve(user, linked_accounts={**user.linked_accounts, la.id: updated_la})
    return plan([Write.put(updated)], [cg.user_id(user.id)], updated_la)


def delete_user_la(state: ConfigState, user_ref: str, la_id: str) -> Plan[None]:
    """Remove a linked account; refused while projects use it (they would lose their repository)."""
    user = existing_user(state, user_ref)
    _existing_la(user, la_id)
    users_projects = state.projects_using_linked_accounts([la_id])
    if users_projects:
        paths = ", ".join(sorted(state.project_path(p) for p in users_projects))
        raise BadRequest(f"linked account {la_id!r} can't be deleted: projects use it ({paths})")
    remaining = {k: v for k, v in user.linked_accounts.items() if k != la_id}
    return plan([Write.put(attrs.evolve(user, linked_accounts=remaining))], [cg.user_id(user.id)], None)


def create_user_token(
    state: ConfigState, user_ref: str, token_name: str, env: Env = Env()
) -> Plan[CreateUserTokenResponse]:
    """A new API token: the result holds the value, shown once; only its hash is stored."""
    user = existing_user(state, user_ref)
    check_token_name(token_name)
    if token_name in user.tokens:
        raise BadRequest(f"token {token_name!r} for user {user.name!r} already exists")
    token = env.new_token()
    updated = attrs.evolve(user, tokens={**user.tokens, token_name: hash_token(token)})
    return plan([Write.put(updated)], [cg.user_id(user.id)], CreateUserTokenResponse(token))


def delete_user_token(state: ConfigState, user_ref: str, token_name: str) -> Plan[None]:
    user = existing_user(state, user_ref)
    if not token_name:
        raise BadRequest("token name required")
    if token_name not in user.tokens:
        raise BadRequest(f"token {token_name!r} for user {user.name!r} doesn't exist")
    remaining = {k: v for k, v in user.tokens.items() if k != token_name}
    return plan([Write.put(attrs.evolve(user, tokens=remaining))], [cg.user_id(user.id)], None)
