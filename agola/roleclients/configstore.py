"""Typed client of the configstore REST API (spec §5.6), used by the gateway (and notification).

Method names and signatures mirror ``agola.services.configstore.actions.ActionHandler`` one to
one (``ConfigstoreAPI`` is that shared interface), so the gateway can also be handed an in-process
handler. Refs (names, ids, ``user/x/group`` paths) are sent as one escaped path segment.

Errors come back typed: a missing object is ``NotExist``, a failed check ``BadRequest``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import quote

from agola.errors import NotExist
from agola.roleclients.maintenance import MaintenanceCalls
from agola.types.configstore import (
    CreateUserLARequest,
    CreateUserRequest,
    CreateUserTokenRequest,
    CreateUserTokenResponse,
    LinkedAccount,
    Organization,
    OrganizationMember,
    OrgMemberResponse,
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

# Export and import move the whole installation: no overall deadline.

# parent_type (as in ActionHandler) -> URL collection
_PARENTS = {"project": "projects", "projectgroup": "projectgroups"}


def seg(ref: str) -> str:
    """One path segment: ``user/u1`` -> ``user%2Fu1``."""
    return quote(ref, safe="")


def _paging(start: str, limit: int, asc: bool) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if start:
        params["start"] = start
    if limit:
        params["limit"] = limit
    if asc:
        params["asc"] = ""
    return params


log = get_logger(__name__)

class ConfigstoreAPI(Protocol):
    """What the gateway needs from the configstore (implemented by ``ConfigstoreClient`` over
    HTTP and by the configstore's ``ActionHandler`` in process)."""

    async def get_user(self, ref: str) -> User: ...
    async def list_users(self, start: str = "", limit: int = 0, asc: bool = True) -> list[User]: ...
    async def get_user_by_token(self, token: str) -> User: ...
    async def get_user_by_linked_account(self, la_id: str) -> User: ...
    async def get_user_by_remote_user(self, remote_source_id: str, remote_user_id: str) -> User: ...
    async def create_user(self, req: CreateUserRequest) -> User: ...
    async def update_user(self, ref: str, req: UpdateUserRequest) -> User: ...
    async def delete_user(self, ref: str) -> None: ...
    async def create_user_la(self, ref: str, req: CreateUserLARequest) -> LinkedAccount: ...
    async def update_user_la(self, ref: str, la_id: str, req: UpdateUserLARequest) -> LinkedAccount: ...
    async def delete_user_la(self, ref: str, la_id: str) -> None: ...
    async def create_user_token(self, ref: str, token_name: str) -> CreateUserTokenResponse: ...
    async def delete_user_token(self, ref: str, token_name: str) -> None: ...
    async def get_user_orgs(self, ref: str) -> list[UserOrgsResponse]: ...
    async def get_org(self, ref: str) -> Organization: ...
    async def list_orgs(self, start: str = "", limit: int = 0, asc: bool = True) -> list[Organization]: ...
    async def create_org(self, org: Organization) -> Organization: ...
    async def delete_org(self, ref: str) -> None: ...
    async def get_org_members(self, ref: str) -> list[OrgMemberResponse]: ...
    async def add_org_member(self, org_ref: str, user_ref: str, role: str) -> OrganizationMember: ...
    async def remove_org_member(self, org_ref: str, user_ref: str) -> None: ...
    async def get_project_group(self, ref: str) -> ProjectGroupResponse: ...
    async def get_project_group_subgroups(self, ref: str) -> list[ProjectGroupResponse]: ...
    async def get_project_group_projects(self, ref: str) -> list[ProjectResponse]: ...
    async def create_project_group(self, req: ProjectGroup) -> ProjectGroupResponse: ...
    async def update_project_group(self, ref: str, req: ProjectGroup) -> ProjectGroupResponse: ...
    async def delete_project_group(self, ref: str) -> None: ...
    async def get_project(self, ref: str) -> ProjectResponse: ...
    async def create_project(self, req: Project) -> ProjectResponse: ...
    async def update_project(self, ref: str, req: Project) -> ProjectResponse: ...
    async def delete_project(self, ref: str) -> None: ...
    async def get_remote_source(self, ref: str) -> RemoteSource: ...
    async def list_remote_sources(self, start: str = "", limit: int = 0, asc: bool = True) -> list[RemoteSource]: ...
    async def create_remote_source(self, rs: RemoteSource) -> RemoteSource: ...
    async def update_remote_source(self, ref: str, rs: RemoteSource) -> RemoteSource: ...
    async def delete_remote_source(self, ref: str) -> None: ...
    async def get_secrets(self, parent_type: str, parent_ref: str, tree: bool = False) -> list[SecretResponse]: ...
    async def get_variables(self, parent_type: str, parent_ref: str, tree: bool = False) -> list[VariableResponse]: ...
    async def create_secret(self, parent_type: str, parent_ref: str, req: Secret) -> Secret: ...
    async def update_secret(self, parent_type: str, parent_ref: str, name: str, req: Secret) -> Secret: ...
    async def delete_secret(self, parent_type: str, parent_ref: str, name: str) -> None: ...
    async def create_variable(self, parent_type: str, parent_ref: str, req: Variable) -> Variable: ...
    async def update_variable(self, parent_type: str, parent_ref: str, name: str, req: Variable) -> Variable: ...
    async def delete_variable(self, parent_type: str, parent_ref: str, name: str) -> None: ...


def _one_user(body: Any) -> User:
    # The reference answers a query by token/linked account with the user; a list is accepted too.
    if isinstance(body, list):
        if not body:
            raise NotExist("user doesn't exist")
        body = body[0]
    return User.from_json(body)


class ConfigstoreClient(MaintenanceCalls):
    """The configstore over HTTP (maintenance, export and import from ``MaintenanceCalls``)."""

    # --- users --------------------------------------------------------------------------------

    async def get_user(self, ref: str) -> User:
        return User.from_json(await self.json("GET", f"/users/{seg(ref)}"))

    async def list_users(self, start: str = "", limit: int = 0, asc: bool = True) -> list[User]:
        body = await self.json("GET", "/users", params=_paging(start, limit, asc))
        return [User.from_json(u) for u in body or []]

    async def get_user_by_token(self, token: str) -> User:
        # The token travels in the query of an internal call; it is never logged by our servers.
        body = await self.json("GET", "/users", params={"query_type": "bytoken", "token": token})
        return _one_user(body)

    async def get_user_by_linked_account(self, la_id: str) -> User:
        body = await self.json("GET", "/users", params={"query_type": "bylinkedaccount", "linkedaccountid": la_id})
        return _one_user(body)

    async def get_user_by_remote_user(self, remote_source_id: str, remote_user_id: str) -> User:
        body = await self.json("GET", "/users", params={"query_type": "byremoteuser", "remotesourceid": remote_source_id,
                                                         "remoteuserid": remote_user_id})
        return _one_user(body)

    async def create_user(self, req: CreateUserRequest) -> User:
        return User.from_json(await self.json("POST", "/users", json_body=req.to_json()))

    async def update_user(self, ref: str, req: UpdateUserRequest) -> User:
        return User.from_json(await self.json("PUT", f"/users/{seg(ref)}", json_body=req.to_json()))

    async def delete_user(self, ref: str) -> None:
        await self.json("DELETE", f"/users/{seg(ref)}")

    async def create_user_la(self, ref: str, req: CreateUserLARequest) -> LinkedAccount:
        body = await self.json("POST", f"/users/{seg(ref)}/linkedaccounts", json_body=req.to_json())
        return LinkedAccount.from_json(body)

    async def update_user_la(self, ref: str, la_id: str, req: UpdateUserLARequest) -> LinkedAccount:
        body = await self.json("PUT", f"/users/{seg(ref)}/linkedaccounts/{seg(la_id)}", json_body=req.to_json())
        return LinkedAccount.from_json(body)

    async def delete_user_la(self, ref: str, la_id: str) -> None:
        await self.json("DELETE", f"/users/{seg(ref)}/linkedaccounts/{seg(la_id)}")

    async def create_user_token(self, ref: str, token_name: str) -> CreateUserTokenResponse:
        body = await self.json("POST", f"/users/{seg(ref)}/tokens",
                               json_body=CreateUserTokenRequest(token_name).to_json())
        return CreateUserTokenResponse.from_json(body)

    async def delete_user_token(self, ref: str, token_name: str) -> None:
        await self.json("DELETE", f"/users/{seg(ref)}/tokens/{seg(token_name)}")

    async def get_user_orgs(self, ref: str) -> list[UserOrgsResponse]:
        return [UserOrgsResponse.from_json(o) for o in await self.json("GET", f"/users/{seg(ref)}/orgs") or []]

    # --- orgs ---------------------------------------------------------------------------------

    async def get_org(self, ref: str) -> Organization:
        return Organization.from_json(await self.json("GET", f"/orgs/{seg(ref)}"))

    async def list_orgs(self, start: str = "", limit: int = 0, asc: bool = True) -> list[Organization]:
        body = await self.json("GET", "/orgs", params=_paging(start, limit, asc))
        return [Organization.from_json(o) for o in body or []]

    async def create_org(self, org: Organization) -> Organization:
        return Organization.from_json(await self.json("POST", "/orgs", json_body=org.to_json()))

    async def delete_org(self, ref: str) -> None:
        await self.json("DELETE", f"/orgs/{seg(ref)}")

    async def get_org_members(self, ref: str) -> list[OrgMemberResponse]:
        return [OrgMemberResponse.from_json(m) for m in await self.json("GET", f"/orgs/{seg(ref)}/members") or []]

    async def add_org_member(self, org_ref: str, user_ref: str, role: str) -> OrganizationMember:
        body = await self.json("PUT", f"/orgs/{seg(org_ref)}/members/{seg(user_ref)}", json_body={"Role": role})
        return OrganizationMember.from_json(body)

    async def remove_org_member(self, org_ref: str, user_ref: str) -> None:
        await self.json("DELETE", f"/orgs/{seg(org_ref)}/members/{seg(user_ref)}")

    # --- project groups and projects ----------------------------------------------------------

    async def get_project_group(self, ref: str) -> ProjectGroupResponse:
        return ProjectGroupResponse.from_json(await self.json("GET", f"/projectgroups/{seg(ref)}"))

    async def get_project_group_subgroups(self, ref: str) -> list[ProjectGroupResponse]:
        body = await self.json("GET", f"/projectgroups/{seg(ref)}/subgroups")
        return [ProjectGroupResponse.from_json(g) for g in body or []]

    async def get_project_group_projects(self, ref: str) -> list[ProjectResponse]:
        body = await self.json("GET", f"/projectgroups/{seg(ref)}/projects")
        return [ProjectResponse.from_json(p) for p in body or []]

    async def create_project_group(self, req: ProjectGroup) -> ProjectGroupResponse:
        return ProjectGroupResponse.from_json(await self.json("POST", "/projectgroups", json_body=req.to_json()))

    async def update_project_group(self, ref: str, req: ProjectGroup) -> ProjectGroupResponse:
        body = await self.json("PUT", f"/projectgroups/{seg(ref)}", json_body=req.to_json())
        return ProjectGroupResponse.from_json(body)

    async def delete_project_group(self, ref: str) -> None:
        await self.json("DELETE", f"/projectgroups/{seg(ref)}")

    async def get_project(self, ref: str) -> ProjectResponse:
        return ProjectResponse.from_json(await self.json("GET", f"/projects/{seg(ref)}"))

    async def create_project(self, req: Project) -> ProjectResponse:
        return ProjectResponse.from_json(await self.json("POST", "/projects", json_body=req.to_json()))

    async def update_project(self, ref: str, req: Project) -> ProjectResponse:
        return ProjectResponse.from_json(await self.json("PUT", f"/projects/{seg(ref)}", json_body=req.to_json()))

    async def delete_project(self, ref: str) -> None:
        await self.json("DELETE", f"/projects/{seg(ref)}")

    # --- remote sources -----------------------------------------------------------------------

    async def get_remote_source(self, ref: str) -> RemoteSource:
        return RemoteSource.from_json(await self.json("GET", f"/remotesources/{seg(ref)}"))

    async def list_remote_sources(self, start: str = "", limit: int = 0, asc: bool = True) -> list[RemoteSource]:
        body = await self.json("GET", "/remotesources", params=_paging(start, limit, asc))
        return [RemoteSource.from_json(r) for r in body or []]

    async def create_remote_source(self, rs: RemoteSource) -> RemoteSource:
        return RemoteSource.from_json(await self.json("POST", "/remotesources", json_body=rs.to_json()))

    async def update_remote_source(self, ref: str, rs: RemoteSource) -> RemoteSource:
        return RemoteSource.from_json(await self.json("PUT", f"/remotesources/{seg(ref)}", json_body=rs.to_json()))

    async def delete_remote_source(self, ref: str) -> None:
        await self.json("DELETE", f"/remotesources/{seg(ref)}")

    # --- secrets and variables ----------------------------------------------------------------

    def _parent(self, parent_type: str, parent_ref: str) -> str:
        try:
            return f"/{_PARENTS[parent_type]}/{seg(parent_ref)}"
        except KeyError:
            from agola.errors import BadRequest

            raise BadRequest(f"invalid parent type {parent_type!r}") from None

    async def get_secrets(self, parent_type: str, parent_ref: str, tree: bool = False) -> list[SecretResponse]:
        body = await self.json("GET", f"{self._parent(parent_type, parent_ref)}/secrets",
                               params={"tree": ""} if tree else None)
        return [SecretResponse.from_json(s) for s in body or []]

    async def get_variables(self, parent_type: str, parent_ref: str, tree: bool = False) -> list[VariableResponse]:
        body = await self.json("GET", f"{self._parent(parent_type, parent_ref)}/variables",
                               params={"tree": ""} if tree else None)
        return [VariableResponse.from_json(v) for v in body or []]

    async def create_secret(self, parent_type: str, parent_ref: str, req: Secret) -> Secret:
        body = await self.json("POST", f"{self._parent(parent_type, parent_ref)}/secrets", json_body=req.to_json())
        return Secret.from_json(body)

    async def update_secret(self, parent_type: str, parent_ref: str, name: str, req: Secret) -> Secret:
        body = await self.json("PUT", f"{self._parent(parent_type, parent_ref)}/secrets/{seg(name)}",
                               json_body=req.to_json())
        return Secret.from_json(body)

    async def delete_secret(self, parent_type: str, parent_ref: str, name: str) -> None:
        await self.json("DELETE", f"{self._parent(parent_type, parent_ref)}/secrets/{seg(name)}")

    async def create_variable(self, parent_type: str, parent_ref: str, req: Variable) -> Variable:
        body = await self.json("POST", f"{self._parent(parent_type, parent_ref)}/variables", json_body=req.to_json())
        return Variable.from_json(body)

    async def update_variable(self, parent_type: str, parent_ref: str, name: str, req: Variable) -> Variable:
        body = await self.json("PUT", f"{self._parent(parent_type, parent_ref)}/variables/{seg(name)}",
                               json_body=req.to_json())
        return Variable.from_json(body)

    async def delete_variable(self, parent_type: str, parent_ref: str, name: str) -> None:
        await self.json("DELETE", f"{self._parent(parent_type, parent_ref)}/variables/{seg(name)}")


def token_refused_marker(cs: ConfigstoreAPI, user_id: str, la: LinkedAccount) -> Callable[[str], Awaitable[None]]:
    """The ``on_token_refused`` of a linked account's forge driver: the account is marked as
    needing re-authorization, with why (the gateway shows it; new credentials clear it)."""

    async def mark(reason: str) -> None:
        log.warning("forge refused a linked account's token", user=user_id, linked_account=la.id, reason=reason)
        await cs.update_user_la(user_id, la.id, UpdateUserLARequest(
            remote_user_id=la.remote_user_id, remote_user_name=la.remote_user_name,
            user_access_token=la.user_access_token, oauth2_access_token=la.oauth2_access_token,
            oauth2_refresh_token=la.oauth2_refresh_token,
            oauth2_access_token_expires_at=la.oauth2_access_token_expires_at, needs_reauthorization=reason))

    return mark


__all__ = ["ConfigstoreAPI", "ConfigstoreClient", "seg", "token_refused_marker"]
