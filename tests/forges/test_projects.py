"""Projects on Gitea repositories through the CLI: the deploy key and the webhook appear on the
forge, a failure of the forge leaves nothing half-installed, reconfig reinstalls, delete removes."""

from __future__ import annotations

import json

import pytest
from click.testing import Result

from tests.client.stack import ADMIN, RoleStack
from tests.forges.conftest import cli, new_user
from tests.support.forge import GiteaEmulator


@pytest.fixture(scope="module")
def henry(stack: RoleStack, emulator: GiteaEmulator) -> str:
    emulator.add_user("henry", "henry-pw")
    for name in ("web", "api", "down"):
        emulator.create_repo("henry", name)
    assert cli(stack, ADMIN, "remotesource", "create", "-n", "gitea", "--type", "gitea", "--auth-type", "password",
               "--api-url", emulator.url).exit_code == 0
    token = new_user(stack, "henry")
    res = cli(stack, token, "user", "linkedaccount", "create", "-n", "henry", "-r", "gitea",
              "--remote-name", "henry", "--remote-password", "henry-pw")
    assert res.exit_code == 0, res.output
    return token


def create(stack: RoleStack, token: str, name: str, repo: str) -> Result:
    return cli(stack, token, "project", "create", "-n", name, "--parent", "user/henry", "--remote-source", "gitea",
               "--repo-path", repo, "--json")


def test_remote_repos_lists_the_repositories_a_project_can_use(
        stack: RoleStack, emulator: GiteaEmulator, henry: str) -> None:
    res = cli(stack, henry, "user", "remoterepos", "-r", "gitea", "--json")
    assert res.exit_code == 0, res.output
    assert [r["path"] for r in json.loads(res.stdout)] == ["henry/web", "henry/api", "henry/down"]


def test_create_installs_deploy_key_and_hook_delete_removes_them(
        stack: RoleStack, emulator: GiteaEmulator, henry: str) -> None:
    res = create(stack, henry, "web", "henry/web")
    assert res.exit_code == 0, res.output
    project = json.loads(res.stdout)
    repo = emulator.repo("henry/web")
    [key] = repo.keys.values()
    assert key.title == f"agola deploy key - {project['id']}" and key.read_only
    assert key.key.startswith("ssh-ed25519 ")
    [hook] = repo.hooks.values()
    assert hook.url == f"{stack.url}/webhooks?projectid={project['id']}"
    assert hook.secret and hook.active and "push" in hook.events and "pull_request" in hook.events

    # The forge lost the hook: reconfig puts it back (and keeps one key).
    repo.hooks.clear()
    assert cli(stack, henry, "project", "reconfig", "-n", "user/henry/web").exit_code == 0
    assert [h.url for h in repo.hooks.values()] == [hook.url] and len(repo.keys) == 1

    # Forked pull requests get the variables only when the owner says so (off by default).
    assert cli(stack, henry, "project", "update", "--ref", "user/henry/web", "--pass-vars-to-forked-pr").exit_code == 0

    deleted = cli(stack, henry, "project", "delete", "--ref", "user/henry/web")
    assert deleted.exit_code == 0, deleted.output
    assert not repo.keys and not repo.hooks


def test_refusals_and_forge_failures_leave_nothing_behind(
        stack: RoleStack, emulator: GiteaEmulator, henry: str) -> None:
    missing = create(stack, henry, "nope", "henry/nope")
    assert missing.exit_code == 1 and "gitea repo_info" in missing.output
    no_rs = cli(stack, henry, "project", "create", "-n", "x", "--parent", "user/henry", "--remote-source", "other",
                "--repo-path", "henry/api")
    assert no_rs.exit_code == 1 and "remote source 'other' doesn't exist" in no_rs.output
    stranger = new_user(stack, "ivan")
    unlinked = cli(stack, stranger, "project", "create", "-n", "x", "--parent", "user/ivan", "--remote-source",
                   "gitea", "--repo-path", "henry/api")
    assert unlinked.exit_code == 1 and "no linked account" in unlinked.output

    emulator.forge.failures["create_hook"] = 500
    try:
        failed = create(stack, henry, "api", "henry/api")
    finally:
        emulator.forge.failures.clear()
    assert failed.exit_code == 1 and "gitea create_webhook" in failed.output
    assert not emulator.repo("henry/api").keys and not emulator.repo("henry/api").hooks
    assert cli(stack, henry, "project", "show", "--ref", "user/henry/api").exit_code == 1
    # Nothing was left: the same project can be created once the forge is back.
    assert create(stack, henry, "api", "henry/api").exit_code == 0

    # Deleting while the forge is down still deletes the project (cleanup is best effort).
    assert create(stack, henry, "down", "henry/down").exit_code == 0
    emulator.forge.failures["*"] = 503
    try:
        assert cli(stack, henry, "project", "delete", "--ref", "user/henry/down").exit_code == 0
    finally:
        emulator.forge.failures.clear()
    assert cli(stack, henry, "project", "show", "--ref", "user/henry/down").exit_code == 1
