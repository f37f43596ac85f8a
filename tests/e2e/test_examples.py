"""Each example of ``examples/`` run end to end through the CLI (``agola directrun start``),
against the real roles and the docker executor, checking what a user reads in the terminal."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Session, example_repo
from tests.support.waiting import wait_for_sync


def _wait_json(user: Session, args: list[str], ready: Callable[[Any], Any], timeout: float = 60) -> Any:
    def check() -> Any:
        value = json.loads(user.cli(*args, "--json").stdout)
        return value if ready(value) else None

    return wait_for_sync(check, timeout)


def test_hello_dag_workspace_and_cache(user: Session, tmp_path: Path, busybox_image: str) -> None:
    repo = example_repo("hello", tmp_path / "hello", busybox_image)
    first = user.cli("directrun", "start", "-C", str(repo), "--follow")
    assert first.exit_code == 0, first.output
    out = first.stdout
    assert "[build] cache: miss" in out
    assert "[test-unit] unit tests passed" in out and "[test-lint] lint passed" in out
    assert "[package] package: hello from agola, built from 2 deps" in out
    assert out.rstrip().endswith("finished, result success")

    # The second run of the same repository restores the cache saved by the first.
    second = user.cli("directrun", "start", "-C", str(repo), "--follow")
    assert second.exit_code == 0, second.output
    assert "[build] cache: hit (2 deps restored)" in second.stdout


def test_services_sidecar_on_localhost(user: Session, tmp_path: Path, busybox_image: str) -> None:
    repo = example_repo("services", tmp_path / "services", busybox_image)
    result = user.cli("directrun", "start", "-C", str(repo), "--follow")
    assert result.exit_code == 0, result.output
    assert "[integration] sidecar answered on localhost:18080 with 2 lines" in result.stdout


def test_matrix_jsonnet_generates_a_task_per_version(user: Session, tmp_path: Path, busybox_image: str) -> None:
    repo = example_repo("matrix", tmp_path / "matrix", busybox_image)
    result = user.cli("directrun", "start", "-C", str(repo), "--follow")
    assert result.exit_code == 0, result.output
    for v in ("3.10", "3.11", "3.12"):
        assert f"[test-{v}] testing against version {v} on refs/heads/master" in result.stdout
    assert "[report] all 3 versions passed" in result.stdout


def test_approval_gates_the_deploy(user: Session, tmp_path: Path, busybox_image: str) -> None:
    repo = example_repo("approval", tmp_path / "approval", busybox_image)
    assert user.cli("directrun", "start", "-C", str(repo)).exit_code == 0
    runs = _wait_json(user, ["run", "list", "-s", "running"], lambda rows: rows and rows[0]["tasks_waiting_approval"])
    run_id = runs[0]["id"]
    shown = json.loads(user.cli("run", "show", run_id, "--json").stdout)
    statuses = {t["name"]: t["status"] for t in shown["tasks"].values()}
    assert statuses["build"] == "success" and statuses["deploy"] == "notstarted"
    assert user.cli("run", "approve", run_id, "deploy").exit_code == 0
    followed = user.cli("run", "logs", run_id, "-f")
    assert followed.exit_code == 0, followed.output
    assert "[deploy] deployed to production" in followed.stdout
    assert followed.stdout.rstrip().endswith("finished, result success")


def test_failing_then_restart_from_failed_tasks(user: Session, tmp_path: Path, busybox_image: str) -> None:
    repo = example_repo("failing", tmp_path / "failing", busybox_image)
    failed = user.cli("directrun", "start", "-C", str(repo), "--follow")
    assert failed.exit_code == 3, failed.output
    assert "[test] FAIL: test_answer: expected 42, got 41" in failed.stdout
    assert failed.stdout.rstrip().endswith("finished, result failed")
    [run] = json.loads(user.cli("run", "list", "--json").stdout)
    tasks = {t["name"]: t for t in json.loads(user.cli("run", "show", run["id"], "--json").stdout)["tasks"].values()}
    assert tasks["lint"]["status"] == "success" and tasks["test"]["status"] == "failed"
    assert tasks["report"]["status"] == "skipped"

    # A finished run can be restarted once its logs and archives are fetched from the executor
    # (a moment after the end); until then the refusal says so.
    attempts: list[Any] = []

    def restart() -> bool:
        attempts.append(user.cli("run", "restart", run["id"], "--json"))
        return attempts[-1].exit_code == 0 or "still being fetched" not in attempts[-1].output

    wait_for_sync(restart, 30, 0.2, "the failed run restartable")
    restarted = attempts[-1]
    assert restarted.exit_code == 0, restarted.output
    new_id = json.loads(restarted.stdout)["id"]
    followed = user.cli("run", "logs", new_id, "-f")
    assert followed.exit_code == 3, followed.output
    # Only the failed task ran again: lint's result (and log) was carried over, not re-executed.
    assert "[test] FAIL: test_answer" in followed.stdout and "==> [test] failed" in followed.stdout
    assert "==> [lint] running" not in followed.stdout
    new_tasks = {t["name"]: t for t in json.loads(user.cli("run", "show", new_id, "--json").stdout)["tasks"].values()}
    assert new_tasks["lint"]["status"] == "success"
