"""Lost work explained: an executor killed mid-task (kill -9), first restarted, then not. Real
processes: the control plane (``agola serve --components gateway,runservice,...``) and the executor
(``--components executor``, host driver) from one config file on one data dir, the runservice
with a short ``executorHeartbeatTimeout``. The failed task says why, in the API and in
``agola run show``, and the run finishes without its executor."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from agola.cli.main import agola
from tests.e2e.split import ServeProcess
from tests.support.services import free_port
from tests.support.waiting import wait_for_sync

ROLES = ("gateway", "runservice", "executor", "configstore", "gitserver")
HEARTBEAT_TIMEOUT = 6
PIPELINE = """\
version: v0
runs:
  - name: lost
    tasks:
      - name: long
        runtime: {containers: [{image: busybox}]}
        steps: [{type: run, command: 'echo started; sleep 30'}]
"""


class Stack:
    def __init__(self, tmp_path: Path) -> None:
        self.data = tmp_path / "data"
        ports = {r: free_port() for r in ROLES}
        text = f"dataDir: {self.data}\n"
        for role in ROLES:
            text += f"{role}:\n  web: {{listenAddress: '127.0.0.1:{ports[role]}'}}\n"
        text = text.replace("executor:\n", "executor:\n  driver: {type: host}\n", 1)
        text = text.replace("runservice:\n", f"runservice:\n  executorHeartbeatTimeout: {HEARTBEAT_TIMEOUT}s\n", 1)
        self.url = f"http://127.0.0.1:{ports['gateway']}"
        self.control = ServeProcess(tmp_path, "control", text, "gateway,runservice,configstore,gitserver,scheduler",
                                    self.url)
        self.executor = ServeProcess(tmp_path, "executor", text, "executor", f"http://127.0.0.1:{ports['executor']}")
        self.token = ""

    def cli(self, *args: str, token: str | None = None) -> Result:
        return CliRunner().invoke(agola, ["--gateway-url", self.url, "--token", token or self.token, *args])

    def api(self, path: str) -> Any:
        req = urllib.request.Request(f"{self.url}/api/v1alpha{path}", headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path)
    try:
        s.control.start()
        s.executor.start()
        admin = (s.data / "gateway" / "admin-token").read_text().strip()
        assert s.cli("user", "create", "user01", token=admin).exit_code == 0
        s.token = s.cli("user", "token", "create", "user01", "t", token=admin).stdout.strip()
        yield s
    finally:
        s.executor.close()
        s.control.close()


def _start_and_wait_running(stack: Stack, repo: Path, counter: int) -> dict[str, Any]:
    started = stack.cli("directrun", "start", "-C", str(repo))
    assert started.exit_code == 0, started.output
    def step_printed() -> bool:
        logs = stack.cli("run", "logs", str(counter), "-t", "long", "--step", "0")
        return logs.exit_code == 0 and logs.output == "started\n"

    wait_for_sync(step_printed, 60, 0.2, f"run #{counter} step running")
    run = json.loads(stack.cli("run", "show", str(counter), "--json").stdout)
    [task] = run["tasks"].values()
    return {"run": run["id"], "task": task["id"]}


def _finished(stack: Stack, counter: int) -> str:
    shown = stack.cli("run", "show", str(counter))
    return shown.stdout if "finished" in shown.stdout else ""


def test_a_task_lost_with_its_executor_says_why_and_the_run_finishes(stack: Stack, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".agola").mkdir(parents=True)
    (repo / ".agola" / "config.yml").write_text(PIPELINE)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)

    # Killed and restarted: the same executor comes back without the task and reports it lost.
    ids = _start_and_wait_running(stack, repo, 1)
    stack.executor.kill()
    stack.executor.start()
    shown = wait_for_sync(lambda: _finished(stack, 1), 60, 0.2, "run #1 finished")
    restarted = "the executor restarted while the task was running: the task was lost"
    assert f"Task long failed: {restarted}" in shown, shown
    task = stack.api(f"/runs/{ids['run']}/tasks/{ids['task']}")
    assert (task["status"], task["fail_error"]) == ("failed", restarted)
    assert stack.api(f"/runs/{ids['run']}")["tasks"][ids["task"]]["fail_error"] == restarted

    # Killed for good: its heartbeats stop, the task fails (within twice the timeout) and the
    # run finishes with nobody left to report anything.
    ids = _start_and_wait_running(stack, repo, 2)
    stack.executor.kill()
    shown = wait_for_sync(lambda: _finished(stack, 2), 60, 0.2, "run #2 finished without its executor")
    assert "failed" in shown and f"sent no heartbeat for {HEARTBEAT_TIMEOUT}s" in shown, shown
    assert "the task was lost" in stack.api(f"/runs/{ids['run']}/tasks/{ids['task']}")["fail_error"]
