"""Deliveries of each forge (the emulator in the Gitea, GitHub and GitLab dialects), on
the control plane (runs stay queued without an executor): one ``git push`` of 20 branches sends 20
deliveries at once, every one is answered 200 and becomes exactly one run; bad deliveries (unsigned,
unknown event, truncated, for another repository) create nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from tests.client.stack import ADMIN, RoleStack
from tests.e2e.test_forges import elsewhere, signed
from tests.forges.conftest import cli, follow_authorize, git, new_user, project_runs, work_tree
from tests.forges.test_github_gitlab_gateway import post
from tests.support.forge import DIALECTS, ForgeEmulator
from tests.support.waiting import wait_for_sync

PIPELINE = """version: v0
runs:
  - name: build
    tasks:
      - name: t1
        runtime: {type: pod, containers: [{image: busybox}]}
        steps: [{type: run, command: "echo hi"}]
"""
BRANCHES = 20


@pytest.fixture(scope="module", params=DIALECTS)
def forge(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForgeEmulator]:
    emu = ForgeEmulator(tmp_path_factory.mktemp(request.param), ssh=False, dialect=request.param).start()
    try:
        yield emu
    finally:
        emu.stop()


@attrs.frozen
class Project:
    name: str  # the agola user's name (user/<name>/app)
    token: str
    hook_url: str


@pytest.fixture(scope="module")
def project(stack: RoleStack, forge: ForgeEmulator) -> Project:
    """An OAuth2 remote source of the forge, a user with a linked account and a project on bea/app."""
    kind = forge.forge.dialect
    name = f"burst-{kind}"
    forge.add_user("bea", "bea-pw")
    forge.create_repo("bea", "app")
    app = forge.add_oauth_app(f"{stack.url}/oauth2/callback")
    res = cli(stack, ADMIN, "remotesource", "create", "-n", f"{kind}-burst", "--type", kind, "--auth-type", "oauth2",
              "--api-url", forge.url, "--clientid", app.client_id, "--secret", app.client_secret)
    assert res.exit_code == 0, res.output
    token = new_user(stack, name)
    started = cli(stack, token, "user", "linkedaccount", "create", "-n", name, "-r", f"{kind}-burst")
    assert started.exit_code == 0, started.output
    done = cli(stack, token, "user", "linkedaccount", "complete",
               follow_authorize(started.output.strip().splitlines()[-1], "bea", "bea-pw"))
    assert done.exit_code == 0, done.output
    res = cli(stack, token, "project", "create", "-n", "app", "--parent", f"user/{name}", "--remote-source",
              f"{kind}-burst", "--repo-path", "bea/app", "--json")
    assert res.exit_code == 0, res.output
    return Project(name, token, f"{stack.url}/webhooks?projectid={json.loads(res.stdout)['id']}")


def test_a_burst_of_pushes_creates_every_run(stack: RoleStack, forge: ForgeEmulator, project: Project,
                                             tmp_path: Path) -> None:
    kind, name, token, hook_url = forge.forge.dialect, project.name, project.token, project.hook_url
    tree = work_tree(tmp_path / "b", {".agola/config.yml": PIPELINE}, "burst")
    git("push", "-q", forge.http_url("bea/app", "bea"), *[f"HEAD:refs/heads/b-{i:02d}" for i in range(BRANCHES)], cwd=tree)

    def burst_runs() -> list[dict[str, Any]]:
        return [r for r in project_runs(stack, token, f"user/{name}/app")
                if r["annotations"].get("branch", "").startswith("b-")]

    wait_for_sync(lambda: len(burst_runs()) >= BRANCHES, timeout=60, message=f"{BRANCHES} burst runs ({kind})")
    assert sorted(r["annotations"]["branch"] for r in burst_runs()) == [f"b-{i:02d}" for i in range(BRANCHES)]
    burst = [d for d in forge.deliveries if d.hook_url == hook_url and d.event != "ping"]
    wait_for_sync(lambda: all(d.status for d in burst), timeout=30, message="every delivery answered")
    assert len(burst) == BRANCHES and all(d.status == 200 for d in burst), {(d.status, d.response) for d in burst}


def test_bad_deliveries_create_nothing(stack: RoleStack, forge: ForgeEmulator, project: Project) -> None:
    """Each forge's bad deliveries, sent again from a real one: no signature (token), an unknown
    event (Gitea: ignored), truncated JSON, a payload for another repository: 4xx, no run."""
    kind = forge.forge.dialect
    [hook] = forge.repo("bea/app").hooks.values()
    real = next(d for d in forge.deliveries if d.hook_url == project.hook_url and d.event != "ping")
    before = len(project_runs(stack, project.token, f"user/{project.name}/app"))
    cut = real.body[: len(real.body) // 2]
    cases = [("unsigned", real.body, {**signed(kind, real, hook.secret, real.body), **unsigned(kind)}, 401),
             # Gitea's hooks get events agola doesn't build (create, issues...): acknowledged, 200.
             ("unknown event", real.body, {**signed(kind, real, hook.secret, real.body), **event(kind, "issues")},
              200 if kind == "gitea" else 400),
             ("truncated JSON", cut, signed(kind, real, hook.secret, cut), 400),
             ("another repository", elsewhere(kind, real.body), signed(kind, real, hook.secret, elsewhere(kind, real.body)),
              400)]
    for what, body, headers, expected in cases:
        assert post(project.hook_url, body, headers) == expected, what
    assert len(project_runs(stack, project.token, f"user/{project.name}/app")) == before


def unsigned(dialect: str) -> dict[str, str]:
    return {"github": {"X-Hub-Signature-256": ""}, "gitlab": {"X-Gitlab-Token": ""},
            "gitea": {"X-Gitea-Signature": ""}}[dialect]


def event(dialect: str, name: str) -> dict[str, str]:
    return {"github": {"X-GitHub-Event": name}, "gitlab": {"X-Gitlab-Event": "Issue Hook"},
            "gitea": {"X-Gitea-Event": name}}[dialect]
