"""The public client against a gateway speaking §6.2's wire format.

Until the real gateway role lands these run against ``FakeGateway`` (tests/client/fakegateway.py),
which follows the spec's paths, JSON shapes and error bodies.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import agola.client
from agola.client import (
    BadRequest,
    CreateOrgRequest,
    CreateProjectRequest,
    CreateSecretRequest,
    CreateVariableRequest,
    Forbidden,
    GatewayClient,
    NotExist,
    Unauthorized,
    Unavailable,
    UpdateProjectGroupRequest,
    VariableValueRequest,
    error_from_response,
)
from agola.client.errors import AlreadyExists, Conflict, PayloadTooLarge
from tests.client.fakegateway import ADMIN_TOKEN, FakeGateway
from tests.support.services import free_port


def test_client_package_imports_nothing_else_from_agola() -> None:
    pkg = Path(agola.client.__file__).parent
    for source in pkg.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("agola"):
                assert node.module.startswith("agola.client"), f"{source.name} imports {node.module}"
            if isinstance(node, ast.Import):
                assert all(not a.name.startswith("agola") or a.name.startswith("agola.client") for a in node.names)


async def test_users_and_tokens_with_the_admin_token(fake_gateway: FakeGateway) -> None:
    async with GatewayClient(fake_gateway.url, ADMIN_TOKEN) as admin:
        created = await admin.create_user("user01")
        assert created.username == "user01" and created.id
        token = await admin.create_user_token("user01", "token01")
        assert token
        assert [u.username for u in await admin.list_users(limit=5, asc=True)] == ["user01"]
        assert (await admin.get_user("user01")).tokens == ["token01"]

    async with GatewayClient(fake_gateway.url, token) as user:
        me = await user.current_user()
        assert me.id == created.id
        with pytest.raises(Forbidden, match="not an admin") as err:
            await user.create_user("user02")
        assert err.value.http_status == 403 and isinstance(err.value, PermissionError)

    sent = fake_gateway.state.requests
    assert [(r.method, r.path) for r in sent[:3]] == [
        ("POST", "/api/v1alpha/users"), ("POST", "/api/v1alpha/users/user01/tokens"), ("GET", "/api/v1alpha/users")]
    assert sent[0].body == {"username": "user01"}
    assert sent[1].body == {"token_name": "token01"}
    assert sent[2].query == "limit=5&asc="
    assert sent[0].authorization == f"token {ADMIN_TOKEN}"


async def test_errors_carry_the_server_message_and_kind(fake_gateway: FakeGateway) -> None:
    async with GatewayClient(fake_gateway.url, "wrong") as gw:
        with pytest.raises(Unauthorized):
            await gw.current_user()
    async with GatewayClient(fake_gateway.url, ADMIN_TOKEN) as gw:
        with pytest.raises(NotExist, match="user 'nobody' doesn't exist") as err:
            await gw.get_user("nobody")
        assert isinstance(err.value, LookupError) and err.value.code == "not_exist"
        with pytest.raises(BadRequest, match="no groups specified"):
            await gw.list_runs("")


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


async def test_refs_with_slashes_are_one_path_segment(fake_gateway: FakeGateway) -> None:
    async with GatewayClient(fake_gateway.url, ADMIN_TOKEN) as gw:
        p = await gw.create_project(CreateProjectRequest("p1", "user/user01", "user01/repo", "gitea"))
        assert (await gw.get_project("user/user01/p1")).id == p.id
        assert [x.name for x in await gw.list_project_group_projects("user/user01")] == ["p1"]
        await gw.create_secret("project", "user/user01/p1", CreateSecretRequest("s1", {"k": "v"}))
        await gw.create_variable("project", "user/user01/p1", CreateVariableRequest(
            "var01", [VariableValueRequest("s1", "k", {"branch": "master"})]))
        secrets = await gw.list_secrets("project", "user/user01/p1", tree=True, remove_overridden=True)
        variables = await gw.list_variables("project", "user/user01/p1")
    assert [(s.name, s.parent_path) for s in secrets] == [("s1", "user/user01/p1")]
    assert variables[0].values[0].secret_var == "k" and variables[0].values[0].when == {"branch": "master"}
    sent = {(r.method, r.path, r.query): r.body for r in fake_gateway.state.requests}
    assert ("GET", "/api/v1alpha/projects/user%2Fuser01%2Fp1", "") in sent
    assert ("GET", "/api/v1alpha/projects/user%2Fuser01%2Fp1/secrets", "tree=&removeoverridden=") in sent
    assert sent[("POST", "/api/v1alpha/projects", "")] == {
        "name": "p1", "parent_ref": "user/user01", "repo_path": "user01/repo", "remote_source_name": "gitea",
        "visibility": "public", "skip_ssh_host_key_check": False}
    assert sent[("POST", "/api/v1alpha/projects/user%2Fuser01%2Fp1/secrets", "")] == {
        "name": "s1", "data": {"k": "v"}, "type": "internal"}


async def test_orgs_and_members(fake_gateway: FakeGateway) -> None:
    user = fake_gateway.add_user("user01", token="tok")
    async with GatewayClient(fake_gateway.url, "tok") as gw:
        org = await gw.create_org(CreateOrgRequest("org01"))
        assert org.visibility == "public"
        members = await gw.list_org_members("org01")
        assert members.organization is not None and members.organization.name == "org01"
        assert [(m.user.username if m.user else "", m.role) for m in members.members] == [("user01", "owner")]
        added = await gw.add_org_member("org01", "user01", "member")
        assert added.role == "member" and added.user is not None and added.user.id == user["id"]


def test_update_requests_send_only_what_changed() -> None:
    assert UpdateProjectGroupRequest(visibility="private").to_json() == {"visibility": "private"}
    assert UpdateProjectGroupRequest().to_json() == {}


async def test_direct_run_logs_runs_and_actions(fake_gateway: FakeGateway, tmp_path: Path) -> None:
    from agola.cli import _git
    from agola.client import UserCreateRunRequest
    from tests.support.waiting import wait_for

    u = fake_gateway.add_user("user01", token="tok")
    repo = tmp_path / "r"
    repo.mkdir()
    _git.git(str(repo), "init", "-q")
    (repo / "f").write_text("x")
    snap = _git.save_snapshot(str(repo))
    _git.push_snapshot(snap.root, snap.commit_sha, _git.repo_push_url(fake_gateway.url, u["id"], "uuid1"),
                       "refs/heads/master", "tok")

    async with GatewayClient(fake_gateway.url, "tok") as gw:
        res = await gw.user_create_run(UserCreateRunRequest("uuid1", f"{u['id']}/uuid1", snap.commit_sha, branch="master",
                                                            variables={"A": "1"}))
        assert res.run_ids == []  # the reference answers an empty 201
        runs = await gw.list_runs(f"/user/{u['id']}", phases=["queued", "running"], limit=10)
        assert len(runs) <= 1
        run_id = (await gw.list_runs(f"/user/{u['id']}"))[0].id
        task_id = next(iter((await gw.get_run(run_id)).tasks))

        async def step_started() -> bool:
            return (await gw.get_task(run_id, task_id)).steps[1].phase != "notstarted"
        await wait_for(step_started, 10)
        followed = b"".join([c async for c in gw.stream_log(run_id, task_id, step=1, follow=True)])

        async def finished() -> bool:
            return (await gw.get_run(run_id)).finished
        await wait_for(finished, 10)
        run = await gw.get_run(run_id)
        assert run.result == "success" and run.task_by_name("task01") is not None
        task = await gw.get_task(run_id, task_id)
        assert [s.log_archived for s in task.steps] == [True, True]
        assert task.setup_step is not None and task.setup_step.name == "Task setup"
        assert await gw.get_log(run_id, task_id, step=1) == followed == b"line 0\r\nline 1\r\nline 2\r\n"
        await gw.delete_log(run_id, task_id, setup=True)
        with pytest.raises(NotExist, match="^log doesn't exist"):
            await gw.get_log(run_id, task_id, setup=True)
        with pytest.raises(BadRequest, match="not queued"):
            await gw.cancel_run(run_id)
        with pytest.raises(BadRequest, match="not waiting for approval"):
            await gw.approve_task(run_id, task_id)
        with pytest.raises(ValueError):
            await gw.get_log(run_id, task_id)

    body = fake_gateway.state.created_runs[0]
    assert body == {"repo_uuid": "uuid1", "repo_path": f"{u['id']}/uuid1", "commit_sha": snap.commit_sha,
                    "message": "agola direct run", "branch": "master", "tag": "", "ref": "",
                    "pull_request_ref_regexes": [r"refs/pull/(\d+)/head", r"refs/merge-requests/(\d+)/head"],
                    "variables": {"A": "1"}}
    sent = [(r.method, r.path, r.query) for r in fake_gateway.state.requests if r.path.startswith("/api")]
    assert ("GET", "/api/v1alpha/runs", f"group=%2Fuser%2F{u['id']}&phase=queued&phase=running&limit=10") in sent
    assert ("GET", "/api/v1alpha/logs", f"runID={run_id}&taskID={task_id}&step=1&follow=") in sent
    assert ("DELETE", "/api/v1alpha/logs", f"runID={run_id}&taskID={task_id}&setup=") in sent
    actions = [r.body for r in fake_gateway.state.requests if r.path.endswith("/actions")]
    assert actions == [{"action_type": "cancel", "from_start": False}, {"action_type": "approve"}]


def test_sync_facade(fake_gateway: FakeGateway) -> None:
    from agola.client.sync import SyncGatewayClient

    with SyncGatewayClient(fake_gateway.url, ADMIN_TOKEN) as gw:
        assert gw.create_user("user01").username == "user01"
        assert [u.username for u in gw.list_users()] == ["user01"]
        with pytest.raises(NotExist):
            gw.get_user("nobody")
        with pytest.raises(NotExist):
            list(gw.stream_log("norun", "t", step=0))
