"""The emulator's GitHub and GitLab dialects answer and send each forge's real JSON shapes: every
field of the reference pack's examples is there with the same JSON type, the deliveries carry the
forge's headers, and the forge's own driver verifies and parses them (ref, SHA, clone URL, sender,
fork flag)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agola.forges import github, gitlab
from tests.forges.conftest import HookReceiver, Received, commit, git, work_tree
from tests.forges.test_emulator_shapes import missing_fields
from tests.support.forge import ForgeEmulator
from tests.support.forge import github as github_fake
from tests.support.forge import gitlab as gitlab_fake
from tests.support.forge.model import Hook
from tests.support.waiting import wait_for

pytestmark = pytest.mark.skipif(not github_fake.PACK.is_dir(), reason="reference pack not present")
SECRET = "dialect-secret"


@pytest.fixture(scope="module", params=["github", "gitlab"])
def emulator(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForgeEmulator]:
    """Overrides conftest's Gitea emulator (its ``receiver`` then serves this one)."""
    emu = ForgeEmulator(tmp_path_factory.mktemp(request.param), ssh=False, dialect=request.param).start()
    try:
        yield emu
    finally:
        emu.stop()


def example(dialect: str, name: str) -> Any:
    return (github_fake if dialect == "github" else gitlab_fake).example(name)


async def test_answers_and_deliveries_have_the_forges_shapes(emulator: ForgeEmulator, receiver: HookReceiver,
                                                              tmp_path: Path) -> None:
    kind = emulator.forge.dialect
    dev = emulator.add_user("dev", "pw")
    repo = emulator.create_repo("dev", "app")
    events = ("push", "pull_request") if kind == "github" else ("Push Hook", "Tag Push Hook", "Merge Request Hook")
    repo.hooks[1] = Hook(1, receiver.url, SECRET, events, type="web" if kind == "github" else "gitlab")
    receiver.received.clear()
    tree = work_tree(tmp_path / "w", {"README": "1\n"})
    git("push", "-q", emulator.http_url("dev/app", "dev"), "main", cwd=tree)
    sha = git("rev-parse", "HEAD", cwd=tree)
    git("tag", "-a", "v1", "-m", "one", cwd=tree)
    git("push", "-q", emulator.http_url("dev/app", "dev"), "v1", cwd=tree)
    emulator.add_user("fan", "pw")
    emulator.fork_repo("dev/app", "fan")
    git("checkout", "-q", "-b", "fix", cwd=tree)
    fix = commit(tree, {"README": "2\n"}, "fix")
    git("push", "-q", emulator.http_url("fan/app", "fan"), "fix", cwd=tree)
    emulator.open_pull_request("dev/app", "fan/app", "fix", "A fix")
    await wait_for(lambda: len(receiver.received) >= 3, timeout=20, message="three deliveries")

    parse = github.parse_webhook if kind == "github" else gitlab.parse_webhook
    parsed = [parse(r.headers, r.body, SECRET) for r in receiver.received]
    push, tag, pr = parsed
    assert push is not None and (push.ref, push.commit_sha, push.sender, push.repo_path) == (
        "refs/heads/main", sha, "dev", "dev/app")
    assert push.ssh_url == emulator.forge.ssh_url("dev/app") and push.repo_id == str(repo.id)
    assert tag is not None and (tag.ref, tag.commit_sha, tag.message) == ("refs/tags/v1", sha, "Tag v1")
    assert pr is not None and pr.from_fork and (pr.commit_sha, pr.sender, pr.pull_request_id) == (fix, "fan", "1")
    with pytest.raises(Exception, match=r"signature|token"):
        parse(receiver.received[0].headers, receiver.received[0].body, "another-secret")
    if kind == "github":
        _github_headers(receiver.received)
        examples = ["webhook_push_branch.json", "webhook_push_tag_created.json", "webhook_pull_request_opened.json"]
    else:
        assert [r.headers["X-Gitlab-Event"] for r in receiver.received] == ["Push Hook", "Tag Push Hook",
                                                                            "Merge Request Hook"]
        assert all(r.headers["X-Gitlab-Token"] == SECRET and r.headers["X-Gitlab-Event-UUID"] for r in receiver.received)
        examples = ["webhook_push_branch.json", "webhook_tag_push_annotated.json", "webhook_merge_request_open.json"]
    for got, name in zip(receiver.received, examples, strict=True):
        ref = example(kind, name)
        ref.pop("installation", None)  # GitHub App deliveries only
        assert missing_fields(ref, json.loads(got.body)) == [], name

    token = emulator.token_for("dev")
    api = f"{emulator.url}/api/v3" if kind == "github" else f"{emulator.url}/api/v4"
    checks = {"github": [("/user", "api_user_GET_user.json"), ("/repos/dev/app", "api_repo_GET.json"),
                         (f"/repos/dev/app/git/commits/{sha}", "api_git_commit_GET.json"),
                         ("/repos/dev/app/git/ref/heads/main", "api_git_ref_GET.json")],
              "gitlab": [("/user", "api_user_GET.json"), ("/projects/dev%2Fapp", "api_project_GET.json"),
                         (f"/projects/{repo.id}/repository/commits/{sha}", "api_commit_GET.json"),
                         ("/projects/dev%2Fapp/repository/branches/main", "api_branch_GET.json"),
                         ("/projects/dev%2Fapp/repository/tags/v1", "api_tag_GET.json")]}
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        for path, name in checks[kind]:
            async with http.get(api + path) as resp:
                assert resp.status == 200, (path, await resp.text())
                data = await resp.json()
            ref = example(kind, name)
            for optional in ("parent", "source", "organization", "template_repository"):
                ref.pop(optional, None)  # a fork's, an organization's, a templated repository's only
            assert missing_fields(ref, data) == [], (path, missing_fields(ref, data))
        async with http.get(api + "/user") as resp:
            assert (await resp.json())["id"] == dev.id


def _github_headers(received: list[Received]) -> None:
    for r in received:
        assert r.headers["X-GitHub-Event"] in ("push", "pull_request") and r.headers["X-GitHub-Delivery"]
        assert r.headers["X-Hub-Signature-256"] == github.sign(SECRET, r.body)


# ------------------------------------------------------------------- GitHub's OpenAPI description

OPENAPI = github_fake.PACK / "openapi-subset.json"
JSON_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "integer": (int,), "number": (int, float),
                                           "boolean": (bool,), "object": (dict,), "array": (list,)}


def schema_errors(spec: dict[str, Any], schema: dict[str, Any], value: Any, path: str = "$") -> list[str]:
    """What ``value`` lacks to match an OpenAPI 3.0 schema: required properties, JSON types
    (``nullable`` honoured), recursively through ``$ref``, ``allOf``, ``oneOf``/``anyOf``."""
    if "$ref" in schema:
        return schema_errors(spec, spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]], value, path)
    if value is None:
        return [] if schema.get("nullable") or not schema.get("type") else [f"{path}: null"]
    if "allOf" in schema:
        return [e for sub in schema["allOf"] for e in schema_errors(spec, sub, value, path)]
    for key in ("oneOf", "anyOf"):
        if key in schema:
            found = [schema_errors(spec, sub, value, path) for sub in schema[key]]
            return [] if any(not f for f in found) else min(found, key=len)
    kind = schema.get("type")
    if kind in JSON_TYPES and (not isinstance(value, JSON_TYPES[kind]) or (kind != "boolean" and isinstance(value, bool))):
        return [f"{path}: {type(value).__name__} instead of {kind}"]
    if kind == "array":
        return [e for i, item in enumerate(value) for e in schema_errors(spec, schema.get("items", {}), item, f"{path}[{i}]")]
    if isinstance(value, dict):
        errors = [f"{path}.{name}: missing" for name in schema.get("required", []) if name not in value]
        for name, sub in (schema.get("properties") or {}).items():
            if name in value:
                errors.extend(schema_errors(spec, sub, value[name], f"{path}.{name}"))
        return errors
    return []


async def test_github_answers_match_the_openapi_description(emulator: ForgeEmulator, tmp_path: Path) -> None:
    if emulator.forge.dialect != "github":
        pytest.skip("GitHub's OpenAPI description")
    spec = json.loads(OPENAPI.read_text())
    emulator.add_user("oa", "pw")
    emulator.create_repo("oa", "spec")
    tree = work_tree(tmp_path / "w", {"README": "spec\n"})
    git("push", "-q", emulator.http_url("oa/spec", "oa"), "main", cwd=tree)
    sha = git("rev-parse", "HEAD", cwd=tree)
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOpenApiOpenApiOpenApiOpenApiOpenApiOpen oa"
    calls = [("GET", "/user", "/user", None, 200), ("GET", "/user/repos", "/user/repos", None, 200),
             ("GET", "/repos/oa/spec", "/repos/{owner}/{repo}", None, 200),
             ("GET", "/repos/oa/spec/contents/README?ref=main", "/repos/{owner}/{repo}/contents/{path}", None, 200),
             ("POST", "/repos/oa/spec/keys", "/repos/{owner}/{repo}/keys", {"title": "k", "key": key, "read_only": True}, 201),
             ("GET", "/repos/oa/spec/keys", "/repos/{owner}/{repo}/keys", None, 200),
             ("POST", "/repos/oa/spec/hooks", "/repos/{owner}/{repo}/hooks",
              {"name": "web", "config": {"url": "http://127.0.0.1:9/x", "content_type": "json"}, "events": ["push"]}, 201),
             ("GET", "/repos/oa/spec/hooks", "/repos/{owner}/{repo}/hooks", None, 200),
             ("POST", f"/repos/oa/spec/statuses/{sha}", "/repos/{owner}/{repo}/statuses/{sha}",
              {"state": "pending", "context": "c"}, 201),
             ("GET", "/repos/oa/spec/git/ref/heads/main", "/repos/{owner}/{repo}/git/ref/{ref}", None, 200),
             ("GET", f"/repos/oa/spec/git/commits/{sha}", "/repos/{owner}/{repo}/git/commits/{commit_sha}", None, 200)]
    headers = {"Authorization": f"Bearer {emulator.token_for('oa')}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        for method, path, template, body, status in calls:
            async with http.request(method, f"{emulator.url}/api/v3{path}", json=body) as resp:
                assert resp.status == status, (path, await resp.text())
                data = await resp.json()
            schema = spec["paths"][template][method.lower()]["responses"][str(status)]["content"]["application/json"]["schema"]
            assert schema_errors(spec, schema, data) == [], (method, path)
