"""Project groups and projects (spec §6.2, §6.4).

A project is either on a forge repository (``--remote-source S --repo-path owner/repo``: the
caller's linked account on S, a deploy key and a webhook installed by ``projectrepo``), or
``manual`` (no git host behind it: secrets, variables, no runs from pushes).
"""

from __future__ import annotations

from typing import TypeVar

import attrs

from agola.errors import AgolaError, BadRequest, NotExist
from agola.services.gateway.actions import Services
from agola.services.gateway.actions.linkedaccounts import account_driver, user_account
from agola.services.gateway.actions.projectrepo import (
    cleanup_repo,
    generate_ssh_key,
    project_driver,
    setup_repo,
)
from agola.services.gateway.actions.webhooks import create_manual_runs
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
    RemoteSource,
    User,
    Visibility,
)
from agola.types.runservice import Run
from agola.util.log import get_logger

log = get_logger(__name__)


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
                         repo_path: str = "", remote_source_name: str = "",
                         skip_ssh_host_key_check: bool = False) -> ProjectResponse:
    require_user(ident)
    parent = await _owned_group(svc, ident, _default_parent(ident, parent_ref), "create a project here")
    req = Project(name=name, parent=Parent(ConfigType.PROJECTGROUP, parent.project_group.id),
                  visibility=visibility or Visibility.PUBLIC,
                  remote_repository_config_type=RemoteRepositoryConfigType.MANUAL)
    if not remote_source_name and not repo_path:
        return await svc.configstore.create_project(req)
    if not remote_source_name or not repo_path:
        raise BadRequest("both the remote source name and the repository path are required")
    if ident.user is None:
        raise BadRequest("a project on a remote source needs a user's linked account: the admin token has none")
    rs = await _remote_source(svc, remote_source_name)
    user: User = await svc.configstore.get_user(ident.user.id)
    la = user_account(user, rs)
    if la is None:
        raise BadRequest(f"user {user.name!r} has no linked account for remote source {rs.name!r}: "
                         "agola user linkedaccount create first")
    async with await account_driver(svc, rs, user.id, la) as forge:
        repo = await forge.repo_info(repo_path)
        req = attrs.evolve(req, remote_repository_config_type=RemoteRepositoryConfigType.REMOTESOURCE,
                           remote_source_id=rs.id, linked_account_id=la.id, repository_id=repo.id,
                           repository_path=repo.path, ssh_private_key=generate_ssh_key(),
                           skip_ssh_host_key_check=skip_ssh_host_key_check)
        created: ProjectResponse = await svc.configstore.create_project(req)
        try:
            await setup_repo(svc, forge, created.project)
        except AgolaError:
            # No project without its deploy key and hook: setup_repo removed what it installed.
            await svc.configstore.delete_project(created.project.id)
            raise
    return created


async def _remote_source(svc: Services, ref: str) -> RemoteSource:
    try:
        rs: RemoteSource = await svc.configstore.get_remote_source(ref)
    except NotExist:
        raise BadRequest(f"remote source {ref!r} doesn't exist") from None
    return rs


async def update_project(svc: Services, ident: Identity, ref: str, update: ProjectGroupUpdate,
                         pass_vars_to_forked_pr: bool | None = None) -> ProjectResponse:
    current = await _owned_project(svc, ident, ref, "update this project")
    project = current.project
    if pass_vars_to_forked_pr is not None:
        project = attrs.evolve(project, pass_vars_to_forked_pr=pass_vars_to_forked_pr)
    if update.name is not None:
        project = attrs.evolve(project, name=update.name)
    if update.visibility is not None:
        project = attrs.evolve(project, visibility=update.visibility)
    if update.parent_ref is not None:
        parent = await _owned_group(svc, ident, update.parent_ref, "move a project there")
        project = attrs.evolve(project, parent=Parent(ConfigType.PROJECTGROUP, parent.project_group.id))
    return await svc.configstore.update_project(project.id, project)


async def delete_project(svc: Services, ident: Identity, ref: str) -> None:
    current = await _owned_project(svc, ident, ref, "delete this project")
    project = current.project
    await svc.configstore.delete_project(project.id)
    if project.remote_repository_config_type != RemoteRepositoryConfigType.REMOTESOURCE:
        return
    # Best effort: the project is gone whatever the forge says (an orphan hook gets 404s).
    try:
        _, forge = await project_driver(svc, project)
        async with forge:
            await cleanup_repo(svc, forge, project)
    except AgolaError as exc:
        log.warning("project deleted, its forge repository not cleaned", project=project.id,
                    repo=project.repository_path, error=exc.message)


async def reconfig_project(svc: Services, ident: Identity, ref: str) -> None:
    """Reinstall the deploy key and the webhook (after a forge lost them, or a URL changed)."""
    current = await _owned_project(svc, ident, ref, "reconfigure this project")
    project = current.project
    if project.remote_repository_config_type != RemoteRepositoryConfigType.REMOTESOURCE:
        raise BadRequest("this project has no remote repository to configure")
    _, forge = await project_driver(svc, project)
    async with forge:
        await setup_repo(svc, forge, project)


async def project_create_run(svc: Services, ident: Identity, ref: str, *, branch: str = "", tag: str = "",
                             git_ref: str = "", commit_sha: str = "") -> list[Run]:
    """Runs of a branch, tag or commit of the project's repository, without a push (spec §6.6)."""
    current = await _owned_project(svc, ident, ref, "create runs of this project")
    project = current.project
    if project.remote_repository_config_type != RemoteRepositoryConfigType.REMOTESOURCE:
        raise BadRequest("this project has no remote repository to build from")
    if ident.user is None:
        raise BadRequest("a project run needs a user's linked account: the admin token has none")
    rs: RemoteSource = await svc.configstore.get_remote_source(project.remote_source_id)
    user: User = await svc.configstore.get_user(ident.user.id)
    la = user_account(user, rs)
    if la is None:
        raise BadRequest(f"user {user.name!r} has no linked account for remote source {rs.name!r}")
    return await create_manual_runs(svc, project, rs, user, la, branch=branch, tag=tag, ref=git_ref,
                                    commit_sha=commit_sha)
