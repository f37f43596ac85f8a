"""The end of a run on its last task's final report: the task's status and the run's result are
one write, the run's end the next one, both done before the report is answered."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agola.services.runservice.store import RUN_EVENTS_KEY, RUNS_PREFIX, TASKS_PREFIX
from agola.types.runservice import ExecutorTask, Run, RunEvent, RunPhase, RunResult, RunTaskStatus
from tests.runservice.role.conftest import Instance, create_req, rct


async def test_the_last_report_writes_the_result_with_the_task_then_the_end(
        rs: Instance, make_executor: Callable[..., Any]) -> None:
    assert rs.role is not None and rs.role.coord is not None
    coord = rs.role.coord
    ex = await make_executor(rs.url)
    run = (await rs.c.create_run(create_req(rct("a"), rct("b", "a")))).run
    await rs.c.start_run(run.id)
    await ex.run_task((await ex.wait_tasks(1))[0]["id"])
    [_, b] = await ex.wait_tasks(2)

    since = (await coord.range(RUNS_PREFIX)).revision + 1
    await ex.run_task(b["id"])  # returns once the final report is answered
    stored = await rs.c.get_run(run.id)
    assert stored.run.phase is RunPhase.FINISHED and stored.run.result is RunResult.SUCCESS

    # Every version of the run written since b's report, and the run events, in order.
    versions: list[Run] = []
    events: list[RunEvent] = []
    async with coord.watch("scheduler/", start_revision=since) as watcher:
        async for ev in watcher:
            if ev.kv.key == RUNS_PREFIX + run.id:
                versions.append(Run.from_json(ev.kv.value))
            elif ev.kv.key == RUN_EVENTS_KEY:
                events.append(RunEvent.from_json(ev.kv.value))
            if events and events[-1].run_id == run.id and events[-1].phase is RunPhase.FINISHED:
                break
    shown = [(v.tasks["b"].status, v.phase, v.result) for v in versions]
    assert shown[:3] == [
        (RunTaskStatus.RUNNING, RunPhase.RUNNING, RunResult.UNKNOWN),
        (RunTaskStatus.SUCCESS, RunPhase.RUNNING, RunResult.SUCCESS),  # no version without the result
        (RunTaskStatus.SUCCESS, RunPhase.FINISHED, RunResult.SUCCESS),
    ]
    assert [(e.phase, e.result) for e in events if e.run_id == run.id] == [
        (RunPhase.RUNNING, RunResult.SUCCESS), (RunPhase.FINISHED, RunResult.SUCCESS)]


async def test_a_step_report_stores_the_executor_task_and_the_run_in_one_commit(
        rs: Instance, make_executor: Callable[..., Any]) -> None:
    """An executor reports every step's start and end: the executor task and its run change at
    the same revision (one transaction), the run showing the step as reported."""
    assert rs.role is not None and rs.role.coord is not None
    coord = rs.role.coord
    ex = await make_executor(rs.url)
    run = (await rs.c.create_run(create_req(rct("a", steps=2)))).run
    await rs.c.start_run(run.id)
    [a] = await ex.wait_tasks(1)

    await ex.report(a["id"], "running", steps=["success", "running"])
    task_kv = await coord.get(TASKS_PREFIX + a["id"])
    run_kv = await coord.get(RUNS_PREFIX + run.id)
    assert task_kv is not None and run_kv is not None
    assert task_kv.mod_revision == run_kv.mod_revision
    steps = Run.from_json(run_kv.value).tasks[a["id"]].steps
    assert [s.phase.value for s in steps] == ["success", "running"]
    assert ExecutorTask.from_json(task_kv.value).status.steps[1].phase.value == "running"
