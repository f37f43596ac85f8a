"""Forge deliveries -> runs, on the control plane (runs stay queued without an executor): real
pushes, tags and a fork's pull request on the emulator, its signed webhooks to the gateway; and the
bad deliveries (unsigned, forged, replayed, oversized, malformed, for a deleted project)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from agola.forges.gitea import sign
from tests.client.stack import ADMIN, RoleStack
from tests.forges.conftest import cli, commit, git, new_user, project_runs, work_tree
from tests.support.forge import GiteaEmulator
from tests.support.waiting import wait_for_sync

PIPELINE = """version: v0
runs:
  - name: build
    tasks:
      - name: t1
        runtime: {type: pod, containers: [{image: busybox}]}
        steps: [{type: run, command: "echo hi"}]
  - name: only-tags
    when: {tag: '#v.*#'}
    tasks:
      - name: t1
        runtime: {type: pod, containers: [{image: busybox}]}
        steps: [{type: run, command: "echo tag"}]
"""


@pytest.fixture(scope="module")
def project(stack: RoleStack, emulator: GiteaEmulator) -> dict[str, Any]:
    emulator.add_user("jane", "jane-pw")
    emulator.add_user("kurt", "kurt-pw")
    emulator.create_repo("jane", "app")
    assert cli(stack, ADMIN, "remotesource", "create", "-n", "gitea", "--type", "gitea", "--auth-type", "password",
               "--api-url", emulator.url).exit_code == 0
    token = new_user(stack, "jane")
    assert cli(stack, token, "user", "linkedaccount", "create", "-n", "jane", "-r", "gitea", "--remote-name", "jane",
               "--remote-password", "jane-pw").exit_code == 0
    res = cli(stack, token, "project", "create", "-n", "app", "--parent", "user/jane", "--remote-source", "gitea",
              "--repo-path", "jane/app", "--json")
    assert res.exit_code == 0, res.output
    return {"token": token, **json.loads(res.stdout)}


def runs(stack: RoleStack, token: str) -> list[dict[str, Any]]:
    return project_runs(stack, token, "user/jane/app")


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_pushes_tags_and_fork_pull_requests_create_runs(
        stack: RoleStack, emulator: GiteaEmulator, project: dict[str, Any], tmp_path: Path) -> None:
    token = project["token"]
    tree = work_tree(tmp_path / "w", {".agola/config.yml": PIPELINE}, "add the pipeline")
    git("push", "-q", emulator.http_url("jane/app", "jane"), "main", cwd=tree)
    sha = git("rev-parse", "HEAD", cwd=tree)
    [run] = wait_for_sync(lambda: runs(stack, token), timeout=20, message="push run")
    ann = run["annotations"]
    assert run["name"] == "build"
    assert (ann["run_creation_trigger"], ann["webhook_event"], ann["ref_type"]) == ("webhook", "push", "branch")
    assert (ann["branch"], ann["commit_sha"], ann["webhook_sender"]) == ("main", sha, "jane")
    assert ann["message"] == "add the pipeline\n" and ann["compare_link"].startswith(emulator.url)

    git("tag", "v1.0", cwd=tree)
    git("push", "-q", emulator.http_url("jane/app", "jane"), "v1.0", cwd=tree)
    def tag_runs_() -> list[dict[str, Any]]:
        return [r for r in runs(stack, token) if r["annotations"].get("tag") == "v1.0"]

    wait_for_sync(lambda: len(tag_runs_()) == 2, timeout=20, message="tag runs")
    tag_runs = tag_runs_()
    assert sorted(r["name"] for r in tag_runs) == ["build", "only-tags"]  # `when` evaluated on the tag

    emulator.fork_repo("jane/app", "kurt")
    git("checkout", "-q", "-b", "fix", cwd=tree)
    fork_sha = commit(tree, {"README": "fix\n"}, "a fix from a fork")
    git("push", "-q", emulator.http_url("kurt/app", "kurt"), "fix", cwd=tree)
    emulator.open_pull_request("jane/app", "kurt/app", "fix", "Fix things")
    [pr_run] = wait_for_sync(lambda: [r for r in runs(stack, token) if r["annotations"].get("ref_type") == "pull_request"],
                             timeout=20, message="PR run")
    assert pr_run["annotations"]["pull_request_id"] == "1" and pr_run["annotations"]["commit_sha"] == fork_sha
    assert pr_run["annotations"]["ref"] == "refs/pull/1/head"
    # The fork's next commit asks for a privileged container: its run is refused as a setup error.
    commit(tree, {".agola/config.yml": PIPELINE.replace("[{image: busybox}]", "[{image: busybox, privileged: true}]")},
           "become root on the executor")
    git("push", "-q", emulator.http_url("kurt/app", "kurt"), "fix", cwd=tree)
    [refused] = wait_for_sync(lambda: [r for r in runs(stack, token) if r["annotations"].get("ref_type") == "pull_request"
                                       and r["phase"] == "setuperror"], timeout=20, message="refused PR run")
    shown = json.loads(cli(stack, token, "run", "show", refused["id"], "--json").stdout)
    assert "privileged containers are not allowed" in shown["setup_errors"][0]

    groups = {r["annotations"]["ref_type"] for r in runs(stack, token)}
    assert groups == {"branch", "tag", "pull_request"}

    # Every delivery was answered 2xx, and redelivering one creates nothing new.
    delivered = [d for d in emulator.deliveries if "webhooks?projectid=" in d.hook_url]
    assert delivered and all(d.status == 200 for d in delivered), [(d.status, d.response) for d in delivered]
    before = len(runs(stack, token))
    emulator.redeliver(delivered[0].id)
    again = emulator.deliveries[-1]
    assert again.status == 200 and "already built" in again.response
    # A captured delivery replayed under a new delivery id (that header is not signed): nothing new.
    [hook] = emulator.repo("jane/app").hooks.values()
    body = delivered[0].body
    status, answer = post(f"{stack.url}/webhooks?projectid={project['id']}", body, {
        "X-Gitea-Event": "push", "X-Gitea-Delivery": "replayed-1", "X-Gitea-Signature": sign(hook.secret, body)})
    assert status == 200 and "already built" in answer["message"]
    assert len(runs(stack, token)) == before


def test_manual_project_runs(stack: RoleStack, emulator: GiteaEmulator, project: dict[str, Any]) -> None:
    token = project["token"]
    before = len(runs(stack, token))
    res = cli(stack, token, "run", "create", "--project", "user/jane/app", "--branch", "main")
    assert res.exit_code == 0, res.output
    # Run listings may lag a moment behind the creation (the runservice's read side).
    def listed() -> list[dict[str, Any]] | None:
        rows = runs(stack, token)
        return rows if len(rows) == before + 1 else None

    after = wait_for_sync(listed, timeout=20, message="the manual run listed")
    manual = after[0]  # newest first
    ann = manual["annotations"]
    assert (ann["run_creation_trigger"], ann["branch"], ann["message"]) == ("manual", "main", "add the pipeline\n")
    assert ann["commit_sha"] == emulator.run_git_rev("jane/app", "refs/heads/main")
    assert cli(stack, token, "run", "create", "--project", "user/jane/app", "--tag", "v1.0").exit_code == 0
    wait_for_sync(lambda: len(runs(stack, token)) == before + 3, timeout=20,
                  message="the tag's two runs (`when`) listed")
    bad = cli(stack, token, "run", "create", "--project", "user/jane/app", "--ref", "refs/pull/1/head")
    assert bad.exit_code == 1 and "not a branch" in bad.output


def test_forge_down_during_a_delivery_then_redelivered(
        stack: RoleStack, emulator: GiteaEmulator, project: dict[str, Any], tmp_path: Path) -> None:
    """agola can't read the pipeline file: the delivery fails (5xx, nothing created) and the forge's
    redelivery builds it once the forge answers again."""
    token = project["token"]
    tree = work_tree(tmp_path / "d", {".agola/config.yml": PIPELINE}, "while the forge API is down")
    emulator.forge.failures["raw_file"] = 503
    try:
        git("push", "-q", emulator.http_url("jane/app", "jane"), "HEAD:refs/heads/flaky", cwd=tree)
        failed = wait_for_sync(lambda: [d for d in emulator.deliveries if b"refs/heads/flaky" in d.body and d.status],
                               timeout=20, message="failed delivery")[0]
    finally:
        emulator.forge.failures.clear()
    assert failed.status >= 500  # the forge keeps it for a redelivery
    assert not [r for r in runs(stack, token) if r["annotations"].get("branch") == "flaky"]
    emulator.redeliver(failed.id)
    assert emulator.deliveries[-1].status == 200
    wait_for_sync(lambda: [r["name"] for r in runs(stack, token) if r["annotations"].get("branch") == "flaky"]
                  == ["build"], timeout=20, message="the redelivered push's run")


def test_a_burst_of_pushes_on_many_branches_creates_every_run(
        stack: RoleStack, emulator: GiteaEmulator, project: dict[str, Any], tmp_path: Path) -> None:
    """One push of 50 new branches: Gitea sends 50 deliveries at once; none is refused."""
    token = project["token"]
    tree = work_tree(tmp_path / "b", {".agola/config.yml": PIPELINE}, "burst")
    before = len(runs(stack, token))
    refspecs = [f"HEAD:refs/heads/burst-{i:02d}" for i in range(50)]
    git("push", "-q", emulator.http_url("jane/app", "jane"), *refspecs, cwd=tree)

    def burst_runs() -> list[dict[str, Any]]:
        return [r for r in runs(stack, token) if r["annotations"].get("branch", "").startswith("burst-")]

    wait_for_sync(lambda: len(burst_runs()) == 50, timeout=60, message="50 burst runs")
    burst = [d for d in emulator.deliveries if b"refs/heads/burst-" in d.body]
    assert len(burst) == 50 and all(d.status == 200 for d in burst), {d.status for d in burst}
    assert len(runs(stack, token)) == before + 50


def test_bad_deliveries_create_nothing(
        stack: RoleStack, emulator: GiteaEmulator, project: dict[str, Any], tmp_path: Path) -> None:
    token = project["token"]
    url = f"{stack.url}/webhooks?projectid={project['id']}"
    repo = emulator.repo("jane/app")
    [hook] = repo.hooks.values()
    good = next(d for d in emulator.deliveries if d.hook_url == hook.url and d.event == "push")
    body = good.body.replace(b'"ref": "refs/heads/main"', b'"ref": "refs/heads/forged"')
    before = len(runs(stack, token))
    headers = {"X-Gitea-Event": "push", "X-Gitea-Delivery": "forged-1"}
    assert post(url, body, headers)[0] == 401  # unsigned
    assert post(url, body, {**headers, "X-Gitea-Signature": sign("guessed", body)})[0] == 401
    assert post(url, body, {**headers, "X-Gitea-Signature": sign(hook.secret, good.body)})[0] == 401
    big = b" " * (5 * 1024 * 1024 + 1)
    assert post(url, big, {**headers, "X-Gitea-Signature": sign(hook.secret, big)})[0] == 413
    bad_json = b"{not json"
    status, err = post(url, bad_json, {**headers, "X-Gitea-Signature": sign(hook.secret, bad_json)})
    assert status == 400 and "not JSON" in err["message"]
    assert post(f"{stack.url}/webhooks", body, headers)[0] == 400
    assert len(runs(stack, token)) == before

    # A correctly signed delivery for a commit without a pipeline file: a setup error run says why.
    empty = work_tree(tmp_path / "e", {"README": "no pipeline\n"}, "no pipeline here")
    git("push", "-q", "-f", emulator.http_url("jane/app", "jane"), "main:nopipe", cwd=empty)
    [setup] = wait_for_sync(lambda: [r for r in runs(stack, token) if r["annotations"].get("branch") == "nopipe"],
                            timeout=20, message="setup error run")
    shown = json.loads(cli(stack, token, "run", "show", setup["id"], "--json").stdout)
    assert shown["phase"] == "setuperror" and ".agola/config.yml" in " ".join(shown["setup_errors"])

    # A deleted project: its deliveries are 404s.
    assert cli(stack, token, "project", "delete", "--ref", "user/jane/app").exit_code == 0
    assert post(url, good.body, {"X-Gitea-Event": "push", "X-Gitea-Delivery": "x",
                                 "X-Gitea-Signature": sign(hook.secret, good.body)})[0] == 404
