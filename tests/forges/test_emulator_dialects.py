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
