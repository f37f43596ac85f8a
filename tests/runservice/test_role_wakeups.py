"""Which runservice loops a change wakes, and how soon: the runs scheduler (it starts tasks) at
once for every change of a run (not for a new queued run, nor for a change of nothing it decides
on: a step's or a task's start), the fetcher, archiver and executor
tasks cleaner once per burst of changes (``LAZY_WAKE`` later). The loops are real ``LoopRunner``s with counting jobs; the changes
are writes to an embedded coordination, seen through the role's watch."""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path

import pytest

from agola.config import parse_config
from agola.services.runservice import role as rs_role
from agola.services.runservice.loops import ExecutorTasksCleaner, Fetcher, FinishedRunsArchiver, RunsScheduler
from agola.services.runservice.role import RunserviceRole
from agola.services.runservice.store import RUNS_PREFIX, TASKS_PREFIX
from agola.storage.coord.embedded import EmbeddedCoordination
from agola.types.runservice import ExecutorTaskPhase
from agola.util.aio import cancel_and_wait
from agola.util.loops import LoopRunner
from tests.support.waiting import wait_for


class CountingJob:
    def __init__(self, name: str) -> None:
        self.name = name
        self.passes = 0

    async def run_once(self) -> None:
        self.passes += 1

    def seen(self, passes: int) -> bool:
        return self.passes == passes


NAMES = (RunsScheduler.name, Fetcher.name, FinishedRunsArchiver.name, ExecutorTasksCleaner.name)


def counting_role() -> tuple[RunserviceRole, dict[str, CountingJob]]:
    role = RunserviceRole(parse_config("runservice: {}\n"))
    jobs = {name: CountingJob(name) for name in NAMES}
    role._runners = {name: LoopRunner(job, 3600) for name, job in jobs.items()}
    for runner in role._runners.values():
        runner.start()
    return role, jobs


async def test_a_burst_of_changes_wakes_the_runs_scheduler_each_time_and_the_others_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rs_role, "LAZY_WAKE", 2.0)  # longer than the burst, even on a loaded machine
    role, jobs = counting_role()
    names = NAMES
    try:
        await wait_for(lambda: all(j.passes == 1 for j in jobs.values()), 10, message="the first passes")
        scheduler = jobs[RunsScheduler.name]
        for i in range(5):  # five changes, each seen by the runs scheduler before the next
            role.wake()
            await wait_for(partial(scheduler.seen, 2 + i), 10, message="a runs scheduler pass per change")
        lazy = [jobs[n] for n in names[1:]]
        await wait_for(lambda: all(j.passes >= 2 for j in lazy), 10, message="a pass of each other loop")
        assert [j.passes for j in lazy] == [2, 2, 2] and scheduler.passes == 6
        role.wake()  # a later change: another lazy pass
        await wait_for(lambda: all(j.passes >= 3 for j in lazy), 10, message="one more pass of each")
        assert [j.passes for j in lazy] == [3, 3, 3]
    finally:
        await role.serving_stopping()  # stops the runners and the pending wake-up


def queued_run(run_id: str) -> bytes:
    from agola.types.runservice import Run, RunPhase

    return Run(id=run_id, name="run", group="/project/p1/branch/master", phase=RunPhase.QUEUED).to_json_bytes()


async def test_executor_task_writes_wake_the_lazy_loops_run_writes_the_runs_scheduler_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rs_role, "LAZY_WAKE", 0.05)
    role, jobs = counting_role()
    coord = await EmbeddedCoordination.open(tmp_path / "coord", "runservice/")
    role.coord = coord
    follower = asyncio.create_task(role._follow_changes())
    await asyncio.sleep(0)  # its first step opens the watch ("from now on"), before our first write
    scheduler, fetcher = jobs[RunsScheduler.name], jobs[Fetcher.name]
    try:
        await wait_for(lambda: all(j.passes == 1 for j in jobs.values()), 10, message="the first passes")
        # A new queued run: nothing for the runs scheduler until it starts (lazy loops only).
        await coord.put(RUNS_PREFIX + "r1", queued_run("r1"))  # (also proves that the watch is in place)
        await wait_for(partial(fetcher.seen, 2), 10, message="a fetcher pass for the new run")
        assert scheduler.passes == 1  # woken, it would have run before the lazy pass
        await coord.put(RUNS_PREFIX + "r1", b"{}")  # a change of the run (e.g. its start)
        await wait_for(partial(scheduler.seen, 2), 10, message="a runs scheduler pass for the run write")
        await wait_for(partial(fetcher.seen, 3), 10, message="and a fetcher pass")
        await coord.put(TASKS_PREFIX + "t1", b"{}")  # a task status stored: its run write follows
        await wait_for(partial(fetcher.seen, 4), 10, message="a fetcher pass for the task write")
        assert scheduler.passes == 2  # woken, it would have run before the lazy pass
    finally:
        await cancel_and_wait([follower])
        await role.serving_stopping()
        await coord.close()


def running_run(run_id: str, *, step: str = "notstarted", task: str = "running") -> bytes:
    from agola.types.runservice import Run, RunPhase, RunTask, RunTaskStatus, RunTaskStep

    steps = [RunTaskStep(phase=ExecutorTaskPhase(step))]
    t1 = RunTask(id="t1", status=RunTaskStatus(task), steps=steps)
    return Run(id=run_id, name="run", group="/project/p1/branch/master", phase=RunPhase.RUNNING,
               tasks={"t1": t1}).to_json_bytes()


async def test_run_writes_that_change_nothing_the_runs_scheduler_decides_on_wake_only_the_lazy_loops(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A step starting or ending, a task starting: the runs scheduler would decide the same, so
    only the lazy loops are woken; a task's end (it may free children, end the run) wakes it."""
    monkeypatch.setattr(rs_role, "LAZY_WAKE", 0.05)
    role, jobs = counting_role()
    coord = await EmbeddedCoordination.open(tmp_path / "coord", "runservice/")
    role.coord = coord
    follower = asyncio.create_task(role._follow_changes())
    await asyncio.sleep(0)  # its first step opens the watch, before our first write
    scheduler, fetcher = jobs[RunsScheduler.name], jobs[Fetcher.name]
    try:
        await wait_for(lambda: all(j.passes == 1 for j in jobs.values()), 10, message="the first passes")
        await coord.put(RUNS_PREFIX + "r1", running_run("r1", task="notstarted"))  # seen first: wakes
        await wait_for(partial(scheduler.seen, 2), 10, message="a runs scheduler pass for a run first seen")
        await wait_for(partial(fetcher.seen, 2), 10, message="and a fetcher pass")
        await coord.put(RUNS_PREFIX + "r1", running_run("r1"))  # the task started
        await wait_for(partial(fetcher.seen, 3), 10, message="a fetcher pass for the task's start")
        await coord.put(RUNS_PREFIX + "r1", running_run("r1", step="running"))  # its step started
        await wait_for(partial(fetcher.seen, 4), 10, message="a fetcher pass for the step's start")
        assert scheduler.passes == 2  # woken, it would have run before the lazy passes
        await coord.put(RUNS_PREFIX + "r1", running_run("r1", step="success", task="success"))
        await wait_for(partial(scheduler.seen, 3), 10, message="a runs scheduler pass for the task's end")
    finally:
        await cancel_and_wait([follower])
        await role.serving_stopping()
        await coord.close()
