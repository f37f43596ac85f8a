"""The Gitea driver against the emulator: the calls agola makes for linked accounts, projects,
run creation and commit statuses, with real git pushes producing real signed webhooks."""

from __future__ import annotations

import base64
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from agola.forges import (
    CommitState,
    EventKind,
    ForgeForbidden,
    ForgeNotFound,
    ForgeUnauthorized,
    ForgeUnreachable,
    OAuth2Token,
    WebhookRejected,
    driver_for,
)
from agola.forges.gitea import GiteaDriver
from agola.types.configstore import LinkedAccount, RemoteSource
from tests.forges.conftest import HookReceiver, commit, git, work_tree
from tests.support.forge import GiteaEmulator
from tests.support.services import free_port, missing
from tests.support.waiting import wait_for

SECRET = "hook-secret-1"


def source(emulator: GiteaEmulator, auth_type: str = "password", client_id: str = "", secret: str = "") -> RemoteSource:
    return RemoteSource(name="gitea", api_url=emulator.url + "/", type="gitea", auth_type=auth_type,
                        oauth2_client_id=client_id, oauth2_client_secret=secret)


@pytest.fixture(scope="module")
def alice(emulator: GiteaEmulator) -> str:
    emulator.add_user("alice", "alice-pw")
    emulator.create_repo("alice", "app")
    emulator.add_user("bob", "bob-pw")
    return "alice"


def driver(emulator: GiteaEmulator, token: str) -> GiteaDriver:
    return GiteaDriver(source(emulator), OAuth2Token(token))


async def test_password_source_token_and_repos(emulator: GiteaEmulator, alice: str) -> None:
    async with driver_for(source(emulator)) as anon:
        with pytest.raises(ForgeUnauthorized) as info:
            await anon.create_access_token("alice", "not-alices-pw-42", "agola-x")
        assert "gitea create_access_token: wrong login name or password" in str(info.value)
        assert "not-alices-pw-42" not in str(info.value)
        token = await anon.create_access_token("alice", "alice-pw", "agola-x")
        # Same name again: the old token is replaced, the new one works.
        token = await anon.create_access_token("alice", "alice-pw", "agola-x")
    la = LinkedAccount(user_access_token=token)
    async with driver_for(source(emulator), la) as d:
        me = await d.current_user()
        assert (me.login, me.email) == ("alice", "alice@example.com")
        repos = await d.list_user_repos()
        assert [r.path for r in repos] == ["alice/app"]
        info_ = await d.repo_info("alice/app")
        assert info_.default_branch == "main" and info_.ssh_clone_url.endswith("alice/app.git")
        assert info_.http_clone_url == f"{emulator.url}/alice/app.git"
        with pytest.raises(ForgeNotFound):
            await d.repo_info("alice/nope")


async def test_keys_hooks_files_refs_statuses(emulator: GiteaEmulator, alice: str, tmp_path: Path) -> None:
    tree = work_tree(tmp_path / "w", {".agola/config.yml": "version: v0\n"}, "add pipeline")
    git("push", "-q", emulator.http_url("alice/app", "alice"), "main", cwd=tree)
    git("tag", "-a", "v1", "-m", "release 1", cwd=tree)
    git("push", "-q", emulator.http_url("alice/app", "alice"), "v1", cwd=tree)
    sha = git("rev-parse", "HEAD", cwd=tree)
    async with driver(emulator, emulator.token_for("alice")) as d:
        k1 = await d.create_deploy_key("alice/app", "agola deploy key - p1", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA1 a")
        same = await d.create_deploy_key("alice/app", "agola deploy key - p1", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA1 b")
        assert same.id == k1.id and k1.read_only
        k2 = await d.create_deploy_key("alice/app", "agola deploy key - p1", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA2 c")
        assert [k.id for k in emulator.repo("alice/app").keys.values()] == [int(k2.id)]
        await d.delete_deploy_key("alice/app", "agola deploy key - p1")
        assert not emulator.repo("alice/app").keys

        url = "http://agola.example/webhooks?projectid=p1"
        await d.create_webhook("alice/app", url, SECRET)
        hook = await d.create_webhook("alice/app", url, SECRET)  # replaces, never duplicates
        assert [h.id for h in await d.list_webhooks("alice/app")] == [hook.id]
        assert "pull_request" in hook.events and "push" in hook.events
        await d.delete_webhook("alice/app", url)
        assert await d.list_webhooks("alice/app") == []

        assert await d.get_file("alice/app", sha, ".agola/config.yml") == b"version: v0\n"
        with pytest.raises(ForgeNotFound):
            await d.get_file("alice/app", sha, ".agola/config.jsonnet")
        assert await d.get_ref("alice/app", "refs/heads/main") == sha
        assert await d.get_ref("alice/app", "refs/tags/v1") == sha  # the commit, not the tag object
        assert await d.get_commit_message("alice/app", sha) == "add pipeline\n"

        await d.set_commit_status("alice/app", sha, state=CommitState.PENDING, context="agola/p/run",
                                  description="The run is pending", target_url="http://agola/run/1")
        await d.set_commit_status("alice/app", sha, state=CommitState.SUCCESS, context="agola/p/run")
        assert [s.state for s in emulator.statuses("alice/app", sha)] == ["pending", "success"]
        assert emulator.statuses("alice/app", sha)[0].target_url == "http://agola/run/1"

    async with driver(emulator, emulator.token_for("bob")) as other:
        with pytest.raises(ForgeForbidden):
            await other.create_webhook("alice/app", "http://x/", "s")


async def test_oauth2_code_flow_and_refresh(emulator: GiteaEmulator, alice: str) -> None:
    app = emulator.add_oauth_app("http://agola.example/oauth2/callback")
    rs = source(emulator, "oauth2", app.client_id, app.client_secret)
    async with driver_for(rs) as d:
        url = d.oauth2_authorize_url(app.redirect_uri, "state-123")
        assert url.startswith(emulator.url + "/login/oauth/authorize?") and "//login" not in url
        async with aiohttp.ClientSession() as http:
            basic = {"Authorization": "Basic " + base64.b64encode(b"alice:alice-pw").decode()}
            async with http.get(url, allow_redirects=False, headers=basic) as resp:
                assert resp.status == 302
                location = resp.headers["Location"]
        assert location.startswith(app.redirect_uri) and "state=state-123" in location
        code = location.split("code=")[1].split("&")[0]
        emulator.forge.oauth2_token_lifetime = 60  # expires within the refresh margin
        token = await d.oauth2_exchange_code(code, app.redirect_uri)
        with pytest.raises(ForgeUnauthorized):
            await d.oauth2_exchange_code(code, app.redirect_uri)  # a code is good once
    emulator.forge.oauth2_token_lifetime = 3600
    saved: list[OAuth2Token] = []

    async def save(new: OAuth2Token) -> None:
        saved.append(new)

    la = LinkedAccount(oauth2_access_token=token.access_token, oauth2_refresh_token=token.refresh_token,
                       oauth2_access_token_expires_at=token.expires_at)
    async with driver_for(rs, la, on_token_refresh=save) as d:
        assert (await d.current_user()).login == "alice"
        assert (await d.current_user()).login == "alice"
    assert len(saved) == 1 and saved[0].refresh_token != token.refresh_token
    assert saved[0].expires_at is not None and saved[0].expires_at > datetime.now(UTC) + timedelta(minutes=30)


async def test_forge_unreachable_is_a_typed_error() -> None:
    rs = RemoteSource(name="gone", api_url=f"http://127.0.0.1:{free_port()}", type="gitea", auth_type="password")
    async with GiteaDriver(rs, OAuth2Token("t")) as d:
        with pytest.raises(ForgeUnreachable) as info:
            await d.repo_info("a/b")
    assert info.value.forge == "gitea" and info.value.call == "repo_info" and info.value.status == 503


async def test_pushes_tags_and_pull_requests_send_signed_webhooks(
        emulator: GiteaEmulator, alice: str, receiver: HookReceiver, tmp_path: Path) -> None:
    emulator.create_repo("alice", "hooked")
    async with driver(emulator, emulator.token_for("alice")) as d:
        await d.create_webhook("alice/hooked", receiver.url, SECRET)
        tree = work_tree(tmp_path / "w", {"README": "hi\n"}, "first commit")
        git("push", "-q", emulator.http_url("alice/hooked", "alice"), "main", cwd=tree)
        await wait_for(lambda: len(receiver.received) >= 1, message="push delivery")
        got = receiver.received[-1]
        event = d.parse_webhook(got.headers, got.body, SECRET)
        assert event is not None and event.kind == EventKind.PUSH and event.branch == "main"
        assert event.commit_sha == git("rev-parse", "HEAD", cwd=tree) and event.message == "first commit\n"
        assert event.sender == "alice" and event.delivery_id == got.headers["X-Gitea-Delivery"]
        assert event.repo_path == "alice/hooked" and event.ssh_url.endswith("alice/hooked.git")
        with pytest.raises(WebhookRejected):
            d.parse_webhook(got.headers, got.body, "another secret")

        git("tag", "-a", "v2", "-m", "annotated", cwd=tree)
        git("push", "-q", emulator.http_url("alice/hooked", "alice"), "v2", cwd=tree)
        await wait_for(lambda: len(receiver.received) >= 2, message="tag delivery")
        tag = d.parse_webhook(receiver.received[-1].headers, receiver.received[-1].body, SECRET)
        assert tag is not None and tag.kind == EventKind.TAG and tag.tag == "v2"
        assert tag.commit_sha == git("rev-parse", "HEAD", cwd=tree)

        emulator.fork_repo("alice/hooked", "bob")
        git("checkout", "-q", "-b", "feature", cwd=tree)
        commit(tree, {"f": "1\n"}, "feature work")
        git("push", "-q", emulator.http_url("bob/hooked", "bob"), "feature", cwd=tree)
        emulator.open_pull_request("alice/hooked", "bob/hooked", "feature", "Add feature")
        await wait_for(lambda: len(receiver.received) >= 3, message="PR delivery")
        pr = d.parse_webhook(receiver.received[-1].headers, receiver.received[-1].body, SECRET)
        assert pr is not None and pr.kind == EventKind.PULL_REQUEST and pr.from_fork
        assert (pr.pull_request_id, pr.ref, pr.message) == ("1", "refs/pull/1/head", "Add feature")
        # The PR ref exists on the base repository, with the fork's commit.
        assert await d.get_ref("alice/hooked", "refs/pull/1/head") == pr.commit_sha

        new_sha = commit(tree, {"f": "2\n"}, "more work")
        git("push", "-q", emulator.http_url("bob/hooked", "bob"), "feature", cwd=tree)
        await wait_for(lambda: any(b"synchronized" in r.body for r in receiver.received), message="sync delivery")
        sync = next(r for r in receiver.received if b'"synchronized"' in r.body)
        ev = d.parse_webhook(sync.headers, sync.body, SECRET)
        assert ev is not None and ev.commit_sha == new_sha
    assert all(dl.status == 200 for dl in emulator.deliveries if dl.hook_url == receiver.url)


async def test_ssh_clone_with_a_read_only_deploy_key(emulator: GiteaEmulator, alice: str, tmp_path: Path) -> None:
    if emulator.sshd is None:
        missing("openssh-server (sshd) and git-shell, for the Gitea emulator's SSH")
    emulator.create_repo("alice", "sshrepo")
    emulator.create_repo("alice", "other")
    tree = work_tree(tmp_path / "w", {"README": "over ssh\n"})
    git("push", "-q", emulator.http_url("alice/sshrepo", "alice"), "main", cwd=tree)
    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    known = tmp_path / "known_hosts"
    known.write_text(emulator.ssh_host_key + "\n")
    async with driver(emulator, emulator.token_for("alice")) as d:
        await d.create_deploy_key("alice/sshrepo", "agola deploy key - p2", (tmp_path / "id.pub").read_text())
        info = await d.repo_info("alice/sshrepo")
    ssh = f"ssh -i {key} -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes"
    env = {"GIT_SSH_COMMAND": ssh}
    git("clone", "-q", info.ssh_clone_url, str(tmp_path / "clone"), env=env)
    assert (tmp_path / "clone" / "README").read_text() == "over ssh\n"
    commit(tmp_path / "clone", {"x": "1"}, "try to push")
    with pytest.raises(RuntimeError, match="read-only"):
        git("push", "-q", "origin", "main", cwd=tmp_path / "clone", env=env)
    with pytest.raises(RuntimeError, match="for alice/sshrepo only"):
        git("clone", "-q", info.ssh_clone_url.replace("sshrepo", "other"), str(tmp_path / "c2"), env=env)
