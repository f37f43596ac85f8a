"""The fake gateway verified against the real one: the same client calls, through the public
client, on both (``gateway`` is parametrised over ``fake`` and ``real``).

``FakeGateway`` stands in for the gateway where tests need scripted runs in milliseconds (the
CLI's output and ``--follow`` timing, tests/cli/test_cli_commands.py, test_follow.py). What those
tests rely on (users and tokens, permissions, error kinds and messages, orgs and members, secret
listings, direct-run wire shapes, version) is pinned here, so the fake cannot drift from the real
handlers unnoticed. Runs themselves differ on purpose: the fake scripts them, the real control
plane here has no executor (runs stay queued).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agola.cli import _git
from agola.client import (
    BadRequest,
    CreateOrgRequest,
    CreateSecretRequest,
    CreateVariableRequest,
    Forbidden,
    GatewayClient,
    NotExist,
    Unauthorized,
    UserCreateRunRequest,
    VariableValueRequest,
)
from tests.client.conftest import GatewayUnderTest
from tests.support.waiting import wait_for


async def _user(gateway: GatewayUnderTest, name: str) -> tuple[str, GatewayClient]:
    async with GatewayClient(gateway.url, gateway.admin_token) as admin:
        user = await admin.create_user(name)
        token = await admin.create_user_token(name, "default")
    return user.id, GatewayClient(gateway.url, token)


async def test_users_and_tokens(gateway: GatewayUnderTest) -> None:
    async with GatewayClient(gateway.url, gateway.admin_token) as admin:
        created = await admin.create_user("user01")
        assert created.username == "user01" and created.id
        token = await admin.create_user_token("user01", "token01")
        assert token
        assert (await admin.get_user("user01")).tokens == ["token01"]
        assert (await admin.get_user(created.id)).username == "user01"
        await admin.create_user("user02")
        assert [u.username for u in await admin.list_users(asc=True)] == ["user01", "user02"]
        assert [u.username for u in await admin.list_users()] == ["user02", "user01"]
    async with GatewayClient(gateway.url, token) as user:
        assert (await user.current_user()).id == created.id
        await user.delete_user_token("user01", "token01")
        with pytest.raises(Unauthorized):
            await user.current_user()


async def test_errors_the_cli_shows(gateway: GatewayUnderTest) -> None:
    """The kinds and messages tests/cli/test_cli_commands.py pins on the fake."""
    _, user = await _user(gateway, "user01")
    async with user:
        with pytest.raises(Forbidden) as denied:
            await user.create_user("user02")
        assert denied.value.message == "only an administrator can do this"
    async with GatewayClient(gateway.url, gateway.admin_token) as admin:
        with pytest.raises(NotExist) as missing:
            await admin.get_user("nobody")
        with pytest.raises(BadRequest) as refused:  # a precondition of the delete: 400
            await admin.delete_user("nobody")
        assert missing.value.message == refused.value.message == "user 'nobody' doesn't exist"
    for token in ("", "wrong"):
        async with GatewayClient(gateway.url, token) as anonymous:
            with pytest.raises(Unauthorized):
                await anonymous.current_user()


async def test_orgs_and_members(gateway: GatewayUnderTest) -> None:
    _, c1 = await _user(gateway, "user01")
    u2, _c2 = await _user(gateway, "user02")
    async with c1:
        org = await c1.create_org(CreateOrgRequest("org01"))
        assert (org.name, org.visibility) == ("org01", "public")
        added = await c1.add_org_member("org01", "user02", "member")
        assert added.role == "member" and added.user is not None and added.user.id == u2
        members = await c1.list_org_members("org01")
        assert members.organization is not None and members.organization.name == "org01"
        assert sorted((m.user.username if m.user else "", m.role) for m in members.members) == [
            ("user01", "owner"), ("user02", "member")]
        assert [o.name for o in await c1.list_orgs()] == ["org01"]
        await c1.delete_org("org01")
        with pytest.raises(NotExist):
            await c1.list_org_members("org01")


async def test_version(gateway: GatewayUnderTest) -> None:
    async with GatewayClient(gateway.url) as anonymous:
        assert (await anonymous.version()).version


async def test_secrets_and_variables_of_a_project_group(gateway: GatewayUnderTest) -> None:
    _, user = await _user(gateway, "user01")
    async with user:
        await user.create_secret("projectgroup", "user/user01", CreateSecretRequest("s1", {"password": "x"}))
        await user.create_variable("projectgroup", "user/user01", CreateVariableRequest(
            "var01", [VariableValueRequest("s1", "password")]))
        [secret] = await user.list_secrets("projectgroup", "user/user01")
        [var] = await user.list_variables("projectgroup", "user/user01")
    assert (secret.name, secret.parent_path) == ("s1", "user/user01")
    assert (var.name, var.parent_path) == ("var01", "user/user01")
    assert (var.values[0].secret_name, var.values[0].secret_var) == ("s1", "password")


async def test_a_direct_run_is_created_listed_and_read(gateway: GatewayUnderTest, tmp_path: Path) -> None:
    user_id, user = await _user(gateway, "user01")
    repo = tmp_path / "repo"
    repo.mkdir()
    _git.git(str(repo), "init", "-q")
    (repo / ".agola").mkdir()
    (repo / ".agola" / "config.yml").write_text(
        "version: v0\nruns:\n  - name: run01\n    tasks:\n      - name: task01\n"
        "        runtime: {containers: [{image: busybox}]}\n        steps: [{type: run, command: env}]\n")
    snap = _git.save_snapshot(str(repo))
    async with user:
        token = user._token  # noqa: SLF001 - the same token the CLI pushes with
        _git.push_snapshot(snap.root, snap.commit_sha, _git.repo_push_url(gateway.url, user_id, "uuid1"),
                           "refs/heads/master", token)
        await user.user_create_run(UserCreateRunRequest("uuid1", f"{user_id}/uuid1", snap.commit_sha, branch="master"))
        # The real runs list is the runservice's read model: it may lag a moment behind creation.
        [listed] = await wait_for(lambda: user.list_runs(f"/user/{user_id}"), 10, interval=0.1)
        run = await user.get_run(listed.id)
        task = run.task_by_name("task01")
        assert run.name == "run01" and task is not None
        assert run.annotations["commit_sha"] == snap.commit_sha and run.annotations["ref"] == "refs/heads/master"
        assert (await user.get_task(run.id, task.id)).name == "task01"
        with pytest.raises(BadRequest) as not_waiting:
            await user.approve_task(run.id, task.id)
        assert not_waiting.value.message == f"task {task.id} is not waiting for an approval"
        with pytest.raises(NotExist):
            await user.get_run("nosuchrun")
        _, other = await _user(gateway, "user02")
        async with other:
            with pytest.raises((Unauthorized, Forbidden)):
                await other.user_create_run(UserCreateRunRequest(
                    "uuid1", f"{user_id}/uuid1", snap.commit_sha, branch="master"))
