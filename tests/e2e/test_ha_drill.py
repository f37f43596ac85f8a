"""HA drill (docs/operations.md, "Supported topology"): two ``agola serve --components all-base``
processes on the same etcd and S3 buckets, one executor. Runs are in flight when one control
plane is SIGKILLed: every run still finishes, each task is started once, the survivor's API keeps
answering, and the killed one rejoins when restarted (both instances listed again, its API serving
the same runs, a new run created through it finishes); then maintenance mode, requested through
one gateway, is followed by both instances.

The executor reaches the survivor's runservice: in production a load balancer in front of every
runservice plays that part.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agola.cli.main import agola
from agola.client.sync import SyncGatewayClient
from tests.e2e.split import ADMIN, SplitStack
from tests.support.services import EtcdServer, S3Server
from tests.support.waiting import wait_for_sync

RUNS = 3
PIPELINE = """\
version: v0
runs:
  - name: drill
    tasks:
      - name: work
        runtime: {{containers: [{{image: {image}}}]}}
        steps:
          - type: run
            command: echo "work started"; sleep 3; echo "work done"
"""


@pytest.fixture
def ha(tmp_path: Path, s3_server: S3Server, busybox_image: str) -> Iterator[SplitStack]:
    etcd = EtcdServer(tmp_path / "etcd")  # the roles' key prefixes are fixed: an etcd of its own
    etcd.start()
    (tmp_path / "stack").mkdir()
    stack = SplitStack(tmp_path / "stack", etcd.endpoint, s3_server, control_planes=2, executor_target=1)
    try:
        stack.start()
        yield stack
    finally:
        stack.close()
        etcd.stop()


def cli(url: str, token: str, *args: str) -> Result:
    return CliRunner().invoke(agola, ["--gateway-url", url, "--token", token, *args])


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


def test_a_control_plane_killed_with_runs_in_flight(ha: SplitStack, tmp_path: Path, busybox_image: str) -> None:
    first, second = ha.controls
    url_a, url_b = first.health_url, second.health_url
    wait_for_sync(lambda: all(cli(u, ADMIN, "user", "list").exit_code == 0 for u in (url_a, url_b)), 30,
                  message="both gateways serving")
    ok(cli(url_a, ADMIN, "user", "create", "ops"))
    token = ok(cli(url_a, ADMIN, "user", "token", "create", "ops", "t")).strip()
    repo = tmp_path / "work"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".agola").mkdir()
    (repo / ".agola" / "config.yml").write_text(PIPELINE.format(image=busybox_image))
    for n in range(RUNS):  # one branch each: they run side by side (one run at a time per branch)
        ok(cli(url_a, token, "directrun", "start", "-C", str(repo), "--branch", f"b{n}"))

    survivor = SyncGatewayClient(url_b, token)
    try:
        group = f"/user/{survivor.current_user().id}"
        wait_for_sync(lambda: any(r.phase == "running" for r in survivor.list_runs(group)), 60,
                      message="a run in flight")

        first.kill()

        # Every call to the survivor answers, until every run is done.
        failures: list[str] = []
        calls = 0

        def all_finished() -> bool:
            nonlocal calls
            calls += 1
            try:
                runs = survivor.list_runs(group)
            except Exception as exc:  # noqa: BLE001 - counted, asserted below
                failures.append(repr(exc))
                return False
            return len(runs) == RUNS and all(r.phase == "finished" for r in runs)

        wait_for_sync(all_finished, 90, interval=0.1,
                      message=f"every run finished after the kill; {ha.executor.stderr[-2000:]}")
        assert failures == [], f"{len(failures)} of {calls} calls failed: {failures[:3]}"
        runs = survivor.list_runs(group, asc=True)
        assert [(r.counter, r.result) for r in runs] == [(n, "success") for n in range(1, RUNS + 1)]
        for r in runs:
            task_id = next(iter(survivor.get_run(r.id).tasks))
            log = survivor.get_log(r.id, task_id, step=0).decode()
            assert log.count("work started") == 1 and "work done" in log, log
        # Each task was started once by the executor.
        started = Counter(re.findall(r"task started.*?task=(\S+)", ha.executor.stderr))
        assert len(started) == RUNS and set(started.values()) == {1}, started

        # The killed one rejoins: its new instances are listed (the dead ones go when their leases
        # expire), its API serves the same runs, and a run created through it finishes.
        first.start()
        assert first.proc is not None

        def rejoined(pid: int = first.proc.pid) -> bool:
            with SyncGatewayClient(url_a, ADMIN) as admin:
                return all(pid in {i.pid for i in admin.maintenance_status(s).instances if not i.current_status}
                           for s in ("configstore", "runservice"))

        wait_for_sync(rejoined, 40, message="the restarted instances listed in normal mode")
        with SyncGatewayClient(url_a, token) as again:
            assert [r.id for r in again.list_runs(group, asc=True)] == [r.id for r in runs]
        ok(cli(url_a, token, "directrun", "start", "-C", str(repo)))
        wait_for_sync(lambda: [r.result for r in survivor.list_runs(group, asc=True)][-1:] == ["success"], 60,
                      message="a new run after the rejoin")
        assert [r.counter for r in survivor.list_runs(group, asc=True)] == list(range(1, RUNS + 2))
    finally:
        survivor.close()

    # Maintenance mode is requested once and followed by every live instance.
    assert ok(cli(url_a, ADMIN, "maintenance", "enable", "configstore")) == \
        "configstore is in maintenance mode (2 instances)\n"
    status = ok(cli(url_b, ADMIN, "maintenance", "status", "configstore")).splitlines()
    assert status[0] == "configstore: requested maintenance, current maintenance"
    assert [line.split()[-1] for line in status[2:]] == ["maintenance", "maintenance"]
    assert ok(cli(url_b, ADMIN, "maintenance", "disable", "configstore")) == \
        "configstore is in normal mode (2 instances)\n"
    assert ha.executor.terminate() == 0, ha.executor.stderr[-3000:]
    for control in ha.controls:
        assert control.terminate() == 0, control.stderr[-3000:]
