"""GitHub and GitLab remote sources through the CLI and the gateway, against the fakes of their
APIs: OAuth2 linked account, project creation (read-only deploy key and hook on the forge), a
signed push delivery made from the reference pack's real example becomes a run, ``ping`` and
a merge request without new code create nothing, a forged delivery is refused, delete cleans up."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from agola.forges import github as gh
from tests.client.stack import ADMIN, RoleStack
from tests.forges.conftest import cli, new_user
from tests.support.forge import github as fake_github
from tests.support.forge import gitlab as fake_gitlab
from tests.support.forge.github import FakeGitHub, InThread
from tests.support.forge.gitlab import FakeGitLab
from tests.support.waiting import wait_for_sync

PIPELINE = b"""version: v0
runs:
  - name: build
    tasks:
      - name: t1
        runtime: {type: pod, containers: [{image: busybox}]}
        steps: [{type: run, command: "echo hi"}]
"""
SHA = "5" * 40
PR_SHA = "6" * 40

pytestmark = pytest.mark.skipif(not fake_github.PACK.is_dir(), reason="reference pack not present")


def follow_authorize(url: str) -> str:
    """What the browser does at the forge once the user accepts: the redirect to agola."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.build_opener(NoRedirect).open(url)
    assert info.value.code == 302
    return str(info.value.headers["Location"])


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def link_and_create(stack: RoleStack, kind: str, forge_url: str, client: tuple[str, str], user: str,
                    repo_path: str) -> tuple[str, dict[str, Any]]:
    """An admin adds the remote source, ``user`` links their account (OAuth2) and creates a project."""
    res = cli(stack, ADMIN, "remotesource", "create", "-n", kind, "--type", kind, "--auth-type", "oauth2",
              "--api-url", forge_url, "--clientid", client[0], "--secret", client[1])
    assert res.exit_code == 0, res.output
    token = new_user(stack, user)
    started = cli(stack, token, "user", "linkedaccount", "create", "-n", user, "-r", kind)
    assert started.exit_code == 0, started.output
    callback = follow_authorize(started.output.strip().splitlines()[-1])
    done = cli(stack, token, "user", "linkedaccount", "complete", callback)
    assert done.exit_code == 0 and "linked account created" in done.output, done.output
    res = cli(stack, token, "project", "create", "-n", "app", "--parent", f"user/{user}", "--remote-source", kind,
              "--repo-path", repo_path, "--json")
    assert res.exit_code == 0, res.output
    return token, json.loads(res.stdout)


def runs(stack: RoleStack, token: str, user: str) -> list[dict[str, Any]]:
    res = cli(stack, token, "run", "list", "--project", f"user/{user}/app", "--limit", "100", "--json")
    assert res.exit_code == 0, res.output
    return list(json.loads(res.stdout))


def pull_request_runs(stack: RoleStack, token: str, user: str) -> list[dict[str, Any]]:
    return [r for r in runs(stack, token, user) if r["annotations"].get("ref_type") == "pull_request"]


def test_github_project(stack: RoleStack) -> None:
    with InThread(FakeGitHub()) as server:
        fake = server.fake
        assert isinstance(fake, FakeGitHub)
        fake.add_user("octo")
        fake.browser_user = "octo"
        repo = fake.add_repo("octo", "app")
        repo.files[SHA] = {".agola/config.yml": PIPELINE}
        token, project = link_and_create(stack, "github", fake.url, fake.add_app(), "octo", "octo/app")
        [key] = repo.keys.values()
        assert key["title"] == f"agola deploy key - {project['id']}" and key["read_only"] is True
        [hook] = repo.hooks.values()
        assert hook["config"]["url"] == f"{stack.url}/webhooks?projectid={project['id']}"
        assert hook["events"] == ["push", "pull_request"] and hook["config"]["content_type"] == "json"
        secret = hook["config"]["secret"]

        url = hook["config"]["url"]
        ping = (fake_github.PACK / "webhook_ping.json").read_bytes()
        assert post(url, ping, {"X-GitHub-Event": "ping", "X-Hub-Signature-256": gh.sign(secret, ping)}) == 200
        payload = json.loads((fake_github.PACK / "webhook_push_branch.json").read_bytes())
        payload.update(ref="refs/heads/main", after=SHA)
        payload["head_commit"].update(id=SHA, message="add the pipeline")
        payload["repository"].update(fake.repo_json(repo))
        body = json.dumps(payload).encode()
        headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": "d-1"}
        assert post(url, body, {**headers, "X-Hub-Signature-256": gh.sign("forged", body)}) == 401
        assert post(url, body, {**headers, "X-Hub-Signature-256": gh.sign(secret, body)}) in (200, 201)
        [run] = wait_for_sync(lambda: runs(stack, token, "octo"), timeout=20, message="push run")
        ann = run["annotations"]
        assert (ann["webhook_event"], ann["branch"], ann["commit_sha"], ann["webhook_sender"]) == (
            "push", "main", SHA, "Codertocat")
        assert ann["commit_link"] == f"{fake.url}/octo/app/commit/{SHA}"
        # The same delivery again (GitHub's "Redeliver"): nothing new.
        assert post(url, body, {**headers, "X-Hub-Signature-256": gh.sign(secret, body)}) in (200, 201, 202)

        pr = json.loads((fake_github.PACK / "webhook_pull_request_opened.json").read_bytes())
        pr["repository"].update(fake.repo_json(repo))
        pr["pull_request"]["head"].update(sha=PR_SHA, repo=fake.repo_json(repo))
        pr["pull_request"]["base"]["repo"] = fake.repo_json(repo)
        repo.files[PR_SHA] = {".agola/config.yml": PIPELINE}
        body = json.dumps(pr).encode()
        assert post(url, body, {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "d-2",
                                "X-Hub-Signature-256": gh.sign(secret, body)}) in (200, 201)
        [pr_run] = wait_for_sync(lambda: pull_request_runs(stack, token, "octo"), timeout=20, message="PR run")
        assert (pr_run["annotations"]["ref"], pr_run["annotations"]["commit_sha"]) == ("refs/pull/2/head", PR_SHA)
        assert len(runs(stack, token, "octo")) == 2

        assert cli(stack, token, "project", "delete", "--ref", "user/octo/app").exit_code == 0
        assert not repo.keys and not repo.hooks


def test_gitlab_project(stack: RoleStack) -> None:
    with InThread(FakeGitLab()) as server:
        fake = server.fake
        assert isinstance(fake, FakeGitLab)
        fake.add_user("gdev")
        fake.browser_user = "gdev"
        project_ = fake.add_project("team/app")
        project_.files[SHA] = {".agola/config.yml": PIPELINE}
        client = fake.add_app(f"{stack.url}/oauth2/callback")
        token, project = link_and_create(stack, "gitlab", fake.url, client, "gdev", "team/app")
        [key] = project_.keys.values()
        assert key["title"] == f"agola deploy key - {project['id']}" and key["can_push"] is False
        [hook] = project_.hooks.values()
        assert hook["url"] == f"{stack.url}/webhooks?projectid={project['id']}"
        assert (hook["push_events"], hook["tag_push_events"], hook["merge_requests_events"]) == (True, True, True)
        url, secret = hook["url"], hook["token"]

        no_code = (fake_gitlab.PACK / "webhook_merge_request_update_no_code_change.json").read_bytes()
        assert post(url, no_code, {"X-Gitlab-Event": "Merge Request Hook", "X-Gitlab-Token": secret}) == 200
        payload = json.loads((fake_gitlab.PACK / "webhook_push_branch.json").read_bytes())
        payload.update(ref="refs/heads/main", after=SHA, checkout_sha=SHA)
        payload["commits"][0].update(id=SHA, message="add the pipeline\n", url=f"{fake.url}/team/app/-/commit/{SHA}")
        payload["project"].update(id=project_.id, path_with_namespace="team/app", web_url=f"{fake.url}/team/app",
                                  git_ssh_url="git@127.0.0.1:team/app.git", git_http_url=f"{fake.url}/team/app.git")
        body = json.dumps(payload).encode()
        headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Event-UUID": "u-1"}
        assert post(url, body, {**headers, "X-Gitlab-Token": "forged"}) == 401
        assert post(url, body, {**headers, "X-Gitlab-Token": secret}) in (200, 201)
        [run] = wait_for_sync(lambda: runs(stack, token, "gdev"), timeout=20, message="push run")
        ann = run["annotations"]
        assert (ann["webhook_event"], ann["branch"], ann["commit_sha"], ann["webhook_sender"]) == (
            "push", "main", SHA, "sytses")

        mr = json.loads((fake_gitlab.PACK / "webhook_merge_request_open.json").read_bytes())
        mr["project"].update(payload["project"])
        mr["object_attributes"]["last_commit"].update(id=PR_SHA)
        project_.files[PR_SHA] = {".agola/config.yml": PIPELINE}
        body = json.dumps(mr).encode()
        assert post(url, body, {"X-Gitlab-Event": "Merge Request Hook", "X-Gitlab-Token": secret}) in (200, 201)
        [mr_run] = wait_for_sync(lambda: pull_request_runs(stack, token, "gdev"), timeout=20, message="MR run")
        ann = mr_run["annotations"]
        assert (ann["ref"], ann["pull_request_id"], ann["commit_sha"]) == ("refs/merge-requests/1/head", "1", PR_SHA)

        assert cli(stack, token, "project", "delete", "--ref", "user/gdev/app").exit_code == 0
        assert not project_.keys and not project_.hooks
