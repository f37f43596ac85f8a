"""A burst of pushes for each forge (the emulator in the Gitea, GitHub and GitLab dialects), on
the control plane (runs stay queued without an executor): one ``git push`` of 20 branches sends 20
deliveries at once, every one is answered 200 and becomes exactly one run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.client.stack import ADMIN, RoleStack
from tests.forges.conftest import cli, follow_authorize, git, new_user, project_runs, work_tree
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


def test_a_burst_of_pushes_creates_every_run(stack: RoleStack, forge: ForgeEmulator, tmp_path: Path) -> None:
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
    hook_url = f"{stack.url}/webhooks?projectid={json.loads(res.stdout)['id']}"

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
