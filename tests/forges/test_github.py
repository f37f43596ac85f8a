"""The GitHub driver: every real webhook example of the reference pack through the parser, bad
deliveries refused with typed errors, and the REST calls against a fake of GitHub's API
(``tests/support/forge/github.py``, answers shaped like the pack's examples)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agola.errors import BadRequest
from agola.forges import (
    CommitState,
    EventKind,
    ForgeForbidden,
    ForgeNotFound,
    ForgeRateLimited,
    ForgeUnauthorized,
    ForgeUnreachable,
    OAuth2Token,
    WebhookRejected,
    driver_for,
)
from agola.forges.github import GitHubDriver, github_urls, next_link, parse_webhook, sign
from agola.forges.rest import Answer, token_answer
from agola.types.configstore import LinkedAccount, RemoteSource
from tests.support.forge.github import PACK, FakeGitHub
from tests.support.services import free_port

SECRET = "agola-webhook-secret"

pytestmark = pytest.mark.skipif(not PACK.is_dir(), reason="reference pack not present")

HELLO = ("git@github.com:Codertocat/Hello-World.git", "https://github.com/Codertocat/Hello-World.git")
DRONE = ("git@github.com:bradrydzewski/drone-test-go.git", "https://github.com/bradrydzewski/drone-test-go.git")


def headers(event: str, body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-GitHub-Event": event, "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
            "X-Hub-Signature-256": sign(secret, body), "Content-Type": "application/json",
            "X-Hub-Signature": "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()}


# ------------------------------------------------------------------------------------ webhooks


def test_signature_matches_the_reference_vector() -> None:
    body = (PACK / "webhook_push_branch.json").read_bytes()
    assert sign(SECRET, body) == "sha256=b01077fb62e7ebdabe396c38c1b72979c8331b60c31e432b6915b856d92afea1"


@pytest.mark.parametrize(("name", "event", "kind", "ref", "sha", "urls", "sender"), [
    ("webhook_push_branch.json", "push", EventKind.PUSH, "refs/heads/master",
     "6113728f27ae82c7b1a177c8d03f9e96e0adf246", HELLO, "Codertocat"),
    ("webhook_push_tag_created.json", "push", EventKind.TAG, "refs/tags/simple-tag",
     "6113728f27ae82c7b1a177c8d03f9e96e0adf246", HELLO, "Codertocat"),
    ("webhook_push_tag_captured.json", "push", EventKind.TAG, "refs/tags/v0.0.1",
     "d2b75aa7797ec26b088fa2dd527e9d2c052fcedd", DRONE, "bradrydzewski"),
    ("webhook_pull_request_opened.json", "pull_request", EventKind.PULL_REQUEST, "refs/pull/2/head",
     "ec26c3e57ca3a959ca5aad62de7213c562f8c821", HELLO, "Codertocat"),
    ("webhook_pull_request_synchronize.json", "pull_request", EventKind.PULL_REQUEST, "refs/pull/2/head",
     "ec26c3e57ca3a959ca5aad62de7213c562f8c821", HELLO, "Codertocat"),
    ("webhook_pull_request_synchronize_captured.json", "pull_request", EventKind.PULL_REQUEST, "refs/pull/1/head",
     "8102e371cd01cf668893cb2d04a04d52331b1dc9", DRONE, "bradrydzewski"),
])
def test_real_payloads(name: str, event: str, kind: EventKind, ref: str, sha: str, urls: tuple[str, str],
                       sender: str) -> None:
    body = (PACK / name).read_bytes()
    ev = parse_webhook(headers(event, body), body, SECRET)
    assert ev is not None
    assert (ev.kind, ev.ref, ev.commit_sha, (ev.ssh_url, ev.http_url), ev.sender) == (kind, ref, sha, urls, sender)
    assert ev.from_fork is False  # same-repository PRs are not forks (the reference said they all were)
    assert ev.delivery_id == "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert ev.repo_path == urls[1].removeprefix("https://github.com/").removesuffix(".git")
    assert ev.commit_link == f"https://github.com/{ev.repo_path}/commit/{sha}"
    if kind == EventKind.PUSH:
        assert ev.branch == "master" and ev.message and ev.compare_link.startswith("https://github.com/")
    elif kind == EventKind.TAG:
        assert ev.message == f"Tag {ev.tag}" and ev.tag_link.endswith(f"/tree/{ev.tag}")
    else:
        assert ev.pull_request_link.endswith(f"/pull/{ev.pull_request_id}") and ev.message


def test_a_pull_request_from_a_fork() -> None:
    # No real fork example exists: the opened example with its head moved to another owner's fork.
    payload = json.loads((PACK / "webhook_pull_request_opened.json").read_bytes())
    head = payload["pull_request"]["head"]
    head["repo"] = {**head["repo"], "id": 999, "full_name": "mallory/Hello-World", "fork": True}
    head["label"] = "mallory:changes"
    body = json.dumps(payload).encode()
    ev = parse_webhook(headers("pull_request", body), body, SECRET)
    assert ev is not None and ev.from_fork is True
    assert (ev.repo_path, ev.ssh_url) == ("Codertocat/Hello-World", HELLO[0])  # cloned from the base repository


@pytest.mark.parametrize(("name", "event"), [("webhook_ping.json", "ping"),
                                             ("webhook_pull_request_closed.json", "pull_request"),
                                             ("webhook_push_tag_deleted.json", "push")])
def test_deliveries_that_build_nothing(name: str, event: str) -> None:
    body = (PACK / name).read_bytes()
    assert parse_webhook(headers(event, body), body, SECRET) is None


def test_bad_deliveries_are_typed_errors() -> None:
    body = (PACK / "webhook_push_branch.json").read_bytes()
    good = headers("push", body)
    sha1_only = {k: v for k, v in good.items() if k != "X-Hub-Signature-256"}
    unsigned = {k: v for k, v in sha1_only.items() if k != "X-Hub-Signature"}
    for h, b, secret in [(sha1_only, body, SECRET), (unsigned, body, SECRET), (headers("push", body, "other"), body, SECRET),
                         (good, body.replace(b"master", b"evil", 1), SECRET), (good, body, ""),
                         ({**good, "X-Hub-Signature-256": "sha256=é"}, body, SECRET)]:
        with pytest.raises(WebhookRejected):  # 401, whatever the payload
            parse_webhook(h, b, secret)
    truncated = body[: len(body) // 2]
    no_event = {k: v for k, v in headers("push", body).items() if k != "X-GitHub-Event"}
    for h, b in [(headers("push", truncated), truncated), (no_event, body), (headers("issues", body), body),
                 (headers("push", b"[1]"), b"[1]"), (headers("push", b'{"ref": "refs/heads/x"}'), b'{"ref": "refs/heads/x"}')]:
        with pytest.raises(BadRequest):  # 400
            parse_webhook(h, b, SECRET)


def test_form_encoded_deliveries() -> None:
    from urllib.parse import urlencode

    raw = (PACK / "webhook_push_branch.json").read_text()
    body = urlencode({"payload": raw}).encode()
    h = {**headers("push", body), "Content-Type": "application/x-www-form-urlencoded"}
    ev = parse_webhook(h, body, SECRET)
    assert ev is not None and ev.commit_sha == "6113728f27ae82c7b1a177c8d03f9e96e0adf246"


# ------------------------------------------------------------------------------------ REST API


def test_enterprise_urls() -> None:
    assert github_urls("https://api.github.com/") == ("https://api.github.com", "https://github.com")
    assert github_urls("https://ghe.example.com") == ("https://ghe.example.com/api/v3", "https://ghe.example.com")
    assert github_urls("https://ghe.example.com/api/v3/") == ("https://ghe.example.com/api/v3", "https://ghe.example.com")
    assert next_link({"link": '<https://x/a?page=2>; rel="next", <https://x/a?page=5>; rel="last"'}) == "https://x/a?page=2"
    assert next_link({"Link": '<https://x/a?page=1>; rel="prev"'}) == ""


@pytest.fixture
async def github() -> AsyncIterator[FakeGitHub]:
    fake = await FakeGitHub(page_size=2).start()
    yield fake
    await fake.stop()


def source(fake: FakeGitHub, client: tuple[str, str] = ("", "")) -> RemoteSource:
    return RemoteSource(name="github", api_url=fake.url + "/", type="github", auth_type="oauth2",
                        oauth2_client_id=client[0], oauth2_client_secret=client[1])


def driver(fake: FakeGitHub, token: str) -> GitHubDriver:
    return GitHubDriver(source(fake), OAuth2Token(token))


async def test_oauth_app_login_and_repositories(github: FakeGitHub) -> None:
    client = github.add_app()
    github.add_user("octocat")
    for i in range(5):  # three pages of two
        github.add_repo("octocat", f"repo{i}", admin=i != 3)
    async with driver_for(source(github, client)) as anon:
        url = anon.oauth2_authorize_url("https://agola.example.com/oauth2/callback", "st")
        assert url.startswith(f"{github.url}/login/oauth/authorize?") and "scope=repo&" in url and "state=st" in url
        with pytest.raises(ForgeUnauthorized) as bad:
            await anon.oauth2_exchange_code("nope", "https://agola.example.com/oauth2/callback")
        assert "incorrect or expired" in str(bad.value)
        token = await anon.oauth2_exchange_code(github.authorize("octocat"), "https://agola.example.com/oauth2/callback")
    assert token.expires_at is None and token.refresh_token == ""  # OAuth app tokens don't expire
    la = LinkedAccount(oauth2_access_token=token.access_token)
    async with driver_for(source(github, client), la) as d:
        assert isinstance(d, GitHubDriver)
        me = await d.current_user()
        assert (me.login, me.email) == ("octocat", "octocat@example.com")
        repos = await d.list_user_repos()
        assert [r.path for r in repos] == ["octocat/repo0", "octocat/repo1", "octocat/repo2", "octocat/repo4"]
        info = await d.repo_info("octocat/repo1")
        assert (info.default_branch, info.http_clone_url) == ("main", f"{github.url}/octocat/repo1.git")
        assert info.ssh_clone_url == "git@127.0.0.1:octocat/repo1.git" and info.id == str(github.repos["octocat/repo1"].id)
        with pytest.raises(ForgeNotFound) as missing:
            await d.repo_info("octocat/nope")
        assert "github repo_info" in str(missing.value) and "Not Found" in str(missing.value)
    pages = [c for c in github.calls if c.path == "/api/v3/user/repos"]
    assert len(pages) == 3
    assert all(c.headers["Accept"] == "application/vnd.github+json" and c.headers["X-GitHub-Api-Version"] == "2022-11-28"
               for c in github.calls)


async def test_keys_hooks_files_refs_statuses(github: FakeGitHub) -> None:
    token = github.add_user("octocat")
    repo = github.add_repo("octocat", "app")
    other_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOther other"
    for i in range(3):  # keys and hooks of others on several pages
        repo.keys[i] = {"id": i, "title": f"k{i}", "key": other_key, "read_only": True}
        repo.hooks[i] = {"id": i, "name": "web", "events": ["push"], "active": True, "config": {"url": f"https://ci{i}"}}
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMine agola"
    async with driver(github, token) as d:
        first = await d.create_deploy_key("octocat/app", "agola deploy key - p1", key)
        assert first.read_only and (await d.create_deploy_key("octocat/app", "agola deploy key - p1", key + " x")).id == first.id
        new = await d.create_deploy_key("octocat/app", "agola deploy key - p1", key.replace("Mine", "Mine2"))
        assert new.id != first.id and [k["title"] for k in repo.keys.values()].count("agola deploy key - p1") == 1
        assert repo.keys[int(new.id)]["read_only"] is True
        await d.delete_deploy_key("octocat/app", "agola deploy key - p1")
        assert sorted(repo.keys) == [0, 1, 2]

        hook_url = "https://agola.example.com/webhooks?agolaid=a&projectid=p1"
        await d.create_webhook("octocat/app", hook_url, "s3cret")
        hook = await d.create_webhook("octocat/app", hook_url, "s3cret2")  # replaces the first
        assert hook.events == ("push", "pull_request") and hook.url == hook_url
        stored = repo.hooks[int(hook.id)]
        assert stored["config"] == {"url": hook_url, "content_type": "json", "secret": "s3cret2", "insecure_ssl": "0"}
        assert [h.url for h in await d.list_webhooks("octocat/app")].count(hook_url) == 1
        await d.delete_webhook("octocat/app", hook_url)
        assert sorted(repo.hooks) == [0, 1, 2]

        sha, tag_obj = "a" * 40, "b" * 40
        big = b"x" * (1024 * 1024 + 10)
        repo.files[sha] = {".agola/config.yml": b"version: v0\n" * 20, "big.bin": big}
        assert await d.get_file("octocat/app", sha, ".agola/config.yml") == b"version: v0\n" * 20
        assert await d.get_file("octocat/app", sha, "big.bin") == big
        for missing in (".agola/config.jsonnet", ".agola"):
            with pytest.raises(ForgeNotFound):
                await d.get_file("octocat/app", sha, missing)
        repo.refs.update({"refs/heads/main": sha, "refs/tags/v1": tag_obj})
        repo.tag_objects[tag_obj] = sha
        repo.messages[sha] = "add pipeline\n"
        assert await d.get_ref("octocat/app", "refs/heads/main") == sha
        assert await d.get_ref("octocat/app", "refs/tags/v1") == sha  # the tagged commit, not the tag object
        assert await d.get_commit_message("octocat/app", sha) == "add pipeline\n"
        with pytest.raises(ForgeNotFound):
            await d.get_ref("octocat/app", "refs/heads/nope")

        await d.set_commit_status("octocat/app", sha, state=CommitState.PENDING, context="agola/app/run",
                                  description="The run is pending " * 20, target_url="https://agola.example.com/run")
        await d.set_commit_status("octocat/app", sha, state=CommitState.FAILURE, context="agola/app/run")
    assert [(s["state"], s["context"], s["sha"]) for s in repo.statuses] == [
        ("pending", "agola/app/run", sha), ("failure", "agola/app/run", sha)]
    assert len(repo.statuses[0]["description"]) == 140


async def test_rate_limits_revoked_tokens_and_outages(github: FakeGitHub) -> None:
    token = github.add_user("octocat")
    github.add_repo("octocat", "app")
    async with driver(github, token) as d:
        github.limit(1, reset_in=120)  # primary: X-RateLimit-Remaining 0 until the reset time
        with pytest.raises(ForgeRateLimited) as primary:
            await d.repo_info("octocat/app")
        assert 100 < primary.value.retry_after <= 121 and primary.value.forge_status == 403
        assert "github repo_info: rate limited, retry in" in str(primary.value) and primary.value.status == 503
        github.limit(1, retry_after=30, status=429)  # secondary
        with pytest.raises(ForgeRateLimited) as secondary:
            await d.set_commit_status("octocat/app", "a" * 40, state=CommitState.SUCCESS, context="c")
        assert secondary.value.retry_after == 30
        calls = len(github.calls)
        assert (await d.repo_info("octocat/app")).path == "octocat/app"  # the limit is over: the call works
        assert len(github.calls) == calls + 1  # one request per call, never a retry loop

        github.limit(1, status=403)  # a plain 403 (no rate-limit headers) is a refusal
        github.limits[0].headers.clear()
        with pytest.raises(ForgeForbidden):
            await d.repo_info("octocat/app")

    async with driver(github, "gho_revoked") as revoked:
        with pytest.raises(ForgeUnauthorized) as info:
            await revoked.current_user()
        assert "re-authorize the linked account" in str(info.value) and "gho_revoked" not in str(info.value)

    down = RemoteSource(name="gh", api_url=f"http://127.0.0.1:{free_port()}", type="github", auth_type="oauth2")
    async with GitHubDriver(down, OAuth2Token(token)) as d:
        with pytest.raises(ForgeUnreachable):
            await d.current_user()


def test_token_answers_form_encoded_or_json() -> None:
    # GitHub answers form-encoded unless asked for JSON: both are read.
    form = (PACK / "oauth_access_token_response.form.txt").read_bytes().strip()
    as_form = token_answer(Answer(200, {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}, form))
    as_json = token_answer(Answer(200, {"Content-Type": "application/json"},
                                  (PACK / "oauth_access_token_response.json").read_bytes()))
    assert as_form == as_json == {"access_token": "gho_16C7e42F292c6912E7710c838347Ae178B4a", "scope": "repo,gist",
                                  "token_type": "bearer"}


async def test_password_tokens_are_refused() -> None:
    rs = RemoteSource(name="gh", api_url="https://api.github.com", type="github", auth_type="password")
    async with driver_for(rs) as d:
        with pytest.raises(BadRequest, match="OAuth2"):
            await d.create_access_token("octocat", "pw", "agola-x")


# ------------------------------------------------------------------- the fake against the spec

SPEC = json.loads((PACK / "openapi-subset.json").read_text()) if PACK.is_dir() else {}


def spec_errors(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """What in ``value`` breaks an OpenAPI 3.0 schema of the pack's subset (refs, oneOf, types,
    nullable, required, properties, items, enum)."""
    if "$ref" in schema:
        schema = SPEC["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    if "oneOf" in schema:
        options = [spec_errors(value, s, where) for s in schema["oneOf"]]
        return [] if any(not o for o in options) else min(options, key=len)
    if value is None:
        return [] if schema.get("nullable") or "type" not in schema else [f"{where}: null"]
    kind = schema.get("type")
    types: dict[str, type | tuple[type, ...]] = {"object": dict, "array": list, "string": str, "boolean": bool,
                                                 "integer": int, "number": (int, float)}
    if kind in types and (not isinstance(value, types[kind]) or (kind in ("integer", "number") and isinstance(value, bool))):
        return [f"{where}: {type(value).__name__}, not {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r} not in {schema['enum']}"]
    errors: list[str] = []
    if isinstance(value, dict):
        errors += [f"{where}.{k}: missing" for k in schema.get("required", []) if k not in value]
        for k, sub in (schema.get("properties") or {}).items():
            if k in value:
                errors += spec_errors(value[k], sub, f"{where}.{k}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += spec_errors(item, schema["items"], f"{where}[{i}]")
    return errors


async def test_the_fake_answers_as_the_openapi_description_says(github: FakeGitHub) -> None:
    import aiohttp

    token = github.add_user("octocat")
    repo = github.add_repo("octocat", "app")
    sha = "a" * 40
    repo.files[sha] = {"README.md": b"hello\n"}
    repo.refs["refs/heads/main"] = sha
    repo.messages[sha] = "first"
    api = f"{github.url}/api/v3"
    calls = [("get", "/user", "/user", None, 200), ("get", "/user/repos", "/user/repos", None, 200),
             ("get", "/repos/{owner}/{repo}", "/repos/octocat/app", None, 200),
             ("post", "/repos/{owner}/{repo}/keys", "/repos/octocat/app/keys",
              {"title": "t", "key": "ssh-ed25519 AAAA k", "read_only": True}, 201),
             ("get", "/repos/{owner}/{repo}/keys", "/repos/octocat/app/keys", None, 200),
             ("post", "/repos/{owner}/{repo}/hooks", "/repos/octocat/app/hooks",
              {"name": "web", "config": {"url": "https://a/w", "content_type": "json", "secret": "s"},
               "events": ["push", "pull_request"], "active": True}, 201),
             ("get", "/repos/{owner}/{repo}/hooks", "/repos/octocat/app/hooks", None, 200),
             ("get", "/repos/{owner}/{repo}/contents/{path}", f"/repos/octocat/app/contents/README.md?ref={sha}", None, 200),
             ("get", "/repos/{owner}/{repo}/git/ref/{ref}", "/repos/octocat/app/git/ref/heads/main", None, 200),
             ("get", "/repos/{owner}/{repo}/git/commits/{commit_sha}", f"/repos/octocat/app/git/commits/{sha}", None, 200),
             ("post", "/repos/{owner}/{repo}/statuses/{sha}", f"/repos/octocat/app/statuses/{sha}",
              {"state": "pending", "context": "c"}, 201)]
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        for method, template, path, body, status in calls:
            async with http.request(method, api + path, json=body) as resp:
                assert resp.status == status, path
                data = await resp.json()
            schema = SPEC["paths"][template][method]["responses"][str(status)]["content"]["application/json"]["schema"]
            assert spec_errors(data, schema) == [], f"{method.upper()} {template}"
