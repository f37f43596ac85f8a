"""The end-to-end scenarios with the roles split over two ``agola serve`` processes, as a
distributed installation runs them: a control plane (``--components all-base``: runservice and
configstore on a real etcd and the S3 server) and an executor (``--components executor``) reaching
the runservice over HTTP. Everything goes through the ``agola`` CLI, as a developer uses it.

One stack for the module (starting two Python processes is the slow part); each test is its own
user, so runs, run groups and listings never mix. The stack's teardown stops both processes with
SIGTERM and asserts they exit 0.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from agola.cli.main import agola
from tests.e2e.split import ADMIN, SplitStack, agola_env
from tests.support.services import EtcdServer, S3Server
from tests.support.waiting import wait_for_sync


@pytest.fixture(scope="module")
def split_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    """A private etcd: the roles' key prefixes (``runservice/``, ``configstore/``) are fixed, so an
    installation needs an etcd (or a cluster) of its own, as in production."""
    server = EtcdServer(tmp_path_factory.mktemp("split-etcd") / "data")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory, split_etcd: EtcdServer, s3_server: S3Server,
          busybox_image: str) -> Iterator[SplitStack]:
    stack = SplitStack(tmp_path_factory.mktemp("split"), split_etcd.endpoint, s3_server)
    try:
        stack.start()
        # The gateway answers /health before the configstore has loaded its data: wait until an
        # admin call goes through, as an operator would before handing out the URL.
        last: list[Result] = []

        def admin_call_works() -> bool:
            last[:] = [cli(stack, ADMIN, "user", "list")]
            return last[0].exit_code == 0

        try:
            wait_for_sync(admin_call_works, 30, 0.1, "configstore ready")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; last `user list`: {last[0].output if last else '-'}\n"
                                 f"control plane stderr:\n{stack.control.stderr[-4000:]}") from None
        yield stack
        assert stack.executor.terminate() == 0, stack.executor.stderr[-3000:]
        assert stack.control.terminate() == 0, stack.control.stderr[-3000:]
        assert "agola serve stopped" in stack.control.stderr
    finally:
        stack.close()


def cli(stack: SplitStack, token: str, *args: str) -> Result:
    return CliRunner().invoke(agola, ["--gateway-url", stack.url, "--token", token, *args])


def new_user(stack: SplitStack, name: str) -> str:
    """Bootstrap with the admin token from the config: the user and an API token for them."""
    created = cli(stack, ADMIN, "user", "create", name)
    assert created.exit_code == 0, created.output
    token = cli(stack, ADMIN, "user", "token", "create", name, "t")
    assert token.exit_code == 0, token.output
    return token.stdout.strip()


def work_tree(path: Path, pipeline: str) -> Path:
    path.mkdir()
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    (path / ".agola").mkdir()
    (path / ".agola" / "config.yml").write_text(pipeline)
    return path


def task_containers(task_id: str) -> list[str]:
    """Docker containers (any state) of a task, by the label the executor puts on them."""
    out = subprocess.run(["docker", "ps", "-a", "-q", "--filter", f"label=agola.io/taskid={task_id}"],
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


def http_status(stack: SplitStack, token: str, method: str, path: str, body: Any = None) -> int:
    """The status code of a gateway API call (what the CLI turns into its one-line error)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{stack.url}/api/v1alpha{path}", data=data, method=method,
                                 headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def read_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    """The next line of ``proc``'s stdout, or a failure after ``timeout`` seconds."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"no output within {timeout}s"
    return proc.stdout.readline()


def wait_json(stack: SplitStack, token: str, args: list[str], ready: Callable[[Any], Any], timeout: float = 60) -> Any:
    """The JSON output of a CLI command, once ``ready`` accepts it."""

    def check() -> Any:
        value = json.loads(cli(stack, token, *args, "--json").stdout)
        return value if ready(value) else None

    return wait_for_sync(check, timeout, 0.2)


WORKSPACE_PIPELINE = """\
version: v0
runs:
  - name: run01
    tasks:
      - name: one
        runtime: {{containers: [{{image: {image}}}]}}
        steps:
          - {{type: clone}}
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
        environment:
          ENV01: {{from_variable: variable01}}
        steps:
          - {{type: restore_workspace, dest_dir: .}}
          - type: run
            name: check
            command: |
                echo "A=$(cat a.txt) B=$(cat b.txt | tr '\\n' +)"
                echo "ENV01=$ENV01"
                echo STEPLOG
                test "$ENV01" != fail
"""


def test_direct_runs_with_variables_workspace_failure_and_logs(split: SplitStack, tmp_path: Path,
                                                                busybox_image: str) -> None:
    token = new_user(split, "wsuser")
    repo = work_tree(tmp_path / "work", WORKSPACE_PIPELINE.format(image=busybox_image))

    ok = cli(split, token, "directrun", "start", "-C", str(repo), "--var", "variable01=hello", "--follow")
    assert ok.exit_code == 0, ok.output
    out = ok.stdout
    assert "[three] A=from-one B=from-one+from-two+" in out
    assert "[three] ENV01=hello" in out and "[three] STEPLOG" in out
    order = [out.index(f"==> [{t}] success") for t in ("one", "two", "three")]
    assert order == sorted(order)
    assert out.rstrip().endswith("finished, result success")

    bad = cli(split, token, "directrun", "start", "-C", str(repo), "--var", "variable01=fail", "-f")
    assert bad.exit_code == 3, bad.output
    assert "[three] ENV01=fail" in bad.stdout and "result failed" in bad.stdout

    # The logs of a finished run, asked of the control plane (the step ran in the other process).
    [failed] = json.loads(cli(split, token, "run", "list", "--json", "--result", "failed").stdout)
    step = cli(split, token, "run", "logs", failed["id"], "-t", "three", "--step", "1")
    assert step.exit_code == 0, step.output
    assert "ENV01=fail" in step.output and "STEPLOG" in step.output
    setup = cli(split, token, "run", "logs", failed["id"], "-t", "one", "--setup")
    assert setup.exit_code == 0 and "Pod started." in setup.output, setup.output


APPROVAL_PIPELINE = """\
version: v0
runs:
  - name: run01
    tasks:
      - name: build
        runtime: {{containers: [{{image: {image}}}]}}
        steps:
          - {{type: run, command: echo built}}
      - name: deploy
        runtime: {{containers: [{{image: {image}}}]}}
        approval: true
        depends: [build]
        steps:
          - {{type: run, command: echo deployed; test -f /tmp/never-there}}
"""


def test_broken_pipeline_approval_and_restart_from_failed(split: SplitStack, tmp_path: Path,
                                                          busybox_image: str) -> None:
    token = new_user(split, "approver")
    repo = work_tree(tmp_path / "work", "version: v0\nruns:\n  - name: run01\n    tasks: [{name: t, steps: [clone]}]\n")

    # A broken pipeline file: a setuperror run whose located message is shown; exit 3.
    broken = cli(split, token, "directrun", "start", "-C", str(repo), "-f", "--no-check")
    assert broken.exit_code == 3, broken.output
    assert "setup error: .agola/config.yml:4:" in broken.stdout and "setuperror" in broken.stdout

    # Approval: deploy waits; `run approve` releases it; following to the end reports the failure.
    (repo / ".agola" / "config.yml").write_text(APPROVAL_PIPELINE.format(image=busybox_image))
    assert cli(split, token, "directrun", "start", "-C", str(repo), "--branch", "main").exit_code == 0
    runs = wait_json(split, token, ["run", "list", "-s", "running"],
                     lambda rows: rows and rows[0]["tasks_waiting_approval"])
    run_id = runs[0]["id"]
    assert "waiting approval" in cli(split, token, "run", "show", run_id).output
    approved = cli(split, token, "run", "approve", run_id, "deploy")
    assert approved.output == f"task deploy of run #{runs[0]['counter']} approved\n"
    followed = cli(split, token, "run", "logs", run_id, "-f")
    assert followed.exit_code == 3, followed.output
    assert "[deploy] deployed" in followed.stdout and "result failed" in followed.stdout

    # Restart from the failed tasks: a new run where build is not run again and deploy waits for
    # approval once more.
    restarted = cli(split, token, "run", "restart", run_id, "--json")
    assert restarted.exit_code == 0, restarted.output
    new_id = json.loads(restarted.stdout)["id"]
    assert new_id != run_id
    new = wait_json(split, token, ["run", "show", new_id], lambda r: r["tasks_waiting_approval"])
    by_name = {t["name"]: t for t in new["tasks"].values()}
    assert by_name["build"]["status"] == "success"
    assert by_name["deploy"]["waiting_approval"]
    cancelled = cli(split, token, "run", "stop", new_id)
    assert cancelled.exit_code == 0, cancelled.output


def test_stop_a_running_run(split: SplitStack, tmp_path: Path, busybox_image: str) -> None:
    token = new_user(split, "stopper")
    repo = work_tree(tmp_path / "work",
                     f"version: v0\nruns:\n  - name: run01\n    tasks:\n      - name: long\n"
                     f"        runtime: {{containers: [{{image: {busybox_image}}}]}}\n"
                     f"        steps: [{{type: run, command: 'echo started; sleep 60'}}]\n")
    assert cli(split, token, "directrun", "start", "-C", str(repo)).exit_code == 0
    [row] = wait_json(split, token, ["run", "list", "-s", "running"], lambda rows: bool(rows))
    run_id = row["id"]
    wait_json(split, token, ["run", "show", run_id],
              lambda r: any(t["status"] == "running" for t in r["tasks"].values()))

    # Follow the running step from another process (the `agola` CLI as a user runs it): its output
    # arrives while the step still runs, and the follower ends when the step does.
    follower = subprocess.Popen(
        [sys.executable, "-m", "agola.cli.main", "--gateway-url", split.url, "--token", token,
         "run", "logs", run_id, "-t", "long", "--step", "0", "--follow"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=agola_env())
    try:
        assert read_line(follower, 60) == b"started\n"
        assert follower.poll() is None
        assert cli(split, token, "run", "stop", run_id).output.endswith(f" ({run_id}) is stopping\n")
        _, err = follower.communicate(timeout=60)
        assert follower.returncode == 0, err
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait(10)
    followed = cli(split, token, "run", "logs", run_id, "-f")
    assert followed.exit_code == 3, followed.output
    assert "result stopped" in followed.stdout


def test_permission_denials(split: SplitStack, tmp_path: Path, busybox_image: str) -> None:
    owner = new_user(split, "owner01")
    other = new_user(split, "other01")
    repo = work_tree(tmp_path / "work",
                     f"version: v0\nruns:\n  - name: run01\n    tasks:\n      - name: t\n"
                     f"        runtime: {{containers: [{{image: {busybox_image}}}]}}\n"
                     f"        steps: [{{type: run, command: echo mine}}]\n")
    started = cli(split, owner, "directrun", "start", "-C", str(repo), "--json")
    assert started.exit_code == 0, started.output
    [run_id] = json.loads(started.stdout)["run_ids"]

    # Another user's run: neither visible nor actionable, with a one-line error (the CLI looks the
    # run up before acting on it, so an action is refused at the lookup).
    for args in (("run", "show", run_id), ("run", "logs", run_id, "-t", "t", "--setup"), ("run", "stop", run_id)):
        denied = cli(split, other, *args)
        assert (denied.exit_code, denied.output) == (1, "Error: user not authorized to see this run\n"), args
    assert http_status(split, other, "PUT", f"/runs/{run_id}/actions", {"action_type": "stop"}) == 403
    assert json.loads(cli(split, other, "run", "list", "--json").stdout) == []
    assert http_status(split, other, "GET", f"/runs/{run_id}") == 403

    # A non-admin creating users: 403.
    forbidden = cli(split, owner, "user", "create", "intruder")
    assert (forbidden.exit_code, forbidden.output) == (1, "Error: only an administrator can do this\n")
    assert http_status(split, owner, "POST", "/users", {"username": "intruder"}) == 403
    users = [u["username"] for u in json.loads(cli(split, ADMIN, "user", "list", "--json").stdout)]
    assert "intruder" not in users

    followed = cli(split, owner, "run", "logs", run_id, "-f")
    assert followed.exit_code == 0, followed.output


def test_executor_killed_mid_run_then_restarted(split: SplitStack, tmp_path: Path, busybox_image: str) -> None:
    """A crashed executor host: the task it ran is lost. Restarted with the same data dir it is the
    same executor (docs/executor.md): it reports the task failed ("the task was lost"), removes
    the orphan container, and takes new tasks."""
    token = new_user(split, "crasher")
    repo = work_tree(tmp_path / "work",
                     f"version: v0\nruns:\n  - name: run01\n    tasks:\n      - name: long\n"
                     f"        runtime: {{containers: [{{image: {busybox_image}}}]}}\n"
                     f"        steps: [{{type: run, command: 'echo started; sleep 120'}}]\n")
    assert cli(split, token, "directrun", "start", "-C", str(repo)).exit_code == 0
    [row] = wait_json(split, token, ["run", "list", "-s", "running"], lambda rows: bool(rows))
    run_id = row["id"]
    # Killed only once the step's output is there: the task really runs in a container.
    wait_for_sync(lambda: "started" in cli(split, token, "run", "logs", run_id, "-t", "long", "--step", "0").output,
                  60, 0.2, "step running")

    [task] = json.loads(cli(split, token, "run", "show", run_id, "--json").stdout)["tasks"].values()
    assert task_containers(task["id"])
    split.executor.kill()
    split.executor.start()

    followed = cli(split, token, "run", "logs", run_id, "-f")
    assert followed.exit_code == 3, followed.output
    assert "result failed" in followed.stdout
    run = json.loads(cli(split, token, "run", "show", run_id, "--json").stdout)
    assert run["tasks"][task["id"]]["status"] == "failed"
    assert "==> [long] failed" in followed.stdout and "[long] --- step 0: failed" in followed.stdout
    # What the step printed before the crash is still served.
    kept = cli(split, token, "run", "logs", run_id, "-t", "long", "--step", "0")
    assert kept.exit_code == 0 and kept.output == "started\n", kept.output
    # The container the killed process left behind is removed by the restarted one.
    wait_for_sync(lambda: not task_containers(task["id"]), 30, 0.2, "orphan container removed")

    # The restarted executor runs new work.
    (repo / ".agola" / "config.yml").write_text(
        f"version: v0\nruns:\n  - name: run01\n    tasks:\n      - name: quick\n"
        f"        runtime: {{containers: [{{image: {busybox_image}}}]}}\n"
        f"        steps: [{{type: run, command: 'echo after-restart'}}]\n")
    again = cli(split, token, "directrun", "start", "-C", str(repo), "-f")
    assert again.exit_code == 0, again.output
    assert "[quick] after-restart" in again.stdout


def test_executor_sigterm_mid_run(split: SplitStack, tmp_path: Path, busybox_image: str) -> None:
    """A graceful executor stop (SIGTERM, e.g. a host shutdown): exit status 0, its running task is
    stopped and reported (docs/executor.md), so the run ends at once instead of waiting for a lost
    executor to expire; the run's result is ``failed``, not ``success``."""
    token = new_user(split, "drainer")
    repo = work_tree(tmp_path / "work",
                     f"version: v0\nruns:\n  - name: run01\n    tasks:\n      - name: long\n"
                     f"        runtime: {{containers: [{{image: {busybox_image}}}]}}\n"
                     f"        steps: [{{type: run, command: 'echo started; sleep 120'}}]\n")
    assert cli(split, token, "directrun", "start", "-C", str(repo)).exit_code == 0
    [row] = wait_json(split, token, ["run", "list", "-s", "running"], lambda rows: bool(rows))
    run_id = row["id"]
    wait_for_sync(lambda: "started" in cli(split, token, "run", "logs", run_id, "-t", "long", "--step", "0").output,
                  60, 0.2, "step running")
    [task] = json.loads(cli(split, token, "run", "show", run_id, "--json").stdout)["tasks"].values()

    assert split.executor.terminate() == 0, split.executor.stderr[-3000:]
    assert not task_containers(task["id"])
    try:
        followed = cli(split, token, "run", "logs", run_id, "-f")
        assert followed.exit_code == 3, followed.output
        assert "==> [long] stopped" in followed.stdout
        # Nobody stopped the run: its task did not do its work, so the run failed.
        assert followed.stdout.rstrip().endswith("finished, result failed")
    finally:
        split.executor.start()
