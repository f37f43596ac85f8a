"""``GatewayClient``: the public asyncio client of the gateway API (spec §6.2).

One method per endpoint, typed requests and responses (``agola.client.types``) and typed errors
(``agola.client.errors``). Uses aiohttp only; imports nothing from the rest of ``agola``.

    async with GatewayClient("http://localhost:8000", token="...") as gw:
        me = await gw.current_user()
        async for chunk in gw.stream_log(run_id, task_id, step=1, follow=True):
            sys.stdout.buffer.write(chunk)
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from typing import Any, Literal
from urllib.parse import quote, urlencode

import aiohttp
from yarl import URL

from agola.client.errors import ClientError, Unavailable, error_from_response
from agola.client.types import (
    AddOrgMemberResponse,
    CreateOrgRequest,
    CreateProjectGroupRequest,
    CreateProjectRequest,
    CreateRemoteSourceRequest,
    CreateSecretRequest,
    CreateUserLARequest,
    CreateUserLAResponse,
    CreateVariableRequest,
    LoginUserResponse,
    MaintenanceStatusResponse,
    OrgMembersResponse,
    OrgResponse,
    ProjectCreateRunRequest,
    ProjectGroupResponse,
    ProjectResponse,
    RemoteRepoResponse,
    RemoteSourceResponse,
    RunActionsRequest,
    RunEvent,
    RunResponse,
    RunsResponse,
    RunTaskActionsRequest,
    RunTaskResponse,
    SecretResponse,
    UpdateProjectGroupRequest,
    UpdateProjectRequest,
    UpdateRemoteSourceRequest,
    UserCreateRunRequest,
    UserCreateRunResponse,
    UserResponse,
    VariableResponse,
    VersionResponse,
    Wire,
)

API_PREFIX = "/api/v1alpha"
LOG_READ_BUFSIZE = 1024 * 1024
# A secret or variable belongs to a project or to a project group.
ParentKind = Literal["project", "projectgroup"]
_PARENT_PATHS: dict[str, str] = {"project": "/projects", "projectgroup": "/projectgroups"}

Query = Sequence[tuple[str, str]]


def ref(value: str) -> str:
    """A ref as one path segment: ``org/a/b`` -> ``org%2Fa%2Fb`` (as the reference client does)."""
    return quote(value, safe="")


def is_jwt(token: str) -> bool:
    """Whether ``token`` is a login token (a JWT: three base64url parts, a JSON header with
    ``alg``) rather than an API token."""
    parts = token.split(".")
    if len(parts) != 3:
        return False
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except ValueError:
        return False
    return isinstance(header, dict) and "alg" in header


def authorization(token: str) -> str:
    """The ``Authorization`` header value of a token: ``bearer <JWT>`` for a login token,
    ``token <T>`` for an API token (the gateway's two schemes)."""
    return f"{'bearer' if is_jwt(token) else 'token'} {token}"


def _flag(name: str, on: bool) -> list[tuple[str, str]]:
    # Boolean query flags are read by presence (`?asc`, `?follow`, `?tree`).
    return [(name, "")] if on else []


def _paging(start: str, limit: int, asc: bool) -> list[tuple[str, str]]:
    query: list[tuple[str, str]] = []
    if start:
        query.append(("start", start))
    if limit:
        query.append(("limit", str(limit)))
    return query + _flag("asc", asc)


class GatewayClient:
    """Client of one gateway. ``token`` is sent as ``Authorization: token <token>``."""

    def __init__(
        self,
        url: str,
        token: str = "",
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._session = session
        self._own_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    # ------------------------------------------------------------ plumbing

    async def __aenter__(self) -> GatewayClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._own_session = True
        return self._session

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": authorization(self._token)} if self._token else {}

    def api_url(self, path: str, query: Query = ()) -> URL:
        """The full URL of an API path; ``path`` must already be percent-encoded (see ``ref``)."""
        text = f"{self.url}{API_PREFIX}{path}"
        if query:
            text += "?" + urlencode(list(query), quote_via=quote)
        return URL(text, encoded=True)

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Query = (),
        body: Any = None,
        data: Any = None,
        timeout: aiohttp.ClientTimeout | None = None,
        headers: Mapping[str, str] | None = None,
        read_bufsize: int | None = None,
    ) -> aiohttp.ClientResponse:
        """Send one request; a non-2xx answer raises its typed ``ClientError``. The caller reads
        and releases the response. ``body`` is sent as JSON, ``data`` (bytes or an async byte
        iterable, streamed) as it is. ``read_bufsize``: how much of the body may wait in memory
        before the socket is paused (aiohttp's default: 64 KiB)."""
        headers = {**self.auth_headers(), **(headers or {})}
        if data is not None:
            headers["Content-Type"] = "application/octet-stream"
        elif body is not None:
            payload = body.to_json() if isinstance(body, Wire) else body
            data = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        url = self.api_url(path, query)
        try:
            extra: dict[str, Any] = {"read_bufsize": read_bufsize} if read_bufsize else {}
            resp = await self.session.request(method, url, data=data, headers=headers, timeout=timeout or self._timeout,
                                              **extra)
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise Unavailable(f"cannot reach the gateway at {self.url}: {str(exc) or type(exc).__name__}", status=0) from None
        except aiohttp.ClientError as exc:
            raise Unavailable(f"{method} {url.path}: {exc}", status=0) from None
        if resp.status >= 400:
            raise await _error_of(resp)
        return resp

    async def call(self, method: str, path: str, *, query: Query = (), body: Any = None,
                   headers: Mapping[str, str] | None = None) -> Any:
        """A request whose answer is JSON (``None`` for an empty body)."""
        resp = await self.request(method, path, query=query, body=body, headers=headers)
        async with resp:
            try:
                raw = await resp.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise Unavailable(f"{method} {path}: connection lost: {exc}", status=0) from None
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise ClientError(f"{method} {path}: the gateway answered something that is not JSON",
                              status=resp.status) from None

    @property
    def _streaming_timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=None, sock_connect=self._timeout.total)

    async def stream(self, path: str, *, query: Query = (), chunk_size: int = 64 * 1024,
                     read_bufsize: int | None = None) -> AsyncIterator[bytes]:
        """GET a body as it arrives (no total timeout: a followed log lasts as long as its step);
        each chunk is what has arrived, up to ``read_bufsize`` or so."""
        resp = await self.request("GET", path, query=query, timeout=self._streaming_timeout, read_bufsize=read_bufsize)
        async with resp:
            try:
                async for chunk in resp.content.iter_any():
                    yield chunk
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
                raise Unavailable(f"GET {path}: stream interrupted: {exc}", status=0) from None

    # ------------------------------------------------------------ version

    async def version(self) -> VersionResponse:
        return VersionResponse.from_json(await self.call("GET", "/version") or {})

    # ------------------------------------------------------------ users and tokens

    async def current_user(self) -> UserResponse:
        return UserResponse.from_json(await self.call("GET", "/user"))

    async def get_user(self, user_ref: str) -> UserResponse:
        return UserResponse.from_json(await self.call("GET", f"/users/{ref(user_ref)}"))

    async def list_users(self, start: str = "", limit: int = 0, asc: bool = False) -> list[UserResponse]:
        rows = await self.call("GET", "/users", query=_paging(start, limit, asc))
        return [UserResponse.from_json(r) for r in rows or []]

    async def create_user(self, username: str) -> UserResponse:
        return UserResponse.from_json(await self.call("POST", "/users", body={"username": username}) or {})

    async def delete_user(self, user_ref: str) -> None:
        await self.call("DELETE", f"/users/{ref(user_ref)}")

    async def create_user_token(self, user_ref: str, token_name: str) -> str:
        """Create an API token; the answer is the only time its value is visible."""
        body = await self.call("POST", f"/users/{ref(user_ref)}/tokens", body={"token_name": token_name})
        return str((body or {}).get("token", ""))

    async def delete_user_token(self, user_ref: str, token_name: str) -> None:
        await self.call("DELETE", f"/users/{ref(user_ref)}/tokens/{ref(token_name)}")

    async def create_user_linked_account(self, user_ref: str, req: CreateUserLARequest) -> CreateUserLAResponse:
        body = await self.call("POST", f"/users/{ref(user_ref)}/linkedaccounts", body=req)
        return CreateUserLAResponse.from_json(body or {})

    async def delete_user_linked_account(self, user_ref: str, la_id: str) -> None:
        await self.call("DELETE", f"/users/{ref(user_ref)}/linkedaccounts/{ref(la_id)}")

    async def list_remote_repos(self, rs_ref: str) -> list[RemoteRepoResponse]:
        """The current user's repositories on a remote source where they can add keys and hooks."""
        rows = await self.call("GET", f"/user/remoterepos/{ref(rs_ref)}")
        return [RemoteRepoResponse.from_json(r) for r in rows or []]

    async def complete_oauth2(self, code: str, state: str) -> CreateUserLAResponse:
        """Complete an OAuth2 authorization this user started (the forge's redirect carried
        ``code`` and ``state``); returns the linked account it created."""
        body = await self.call("GET", "/oauth2/callback", query=[("code", code), ("state", state)])
        return CreateUserLAResponse.from_json((body or {}).get("response") or {})

    async def login(self, remote_source_name: str, login_name: str = "", password: str = "") -> LoginUserResponse:
        """Sign in through a remote source (spec §6.3; no token needed): with a password source,
        the login token (a JWT: pass it as this client's ``token``) and the user."""
        body = {"remote_source_name": remote_source_name, "login_name": login_name, "password": password}
        return LoginUserResponse.from_json(await self.call("POST", "/login", body=body) or {})

    async def complete_oauth2_login(self, code: str, state: str, nonce: str) -> LoginUserResponse:
        """Finish a ``login`` through an OAuth2 remote source: ``code`` and ``state`` from the
        address the forge redirected the browser to, ``nonce`` from the ``login`` answer (it
        binds the callback to this client)."""
        body = await self.call("GET", "/oauth2/callback", query=[("code", code), ("state", state)],
                               headers={"X-Agola-OAuth2-Nonce": nonce})
        return LoginUserResponse.from_json((body or {}).get("response") or {})

    async def user_create_run(self, req: UserCreateRunRequest) -> UserCreateRunResponse:
        """A direct run (spec §6.8) of a commit already pushed to ``/repos/<repo_path>.git``."""
        return UserCreateRunResponse.from_body(await self.call("POST", "/user/createrun", body=req))

    # ------------------------------------------------------------ orgs and members

    async def get_org(self, org_ref: str) -> OrgResponse:
        return OrgResponse.from_json(await self.call("GET", f"/orgs/{ref(org_ref)}"))

    async def list_orgs(self, start: str = "", limit: int = 0, asc: bool = False) -> list[OrgResponse]:
        rows = await self.call("GET", "/orgs", query=_paging(start, limit, asc))
        return [OrgResponse.from_json(r) for r in rows or []]

    async def create_org(self, req: CreateOrgRequest) -> OrgResponse:
        return OrgResponse.from_json(await self.call("POST", "/orgs", body=req) or {})

    async def delete_org(self, org_ref: str) -> None:
        await self.call("DELETE", f"/orgs/{ref(org_ref)}")

    async def list_org_members(self, org_ref: str) -> OrgMembersResponse:
        return OrgMembersResponse.from_json(await self.call("GET", f"/orgs/{ref(org_ref)}/members") or {})

    async def add_org_member(self, org_ref: str, user_ref: str, role: str = "member") -> AddOrgMemberResponse:
        """Add a member, or change the role of one."""
        body = await self.call("PUT", f"/orgs/{ref(org_ref)}/members/{ref(user_ref)}", body={"role": role})
        return AddOrgMemberResponse.from_json(body or {})

    async def remove_org_member(self, org_ref: str, user_ref: str) -> None:
        await self.call("DELETE", f"/orgs/{ref(org_ref)}/members/{ref(user_ref)}")

    # ------------------------------------------------------------ project groups

    async def get_project_group(self, group_ref: str) -> ProjectGroupResponse:
        return ProjectGroupResponse.from_json(await self.call("GET", f"/projectgroups/{ref(group_ref)}"))

    async def list_project_group_subgroups(self, group_ref: str) -> list[ProjectGroupResponse]:
        rows = await self.call("GET", f"/projectgroups/{ref(group_ref)}/subgroups")
        return [ProjectGroupResponse.from_json(r) for r in rows or []]

    async def list_project_group_projects(self, group_ref: str) -> list[ProjectResponse]:
        rows = await self.call("GET", f"/projectgroups/{ref(group_ref)}/projects")
        return [ProjectResponse.from_json(r) for r in rows or []]

    async def create_project_group(self, req: CreateProjectGroupRequest) -> ProjectGroupResponse:
        return ProjectGroupResponse.from_json(await self.call("POST", "/projectgroups", body=req) or {})

    async def update_project_group(self, group_ref: str, req: UpdateProjectGroupRequest) -> ProjectGroupResponse:
        body = await self.call("PUT", f"/projectgroups/{ref(group_ref)}", body=req)
        return ProjectGroupResponse.from_json(body or {})

    async def delete_project_group(self, group_ref: str) -> None:
        await self.call("DELETE", f"/projectgroups/{ref(group_ref)}")

    # ------------------------------------------------------------ projects

    async def get_project(self, project_ref: str) -> ProjectResponse:
        return ProjectResponse.from_json(await self.call("GET", f"/projects/{ref(project_ref)}"))

    async def create_project(self, req: CreateProjectRequest) -> ProjectResponse:
        return ProjectResponse.from_json(await self.call("POST", "/projects", body=req) or {})

    async def update_project(self, project_ref: str, req: UpdateProjectRequest) -> ProjectResponse:
        return ProjectResponse.from_json(await self.call("PUT", f"/projects/{ref(project_ref)}", body=req) or {})

    async def delete_project(self, project_ref: str) -> None:
        await self.call("DELETE", f"/projects/{ref(project_ref)}")

    async def reconfig_project(self, project_ref: str) -> None:
        await self.call("PUT", f"/projects/{ref(project_ref)}/reconfig")

    async def project_create_run(self, project_ref: str, req: ProjectCreateRunRequest) -> None:
        await self.call("POST", f"/projects/{ref(project_ref)}/createrun", body=req)

    # ------------------------------------------------------------ secrets and variables

    def _parent(self, kind: ParentKind, parent_ref: str) -> str:
        try:
            return f"{_PARENT_PATHS[kind]}/{ref(parent_ref)}"
        except KeyError:
            raise ValueError(f"unknown parent kind {kind!r} (project or projectgroup)") from None

    async def list_secrets(
        self, kind: ParentKind, parent_ref: str, *, tree: bool = False, remove_overridden: bool = False
    ) -> list[SecretResponse]:
        query = _flag("tree", tree) + _flag("removeoverridden", remove_overridden)
        rows = await self.call("GET", f"{self._parent(kind, parent_ref)}/secrets", query=query)
        return [SecretResponse.from_json(r) for r in rows or []]

    async def create_secret(self, kind: ParentKind, parent_ref: str, req: CreateSecretRequest) -> SecretResponse:
        body = await self.call("POST", f"{self._parent(kind, parent_ref)}/secrets", body=req)
        return SecretResponse.from_json(body or {})

    async def update_secret(self, kind: ParentKind, parent_ref: str, name: str, req: CreateSecretRequest) -> SecretResponse:
        body = await self.call("PUT", f"{self._parent(kind, parent_ref)}/secrets/{ref(name)}", body=req)
        return SecretResponse.from_json(body or {})

    async def delete_secret(self, kind: ParentKind, parent_ref: str, name: str) -> None:
        await self.call("DELETE", f"{self._parent(kind, parent_ref)}/secrets/{ref(name)}")

    async def list_variables(
        self, kind: ParentKind, parent_ref: str, *, tree: bool = False, remove_overridden: bool = False
    ) -> list[VariableResponse]:
        query = _flag("tree", tree) + _flag("removeoverridden", remove_overridden)
        rows = await self.call("GET", f"{self._parent(kind, parent_ref)}/variables", query=query)
        return [VariableResponse.from_json(r) for r in rows or []]

    async def create_variable(self, kind: ParentKind, parent_ref: str, req: CreateVariableRequest) -> VariableResponse:
        body = await self.call("POST", f"{self._parent(kind, parent_ref)}/variables", body=req)
        return VariableResponse.from_json(body or {})

    async def update_variable(
        self, kind: ParentKind, parent_ref: str, name: str, req: CreateVariableRequest
    ) -> VariableResponse:
        body = await self.call("PUT", f"{self._parent(kind, parent_ref)}/variables/{ref(name)}", body=req)
        return VariableResponse.from_json(body or {})

    async def delete_variable(self, kind: ParentKind, parent_ref: str, name: str) -> None:
        await self.call("DELETE", f"{self._parent(kind, parent_ref)}/variables/{ref(name)}")

    # ------------------------------------------------------------ remote sources

    async def get_remote_source(self, rs_ref: str) -> RemoteSourceResponse:
        return RemoteSourceResponse.from_json(await self.call("GET", f"/remotesources/{ref(rs_ref)}"))

    async def list_remote_sources(self, start: str = "", limit: int = 0, asc: bool = False) -> list[RemoteSourceResponse]:
        rows = await self.call("GET", "/remotesources", query=_paging(start, limit, asc))
        return [RemoteSourceResponse.from_json(r) for r in rows or []]

    async def create_remote_source(self, req: CreateRemoteSourceRequest) -> RemoteSourceResponse:
        return RemoteSourceResponse.from_json(await self.call("POST", "/remotesources", body=req) or {})

    async def update_remote_source(self, rs_ref: str, req: UpdateRemoteSourceRequest) -> RemoteSourceResponse:
        body = await self.call("PUT", f"/remotesources/{ref(rs_ref)}", body=req)
        return RemoteSourceResponse.from_json(body or {})

    async def delete_remote_source(self, rs_ref: str) -> None:
        await self.call("DELETE", f"/remotesources/{ref(rs_ref)}")

    # ------------------------------------------------------------ runs and tasks

    async def list_runs(
        self,
        group: str,
        *,
        phases: Sequence[str] = (),
        results: Sequence[str] = (),
        change_groups: Sequence[str] = (),
        last_run: bool = False,
        start: str = "",
        limit: int = 0,
        asc: bool = False,
    ) -> list[RunsResponse]:
        """Runs of a run group (``/project/<id>``, ``/user/<id>``, or a deeper path), newest
        first unless ``asc``. The gateway caps ``limit`` (default 25, max 40)."""
        query: list[tuple[str, str]] = [("group", group)]
        query += [("phase", p) for p in phases] + [("result", r) for r in results]
        query += [("changegroup", c) for c in change_groups] + _flag("lastrun", last_run)
        rows = await self.call("GET", "/runs", query=query + _paging(start, limit, asc))
        return [RunsResponse.from_json(r) for r in rows or []]

    async def get_run(self, run_id: str) -> RunResponse:
        return RunResponse.from_json(await self.call("GET", f"/runs/{ref(run_id)}"))

    async def run_action(self, run_id: str, req: RunActionsRequest) -> RunResponse:
        return RunResponse.from_json(await self.call("PUT", f"/runs/{ref(run_id)}/actions", body=req) or {})

    async def restart_run(self, run_id: str, *, from_start: bool = False) -> RunResponse:
        """Restart a finished run (from failed tasks, or ``from_start``); returns the new run."""
        return await self.run_action(run_id, RunActionsRequest("restart", from_start))

    async def stop_run(self, run_id: str) -> RunResponse:
        return await self.run_action(run_id, RunActionsRequest("stop"))

    async def cancel_run(self, run_id: str) -> RunResponse:
        return await self.run_action(run_id, RunActionsRequest("cancel"))

    async def get_task(self, run_id: str, task_id: str) -> RunTaskResponse:
        return RunTaskResponse.from_json(await self.call("GET", f"/runs/{ref(run_id)}/tasks/{ref(task_id)}"))

    async def approve_task(self, run_id: str, task_id: str) -> None:
        await self.call("PUT", f"/runs/{ref(run_id)}/tasks/{ref(task_id)}/actions", body=RunTaskActionsRequest("approve"))

    # ------------------------------------------------------------ logs

    @staticmethod
    def _log_query(run_id: str, task_id: str, step: int | None, setup: bool) -> list[tuple[str, str]]:
        if setup == (step is not None):
            raise ValueError("give exactly one of step or setup")
        query = [("runID", run_id), ("taskID", task_id)]
        return query + ([("setup", "")] if setup else [("step", str(step))])

    def stream_log(
        self, run_id: str, task_id: str, *, step: int | None = None, setup: bool = False, follow: bool = False
    ) -> AsyncIterator[bytes]:
        """A step's (or the setup's) log as it arrives; with ``follow``, until the step ends."""
        query = self._log_query(run_id, task_id, step, setup) + _flag("follow", follow)
        # Big chunks: a 100 MB log is then a few hundred reads for the CLI, not thousands.
        return self.stream("/logs", query=query, read_bufsize=LOG_READ_BUFSIZE)

    async def get_log(self, run_id: str, task_id: str, *, step: int | None = None, setup: bool = False) -> bytes:
        return b"".join([c async for c in self.stream_log(run_id, task_id, step=step, setup=setup)])

    async def delete_log(self, run_id: str, task_id: str, *, step: int | None = None, setup: bool = False) -> None:
        await self.call("DELETE", "/logs", query=self._log_query(run_id, task_id, step, setup))

    # ------------------------------------------------------------ run events

    async def run_events(self, path: str = "/runs/events", query: Query = ()) -> AsyncIterator[RunEvent]:
        """Server-sent run events (phase/result changes) until the connection ends."""
        buffer = b""
        data_lines: list[bytes] = []
        async for chunk in self.stream(path, query=query):
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                line = line.rstrip(b"\r")
                if line.startswith(b"data:"):
                    data_lines.append(line[5:].removeprefix(b" "))
                elif not line and data_lines:
                    event = _decode_event(b"\n".join(data_lines))
                    data_lines = []
                    if event is not None:
                        yield event


    # ------------------------------------------------------------ maintenance, export, import (admin)

    async def set_maintenance(self, service: str, enabled: bool) -> None:
        """Request maintenance mode of ``configstore`` or ``runservice`` on or off (``BadRequest``
        when already requested so); the switch itself follows shortly (``maintenance_status``)."""
        await self.call("PUT" if enabled else "DELETE", f"/maintenance/{ref(service)}")

    async def maintenance_status(self, service: str) -> MaintenanceStatusResponse:
        return MaintenanceStatusResponse.from_json(await self.call("GET", f"/maintenance/{ref(service)}") or {})

    def export(self, service: str, *, force: bool = False) -> AsyncIterator[bytes]:
        """Every object of ``service`` as an export stream. The runservice refuses (``Conflict``,
        naming them) while runs are not archived yet, unless ``force`` (they are left out). An
        interrupted export raises ``Unavailable``: never take a short one for a whole one."""
        return self.stream(f"/export/{ref(service)}", query=_flag("force", force))

    async def import_(self, service: str, data: bytes | AsyncIterable[bytes]) -> int:
        """Replace every object of ``service`` with an export stream, in maintenance mode only;
        the number of objects imported."""
        resp = await self.request("POST", f"/import/{ref(service)}", data=data, timeout=self._streaming_timeout)
        async with resp:
            out = json.loads(await resp.read() or b"{}")
        return int(out.get("imported", 0)) if isinstance(out, Mapping) else 0


def _decode_event(raw: bytes) -> RunEvent | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return RunEvent.from_json(data) if isinstance(data, Mapping) else None


async def _error_of(resp: aiohttp.ClientResponse) -> ClientError:
    try:
        raw = await resp.read()
    except aiohttp.ClientError:
        raw = b""
    finally:
        resp.release()
    body: Any = None
    if raw.strip():
        try:
            body = json.loads(raw)
        except ValueError:
            # A plain-text error body (e.g. the reference's "log doesn't exist") is still the message.
            text = raw.decode(errors="replace").strip()
            if len(text) < 500:
                body = {"message": text}
    return error_from_response(resp.status, body, resp.reason or "")
