"""The configstore's business logic over the datamanager: queries answered from the readdb, and
operations that plan on the readdb's state, write one WAL guarded by change groups, and return
once the readdb shows the write (so a following read sees it).

HTTP handlers only parse, call one of these methods and serialize the result.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from typing import TypeVar

from agola.errors import BadRequest, Conflict, NotExist
from agola.services.configstore import ops
from agola.services.configstore.ops import Env, Plan
from agola.services.configstore.readdb import ConfigReadDB
from agola.services.configstore.state import ConfigState
from agola.services.configstore.tree import RunRef, run_variables
from agola.storage.datamanager import Action, DataManager
from agola.types.configstore import (
    ConfigType,
    CreateUserLARequest,
    CreateUserRequest,
    CreateUserTokenResponse,
    LinkedAccount,
    Organization,
    OrganizationMember,
    OrgMemberResponse,
    Parent,
    Project,
    ProjectGroup,
    ProjectGroupResponse,
    ProjectResponse,
    RemoteSource,
    Secret,
    SecretResponse,
    UpdateUserLARequest,
    UpdateUserRequest,
    User,
    UserOrgsResponse,
    Variable,
    VariableResponse,
)
from agola.util.log import get_logger

log = get_logger(__name__)

R = TypeVar("R")

# A write that lost a change group race is planned again on the newer state this many times,
# after a short random pause (so that a crowd of writers on one parent spreads out).
MAX_ATTEMPTS = 10
RETRY_PAUSE = 0.02
DEFAULT_LIMIT = 10
MAX_LIMIT = 20


def plan_actions(plan: Plan[R]) -> list[Action]:
    out: list[Action] = []
    for write in plan.writes:
        if write.obj is None:
            out.append(Action.delete(write.datatype, write.id))
        else:
            data = json.dumps(write.obj.to_json(), separators=(",", ":")).encode()
            out.append(Action.put(write.datatype, write.id, data))
    return out


def page_limit(limit: int) -> int:
    if limit < 0:
        raise BadRequest("limit must be >= 0")
    if limit == 0:
        return DEFAULT_LIMIT
    return min(limit, MAX_LIMIT)


class ActionHandler:
    def __init__(self, dm: DataManager, readdb: ConfigReadDB, env: Env | None = None) -> None:
        self.dm = dm
        self.readdb = readdb
        self.env = env or Env()

    # ------------------------------------------------------------------------------------------
    # the write path

    async def run(self, planner: Callable[[ConfigState], Plan[R]]) -> R:
        """Plan on the current state and commit; on a change group conflict, wait for the readdb
        to see the competing write and plan again (its checks then decide: e.g. a duplicate name)."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            await self.readdb.wait_synced()
            plan = planner(self.readdb.state)
            # no await between planning and the token: both describe the same state
            token = self.readdb.token(plan.change_groups)
            if not plan.writes:
                return plan.result
            try:
                written = await self.dm.write_wal(plan_actions(plan), token)
            except Conflict:
                log.debug("configstore write conflict, planning again", attempt=attempt)
                fresh = await self.dm.get_change_groups_update_token(list(plan.change_groups))
                await self.readdb.wait_revision(fresh.cur_revision)
                await asyncio.sleep(random.uniform(0, RETRY_PAUSE * attempt))
                continue
            await self.readdb.wait_revision(written.cur_revision)
            return plan.result
        raise Conflict("too many concurrent changes to the same objects, retry later")

    # ------------------------------------------------------------------------------------------
    # users

    def _user(self, ref: str) -> User:
        user = self.readdb.state.user_by_ref(ref)
        if user is None:
            raise NotExist(f"user {ref!r} doesn't exist")
        return user

    async def get_user(self, ref: str) -> User:
        await self.readdb.wait_synced()
        return self._user(ref)

    async def list_users(self, start: str = "", limit: int = 0, asc: bool = True) -> list[User]:
        await self.readdb.wait_synced()
        return self.readdb.state.users(start, page_limit(limit), asc)

    async def get_user_by_token(self, token: str) -> User:
        await self.readdb.wait_synced()
        user = self.readdb.state.user_by_token(token) if token else None
        if user is None:
            raise NotExist("user for token doesn't exist")
        return user

    async def get_user_by_linked_account(self, la_id: str) -> User:
        await self.readdb.wait_synced()
        user = self.readdb.state.user_by_linked_account(la_id)
        if user is None:
            raise NotExist(f"user with linked account {la_id!r} doesn't exist")
        return user

    async def get_user_by_remote_user(self, remote_source_id: str, remote_user_id: str) -> User:
        await self.readdb.wait_synced()
        user = self.readdb.state.user_by_remote_user(remote_source_id, remote_user_id)
        if user is None:
            raise NotExist(f"user with remote user {remote_user_id!r} for remote source {remote_source_id!r} doesn't exist")
        return user

    async def create_user(self, req: CreateUserRequest) -> User:
        return await self.run(lambda s: ops.create_user(s, req, self.env))

    async def update_user(self, ref: str, req: UpdateUserRequest) -> User:
        return await self.run(lambda s: ops.update_user(s, ref, req))

    async def delete_user(self, ref: str) -> None:
        await self.run(lambda s: ops.delete_user(s, ref))

    async def create_user_la(self, ref: str, req: CreateUserLARequest) -> LinkedAccount:
        return await self.run(lambda s: ops.create_user_la(s, ref, req, self.env))

    async def update_user_la(self, ref: str, la_id: str, req: UpdateUserLARequest) -> LinkedAccount:
        return await self.run(lambda s: ops.update_user_la(s, ref, la_id, req))

    async def delete_user_la(self, ref: str, la_id: str) -> None:
        await self.run(lambda s: ops.delete_user_la(s, ref, la_id))

    async def create_user_token(self, ref: str, token_name: str) -> CreateUserTokenResponse:
        return await self.run(lambda s: ops.create_user_token(s, ref, token_name, self.env))

    async def delete_user_token(self, ref: str, token_name: str) -> None:
        await self.run(lambda s: ops.delete_user_token(s, ref, token_name))

    async def get_user_orgs(self, ref: str) -> list[UserOrgsResponse]:
        await self.readdb.wait_synced()
        state = self.readdb.state
        user = self._user(ref)
        out = []
        for member in state.user_memberships(user.id):
            org = state.org(member.organization_id)
            if org is not None:
                out.append(UserOrgsResponse(org, member.member_role))
        return sorted(out, key=lambda r: r.organization.name)

    # ------------------------------------------------------------------------------------------
    # orgs

    def _org(self, ref: str) -> Organization:
        org = self.readdb.state.org_by_ref(ref)
        if org is None:
            raise NotExist(f"organization {ref!r} doesn't exist")
        return org

    async def get_org(self, ref: str) -> Organization:
        await self.readdb.wait_synced()
        return self._org(ref)

    async def list_orgs(self, start: str = "", limit: int = 0, asc: bool = True) -> list[Organization]:
        await self.readdb.wait_synced()
        return self.readdb.state.orgs(start, page_limit(limit), asc)

    async def create_org(self, org: Organization) -> Organization:
        return await self.run(lambda s: ops.create_org(s, org, self.env))

    async def delete_org(self, ref: str) -> None:
        await self.run(lambda s: ops.delete_org(s, ref))

    async def get_org_members(self, ref: str) -> list[OrgMemberResponse]:
        await self.readdb.wait_synced()
        state = self.readdb.state
        org = self._org(ref)
        out = []
        for member in state.org_members(org.id):
            user = state.user(member.user_id)
            if user is not None:
                out.append(OrgMemberResponse(user, member.member_role))
        return sorted(out, key=lambda r: r.user.name)

    async def add_org_member(self, org_ref: str, user_ref: str, role: str) -> OrganizationMember:
        return await self.run(lambda s: ops.add_org_member(s, org_ref, user_ref, role, self.env))

    async def remove_org_member(self, org_ref: str, user_ref: str) -> None:
        await self.run(lambda s: ops.remove_org_member(s, org_ref, user_ref))

    # ------------------------------------------------------------------------------------------
    # project groups and projects

    def _group(self, ref: str) -> ProjectGroup:
        group = self.readdb.state.project_group_by_ref(ref)
        if group is None:
            raise NotExist(f"project group {ref!r} doesn't exist")
        return group

    def _project(self, ref: str) -> Project:
        project = self.readdb.state.project_by_ref(ref)
        if project is None:
            raise NotExist(f"project {ref!r} doesn't exist")
        return project

    async def get_project_group(self, ref: str) -> ProjectGroupResponse:
        await self.readdb.wait_synced()
        return self.readdb.state.project_group_response(self._group(ref))

    async def get_project_group_subgroups(self, ref: str) -> list[ProjectGroupResponse]:
        await self.readdb.wait_synced()
        state = self.readdb.state
        return [state.project_group_response(g) for g in state.subgroups(self._group(ref).id)]

    async def get_project_group_projects(self, ref: str) -> list[ProjectResponse]:
        await self.readdb.wait_synced()
        state = self.readdb.state
        return [state.project_response(p) for p in state.projects_in(self._group(ref).id)]

    async def create_project_group(self, req: ProjectGroup) -> ProjectGroupResponse:
        group = await self.run(lambda s: ops.create_project_group(s, req, self.env))
        return self.readdb.state.project_group_response(group)

    async def update_project_group(self, ref: str, req: ProjectGroup) -> ProjectGroupResponse:
        group = await self.run(lambda s: ops.update_project_group(s, ref, req))
        return self.readdb.state.project_group_response(group)

    async def delete_project_group(self, ref: str) -> None:
        await self.run(lambda s: ops.delete_project_group(s, ref))

    async def get_project(self, ref: str) -> ProjectResponse:
        await self.readdb.wait_synced()
        return self.readdb.state.project_response(self._project(ref))

    async def create_project(self, req: Project) -> ProjectResponse:
        project = await self.run(lambda s: ops.create_project(s, req, self.env))
        return self.readdb.state.project_response(project)

    async def update_project(self, ref: str, req: Project) -> ProjectResponse:
        project = await self.run(lambda s: ops.update_project(s, ref, req))
        return self.readdb.state.project_response(project)

    async def delete_project(self, ref: str) -> None:
        await self.run(lambda s: ops.delete_project(s, ref))

    # ------------------------------------------------------------------------------------------
    # remote sources

    def _remote_source(self, ref: str) -> RemoteSource:
        rs = self.readdb.state.remote_source_by_ref(ref)
        if rs is None:
            raise NotExist(f"remote source {ref!r} doesn't exist")
        return rs

    async def get_remote_source(self, ref: str) -> RemoteSource:
        await self.readdb.wait_synced()
        return self._remote_source(ref)

    async def list_remote_sources(self, start: str = "", limit: int = 0, asc: bool = True) -> list[RemoteSource]:
        await self.readdb.wait_synced()
        return self.readdb.state.remote_sources(start, page_limit(limit), asc)

    async def create_remote_source(self, rs: RemoteSource) -> RemoteSource:
        return await self.run(lambda s: ops.create_remote_source(s, rs, self.env))

    async def update_remote_source(self, ref: str, rs: RemoteSource) -> RemoteSource:
        return await self.run(lambda s: ops.update_remote_source(s, ref, rs))

    async def delete_remote_source(self, ref: str) -> None:
        await self.run(lambda s: ops.delete_remote_source(s, ref))

    # ------------------------------------------------------------------------------------------
    # secrets and variables (parent_type: "project" or "projectgroup", from the URL)

    def _parent(self, parent_type: str, parent_ref: str) -> Parent:
        if parent_type == ConfigType.PROJECT:
            return Parent(ConfigType.PROJECT, self._project(parent_ref).id)
        if parent_type == ConfigType.PROJECTGROUP:
            return Parent(ConfigType.PROJECTGROUP, self._group(parent_ref).id)
        raise BadRequest(f"invalid parent type {parent_type!r}")

    async def get_secrets(self, parent_type: str, parent_ref: str, tree: bool = False) -> list[SecretResponse]:
        await self.readdb.wait_synced()
        return self.readdb.state.secrets_tree(self._parent(parent_type, parent_ref), tree)

    async def get_variables(self, parent_type: str, parent_ref: str, tree: bool = False) -> list[VariableResponse]:
        await self.readdb.wait_synced()
        return self.readdb.state.variables_tree(self._parent(parent_type, parent_ref), tree)

    async def create_secret(self, parent_type: str, parent_ref: str, req: Secret) -> Secret:
        return await self.run(lambda s: ops.create_secret(s, parent_type, parent_ref, req, self.env))

    async def update_secret(self, parent_type: str, parent_ref: str, name: str, req: Secret) -> Secret:
        return await self.run(lambda s: ops.update_secret(s, parent_type, parent_ref, name, req))

    async def delete_secret(self, parent_type: str, parent_ref: str, name: str) -> None:
        await self.run(lambda s: ops.delete_secret(s, parent_type, parent_ref, name))

    async def create_variable(self, parent_type: str, parent_ref: str, req: Variable) -> Variable:
        return await self.run(lambda s: ops.create_variable(s, parent_type, parent_ref, req, self.env))

    async def update_variable(self, parent_type: str, parent_ref: str, name: str, req: Variable) -> Variable:
        return await self.run(lambda s: ops.update_variable(s, parent_type, parent_ref, name, req))

    async def delete_variable(self, parent_type: str, parent_ref: str, name: str) -> None:
        await self.run(lambda s: ops.delete_variable(s, parent_type, parent_ref, name))

    async def get_run_variables(self, project_ref: str, run: RunRef) -> dict[str, str]:
        """The variables of a run of this project (what the gateway needs to create a run)."""
        await self.readdb.wait_synced()
        state = self.readdb.state
        project = self._project(project_ref)
        parent = Parent(ConfigType.PROJECT, project.id)
        return run_variables(project, state.variables_tree(parent), state.secrets_tree(parent), run)
