"""A restart of agola in the middle of a burst of deliveries loses none and doubles none: a
delivery is answered 2xx only once its runs are durably created, so what failed during the
restart is redelivered (as a forge or its operator does) and builds exactly once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.client.stack import ADMIN, RoleStack
from tests.forges.conftest import cli, git, new_user, project_runs, work_tree
from tests.forges.test_webhooks import PIPELINE
from tests.support.forge import GiteaEmulator
from tests.support.waiting import wait_for_sync

BRANCHES = 40


def restarted(stack: RoleStack, tmp_path: Path) -> RoleStack:
    """The same installation (config, ports, data dir) started again."""
    stack.stop()
    again = RoleStack(tmp_path)
    again.config, again.url = stack.config, stack.url
    again.start()
    return again


def test_restart_during_a_burst(emulator: GiteaEmulator, tmp_path: Path) -> None:
    stack = RoleStack(tmp_path / "agola")
    stack.start()
    try:
        emulator.add_user("rita", "rita-pw")
        emulator.create_repo("rita", "app")
        assert cli(stack, ADMIN, "remotesource", "create", "-n", "gitea", "--type", "gitea", "--auth-type",
                   "password", "--api-url", emulator.url).exit_code == 0
        token = new_user(stack, "rita")
        assert cli(stack, token, "user", "linkedaccount", "create", "-n", "rita", "-r", "gitea", "--remote-name",
                   "rita", "--remote-password", "rita-pw").exit_code == 0
        assert cli(stack, token, "project", "create", "-n", "app", "--parent", "user/rita", "--remote-source",
                   "gitea", "--repo-path", "rita/app").exit_code == 0
        tree = work_tree(tmp_path / "w", {".agola/config.yml": PIPELINE}, "burst")

        def mine() -> list[Any]:
            return [d for d in emulator.deliveries if b"rita/app" in d.body]

        emulator.forge.delivery_workers = 2  # a queue: deliveries still waiting when agola restarts
        git("push", "-q", emulator.http_url("rita/app", "rita"), *[f"HEAD:refs/heads/r{i:02d}" for i in range(BRANCHES)],
            cwd=tree)
        wait_for_sync(lambda: sum(1 for d in mine() if d.status) >= 5, timeout=30, message="some answered")
        stack = restarted(stack, tmp_path / "agola")
        emulator.forge.delivery_workers = 0
        wait_for_sync(lambda: len(mine()) == BRANCHES and all(d.status for d in mine()), timeout=60,
                      message="every delivery answered (or failed)")
        failed = [d for d in mine() if d.status != 200]
        assert failed, "the restart should have refused some deliveries"
        for d in failed:
            emulator.redeliver(d.id)
        expected = [f"r{i:02d}" for i in range(BRANCHES)]
        # Each branch once: none lost, none doubled (run listings catch up with writes after a restart).
        wait_for_sync(lambda: sorted(r["annotations"]["branch"] for r in project_runs(stack, token, "user/rita/app")) == expected,
                      timeout=30, message="one run per branch")
    finally:
        stack.stop()
