"""What deleting an object removes with it (fixes quirk §11.1.9: the reference left children
orphaned). Deleting a user, an org, a project group or a project removes everything below it in
one atomic write, and takes the change groups of everything removed, so that a concurrent create
below fails instead of leaving an orphan."""

from __future__ import annotations

from agola.services.configstore import changegroups as cg
from agola.services.configstore.ops.plan import Write
from agola.services.configstore.state import ConfigState
from agola.types.configstore import ConfigType, Project, ProjectGroup


def project_contents(state: ConfigState, project_id: str) -> tuple[list[Write], list[str]]:
    """Deletes of a project's secrets and variables (not of the project itself)."""
    writes = [Write.delete(ConfigType.SECRET, s.id) for s in state.secrets(project_id)]
    writes += [Write.delete(ConfigType.VARIABLE, v.id) for v in state.variables(project_id)]
    groups = [cg.secret_id(s.id) for s in state.secrets(project_id)]
    groups += [cg.variable_id(v.id) for v in state.variables(project_id)]
    return writes, groups


def group_subtree(state: ConfigState, group_id: str) -> tuple[list[Write], list[str], list[ProjectGroup], list[Project]]:
    """Deletes of a group and everything below it: groups, projects, their secrets and variables."""
    groups, projects = state.subtree(group_id)
    writes: list[Write] = []
    cgs: list[str] = []
    for project in projects:
        w, c = project_contents(state, project.id)
        writes += w + [Write.delete(ConfigType.PROJECT, project.id)]
        cgs += c + [cg.project_id(project.id)]
    # children before parents, so a reader applying the WAL in order never sees an orphan
    for group in reversed(groups):
        w, c = project_contents(state, group.id)
        writes += w + [Write.delete(ConfigType.PROJECTGROUP, group.id)]
        cgs += c + [cg.project_group_id(group.id)]
    return writes, cgs, groups, projects


def owner_tree(state: ConfigState, owner_type: str, owner_id: str) -> tuple[list[Write], list[str], list[Project]]:
    """Deletes of a user's or org's whole tree (root group included) and its org memberships."""
    writes: list[Write] = []
    cgs: list[str] = []
    projects: list[Project] = []
    root = state.root_group(owner_type, owner_id)
    if root is not None:
        writes, cgs, _, projects = group_subtree(state, root.id)
    members = (
        state.org_members(owner_id) if owner_type == ConfigType.ORG else state.user_memberships(owner_id)
    )
    for member in members:
        writes.append(Write.delete(ConfigType.ORGMEMBER, member.id))
        cgs.append(cg.org_member(member.organization_id, member.user_id))
    return writes, cgs, projects
