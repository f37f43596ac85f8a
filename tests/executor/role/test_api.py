"""The executor API (§7.2) served to the runservice, the persistent id, push fallback, cleanup."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agola.errors import BadRequest
from agola.services.executor.drivers.base import ContainerSpec, PodSpec
from agola.services.executor.drivers.docker import DockerDriver, DockerDriverConfig
from agola.services.executor.identity import executor_id
from agola.types.runservice import ExecutorTaskStepStatus, RunPhase, RunResult, SaveContent, SaveToWorkspaceStep
from tests.executor.role.conftest import FAST_AGENT, ExecutorInstance, executor_config, run_step, start, task, wait_run
from tests.runservice.role.conftest import Instance
from tests.support.services import BUSYBOX_BIN, BUSYBOX_IMAGE, INTERNAL_AUTH, free_port
from tests.support.waiting import wait_for


def test_executor_id_is_made_once_and_kept(tmp_path: Path) -> None:
    first = executor_id(tmp_path / "data")
    assert executor_id(tmp_path / "data") == first
    assert (tmp_path / "data" / "id").read_text().strip() == first
    (tmp_path / "data" / "id").write_text("../../etc\n")
    with pytest.raises(BadRequest):
        executor_id(tmp_path / "data")


def test_exit_status_zero_survives_the_wire() -> None:
    # Stored executor tasks go through JSON: a step that exited 0 must not come back "no status".
    assert ExecutorTaskStepStatus.from_json(ExecutorTaskStepStatus(exit_status=0).to_json()).exit_status == 0


async def test_logs_and_archives_served_to_the_runservice(rs: Instance, make_executor: Callable[..., Any],
                                                          busybox_image: str) -> None:
    ex = await make_executor(rs.url)
    save = SaveToWorkspaceStep(name="save", contents=[SaveContent(source_dir=".", dest_dir="out", paths=["*.txt"])])
    a = task("a", run_step("echo hello > f.txt; echo logged"), save)
    run_id = await start(rs, a)
    await wait_run(rs, run_id, lambda r: r.phase is RunPhase.FINISHED)

    base = f"{ex.url}/api/v1alpha/executor"
    async with aiohttp.ClientSession(headers=INTERNAL_AUTH) as http:
        async with http.get(f"{base}/logs", params={"taskid": a.id, "step": "0"}) as resp:
            assert resp.status == 200 and resp.headers["Cache-Control"] == "no-cache"
            body = await resp.read()
            assert b"logged" in body and int(resp.headers["Content-Length"]) == len(body)
        async with http.get(f"{base}/logs", params={"taskid": a.id, "setup": "", "follow": ""}) as resp:
            assert resp.status == 200 and b"Pod started." in await resp.read()  # finished: ends at once
        async with http.get(f"{base}/archives", params={"taskid": a.id, "step": "1"}) as resp:
            assert resp.status == 200
            archive = await resp.read()
            assert b"out/f.txt" in archive and int(resp.headers["Content-Length"]) == len(archive)
        for params, status in [
            ({"taskid": a.id, "step": "0", "setup": ""}, 400),  # exactly one of setup/step
            ({"taskid": a.id}, 400),
            ({"taskid": a.id, "step": "x"}, 400),
            ({"taskid": "../../etc", "setup": ""}, 400),
            ({"taskid": a.id, "step": "7"}, 404),
            ({"taskid": "no-such-task", "setup": ""}, 404),
        ]:
            async with http.get(f"{base}/logs", params=params) as resp:
                assert resp.status == status, params
        async with http.get(f"{base}/archives", params={"taskid": a.id, "step": "0"}) as resp:
            assert resp.status == 404  # step 0 saved nothing
        async with http.post(base, data=b"{not json") as resp:
            assert resp.status == 400

    # Once the runservice fetched everything and dropped the task, its local files go too.
    await wait_run(rs, run_id, lambda r: r.archived)
    await wait_for(lambda: not (ex.data_dir / "tasks" / a.id).exists(), 15)


async def test_tasks_are_polled_when_pushes_cannot_reach_the_executor(
        rs: Instance, busybox_image: str, tmp_path: Path) -> None:
    # The advertised URL points nowhere: every push fails, the poll still gets the task.
    text = executor_config(tmp_path / "ex", free_port(), rs.url) + f"  advertiseURL: http://127.0.0.1:{free_port()}\n"
    ex = ExecutorInstance(text, tmp_path / "ex")
    await ex.start()
    try:
        a = task("a", run_step("echo polled"))
        run_id = await start(rs, a)
        run = await wait_run(rs, run_id, lambda r: r.phase is RunPhase.FINISHED)
        assert run.result is RunResult.SUCCESS
    finally:
        await ex.stop()


async def test_orphan_pods_of_this_executor_are_removed(rs: Instance, make_executor: Callable[..., Any],
                                                        busybox_image: str) -> None:
    ex = await make_executor(rs.url)
    driver = DockerDriver(DockerDriverConfig(network="none", busybox_path=BUSYBOX_BIN))
    await driver.setup()
    try:
        # A pod labelled with this executor's id for a task it does not run (and one of another
        # executor, which must be left alone).
        orphan = await driver.create_pod(PodSpec(task_id="gone", executor_id=ex.id,
                                                 containers=(ContainerSpec(image=BUSYBOX_IMAGE),)))
        other_id = f"other-{ex.id}"
        other = await driver.create_pod(PodSpec(task_id="gone", executor_id=other_id,
                                                containers=(ContainerSpec(image=BUSYBOX_IMAGE),)))
        try:
            async def orphan_removed() -> bool:
                return not await driver.list_pods(ex.id)

            await wait_for(orphan_removed, 15)
            assert [p.pod_id for p in await driver.list_pods(other_id)] == [other.id]
        finally:
            await other.remove()
            await orphan.remove()
    finally:
        await driver.close()


async def test_graceful_stop_stops_running_tasks(rs: Instance, make_executor: Callable[..., Any],
                                                 busybox_image: str) -> None:
    ex: ExecutorInstance = await make_executor(rs.url)
    a = task("a", run_step("echo started; sleep 300"))
    run_id = await start(rs, a)
    await wait_run(rs, run_id, lambda r: r.tasks[a.id].steps[0].phase.value == "running")
    await ex.stop()
    run = await wait_run(rs, run_id, lambda r: r.tasks[a.id].status.value == "stopped")
    assert run.tasks[a.id].steps[0].phase.value == "stopped"
    assert FAST_AGENT.stop_grace > 0


async def test_pushed_tasks_beyond_the_limit_wait(rs: Instance, make_executor: Callable[..., Any],
                                                  busybox_image: str) -> None:
    # Pushed straight to the executor (as an over-eager runservice would): the executor itself
    # never runs more than activeTasksLimit tasks.
    ex: ExecutorInstance = await make_executor(rs.url, limit=1)

    def pushed(task_id: str, *, phase: str = "notstarted", stop: bool = False) -> dict[str, Any]:
        return {"id": task_id, "status": {"phase": phase, "setup_step": {}, "steps": [{}]},
                "spec": {"executor_id": ex.id, "run_id": "r1", "stop": stop,
                         "containers": [{"image": BUSYBOX_IMAGE}],
                         "steps": [{"type": "run", "command": "sleep 300"}]}}

    async with aiohttp.ClientSession(headers=INTERNAL_AUTH) as http:
        async def push(body: dict[str, Any]) -> Any:
            async with http.post(f"{ex.url}/api/v1alpha/executor", json=body) as resp:
                assert resp.status == 200
                return (await resp.json())["result"]

        assert await push(pushed("t-first")) == "started"
        assert await push(pushed("t-second")) == "busy"
        assert await push(pushed("t-first")) == "ignored"  # delivered twice, started once
        assert ex.role is not None and ex.role.agent is not None
        assert ex.role.agent.active_tasks() == 1
        assert await push(pushed("t-first", stop=True)) == "stopping"
        await wait_for(lambda: ex.role.agent.active_tasks() == 0, 15)  # type: ignore[union-attr]
        assert await push(pushed("t-second")) == "started"
        assert await push(pushed("t-lost", phase="running")) == "lost"  # unknown here: reported failed
        async with http.post(f"{ex.url}/api/v1alpha/executor",
                             json={**pushed("t-x"), "spec": {**pushed("t-x")["spec"], "executor_id": "someone-else"}}) as resp:
            assert resp.status == 400
