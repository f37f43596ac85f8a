"""The GitLab driver: every real webhook example of the reference pack through the parser, bad
deliveries refused with typed errors, and the REST calls against a fake of GitLab's API
(``tests/support/forge/gitlab.py``, answers shaped like the pack's examples)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from agola.errors import BadRequest
from agola.forges import (
    CommitState,
    EventKind,
    ForgeNotFound,
    ForgeRateLimited,
    ForgeUnauthorized,
    OAuth2Token,
    WebhookRejected,
    driver_for,
)
from agola.forges.gitlab import GitLabDriver, parse_webhook, project_id
from agola.types.configstore import LinkedAccount, RemoteSource
from tests.support.forge.gitlab import PACK, FakeGitLab

SECRET = "agola-webhook-secret"
CALLBACK = "https://agola.example.com/oauth2/callback"

pytestmark = pytest.mark.skipif(not PACK.is_dir(), reason="reference pack not present")

HELLO = ("git@gitlab.com:gitlab-org/hello-world.git", "https://gitlab.com/gitlab-org/hello-world.git")
WOODPECKER = ("git@gitlab.com:anbraten/woodpecker.git", "https://gitlab.com/anbraten/woodpecker.git")


def headers(event: str, token: str = SECRET) -> dict[str, str]:
    return {"X-Gitlab-Event": event, "X-Gitlab-Token": token, "Content-Type": "application/json",
            "X-Gitlab-Event-UUID": "13792a34-cac6-4fda-95a8-c58e00a3954e"}


# ------------------------------------------------------------------------------------ webhooks


@pytest.mark.parametrize(("name", "event", "kind", "ref", "sha", "urls", "sender"), [
    ("webhook_push_branch.json", "Push Hook", EventKind.PUSH, "refs/heads/master",
     "2adc9465c4edfc33834e173fe89436a7cb899a1d", HELLO, "sytses"),
    ("webhook_push_branch_create.json", "Push Hook", EventKind.PUSH, "refs/heads/feature",
     "c4c79227ed610f1151f05bbc5be33b4f340d39c8", HELLO, "sytses"),
    ("webhook_push_docs_example.json", "Push Hook", EventKind.PUSH, "refs/heads/master",
     "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
     ("git@example.com:mike/diaspora.git", "http://example.com/mike/diaspora.git"), "John Smith"),
    ("webhook_tag_push_lightweight.json", "Tag Push Hook", EventKind.TAG, "refs/tags/v1.0.0",
     "2adc9465c4edfc33834e173fe89436a7cb899a1d", HELLO, "sytses"),
    # An annotated tag: `after` is the tag object, the run builds the commit (`checkout_sha`).
    ("webhook_tag_push_annotated.json", "Tag Push Hook", EventKind.TAG, "refs/tags/v22",
     "16862e368d8ab812e48833b741dad720d6e2cb7f",
     ("git@10.40.8.5:test/woodpecker.git", "http://10.40.8.5:3200/test/woodpecker.git"), "test"),
    ("webhook_merge_request_open.json", "Merge Request Hook", EventKind.PULL_REQUEST, "refs/merge-requests/1/head",
     "c4c79227ed610f1151f05bbc5be33b4f340d39c8", HELLO, "sytses"),
    ("webhook_merge_request_open_2.json", "Merge Request Hook", EventKind.PULL_REQUEST, "refs/merge-requests/3/head",
     "2f7670508b771e7e77839402be8b34b13787aba8",
     ("git@gitlab.com:demoaccount2-commits-group/test_ci_tmp.git",
      "https://gitlab.com/demoaccount2-commits-group/test_ci_tmp.git"), "real6543"),
    ("webhook_merge_request_update_new_commits.json", "Merge Request Hook", EventKind.PULL_REQUEST,
     "refs/merge-requests/3/head", "c136499ec574e1034b24c5d306de9acda3005367", WOODPECKER, "anbraten"),
    ("webhook_merge_request_docs_example.json", "Merge Request Hook", EventKind.PULL_REQUEST,
     "refs/merge-requests/1/head", "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
     ("git@example.com:gitlabhq/gitlab-test.git", "http://example.com/gitlabhq/gitlab-test.git"), "root"),
])
def test_real_payloads(name: str, event: str, kind: EventKind, ref: str, sha: str, urls: tuple[str, str],
                       sender: str) -> None:
    body = (PACK / name).read_bytes()
    ev = parse_webhook(headers(event), body, SECRET)
    assert ev is not None
    assert (ev.kind, ev.ref, ev.commit_sha, (ev.ssh_url, ev.http_url), ev.sender) == (kind, ref, sha, urls, sender)
    assert ev.from_fork is False
    assert ev.delivery_id == "13792a34-cac6-4fda-95a8-c58e00a3954e"
    assert ev.repo_web_url.endswith("/" + ev.repo_path) and ev.commit_link.endswith(sha)
    if kind == EventKind.PUSH:
        assert ev.branch == ref.removeprefix("refs/heads/") and ev.message
    elif kind == EventKind.TAG:
        assert ev.message == f"Tag {ev.tag}" and ev.tag_link.endswith(f"/tree/{ev.tag}")
    else:
        assert ev.pull_request_link.endswith(f"/merge_requests/{ev.pull_request_id}") and ev.message


def test_a_merge_request_from_a_fork() -> None:
    # No real cross-project example exists: the open example with its source moved to a fork.
    payload = json.loads((PACK / "webhook_merge_request_open.json").read_bytes())
    mr = payload["object_attributes"]
    mr["source_project_id"] = 999
    mr["source"] = {**mr["source"], "path_with_namespace": "mallory/hello-world",
                    "git_ssh_url": "git@gitlab.com:mallory/hello-world.git"}
    ev = parse_webhook(headers("Merge Request Hook"), json.dumps(payload).encode(), SECRET)
    assert ev is not None and ev.from_fork is True
    assert (ev.repo_path, ev.ssh_url) == ("gitlab-org/hello-world", HELLO[0])  # the target project is cloned


@pytest.mark.parametrize(("name", "event"), [("webhook_tag_push_delete.json", "Tag Push Hook"),
                                             ("webhook_merge_request_update_no_code_change.json", "Merge Request Hook")])
def test_deliveries_that_build_nothing(name: str, event: str) -> None:
    assert parse_webhook(headers(event), (PACK / name).read_bytes(), SECRET) is None


def test_merge_requests_closed_or_merged_build_nothing() -> None:
    payload = json.loads((PACK / "webhook_merge_request_open.json").read_bytes())
    for action, state in [("close", "closed"), ("merge", "merged"), ("approved", "opened")]:
        payload["object_attributes"].update(action=action, state=state)
        assert parse_webhook(headers("Merge Request Hook"), json.dumps(payload).encode(), SECRET) is None


def test_bad_deliveries_are_typed_errors() -> None:
    body = (PACK / "webhook_push_branch.json").read_bytes()
    no_token = {k: v for k, v in headers("Push Hook").items() if k != "X-Gitlab-Token"}
    for h, secret in [(no_token, SECRET), (headers("Push Hook", "other"), SECRET), (headers("Push Hook", SECRET[:-1]), SECRET),
                      (headers("Push Hook", "é"), SECRET), (headers("Push Hook"), "")]:
        with pytest.raises(WebhookRejected):  # 401, whatever the payload
            parse_webhook(h, body, secret)
    no_event = {k: v for k, v in headers("Push Hook").items() if k != "X-Gitlab-Event"}
    for h, b in [(headers("Push Hook"), body[: len(body) // 2]), (no_event, body), (headers("Issue Hook"), body),
                 (headers("Push Hook"), b"[]"), (headers("Merge Request Hook"), body),
                 (headers("Push Hook"), body.replace(b"refs/heads/master", b"refs/notes/x"))]:
        with pytest.raises(BadRequest):  # 400
            parse_webhook(h, b, SECRET)


# ------------------------------------------------------------------------------------ REST API


def test_project_ids() -> None:
    assert project_id("group/sub/my.app") == "group%2Fsub%2Fmy%2Eapp"
    assert project_id("42") == "42"
    with pytest.raises(BadRequest):
        project_id("noslash")


@pytest.fixture
async def gitlab() -> AsyncIterator[FakeGitLab]:
    fake = await FakeGitLab(page_size=2).start()
    yield fake
    await fake.stop()


def source(fake: FakeGitLab, client: tuple[str, str] = ("", "")) -> RemoteSource:
    return RemoteSource(name="gitlab", api_url=fake.url + "/", type="gitlab", auth_type="oauth2",
                        oauth2_client_id=client[0], oauth2_client_secret=client[1])


async def test_oauth2_login_refresh_and_projects(gitlab: FakeGitLab) -> None:
    client = gitlab.add_app(CALLBACK)
    gitlab.add_user("dev")
    for i, path in enumerate(["dev/a", "dev/b.web", "team/sub/c", "other/d", "dev/e", "dev/f"]):
        gitlab.add_project(path, access_level=30 if i == 3 else 40)
    async with driver_for(source(gitlab, client)) as anon:
        url = anon.oauth2_authorize_url(CALLBACK, "st")
        assert url.startswith(f"{gitlab.url}/oauth/authorize?") and "scope=api&" in url and "response_type=code" in url
        with pytest.raises(ForgeUnauthorized):
            await anon.oauth2_exchange_code("nope", CALLBACK)
        token = await anon.oauth2_exchange_code(gitlab.authorize("dev"), CALLBACK)
    assert token.refresh_token and token.expires_at is not None and token.expires_at > datetime.now(UTC)

    saved: list[OAuth2Token] = []

    async def save(new: OAuth2Token) -> None:
        saved.append(new)

    # An access token about to expire is refreshed before the call, and the new one stored once.
    la = LinkedAccount(oauth2_access_token=token.access_token, oauth2_refresh_token=token.refresh_token,
                       oauth2_access_token_expires_at=datetime.now(UTC) + timedelta(minutes=1))
    async with driver_for(source(gitlab, client), la, on_token_refresh=save) as d:
        assert isinstance(d, GitLabDriver)
        me = await d.current_user()
        assert (me.login, me.email) == ("dev", "dev@example.com")
        repos = await d.list_user_repos()
        assert [r.path for r in repos] == ["dev/a", "dev/b.web", "team/sub/c", "dev/e", "dev/f"]  # maintainer or more
        info = await d.repo_info("team/sub/c")
        assert (info.id, info.default_branch) == (str(gitlab.projects["team/sub/c"].id), "main")
        assert (info.ssh_clone_url, info.http_clone_url) == ("git@127.0.0.1:team/sub/c.git", f"{gitlab.url}/team/sub/c.git")
        assert (await d.repo_info("dev/b.web")).path == "dev/b.web"
        assert (await d.repo_info(info.id)).path == "team/sub/c"
        with pytest.raises(ForgeNotFound) as missing:
            await d.repo_info("dev/nope")
        assert "gitlab repo_info" in str(missing.value) and "404 Project Not Found" in str(missing.value)
    assert len(saved) == 1 and gitlab.refreshes == 1
    assert token.access_token not in gitlab.tokens  # the refresh revoked it
    assert any("/projects/team%2Fsub%2Fc" in c.raw_path for c in gitlab.calls)
    assert any("/projects/dev%2Fb%2Eweb" in c.raw_path for c in gitlab.calls)
    assert len([c for c in gitlab.calls if c.raw_path.startswith("/api/v4/projects?")]) == 3  # X-Next-Page

    # A token the forge stopped accepting before its expiry: refreshed once, the call retried.
    fresh = saved[-1]
    gitlab.expire(fresh.access_token)
    async with GitLabDriver(source(gitlab, client), fresh, on_token_refresh=save) as d:
        assert (await d.current_user()).login == "dev"
    assert len(saved) == 2 and gitlab.refreshes == 2
    # Revoked for good (the refresh token too): the linked account must be re-authorized.
    gitlab.expire(saved[-1].access_token)
    gitlab.refresh_tokens.clear()
    async with GitLabDriver(source(gitlab, client), saved[-1], on_token_refresh=save) as d:
        with pytest.raises(ForgeUnauthorized) as info_:
            await d.current_user()
    assert "re-authorize the linked account" in str(info_.value) and saved[-1].access_token not in str(info_.value)


async def test_keys_hooks_files_refs_statuses(gitlab: FakeGitLab) -> None:
    token = gitlab.add_user("dev")
    project = gitlab.add_project("team/app.js")
    for i in range(3):
        project.keys[i] = {"id": i, "title": f"k{i}", "key": "ssh-ed25519 AAAAOther o", "can_push": False}
        project.hooks[i] = {"id": i, "url": f"https://ci{i}", "push_events": True}
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMine agola"
    async with GitLabDriver(source(gitlab), OAuth2Token(token)) as d:
        first = await d.create_deploy_key("team/app.js", "agola deploy key - p1", key)
        assert first.read_only and (await d.create_deploy_key("team/app.js", "agola deploy key - p1", key)).id == first.id
        new = await d.create_deploy_key("team/app.js", "agola deploy key - p1", key.replace("Mine", "Mine2"))
        assert new.id != first.id and project.keys[int(new.id)]["can_push"] is False
        assert [k["title"] for k in project.keys.values()].count("agola deploy key - p1") == 1
        await d.delete_deploy_key("team/app.js", "agola deploy key - p1")
        assert sorted(project.keys) == [0, 1, 2]

        hook_url = "https://agola.example.com/webhooks?agolaid=a&projectid=p1"
        await d.create_webhook("team/app.js", hook_url, "s3cret")
        hook = await d.create_webhook("team/app.js", hook_url, "s3cret2")
        assert hook.url == hook_url and hook.events == ("push", "tag_push", "merge_requests")
        stored = project.hooks[int(hook.id)]
        assert (stored["token"], stored["enable_ssl_verification"]) == ("s3cret2", True)
        assert [h.url for h in await d.list_webhooks("team/app.js")].count(hook_url) == 1
        await d.delete_webhook("team/app.js", hook_url)
        assert sorted(project.hooks) == [0, 1, 2]

        sha = "c" * 40
        project.files[sha] = {".agola/config.yml": b"version: v0\n"}
        project.branches["main"] = sha
        project.tags["v1"] = sha
        project.messages[sha] = "add pipeline\n"
        assert await d.get_file("team/app.js", sha, ".agola/config.yml") == b"version: v0\n"
        with pytest.raises(ForgeNotFound):
            await d.get_file("team/app.js", sha, ".agola/config.star")
        assert await d.get_ref("team/app.js", "refs/heads/main") == sha
        assert await d.get_ref("team/app.js", "refs/tags/v1") == sha
        assert await d.get_commit_message("team/app.js", sha) == "add pipeline\n"
        with pytest.raises(ForgeNotFound):
            await d.get_ref("team/app.js", "refs/tags/nope")

        for state in (CommitState.PENDING, CommitState.PENDING, CommitState.SUCCESS, CommitState.FAILURE,
                      CommitState.ERROR):
            await d.set_commit_status("team/app.js", sha, state=state, context="agola/app/run",
                                      description="x" * 300, target_url="https://agola.example.com/run")
    # GitLab's names; pending twice is one status (GitLab refuses the same transition); failed twice too.
    assert [(s["status"], s["name"]) for s in project.statuses] == [
        ("pending", "agola/app/run"), ("success", "agola/app/run"), ("failed", "agola/app/run")]
    assert len(project.statuses[0]["description"]) == 255
    assert any("/repository/files/%2Eagola%2Fconfig%2Eyml?ref=" in c.raw_path for c in gitlab.calls)


async def test_rate_limits(gitlab: FakeGitLab) -> None:
    token = gitlab.add_user("dev")
    gitlab.add_project("dev/app")
    async with GitLabDriver(source(gitlab), OAuth2Token(token)) as d:
        gitlab.limit(1, retry_after=42)
        with pytest.raises(ForgeRateLimited) as info:
            await d.set_commit_status("dev/app", "a" * 40, state=CommitState.SUCCESS, context="c")
        assert info.value.retry_after == 42 and info.value.forge_status == 429
        calls = len(gitlab.calls)
        assert (await d.repo_info("dev/app")).path == "dev/app"
        assert len(gitlab.calls) == calls + 1  # no retry loop inside the driver
