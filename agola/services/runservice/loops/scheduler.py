"""The runs scheduler (spec §3.6 ``scheduleRun`` for every active run) and the executor tasks
cleaner / task updater that keep run tasks in step with their executor tasks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from agola.errors import Conflict
from agola.services.runservice import logic
from agola.services.runservice.core import RunserviceCore
from agola.services.runservice.logic.executors import executor_load, has_capacity
from agola.services.runservice.logic.scheduling import CleanupKind
from agola.services.runservice.store import StoredRun
from agola.types.runservice import Executor, ExecutorTask
from agola.util.log import get_logger

log = get_logger(__name__)


class RunsScheduler:
    """Advance every active run and hand its runnable tasks to executors.

    Runs under the ``runsscheduler`` lock: one instance decides at a time, so executor limits hold
    across instances; executor tasks are created with create-revision 0, so a run task never gets
    two executor tasks whatever happens.
    """

    name = "runsscheduler"
    lock = "runsscheduler"

    def __init__(self, core: RunserviceCore) -> None:
        self.core = core
        # Run id -> what its last decision was taken on (its mod revision, its executor tasks'),
        # for the runs whose decision was to do nothing but wait for an executor for some tasks
        # (``waiting``) or nothing at all: the same inputs give the same decision (for a waiting
        # run, as long as no executor has room), so such a run is not decided on again.
        self._idle: dict[str, tuple[int, frozenset[tuple[str, int]], bool]] = {}

    async def run_once(self) -> None:
        store = self.core.store
        executors = await store.list_executors()
        by_id = {e.id: e for e in executors}
        tasks = await store.list_executor_tasks()
        ets = [et for et, _ in tasks]
        revs = {et.id: rev for et, rev in tasks}
        of_run: dict[str, list[tuple[ExecutorTask, int]]] = {}
        for et, rev in tasks:
            of_run.setdefault(et.spec.run_id, []).append((et, rev))
        load = executor_load(executors, ets)
        now = self.core.now()
        idle, self._idle = self._idle, {}
        # Decisions first, in run order (each run's assignments count against the executors'
        # limits for the next runs), then the writes of all runs at once: the coordination batches
        # concurrent transactions, so a pass over many runs costs about one commit, not one each.
        decided: list[tuple[StoredRun, logic.RunSchedule]] = []
        for stored in sorted(await store.list_active_runs(), key=lambda s: s.run.id):
            run = stored.run
            if run.archived:
                continue
            inputs = (stored.revision, frozenset((et.id, rev) for et, rev in of_run.get(run.id, ())))
            last = idle.get(run.id)
            if last is not None and last[:2] == inputs and not (last[2] and _room(executors, load)):
                self._idle[run.id] = last
                continue
            rc = await store.get_run_config(run.id)
            if rc is None:
                log.warning("run without run config", run=run.id)
                continue
            sched = logic.schedule_run(
                run, rc, [et for et, _ in of_run.get(run.id, ())], executors, now, load=load,
                heartbeat_expiry=self.core.options.heartbeat_expiry,
            )
            if _does_nothing(sched):
                self._idle[run.id] = (*inputs, bool(sched.waiting_for_executor))
            else:
                decided.append((stored, sched))
            load = sched.load
        await asyncio.gather(*(self._apply(stored, sched, by_id, revs) for stored, sched in decided))

    async def _apply(
        self, stored: StoredRun, sched: logic.RunSchedule, by_id: dict[str, Executor], revs: dict[str, int]
    ) -> None:
        """Store one run's schedule, then push its executor tasks (a conflict: the next pass)."""
        store = self.core.store
        if sched.run_changed or sched.run_event:
            try:
                await store.put_run(sched.run, stored.revision, event=sched.run_event)
            except Conflict:
                self.core.wake()  # changed under us: look again soon
                return
        pushes: list[Awaitable[bool]] = []
        for et in sched.stop_tasks:
            try:
                revs[et.id] = await store.put_executor_task(et, revs[et.id])
            except (Conflict, KeyError):
                continue
            pushes.append(self.core.push_task(et, by_id.get(et.spec.executor_id)))
        for et in await store.create_executor_tasks(sched.new_tasks):
            pushes.append(self.core.push_task(et, by_id.get(et.spec.executor_id), sched.run))
        if pushes:
            await asyncio.gather(*pushes, return_exceptions=True)


def _does_nothing(sched: logic.RunSchedule) -> bool:
    """Nothing to write or push (maybe tasks waiting for an executor)."""
    return not (sched.run_changed or sched.run_event or sched.stop_tasks or sched.new_tasks)


def _room(executors: list[Executor], load: dict[str, int]) -> bool:
    """Some executor could take a task (whether alive and suitable is for the decision)."""
    return any(has_capacity(e, load) for e in executors)


class ExecutorTasksCleaner:
    """Stray executor tasks: delete those of runs no longer active, mark the finished tasks of
    finished runs stopped, fail the tasks whose executor is gone."""

    name = "executortaskscleaner"
    lock = "executortaskscleaner"

    def __init__(self, core: RunserviceCore) -> None:
        self.core = core

    async def run_once(self) -> None:
        store = self.core.store
        executors = {e.id: e for e in await store.list_executors()}
        runs = {s.run.id: s.run for s in await store.list_active_runs()}
        now = self.core.now()
        for et, rev in await store.list_executor_tasks():
            cleanup = logic.executor_task_cleanup(
                et, runs.get(et.spec.run_id), executors, now, heartbeat_expiry=self.core.options.heartbeat_expiry
            )
            if cleanup.kind is CleanupKind.DELETE:
                await store.delete_executor_task(et.id)
            elif cleanup.kind is CleanupKind.STOP:
                # Stored, not pushed: the task is finished, and our executor removes a task's pod
                # at its end (a finished task's stop is nothing to it); a poll still shows it.
                try:
                    await store.put_executor_task(cleanup.task, rev)
                except Conflict:
                    continue
            elif cleanup.kind is CleanupKind.FAIL:
                try:
                    await store.put_executor_task(cleanup.task, rev)
                except Conflict:
                    continue
                log.info("executor task failed: executor gone", task=et.id, executor=et.spec.executor_id,
                         reason=cleanup.task.status.fail_error)
                await self.core.apply_task_status(cleanup.task)


class TaskUpdater:
    """Re-apply every executor task status to its run (catches updates lost to a crash)."""

    name = "taskupdater"
    lock = "taskupdater"

    def __init__(self, core: RunserviceCore) -> None:
        self.core = core

    async def run_once(self) -> None:
        for et, _ in await self.core.store.list_executor_tasks():
            await self.core.apply_task_status(et)


