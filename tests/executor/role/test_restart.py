"""An executor process killed while it runs a task: once restarted (same data dir, so the same id)
it reports the task it no longer knows as failed and removes the pod the killed process left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agola.services.executor.agent import LOST_TASK_ERROR
from agola.services.executor.drivers.docker import DockerDriver, DockerDriverConfig
from agola.types.runservice import RunPhase, RunResult, RunTaskStatus
from tests.executor.role.conftest import FAST_AGENT, executor_config, read_log, run_step, start, task, wait_run
from tests.runservice.role.conftest import Instance
from tests.support.services import BUSYBOX_BIN, free_port
from tests.support.waiting import wait_for

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from agola.config import load_config
    from agola.services.executor.agent import AgentOptions
    from agola.services.executor.role import ExecutorRole
    from agola.services.role import RoleHost

    async def main():
        config = load_config(sys.argv[1])
        options = AgentOptions(heartbeat_interval=0.5, poll_interval=0.5, status_interval=0.5)
        host = RoleHost([ExecutorRole(config, options=options)])
        await host.start()
        await asyncio.Event().wait()

    asyncio.run(main())
    """
)


async def test_restarted_executor_fails_the_lost_task_and_removes_its_pod(
        rs: Instance, make_executor: Callable[..., Any], busybox_image: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "executor"
    port = free_port()
    config = tmp_path / "executor.yml"
    config.write_text(executor_config(data_dir, port, rs.url))
    repo = Path(__file__).resolve().parents[3]
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(config)], cwd=repo,
                             env={**os.environ, "PYTHONPATH": str(repo)})
    try:
        a = task("a", run_step("echo running; sleep 300"))
        run_id = await start(rs, a)
        await wait_run(rs, run_id, lambda r: r.tasks[a.id].steps[0].phase.value == "running")
        await wait_for(lambda: _contains(rs, run_id, a.id, "running"), 30)
    finally:
        child.send_signal(signal.SIGKILL)  # no cleanup at all: the pod outlives the executor
        child.wait()
    executor_id = (data_dir / "id").read_text().strip()
    assert await _pods(executor_id), "the killed executor left its pod"

    restarted = await make_executor(rs.url, data_dir=data_dir, port=port)
    assert restarted.id == executor_id
    assert FAST_AGENT.heartbeat_interval < 60  # well before the runservice would expire it

    run = await wait_run(rs, run_id, lambda r: r.phase is RunPhase.FINISHED)
    assert run.result is RunResult.FAILED
    lost = run.tasks[a.id]
    assert lost.status is RunTaskStatus.FAILED
    assert lost.steps[0].phase.value == "failed" and lost.steps[0].end_time is not None
    for et, _ in await rs.c.executor_tasks(executor_id):  # unless already fetched and deleted
        assert et.status.fail_error == LOST_TASK_ERROR
    # The step log written before the crash is still served (and archived by the runservice).
    assert "running" in await read_log(rs, run_id, a.id, step=0)
    assert await wait_for(lambda: _no_pods(executor_id), 15)


async def _contains(rs: Instance, run_id: str, task_id: str, text: str) -> bool:
    return text in await read_log(rs, run_id, task_id, step=0)


async def _pods(executor_id: str) -> list[Any]:
    driver = DockerDriver(DockerDriverConfig(network="none", busybox_path=BUSYBOX_BIN))
    await driver.setup()
    try:
        return await driver.list_pods(executor_id)
    finally:
        await driver.close()


async def _no_pods(executor_id: str) -> bool:
    return not await _pods(executor_id)
