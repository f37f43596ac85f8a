"""Commit statuses on a real forge path: every role (notification included, with the real
``ForgeCommitStatuses``) and the Gitea emulator. A push builds the commit; the forge shows the
run's statuses (pending, then success) with the run's URL, although it refused the first status
call (down); the commit status deliveries are listed and redelivered through the CLI for the
project, by its owner only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.client.stack import ADMIN, ALL, RoleStack
from tests.e2e.conftest import Session
from tests.e2e.test_forges import ok
from tests.forges.conftest import follow_authorize, git, work_tree
from tests.support.forge import GiteaEmulator, ssh_available
from tests.support.waiting import wait_for_sync

pytestmark = pytest.mark.skipif(not ssh_available(), reason="needs openssh-server (sshd) and git-shell")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, busybox_image: str) -> Iterator[tuple[RoleStack, GiteaEmulator]]:
    emulator = GiteaEmulator(tmp_path_factory.mktemp("gitea")).start()
    roles = RoleStack(tmp_path_factory.mktemp("agola"), (*ALL, "notification"),
                      {"executor": "  docker: {network: none}\n",
                       "notification": "  deliveryRetryInterval: 200ms\n"})
    roles.start()
    try:
        yield roles, emulator
    finally:
        roles.stop()
        emulator.stop()


def test_push_sets_pending_then_success_on_the_commit(world: tuple[RoleStack, GiteaEmulator], busybox_image: str,
                                                      tmp_path: Path) -> None:
    roles, emulator = world
    emulator.add_user("nora", "nora-pw")
    emulator.create_repo("nora", "app")
    app = emulator.add_oauth_app(f"{roles.url}/oauth2/callback")
    admin = Session(roles, ADMIN)
    ok(admin.cli("remotesource", "create", "-n", "gitea", "--type", "gitea", "--auth-type", "oauth2",
                 "--api-url", emulator.url, "--clientid", app.client_id, "--secret", app.client_secret,
                 "--ssh-host-key", emulator.ssh_host_key))
    ok(admin.cli("user", "create", "nora"))
    nora = Session(roles, ok(admin.cli("user", "token", "create", "nora", "t")).stdout.strip())
    authorize = ok(nora.cli("user", "linkedaccount", "create", "-n", "nora", "-r", "gitea")).output.strip().splitlines()[-1]
    ok(nora.cli("user", "linkedaccount", "complete", follow_authorize(authorize, "nora", "nora-pw")))
    ok(nora.cli("project", "create", "-n", "app", "--parent", "user/nora", "--remote-source", "gitea",
                "--repo-path", "nora/app"))

    pipeline = f"""version: v0
runs:
  - name: build
    tasks:
      - name: check
        runtime: {{type: pod, containers: [{{image: {busybox_image}}}]}}
        steps:
          - {{type: clone}}
          - {{type: run, command: "cat README"}}
"""
    emulator.forge.failures["create_status"] = 503  # the forge is down for statuses at first
    tree = work_tree(tmp_path / "app", {".agola/config.yml": pipeline, "README": "hello\n"}, "app v1")
    sha = git("rev-parse", "HEAD", cwd=tree)
    git("push", "-q", emulator.http_url("nora/app", "nora"), "main", cwd=tree)

    def deliveries() -> list[dict[str, Any]]:
        listed = ok(nora.cli("delivery", "list", "--project", "user/nora/app", "--kind", "commitstatus", "--json"))
        rows: list[dict[str, Any]] = json.loads(listed.stdout)
        return rows

    refused = wait_for_sync(lambda: [d for d in deliveries() if d["attempts"] >= 1], 120, interval=0.2,
                            message="a status call refused by the forge")
    assert refused[0]["delivery_status"] == "notDelivered" and refused[0]["status_code"] == 503
    assert emulator.statuses("nora/app", sha) == []
    del emulator.forge.failures["create_status"]  # the forge is back

    def final() -> list[Any] | None:
        states = emulator.statuses("nora/app", sha)
        return states if [s.state for s in states][-1:] == ["success"] else None

    statuses = wait_for_sync(final, 120, interval=0.2, message="success on the commit")
    assert [s.state for s in statuses] == ["pending", "success"]
    run = json.loads(ok(nora.cli("run", "list", "--project", "user/nora/app", "--json")).stdout)[0]
    for s in statuses:
        assert s.context == "agola/app/build"
        assert s.target_url == f"{roles.url}/runs/{run['id']}"
    assert statuses[-1].description == "The run finished successfully"
    rows = wait_for_sync(lambda: (r := deliveries()) and all(d["delivery_status"] == "delivered" for d in r) and r, 30)
    assert [d["commit_status_state"] for d in rows] == ["pending", "success"]
    assert rows[0]["attempts"] >= 2

    # Redelivering the final status sets it again; another user may not see nor redeliver.
    ok(nora.cli("delivery", "redeliver", "--project", "user/nora/app", "--kind", "commitstatus", rows[1]["id"]))
    wait_for_sync(lambda: [s.state for s in emulator.statuses("nora/app", sha)] == ["pending", "success", "success"],
                  30, message="the redelivered status")
    ok(admin.cli("user", "create", "eve"))
    eve = Session(roles, ok(admin.cli("user", "token", "create", "eve", "t")).stdout.strip())
    for args in (("list",), ("redeliver", rows[1]["id"])):
        refused = eve.cli("delivery", args[0], "--project", "user/nora/app", "--kind", "commitstatus", *args[1:])
        assert refused.exit_code != 0 and "not authorized" in refused.output, refused.output
