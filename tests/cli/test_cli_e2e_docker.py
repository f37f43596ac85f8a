"""``agola directrun start --follow`` end to end: every role in one process (embedded storage,
docker executor), a local work tree, and the terminal output a developer sees.

Uses the offline-built ``agola-test/busybox`` image (the ``busybox_image`` fixture); the clone step
runs on the executor host, so the image needs no git.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from agola.cli.main import agola
from tests.client.stack import ADMIN, ALL, RoleStack
from tests.support.waiting import wait_for_sync


@pytest.fixture
def roles(tmp_path: Path, busybox_image: str) -> Iterator[RoleStack]:
    r = RoleStack(tmp_path, ALL, {"executor": "  docker: {network: none}\n  activeTasksLimit: 2\n"})
    r.start()
    try:
        yield r
    finally:
        r.stop()


def cli(roles: RoleStack, token: str, *args: str) -> Result:
    return CliRunner().invoke(agola, ["--gateway-url", roles.url, "--token", token, *args])


PIPELINE = """\
version: v0
runs:
  - name: run01
    tasks:
      - name: task01
        runtime: {{containers: [{{image: {image}}}]}}
        environment:
          ENV01: {{from_variable: variable01}}
        steps:
          - type: clone
          - type: run
            name: greet
            command: |
                echo "ENV01=$ENV01"
                sleep 1
                echo STEPLOG
                test "$ENV01" != fail
"""


def test_directrun_follow_success_then_failure_and_logs(roles: RoleStack, tmp_path: Path, busybox_image: str) -> None:
    assert cli(roles, ADMIN, "user", "create", "user01").exit_code == 0
    token = cli(roles, ADMIN, "user", "token", "create", "user01", "t").stdout.strip()
    repo = tmp_path / "work"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".agola").mkdir()
    (repo / ".agola" / "config.yml").write_text(PIPELINE.format(image=busybox_image))

    ok = cli(roles, token, "directrun", "start", "-C", str(repo), "--var", "variable01=hello", "--follow")
    assert ok.exit_code == 0, ok.output
    out = ok.stdout
    assert "[task01] ENV01=hello" in out and "[task01] STEPLOG" in out
    assert "[task01] --- step 1: success (exit status 0)" in out
    assert out.rstrip().endswith("finished, result success")

    bad = cli(roles, token, "directrun", "start", "-C", str(repo), "--var", "variable01=fail", "-f")
    assert bad.exit_code == 3, bad.output
    assert "[task01] ENV01=fail" in bad.stdout and "result failed" in bad.stdout

    [row] = json.loads(cli(roles, token, "run", "list", "--json", "--result", "success").stdout)
    step = cli(roles, token, "run", "logs", row["id"], "-t", "task01", "--step", "1")
    assert step.exit_code == 0 and "STEPLOG" in step.output
    setup = cli(roles, token, "run", "logs", row["id"], "-t", "task01", "--setup")
    assert setup.exit_code == 0
    missing = cli(roles, token, "run", "logs", row["id"], "-t", "task01", "--step", "99")
    assert missing.exit_code == 1 and missing.output.startswith("Error: ")


APPROVAL_PIPELINE = """\
version: v0
runs:
  - name: run01
    tasks:
      - name: build
        runtime: {{containers: [{{image: {image}}}]}}
        steps:
          - type: run
            command: echo built
      - name: deploy
        runtime: {{containers: [{{image: {image}}}]}}
        approval: true
        depends: [build]
        steps:
          - type: run
            command: echo deployed; test -f /tmp/never-there
"""


def _wait_json(roles: RoleStack, token: str, args: list[str], ready: Callable[[Any], Any], timeout: float = 60) -> Any:
    """The JSON output of a CLI command, once ``ready`` accepts it."""

    def check() -> Any:
        value = json.loads(cli(roles, token, *args, "--json").stdout)
        return value if ready(value) else None

    return wait_for_sync(check, timeout)


def test_approval_restart_and_broken_pipeline_through_the_cli(roles: RoleStack, tmp_path: Path,
                                                               busybox_image: str) -> None:
    assert cli(roles, ADMIN, "user", "create", "user01").exit_code == 0
    token = cli(roles, ADMIN, "user", "token", "create", "user01", "t").stdout.strip()
    repo = tmp_path / "work"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".agola").mkdir()
    config = repo / ".agola" / "config.yml"

    # A broken pipeline file: refused locally in no time; pushed anyway (--no-check), a setup
    # error run whose located message is shown; exit 3.
    config.write_text("version: v0\nruns:\n  - name: run01\n    tasks: [{name: t, steps: [clone]}]\n")
    refused = cli(roles, token, "directrun", "start", "-C", str(repo), "-f")
    assert refused.exit_code == 1 and "config.yml:4:" in refused.output and "pushed" not in refused.output
    broken = cli(roles, token, "directrun", "start", "-C", str(repo), "-f", "--no-check")
    assert broken.exit_code == 3
    assert "setup error: .agola/config.yml:4:" in broken.stdout and "setuperror" in broken.stdout

    # Approval: deploy waits; `run approve` releases it; following to the end reports the failure.
    config.write_text(APPROVAL_PIPELINE.format(image=busybox_image))
    assert cli(roles, token, "directrun", "start", "-C", str(repo), "--branch", "main").exit_code == 0
    runs = _wait_json(roles, token, ["run", "list", "-s", "running"],
                      lambda rows: rows and rows[0]["tasks_waiting_approval"])
    run_id = runs[0]["id"]
    shown = cli(roles, token, "run", "show", run_id).output
    assert "waiting approval" in shown
    counter = runs[0]["counter"]
    assert cli(roles, token, "run", "approve", f"#{counter}", "deploy").output == f"task deploy of run #{counter} approved\n"
    followed = cli(roles, token, "run", "logs", run_id, "-f")
    assert followed.exit_code == 3, followed.output
    assert "[deploy] deployed" in followed.stdout and "result failed" in followed.stdout

    # Restart from the failed tasks: a new run where only deploy runs again (and waits for approval).
    restarted = cli(roles, token, "run", "restart", run_id, "--json")
    assert restarted.exit_code == 0, restarted.output
    new = json.loads(restarted.stdout)
    assert new["id"] != run_id


def test_stop_a_running_run(roles: RoleStack, tmp_path: Path, busybox_image: str) -> None:
    assert cli(roles, ADMIN, "user", "create", "user01").exit_code == 0
    token = cli(roles, ADMIN, "user", "token", "create", "user01", "t").stdout.strip()
    repo = tmp_path / "work"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".agola").mkdir()
    (repo / ".agola" / "config.yml").write_text(
        f"version: v0\nruns:\n  - name: run01\n    tasks:\n      - name: long\n"
        f"        runtime: {{containers: [{{image: {busybox_image}}}]}}\n"
        f"        steps: [{{type: run, command: 'echo started; sleep 60'}}]\n")
    assert cli(roles, token, "directrun", "start", "-C", str(repo)).exit_code == 0
    rows = _wait_json(roles, token, ["run", "list", "-s", "running"], lambda rows: bool(rows))
    run_id = rows[0]["id"]
    _wait_json(roles, token, ["run", "show", run_id],
               lambda r: any(t["status"] == "running" for t in r["tasks"].values()))
    assert cli(roles, token, "run", "stop", run_id).output == f"run #{rows[0]['counter']} ({run_id}) is stopping\n"
    followed = cli(roles, token, "run", "logs", run_id, "-f")
    assert followed.exit_code == 3, followed.output
    assert "result stopped" in followed.stdout


WORKSPACE_PIPELINE = """\
version: v0
runs:
  - name: run01
    tasks:
      - name: one
        runtime: {{containers: [{{image: {image}}}]}}
        steps:
          - {{type: run, command: echo from-one > a.txt}}
          - {{type: save_to_workspace, contents: [{{source_dir: ., dest_dir: ., paths: [a.txt]}}]}}
      - name: two
        runtime: {{containers: [{{image: {image}}}]}}
        depends: [one]
        steps:
          - {{type: restore_workspace, dest_dir: .}}
          - {{type: run, command: 'cat a.txt > b.txt; echo from-two >> b.txt'}}
          - {{type: save_to_workspace, contents: [{{source_dir: ., dest_dir: ., paths: [b.txt]}}]}}
      - name: three
        runtime: {{containers: [{{image: {image}}}]}}
        depends: [two]
        steps:
          - {{type: restore_workspace, dest_dir: .}}
          - {{type: run, command: 'echo A=$(cat a.txt) B=$(cat b.txt | tr "\\\\n" +)'}}
"""


def test_workspace_across_three_tasks(roles: RoleStack, tmp_path: Path, busybox_image: str) -> None:
    assert cli(roles, ADMIN, "user", "create", "user01").exit_code == 0
    token = cli(roles, ADMIN, "user", "token", "create", "user01", "t").stdout.strip()
    repo = tmp_path / "work"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".agola").mkdir()
    (repo / ".agola" / "config.yml").write_text(WORKSPACE_PIPELINE.format(image=busybox_image))
    res = cli(roles, token, "directrun", "start", "-C", str(repo), "-f")
    assert res.exit_code == 0, res.output
    assert "[three] A=from-one B=from-one+from-two+" in res.stdout
    order = [res.stdout.index(f"==> [{t}] success") for t in ("one", "two", "three")]
    assert order == sorted(order)


STREAM_PIPELINE = """\
version: v0
runs:
  - name: run01
    tasks:
      - name: talk
        runtime: {{containers: [{{image: {image}}}]}}
        steps:
          - type: run
            name: count
            command: |
                echo first
                while [ ! -e /tmp/go ]; do usleep 20000; done
                seq 1 {count}
                echo last
"""


def test_a_follower_sees_a_line_before_its_step_ends_then_a_big_output_whole_and_in_order(
        roles: RoleStack, tmp_path: Path, busybox_image: str) -> None:
    """`run logs -f` in its own process, through every hop (executor -> runservice -> gateway ->
    CLI), on a step with the default tty: its first line shows while the step still waits, then
    half a million numbered lines (3.4 MB) arrive complete and in order."""
    count = 500_000
    assert cli(roles, ADMIN, "user", "create", "user01").exit_code == 0
    token = cli(roles, ADMIN, "user", "token", "create", "user01", "t").stdout.strip()
    repo = tmp_path / "work"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".agola").mkdir()
    (repo / ".agola" / "config.yml").write_text(STREAM_PIPELINE.format(image=busybox_image, count=count))
    started = cli(roles, token, "directrun", "start", "-C", str(repo))
    assert started.exit_code == 0, started.output
    [row] = _wait_json(roles, token, ["run", "list"], lambda rows: bool(rows))
    follower = subprocess.Popen(
        [sys.executable, "-m", "agola.cli.main", "--gateway-url", roles.url, "--token", token, "run", "logs",
         row["id"], "-f"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: list[bytes] = []
    reader = threading.Thread(target=lambda: lines.extend(follower.stdout or ()), daemon=True)
    reader.start()
    try:
        wait_for_sync(lambda: b"[talk] first\n" in lines, 60)
        # The step waits for /tmp/go: it is still running, and the line is already there.
        shown = _wait_json(roles, token, ["run", "show", row["id"]], lambda r: bool(r["tasks"]))
        [task_id] = shown["tasks"]
        assert shown["tasks"][task_id]["status"] == "running"
        container = subprocess.run(
            ["docker", "ps", "-q", "--filter", f"label=agola.io/taskid={task_id}",
             "--filter", "label=agola.io/containerindex=0"], capture_output=True, text=True, check=True).stdout.split()
        subprocess.run(["docker", "exec", container[0], "touch", "/tmp/go"], check=True)
        assert follower.wait(120) == 0, follower.stderr.read() if follower.stderr else ""
        reader.join(30)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    text = b"".join(lines).decode()
    start = text.index("[talk] 1\n")
    numbers = text[start:text.index("[talk] last\n", start)].splitlines()
    assert numbers == [f"[talk] {i}" for i in range(1, count + 1)]
    assert text.rstrip().endswith("finished, result success")
