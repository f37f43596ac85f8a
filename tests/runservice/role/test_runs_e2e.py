"""The runservice API end to end with a scripted executor, on embedded storage."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agola.types.runservice import RunPhase, RunResult, RunTaskStatus
from tests.runservice.role.conftest import Instance, create_req, rct
from tests.support.waiting import wait_for


async def run_state(rs: Instance, run_id: str) -> Any:
    return (await rs.c.get_run(run_id)).run


async def wait_run(rs: Instance, run_id: str, cond: Callable[[Any], bool], timeout: float = 15.0) -> Any:
    async def check() -> bool:
        return cond(await run_state(rs, run_id))

    await wait_for(check, timeout)
    return await run_state(rs, run_id)


async def test_dag_run_to_success_is_fetched_and_archived(rs: Instance, make_executor: Callable[..., Any]) -> None:
    ex = await make_executor(rs.url)
    res = await rs.c.create_run(create_req(rct("a", workspace=True), rct("b", "a"), rct("c", "a"), rct("d", "b", "c")))
    run = res.run
    assert run.phase is RunPhase.QUEUED and run.counter == 1
    await rs.c.start_run(run.id)

    # Only the root task is pushed; its spec data is generated from the run config.
    [a] = await ex.wait_tasks(1)
    assert a["id"] == "a" and a["spec"]["run_id"] == run.id
    assert a["spec"]["containers"][0]["image"] == "busybox"
    assert [s["type"] for s in a["spec"]["steps"]] == ["run", "save_to_workspace"]
    await ex.run_task("a")

    tasks = await ex.wait_tasks(3)
    assert {t["id"] for t in tasks[1:]} == {"b", "c"}
    # Children restore the parent's workspace.
    assert tasks[1]["spec"]["workspace_operations"] == [{"task_id": "a", "step": 1}]
    for t in tasks[1:]:
        await ex.run_task(t["id"])
    [d] = (await ex.wait_tasks(4))[3:]
    await ex.run_task(d["id"])

    final = await wait_run(rs, run.id, lambda r: r.archived)
    assert final.phase is RunPhase.FINISHED and final.result is RunResult.SUCCESS
    # The finished tasks were not pushed again to be stopped: there is nothing to stop.
    assert not [tid for tid, t in ex.tasks.items() if t["spec"].get("stop")]
    assert all(t.status is RunTaskStatus.SUCCESS for t in final.tasks.values())
    # Logs and the workspace archive were copied into object storage.
    log = b"".join([c async for c in rs.c.get_log(run.id, "b", step=0)])
    assert log == b"step 0 of b\n"
    setup = b"".join([c async for c in rs.c.get_log(run.id, "a", setup=True)])
    assert setup == b"setup done\n"
    archive = b"".join([c async for c in rs.c.get_archive("a", 1)])
    assert archive == b"archive a 1"
    # Archived runs are listed from the readdb.
    async def listed() -> bool:
        runs, _ = await rs.c.list_runs(phases=["finished"])
        return [r.id for r in runs] == [run.id]
    await wait_for(listed, 10)


async def test_failed_task_fails_the_run_and_skips_children(rs: Instance, make_executor: Callable[..., Any]) -> None:
    ex = await make_executor(rs.url)
    run = (await rs.c.create_run(create_req(rct("a"), rct("b", "a"), rct("c", ("a", ["on_failure"]))))).run
    await rs.c.start_run(run.id)
    [_a] = await ex.wait_tasks(1)
    await ex.run_task("a", "failed")
    [c] = (await ex.wait_tasks(2))[1:]
    assert c["id"] == "c"  # on_failure child runs
    await ex.run_task("c")
    final = await wait_run(rs, run.id, lambda r: r.phase is RunPhase.FINISHED)
    assert final.result is RunResult.FAILED
    assert final.tasks["a"].status is RunTaskStatus.FAILED
    assert final.tasks["b"].status is RunTaskStatus.SKIPPED
    assert final.tasks["c"].status is RunTaskStatus.SUCCESS
