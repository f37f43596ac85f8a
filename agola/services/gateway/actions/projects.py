"""Project groups and projects (spec §6.2, §6.4).

Projects backed by a remote git host (deploy keys, webhooks) come with the remote sources; until
then a project is created with the ``manual`` repository type: it has secrets, variables and runs
but no git host behind it.
"""

from __future__ import annotations

from typing import TypeVar

import attrs

from agola.errors import BadRequest
from agola.services.gateway.actions import Services
from agola.services.gateway.auth import Identity
from agola.services.gateway.permissions import can_view, check_project_owner, deny, require_user
from agola.types.configstore import (
    ConfigType,
    Parent,
    Project,
    ProjectGroup,
    ProjectGroupResponse,
    ProjectResponse,
    RemoteRepositoryConfigType,
    Visibility,
)

NOT_YET = "projects linked to a remote source are not supported by this gateway yet"


@attrs.frozen
class ProjectGroupUpdate:
    name: str | None = None
    parent_ref: str | None = None
    visibility: str | None = None


async def _visible_group(svc: Services, ident: Identity, ref: str) -> ProjectGroupResponse:
    group: ProjectGroupResponse = await svc.configstore.get_project_group(ref)
    if not await can_view(svc.configstore, ident, group.global_visibility, group.owner_type, group.owner_id):
        raise deny(ident, "see this project group")
    return group


async def _owned_group(svc: Services, ident: Identity, ref: str, what: str) -> ProjectGroupResponse:
    require_user(ident)
    group: ProjectGroupResponse = await svc.configstore.get_project_group(ref)
    await check_project_owner(svc.configstore, ident, group.owner_type, group.owner_id, what)
    return group


async def _visible_project(svc: Services, ident: Identity, ref: str) -> ProjectResponse:
    project: ProjectResponse = await svc.configstore.get_project(ref)
    if not await can_view(svc.configstore, ident, project.global_visibility, project.owner_type, project.owner_id):
        raise deny(ident, "see this project")
    return project


async def _owned_project(svc: Services, ident: Identity, ref: str, what: str) -> ProjectResponse:
    require_user(ident)
    project: ProjectResponse = await svc.configstore.get_project(ref)
    await check_project_owner(svc.configstore, ident, project.owner_type, project.owner_id, what)
    return project


def _default_parent(ident: Identity, parent_ref: str) -> str:
    if parent_ref:
        return parent_ref
    if ident.user is None:
        raise BadRequest("parent_ref required (the admin token has no user)")
    return f"user/{ident.user.name}"


# --- project groups -----------------------------------------------------------------------------


async def get_project_group(svc: Services, ident: Identity, ref: str) -> ProjectGroupResponse:
    require_user(ident)
    return await _visible_group(svc, ident, ref)


_Owned = TypeVar("_Owned", ProjectGroupResponse, ProjectResponse)


async def _filter_visible(svc: Services, ident: Identity, items: list[_Owned]) -> list[_Owned]:
    return [i for i in items
            if await can_view(svc.configstore, ident, i.global_visibility, i.owner_type, i.owner_id)]


async def get_project_group_subgroups(svc: Services, ident: Identity, ref: str) -> list[ProjectGroupResponse]:
    require_user(ident)
    group = await _visible_group(svc, ident, ref)
    return await _filter_visible(svc, ident, await svc.configstore.get_project_group_subgroups(group.project_group.id))


async def get_project_group_projects(svc: Services, ident: Identity, ref: str) -> list[ProjectResponse]:
    require_user(ident)
    group = await _visible_group(svc, ident, ref)
    return await _filter_visible(svc, ident, await svc.configstore.get_project_group_projects(group.project_group.id))


async def create_project_group(svc: Services, ident: Identity, name: str, parent_ref: str,
                               visibility: str) -> ProjectGroupResponse:
    require_user(ident)
    parent = await _owned_group(svc, ident, _default_parent(ident, parent_ref), "create a project group here")
    req = ProjectGroup(name=name, parent=Parent(ConfigType.PROJECTGROUP, parent.project_group.id),
                       visibility=visibility or Visibility.PUBLIC)
    return await svc.configstore.create_project_group(req)


async def update_project_group(svc: Services, ident: Identity, ref: str,
                               update: ProjectGroupUpdate) -> ProjectGroupResponse:
    group = await _owned_group(svc, ident, ref, "update this project group")
    pg = group.project_group
    if update.name is not None:
        pg = attrs.evolve(pg, name=update.name)
    if update.visibility is not None:
        pg = attrs.evolve(pg, visibility=update.visibility)
    if update.parent_ref is not None:
        parent = await _owned_group(svc, ident, update.parent_ref, "move a project group there")
        pg = attrs.evolve(pg, parent=Parent(ConfigType.PROJECTGROUP, parent.project_group.id))
    return await svc.configstore.update_project_group(pg.id, pg)


async def delete_project_group(svc: Services, ident: Identity, ref: str) -> None:
    group = await _owned_group(svc, ident, ref, "delete this project group")
    await svc.configstore.delete_project_group(group.project_group.id)


# --- projects -----------------------------------------------------------------------------------


async def get_project(svc: Services, ident: Identity, ref: str) -> ProjectResponse:
    return await _visible_project(svc, ident, ref)


async def create_project(svc: Services, ident: Identity, name: str, parent_ref: str, visibility: str,
                         repo_path: str = "", remote_source_name: str = "") -> ProjectResponse:
    require_user(ident)
    parent = await _owned_group(svc, ident, _default_parent(ident, parent_ref), "create a project here")
    if remote_source_name or repo_path:
        raise BadRequest(NOT_YET)
    req = Project(name=name, parent=Parent(ConfigType.PROJECTGROUP, parent.project_group.id),
                  visibility=visibility or Visibility.PUBLIC,
                  remote_repository_config_type=RemoteRepositoryConfigType.MANUAL)
    return await svc.configstore.create_project(req)


async def update_project(svc: Services, ident: Identity, ref: str, update: ProjectGroupUpdate) -> ProjectResponse:
    current = await _owned_project(svc, ident, ref, "update this project")
    project = current.project
    if update.name is not None:
        project = attrs.evolve(project, name=update.name)
    if update.visibility is not None:
        project = attrs.evolve(project, visibility=update.visibility)
    if update.parent_ref is not None:
        parent = await _owned_group(svc, ident, update.parent_ref, "move a project there")
        project = attrs.evolve(project, parent=Parent(ConfigType.PROJECTGROUP, parent.project_group.id))
    return await svc.configstore.update_project(project.id, project)


async def delete_project(svc: Services, ident: Identity, ref: str) -> None:
    project = await _owned_project(svc, ident, ref, "delete this project")
    await svc.configstore.delete_project(project.project.id)


async def reconfig_project(svc: Services, ident: Identity, ref: str) -> None:
    project = await _owned_project(svc, ident, ref, "reconfigure this project")
    if project.project.remote_repository_config_type == RemoteRepositoryConfigType.REMOTESOURCE:
        raise BadRequest(NOT_YET)


async def project_create_run(svc: Services, ident: Identity, ref: str) -> None:
    project = await _owned_project(svc, ident, ref, "create runs of this project")
    if project.project.remote_repository_config_type != RemoteRepositoryConfigType.REMOTESOURCE:
        raise BadRequest("this project has no remote repository to build from")
    raise BadRequest(NOT_YET)
