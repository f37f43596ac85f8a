"""Runs created through the runservice API, executed by a real executor role on Docker."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime
from typing import Any

from agola.services.executor.drivers.docker import DockerDriver, DockerDriverConfig
from agola.types.runservice import (
    RestoreCacheStep,
    RestoreWorkspaceStep,
    RunPhase,
    RunResult,
    RunTaskStatus,
    SaveCacheStep,
    SaveContent,
    SaveToWorkspaceStep,
)
from tests.executor.role.conftest import read_log, run_step, start, task, wait_run
from tests.runservice.role.conftest import Instance
from tests.support.services import BUSYBOX_BIN
from tests.support.waiting import wait_for

SAVE_ALL = SaveToWorkspaceStep(name="save", contents=[SaveContent(source_dir=".", dest_dir=".", paths=["**"])])


def finished(run: Any) -> bool:
    return run.phase is RunPhase.FINISHED


async def test_dag_passing_a_workspace_succeeds(rs: Instance, make_executor: Callable[..., Any],
                                                busybox_image: str) -> None:
    ex = await make_executor(rs.url, labels={"pool": "role-tests"})
    a = task("a", run_step("echo from-a > a.txt"), SAVE_ALL)
    b = task("b", RestoreWorkspaceStep(name="restore", dest_dir="."),
             run_step("cat a.txt; echo from-b > b.txt"), SAVE_ALL, parents=(a.id,))
    c = task("c", RestoreWorkspaceStep(name="restore", dest_dir="."),
             run_step("cat a.txt b.txt"), parents=(b.id,))
    run_id = await start(rs, a, b, c)

    run = await wait_run(rs, run_id, finished)
    assert run.result is RunResult.SUCCESS
    assert {t.status for t in run.tasks.values()} == {RunTaskStatus.SUCCESS}
    assert [s.exit_status for s in run.tasks[c.id].steps] == [0, 0]
    # The last task saw the files of both ancestors, restored from the runservice.
    assert (await read_log(rs, run_id, c.id, step=1)).split() == ["from-a", "from-b"]
    assert "Pod started." in await read_log(rs, run_id, a.id, setup=True)

    # The heartbeat registered the executor with what it offers.
    [executor] = [e for e in await rs.c.list_executors() if e.id == ex.id]
    assert executor.listen_url == ex.url
    assert executor.labels == {"pool": "role-tests"}
    assert executor.active_tasks_limit == 2 and executor.archs


async def test_failing_step_fails_the_run(rs: Instance, make_executor: Callable[..., Any], busybox_image: str) -> None:
    await make_executor(rs.url)
    a = task("a", run_step("echo before"), run_step("echo broken >&2; exit 3"), run_step("echo never"))
    child = task("child", run_step("echo child"), parents=(a.id,))
    run_id = await start(rs, a, child)

    run = await wait_run(rs, run_id, finished)
    assert run.result is RunResult.FAILED
    failed = run.tasks[a.id]
    assert failed.status is RunTaskStatus.FAILED
    assert [s.phase.value for s in failed.steps] == ["success", "failed", "notstarted"]
    assert failed.steps[1].exit_status == 3
    assert "broken" in await read_log(rs, run_id, a.id, step=1)
    assert run.tasks[child.id].status is RunTaskStatus.SKIPPED


async def test_stop_mid_step_stops_the_task_and_ends_the_followed_log(
        rs: Instance, make_executor: Callable[..., Any], busybox_image: str) -> None:
    ex = await make_executor(rs.url)
    a = task("a", run_step("echo started; sleep 300"), run_step("echo never"))
    run_id = await start(rs, a)

    await wait_run(rs, run_id, lambda r: r.tasks[a.id].steps[0].phase.value == "running")
    # Follow the running step's log through the runservice (relayed live from the executor).
    follower = rs.c.get_log(run_id, a.id, step=0, follow=True)
    received = b""
    async for chunk in follower:
        received += chunk
        if b"started" in received:
            break
    await rs.c.stop_run(run_id)
    async for chunk in follower:  # the follow ends when the step does
        received += chunk
    assert b"Task stopped." in received

    run = await wait_run(rs, run_id, finished)
    assert run.result is RunResult.STOPPED
    assert run.tasks[a.id].status is RunTaskStatus.STOPPED
    assert [s.phase.value for s in run.tasks[a.id].steps] == ["stopped", "notstarted"]
    # The pod is gone.
    driver = DockerDriver(DockerDriverConfig(network="none", busybox_path=BUSYBOX_BIN))
    await driver.setup()
    try:
        assert await wait_for(lambda: _no_pods(driver, ex.id), 15)
    finally:
        await driver.close()


async def _no_pods(driver: DockerDriver, executor_id: str) -> bool:
    return not await driver.list_pods(executor_id)


async def test_active_tasks_limit_is_respected(rs: Instance, make_executor: Callable[..., Any],
                                               busybox_image: str) -> None:
    ex = await make_executor(rs.url, limit=1)
    tasks = [task(f"t{i}", run_step("sleep 0.3; echo done")) for i in range(3)]
    run_id = await start(rs, *tasks)

    seen: list[int] = []

    async def sample() -> bool:
        assert ex.role is not None and ex.role.agent is not None
        seen.append(ex.role.agent.active_tasks())
        run = (await rs.c.get_run(run_id)).run
        return run.phase is RunPhase.FINISHED

    await wait_for(sample, 60, interval=0.01)
    run = (await rs.c.get_run(run_id)).run
    assert run.result is RunResult.SUCCESS
    assert max(seen) == 1
    # The tasks ran one after the other.
    spans: list[tuple[datetime, datetime]] = []
    for t in run.tasks.values():
        assert t.start_time is not None and t.end_time is not None
        spans.append((t.start_time, t.end_time))
    spans.sort()
    assert all(prev[1] <= nxt[0] for prev, nxt in itertools.pairwise(spans))


async def test_host_driver_runs_the_same_dag(rs: Instance, make_executor: Callable[..., Any]) -> None:
    await make_executor(rs.url, driver="host")
    a = task("a", run_step("echo from-a > a.txt"), SAVE_ALL)
    b = task("b", RestoreWorkspaceStep(name="restore", dest_dir="."),
             run_step("cat a.txt; echo from-b > b.txt"), SAVE_ALL, parents=(a.id,))
    c = task("c", RestoreWorkspaceStep(name="restore", dest_dir="."),
             run_step("cat a.txt b.txt"), parents=(b.id,))
    run_id = await start(rs, a, b, c)

    run = await wait_run(rs, run_id, finished)
    assert run.result is RunResult.SUCCESS
    assert (await read_log(rs, run_id, c.id, step=1)).split() == ["from-a", "from-b"]


async def test_cache_saved_by_one_task_is_restored_by_another(rs: Instance, make_executor: Callable[..., Any],
                                                               busybox_image: str) -> None:
    await make_executor(rs.url)
    a = task("a", run_step("mkdir deps && echo v1 > go.sum && echo cached > deps/lib"),
             SaveCacheStep(name="save", key='deps-{{ md5sum "go.sum" }}',
                           contents=[SaveContent(source_dir="deps", dest_dir="deps", paths=["**"])]))
    b = task("b", RestoreCacheStep(name="restore", keys=["deps-"], dest_dir="."), run_step("cat deps/lib"),
             parents=(a.id,))
    run_id = await start(rs, a, b)
    run = await wait_run(rs, run_id, finished)
    assert run.result is RunResult.SUCCESS
    assert "cache key \"deps-" in await read_log(rs, run_id, a.id, step=1)
    assert "cached" in await read_log(rs, run_id, b.id, step=1)
