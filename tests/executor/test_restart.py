"""An executor killed while a task runs: the restarted executor finds the pod and removes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agola.services.executor.drivers.base import Driver
from agola.services.executor.drivers.docker import DockerDriver, DockerDriverConfig
from agola.services.executor.drivers.host import HostDriver, HostDriverConfig
from tests.executor.helpers import EXECUTOR_ID
from tests.support.services import BUSYBOX_BIN, BUSYBOX_IMAGE
from tests.support.waiting import wait_for

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from agola.services.executor.drivers.docker import DockerDriver, DockerDriverConfig
    from agola.services.executor.drivers.host import HostDriver, HostDriverConfig
    from agola.services.executor.store import LocalArchiveStore
    from agola.services.executor.taskrunner import TaskRunner
    from agola.types.runservice import Container, ExecutorTaskSpecData, RunStep

    kind, base, executor_id, image, busybox = sys.argv[1:6]
    base = Path(base)
    if kind == "docker":
        driver = DockerDriver(DockerDriverConfig(network="none", busybox_path=busybox))
    else:
        driver = HostDriver(HostDriverConfig(base_dir=base / "hostpods"))
    spec = ExecutorTaskSpecData(
        containers=[Container(image=image)],
        steps=[RunStep(command="echo $$ > ../../pid-marker 2>/dev/null; echo running; sleep 300")],
    )
    runner = TaskRunner("t-crash", spec, driver, executor_id=executor_id, data_dir=base / "data", store=LocalArchiveStore(base / "store"))
    asyncio.run(runner.run())
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


@pytest.mark.parametrize("kind", ["docker", "host"])
async def test_restarted_executor_removes_the_pod_of_a_killed_run(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if kind == "docker":
        request.getfixturevalue("busybox_image")
    repo = Path(__file__).resolve().parents[2]
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, kind, str(tmp_path), EXECUTOR_ID, BUSYBOX_IMAGE, BUSYBOX_BIN],
        cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)},
    )
    log = tmp_path / "data/tasks/t-crash/logs/steps/0.log"
    try:
        await wait_for(lambda: log.exists() and "running" in log.read_text(), timeout=60)
    finally:
        child.send_signal(signal.SIGKILL)  # no cleanup at all: the pod outlives the executor
        child.wait()

    driver: Driver
    if kind == "docker":
        driver = DockerDriver(DockerDriverConfig(network="none", busybox_path=BUSYBOX_BIN))
    else:
        driver = HostDriver(HostDriverConfig(base_dir=tmp_path / "hostpods"))
    try:
        pods = await driver.list_pods(EXECUTOR_ID)
        assert [p.task_id for p in pods] == ["t-crash"]
        if kind == "host":
            step_pid = int((tmp_path / "hostpods" / pods[0].pod_id / "pid-marker").read_text())
            assert _alive(step_pid)
        assert await driver.remove_orphans(EXECUTOR_ID, active_task_ids=set()) == [pods[0].pod_id]
        assert await driver.list_pods(EXECUTOR_ID) == []
        if kind == "host":
            await wait_for(lambda: not _alive(step_pid), timeout=10)
    finally:
        await driver.close()
