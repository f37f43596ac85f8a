"""Project group and project operations (spec §5.4)."""

from __future__ import annotations

import attrs

from agola.errors import BadRequest
from agola.services.configstore import changegroups as cg
from agola.services.configstore.names import join_path
from agola.services.configstore.ops.cascade import group_subtree, project_contents
from agola.services.configstore.ops.plan import Env, Plan, Write, plan
from agola.services.configstore.state import ConfigState
from agola.services.configstore.validation import check_project, check_project_group
from agola.types.configstore import (
    ConfigType,
    Parent,
    Project,
    ProjectGroup,
    RemoteRepositoryConfigType,
)

# ----------------------------------------------------------------------------------------------
# project groups


def existing_group(state: ConfigState, ref: str) -> ProjectGroup:
    group = state.project_group_by_ref(ref)
    if group is None:
        raise BadRequest(f"project group {ref!r} doesn't exist")
    return group


def _parent_group(state: ConfigState, ref: str) -> ProjectGroup:
    group = state.project_group_by_ref(ref)
    if group is None:
        raise BadRequest(f"parent project group {ref!r} doesn't exist")
    return group


def create_project_group(state: ConfigState, req: ProjectGroup, env: Env = Env()) -> Plan[ProjectGroup]:
    """A new group under a group (``parent.id`` may be an id or a path). Root groups are only
    created with their user or org."""
    check_project_group(req)
    if req.parent.type != ConfigType.PROJECTGROUP:
        raise BadRequest(f"wrong project group parent type {req.parent.type!r}: root groups are created with their user or org")
    parent = _parent_group(state, req.parent.id)
    path = join_path(state.group_path(parent.id), req.name)
    if state.subgroup_by_name(parent.id, req.name) is not None:
        raise BadRequest(f"project group with name {req.name!r}, path {path!r} already exists")
    group = attrs.evolve(req, id=env.new_id(), parent=Parent(ConfigType.PROJECTGROUP, parent.id))
    return plan([Write.put(group)], [cg.project_path(path), cg.project_group_id(parent.id)], group)


def update_project_group(state: ConfigState, ref: str, req: ProjectGroup) -> Plan[ProjectGroup]:
    """Rename, move or change the visibility of a group.

    A root group keeps its owner and its empty name; a group can't move inside itself or below
    one of its own subgroups.
    """
    check_project_group(req)
    current = existing_group(state, ref)
    if req.id and req.id != current.id:
        raise BadRequest(f"project group with ref {ref!r} has a different id")
    if req.parent.type != current.parent.type:
        raise BadRequest("changing project group parent type isn't supported")
    old_path = state.group_path(current.id)
    if current.is_root:
        if req.parent.id != current.parent.id:
            raise BadRequest("cannot change root project group parent type or id")
        updated = attrs.evolve(current, visibility=req.visibility)
        return plan([Write.put(updated)], [cg.project_group_id(current.id), cg.project_path(old_path)], updated)

    parent = _parent_group(state, req.parent.id)
    new_path = join_path(state.group_path(parent.id), req.name)
    if parent.id != current.parent.id or req.name != current.name:
        if state.is_descendant_or_self(parent.id, current.id):
            raise BadRequest("cannot move project group inside itself or child project group")
        if state.subgroup_by_name(parent.id, req.name) is not None:
            raise BadRequest(f"project group with name {req.name!r}, path {new_path!r} already exists")
    updated = attrs.evolve(
        current, name=req.name, visibility=req.visibility, parent=Parent(ConfigType.PROJECTGROUP, parent.id)
    )
    groups = [
        cg.project_group_id(current.id),
        cg.project_path(old_path),
        cg.project_path(new_path),
        cg.project_group_id(parent.id),
    ]
    return plan([Write.put(updated)], groups, updated)


def delete_project_group(state: ConfigState, ref: str) -> Plan[ProjectGroup]:
    """Delete a group and everything below it (subgroups, projects, secrets, variables)."""
    group = existing_group(state, ref)
    if group.is_root:
        raise BadRequest("cannot delete root project group")
    writes, groups, _, _ = group_subtree(state, group.id)
    return plan(writes, [cg.project_path(state.group_path(group.id)), *groups], group)


# ----------------------------------------------------------------------------------------------
# projects


def existing_project(state: ConfigState, ref: str) -> Project:
    project = state.project_by_ref(ref)
    if project is None:
        raise BadRequest(f"project {ref!r} doesn't exist")
    return project


def _check_remote_repository(state: ConfigState, project: Project) -> list[str]:
    """The linked account must exist, belong to a user and to the project's remote source."""
    if project.remote_repository_config_type != RemoteRepositoryConfigType.REMOTESOURCE:
        return []
    rs = state.remote_source(project.remote_source_id)
    if rs is None:
        raise BadRequest(f"remote source {project.remote_source_id!r} doesn't exist")
    user = state.user_by_linked_account(project.linked_account_id)
    if user is None:
        raise BadRequest(f"user for linked account {project.linked_account_id!r} doesn't exist")
    la = user.linked_accounts[project.linked_account_id]
    if la.remote_source_id != rs.id:
        raise BadRequest(
            f"linked account {la.id!r}, referenced by the project, doesn't belong to remote source {rs.name!r}"
        )
    # Changing the user or the remote source conflicts with this write.
    return [cg.user_id(user.id), cg.remote_source_id(rs.id)]


def create_project(state: ConfigState, req: Project, env: Env = Env()) -> Plan[Project]:
    """A new project in a group (``parent.id`` may be an id or a path), with fresh internal and
    webhook secrets. The SSH deploy key, if any, comes with the request (the gateway makes it)."""
    check_project(req)
    parent = _parent_group(state, req.parent.id)
    path = join_path(state.group_path(parent.id), req.name)
    if state.project_by_name(parent.id, req.name) is not None:
        raise BadRequest(f"project with name {req.name!r}, path {path!r} already exists")
    groups = [cg.project_path(path), cg.project_group_id(parent.id), *_check_remote_repository(state, req)]
    project = attrs.evolve(
        req,
        id=env.new_id(),
        parent=Parent(ConfigType.PROJECTGROUP, parent.id),
        secret=env.new_secret(),
        webhook_secret=env.new_secret(),
    )
    return plan([Write.put(project)], groups, project)


def update_project(state: ConfigState, ref: str, req: Project) -> Plan[Project]:
    """Replace a project's settings, possibly renaming or moving it. Its generated secrets are
    kept when the request leaves them empty."""
    check_project(req)
    current = existing_project(state, ref)
    if req.id and req.id != current.id:
        raise BadRequest(f"project with ref {ref!r} has a different id")
    parent = _parent_group(state, req.parent.id)
    old_path = state.project_path(current)
    new_path = join_path(state.group_path(parent.id), req.name)
    if (parent.id != current.parent.id or req.name != current.name) and state.project_by_name(
        parent.id, req.name
    ) is not None:
        raise BadRequest(f"project with name {req.name!r}, path {new_path!r} already exists")
    groups = [
        cg.project_id(current.id),
        # Both paths (the reference meant to add the old one but added the new one twice).
        cg.project_path(old_path),
        cg.project_path(new_path),
        cg.project_group_id(parent.id),
        *_check_remote_repository(state, req),
    ]
    updated = attrs.evolve(
        req,
        id=current.id,
        parent=Parent(ConfigType.PROJECTGROUP, parent.id),
        secret=req.secret or current.secret,
        webhook_secret=req.webhook_secret or current.webhook_secret,
        ssh_private_key=req.ssh_private_key or current.ssh_private_key,
    )
    return plan([Write.put(updated)], groups, updated)


def delete_project(state: ConfigState, ref: str) -> Plan[Project]:
    """Delete a project with its secrets and variables."""
    project = existing_project(state, ref)
    writes, groups = project_contents(state, project.id)
    writes.append(Write.delete(ConfigType.PROJECT, project.id))
    return plan(writes, [cg.project_id(project.id), cg.project_path(state.project_path(project)), *groups], project)
