"""The public client against the real gateway (with configstore, runservice and gitserver roles):
every call goes over HTTP to the real handlers; a trace of the requests the client sent checks
the wire format of spec §6.2 (paths, escaping, query flags, bodies)."""

from __future__ import annotations

import ast
import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import agola.client
from agola.cli import _git
from agola.client import (
    AlreadyExists,
    BadRequest,
    Conflict,
    CreateOrgRequest,
    CreateProjectGroupRequest,
    CreateSecretRequest,
    CreateVariableRequest,
    Forbidden,
    GatewayClient,
    NotExist,
    PayloadTooLarge,
    Unauthorized,
    Unavailable,
    UpdateProjectGroupRequest,
    UserCreateRunRequest,
    VariableValueRequest,
    error_from_response,
)
from tests.client.stack import ADMIN, RoleStack
from tests.support.services import free_port
from tests.support.waiting import wait_for


class Recorder:
    """An aiohttp session whose requests are recorded as (method, raw path, raw query, body)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str, Any]] = []
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(self._start)
        trace.on_request_chunk_sent.append(self._chunk)
        self.session = aiohttp.ClientSession(trace_configs=[trace])

    async def _start(self, session: Any, ctx: Any, params: aiohttp.TraceRequestStartParams) -> None:
        url = params.url
        self.sent.append((params.method, url.raw_path, url.raw_query_string, None))

    async def _chunk(self, session: Any, ctx: Any, params: aiohttp.TraceRequestChunkSentParams) -> None:
        method, path, query, _ = self.sent[-1]
        self.sent[-1] = (method, path, query, json.loads(params.chunk))


@pytest.fixture
async def admin(control_plane: RoleStack) -> AsyncIterator[tuple[GatewayClient, Recorder]]:
    rec = Recorder()
    async with GatewayClient(control_plane.url, ADMIN, session=rec.session) as gw:
        yield gw, rec
    await rec.session.close()


async def user_client(url: str, admin: GatewayClient, name: str) -> tuple[agola.client.UserResponse, GatewayClient]:
    user = await admin.create_user(name)
    return user, GatewayClient(url, await admin.create_user_token(name, "default"))


def test_client_package_imports_nothing_else_from_agola() -> None:
    pkg = Path(agola.client.__file__).parent
    for source in pkg.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("agola"):
                assert node.module.startswith("agola.client"), f"{source.name} imports {node.module}"
            if isinstance(node, ast.Import):
                assert all(not a.name.startswith("agola") or a.name.startswith("agola.client") for a in node.names)


async def test_users_and_tokens(control_plane: RoleStack, admin: tuple[GatewayClient, Recorder]) -> None:
    gw, rec = admin
    created = await gw.create_user("user01")
    assert created.username == "user01" and created.id
    token = await gw.create_user_token("user01", "token01")
    assert token
    assert [u.username for u in await gw.list_users(limit=5, asc=True)] == ["user01"]
    assert (await gw.get_user("user01")).tokens == ["token01"]
    assert rec.sent[:3] == [
        ("POST", "/api/v1alpha/users", "", {"username": "user01"}),
        ("POST", "/api/v1alpha/users/user01/tokens", "", {"token_name": "token01"}),
        ("GET", "/api/v1alpha/users", "limit=5&asc=", None),
    ]

    async with GatewayClient(control_plane.url, token) as user:
        assert (await user.current_user()).id == created.id
        with pytest.raises(Forbidden) as err:
            await user.create_user("user02")
        assert err.value.http_status == 403 and isinstance(err.value, PermissionError)
        await user.delete_user_token("user01", "token01")
        with pytest.raises(Unauthorized):
            await user.current_user()


async def test_errors_carry_the_server_message_and_kind(control_plane: RoleStack,
                                                        admin: tuple[GatewayClient, Recorder]) -> None:
    gw, _ = admin
    async with GatewayClient(control_plane.url, "wrong") as bad:
        with pytest.raises(Unauthorized):
            await bad.current_user()
    with pytest.raises(NotExist) as err:
        await gw.get_user("nobody")
    assert isinstance(err.value, LookupError)  # the stdlib family too
    assert err.value.code == "not_exist" and err.value.message
    with pytest.raises(BadRequest, match="no groups specified"):
        await gw.list_runs("")
    await gw.create_user("user01")
    with pytest.raises((BadRequest, Conflict)):
        await gw.create_user("user01")


async def test_unreachable_gateway_is_unavailable() -> None:
    async with GatewayClient(f"http://127.0.0.1:{free_port()}", "t") as gw:
        with pytest.raises(Unavailable, match="cannot reach the gateway") as err:
            await gw.version()
        assert isinstance(err.value, ConnectionError)


def test_error_mapping_from_status_and_code() -> None:
    assert type(error_from_response(409, {"message": "x", "code": "already_exists"})) is AlreadyExists
    assert type(error_from_response(409, {"message": "x"})) is Conflict
    assert type(error_from_response(413, None, "Request Entity Too Large")) is PayloadTooLarge
    assert type(error_from_response(417, None)) is PayloadTooLarge
    # A code may refine a status, never contradict it.
    assert type(error_from_response(400, {"message": "m", "code": "not_exist"})) is BadRequest
    e = error_from_response(500, {"message": "internal server error"})
    assert e.message == "internal server error" and e.http_status == 500
    assert error_from_response(418, None, "I'm a teapot").message == "I'm a teapot"


async def test_refs_with_slashes_groups_secrets_and_variables(control_plane: RoleStack,
                                                              admin: tuple[GatewayClient, Recorder]) -> None:
    gw, _rec = admin
    _, user = await user_client(control_plane.url, gw, "user01")
    async with user:
        group = await user.create_project_group(CreateProjectGroupRequest("g1", "user/user01"))
        assert group.path == "user/user01/g1"
        assert (await user.get_project_group("user/user01/g1")).id == group.id
        updated = await user.update_project_group("user/user01/g1", UpdateProjectGroupRequest(visibility="private"))
        assert updated.visibility == "private"
        assert [g.name for g in await user.list_project_group_subgroups("user/user01")] == ["g1"]
        await user.create_secret("projectgroup", "user/user01", CreateSecretRequest("s1", {"k": "v"}))
        await user.create_secret("projectgroup", "user/user01/g1", CreateSecretRequest("s1", {"k": "w"}))
        await user.create_variable("projectgroup", "user/user01/g1", CreateVariableRequest(
            "var01", [VariableValueRequest("s1", "k", {"branch": "master"})]))
        tree = await user.list_secrets("projectgroup", "user/user01/g1", tree=True)
        nearest = await user.list_secrets("projectgroup", "user/user01/g1", tree=True, remove_overridden=True)
        variables = await user.list_variables("projectgroup", "user/user01/g1")
        await user.delete_secret("projectgroup", "user/user01", "s1")
    assert [s.parent_path for s in tree] == ["user/user01/g1", "user/user01"]
    assert [s.parent_path for s in nearest] == ["user/user01/g1"]
    [var] = variables
    assert var.values[0].secret_var == "k" and var.values[0].matching_secret_parent_path == "user/user01/g1"
    assert var.values[0].when is not None


async def test_request_wire_format(control_plane: RoleStack) -> None:
    """The paths, escaping and flags the client sends, as recorded on the way out."""
    rec = Recorder()
    async with GatewayClient(control_plane.url, ADMIN, session=rec.session) as gw:
        for call in (gw.get_project("user/user01/p1"),
                     gw.list_secrets("project", "user/user01/p1", tree=True, remove_overridden=True),
                     gw.list_runs("/user/x", phases=["queued", "running"], limit=10),
                     gw.get_log("r1", "t1", step=1),
                     gw.delete_log("r1", "t1", setup=True)):
            try:
                await call
            except agola.client.ClientError:
                pass  # nothing exists: only what was sent matters here
    await rec.session.close()
    assert [(m, p, q) for m, p, q, _ in rec.sent] == [
        ("GET", "/api/v1alpha/projects/user%2Fuser01%2Fp1", ""),
        ("GET", "/api/v1alpha/projects/user%2Fuser01%2Fp1/secrets", "tree=&removeoverridden="),
        ("GET", "/api/v1alpha/runs", "group=%2Fuser%2Fx&phase=queued&phase=running&limit=10"),
        ("GET", "/api/v1alpha/logs", "runID=r1&taskID=t1&step=1"),
        ("DELETE", "/api/v1alpha/logs", "runID=r1&taskID=t1&setup="),
    ]


async def test_orgs_and_members(control_plane: RoleStack, admin: tuple[GatewayClient, Recorder]) -> None:
    gw, _ = admin
    _u1, c1 = await user_client(control_plane.url, gw, "user01")
    u2, c2 = await user_client(control_plane.url, gw, "user02")
    async with c1, c2:
        org = await c1.create_org(CreateOrgRequest("org01"))
        assert (org.name, org.visibility) == ("org01", "public")
        added = await c1.add_org_member("org01", "user02", "member")
        assert added.role == "member" and added.user is not None and added.user.id == u2.id
        members = await c1.list_org_members("org01")
        assert members.organization is not None and members.organization.name == "org01"
        assert sorted((m.user.username if m.user else "", m.role) for m in members.members) == [
            ("user01", "owner"), ("user02", "member")]
        with pytest.raises(Forbidden):
            await c2.delete_org("org01")
        await c1.remove_org_member("org01", "user02")
        assert [o.name for o in await c2.list_orgs()] == ["org01"]
        await c1.delete_org("org01")
        with pytest.raises(NotExist):
            await c1.get_org("org01")


def test_update_requests_send_only_what_changed() -> None:
    assert UpdateProjectGroupRequest(visibility="private").to_json() == {"visibility": "private"}
    assert UpdateProjectGroupRequest().to_json() == {}


async def test_direct_run_created_listed_cancelled_with_events(control_plane: RoleStack, tmp_path: Path,
                                                                admin: tuple[GatewayClient, Recorder]) -> None:
    gw, _ = admin
    u, user = await user_client(control_plane.url, gw, "user01")
    repo = tmp_path / "r"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".agola").mkdir()
    (repo / ".agola" / "config.yml").write_text(
        "version: v0\nruns:\n  - name: run01\n    tasks:\n      - name: task01\n"
        "        runtime: {containers: [{image: busybox}]}\n        steps: [{type: run, command: env}]\n")
    snap = _git.save_snapshot(str(repo))
    token = user._token  # noqa: SLF001 - the same token the CLI pushes with
    _git.push_snapshot(snap.root, snap.commit_sha, _git.repo_push_url(control_plane.url, u.id, "uuid1"),
                       "refs/heads/master", token)

    async with user:
        events: list[agola.client.RunEvent] = []

        async def listen() -> None:
            async for ev in user.run_events():
                events.append(ev)

        listener = asyncio.create_task(listen())
        res = await user.user_create_run(UserCreateRunRequest(
            "uuid1", f"{u.id}/uuid1", snap.commit_sha, branch="master", variables={"A": "1"}))
        [run_id] = res.run_ids
        # The runs list is the runservice's read model: it may lag a moment behind creation.
        [row] = await wait_for(lambda: user.list_runs(f"/user/{u.id}", phases=["queued"]), 10, interval=0.1)
        assert row.id == run_id and row.annotations["branch"] == "master"
        run = await user.get_run(run_id)
        task = run.task_by_name("task01")
        assert task is not None and task.status == "notstarted" and not run.finished
        detail = await user.get_task(run_id, task.id)
        assert [s.type for s in detail.steps] == ["run"] and detail.steps[0].command == "env"
        with pytest.raises(NotExist):
            await user.get_log(run_id, task.id, step=0)
        with pytest.raises(BadRequest):
            await user.stop_run(run_id)  # queued runs are cancelled, not stopped
        await user.cancel_run(run_id)
        assert (await user.get_run(run_id)).phase == "cancelled"
        await wait_for(lambda: any(e.run_id == run_id and e.phase == "cancelled" for e in events), 10)
        listener.cancel()

        _, other = await user_client(control_plane.url, gw, "user02")
        async with other:
            with pytest.raises(Forbidden):
                await other.get_run(run_id)
            with pytest.raises((Unauthorized, Forbidden)):
                await other.user_create_run(UserCreateRunRequest(
                    "uuid1", f"{u.id}/uuid1", snap.commit_sha, branch="master"))


async def test_version(control_plane: RoleStack) -> None:
    async with GatewayClient(control_plane.url) as gw:
        assert (await gw.version()).version == agola.__version__


def test_sync_facade(control_plane: RoleStack) -> None:
    from agola.client.sync import SyncGatewayClient

    with SyncGatewayClient(control_plane.url, ADMIN) as gw:
        assert gw.create_user("user01").username == "user01"
        assert [u.username for u in gw.list_users()] == ["user01"]
        with pytest.raises(NotExist):
            gw.get_user("nobody")
        with pytest.raises(agola.client.ClientError):
            list(gw.stream_log("norun", "t", step=0))
