"""One scheduling decision for one run, and the fate of stray executor tasks (§3.6).

``schedule_run`` is what the runservice's scheduler loop calls for every active run: it returns
what to write (the updated run, whether to emit a run event) and what to tell executors (tasks to
stop, new tasks to create and push). It does no I/O; the caller applies the decision atomically.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

import attrs

from agola.services.runservice.logic.executors import (
    HEARTBEAT_EXPIRY,
    Load,
    choose_executor,
    executor_gone_reason,
    executor_load,
)
from agola.services.runservice.logic.runnable import advance_run_tasks, tasks_to_run
from agola.services.runservice.logic.transitions import (
    advance_run,
    fail_executor_task,
    run_event_needed,
)
from agola.types.runservice import (
    Executor,
    ExecutorTask,
    ExecutorTaskPhase,
    ExecutorTaskSpec,
    ExecutorTaskStatus,
    ExecutorTaskStepStatus,
    Run,
    RunConfig,
    RunConfigTask,
    RunPhase,
)


@attrs.frozen
class RunSchedule:
    run: Run  # the run to store (equal to the input when nothing changed)
    run_event: bool  # phase or result changed: emit a RunEvent with the write
    stop_tasks: list[ExecutorTask]  # active executor tasks now flagged ``spec.stop``: save + send
    new_tasks: list[ExecutorTask]  # executor tasks to create (if absent) and push
    waiting_for_executor: list[str]  # runnable task ids no executor can take right now
    load: Load  # executor load after this run; pass it to the next run of the same pass
    run_changed: bool  # the run must be written back


def schedule_run(
    run: Run,
    rc: RunConfig,
    executor_tasks: Iterable[ExecutorTask],
    executors: Sequence[Executor],
    now: datetime,
    *,
    load: Mapping[str, int] | None = None,
    heartbeat_expiry: timedelta = HEARTBEAT_EXPIRY,
) -> RunSchedule:
    """Advance ``run`` and pick executors for its runnable tasks.

    ``executor_tasks``: the stored executor tasks of this run. ``load``: executor load from earlier
    runs in the same pass (defaults to what ``executors`` and ``executor_tasks`` say) so that one
    pass over many runs never assigns more tasks to an executor than its limit.
    """
    tasks_of_run = [et for et in executor_tasks if et.spec.run_id == run.id]
    scheduled = {et.id for et in tasks_of_run}
    active = {et.id for et in tasks_of_run if not et.status.phase.is_finished}
    current_load: Load = (
        dict(load) if load is not None else executor_load(executors, tasks_of_run)
    )

    new_run = advance_run(run, rc, active, now)
    event = run_event_needed(run, new_run)

    stop_tasks: list[ExecutorTask] = []
    if new_run.stop:
        for et in tasks_of_run:
            if et.id in active and not et.spec.stop:
                stop_tasks.append(attrs.evolve(et, spec=attrs.evolve(et.spec, stop=True)))

    new_tasks: list[ExecutorTask] = []
    waiting: list[str] = []
    if new_run.phase is RunPhase.RUNNING:
        new_run = advance_run_tasks(new_run, rc, scheduled)
        for rct in tasks_to_run(new_run, rc, scheduled):
            executor = choose_executor(executors, rct, now, current_load, heartbeat_expiry)
            if executor is None:
                waiting.append(rct.id)
                continue
            new_tasks.append(new_executor_task(run.id, rct, executor.id))
            current_load[executor.id] = current_load.get(executor.id, 0) + 1

    return RunSchedule(
        run=new_run,
        run_event=event,
        stop_tasks=stop_tasks,
        new_tasks=new_tasks,
        waiting_for_executor=waiting,
        load=current_load,
        run_changed=new_run != run,
    )


SchedulingView = tuple[object, ...]


def scheduling_view(run: Run) -> SchedulingView:
    """What of a run ``schedule_run`` decides on, given its executor tasks (which it lists
    itself): two versions of a run with the same view get the same decision, so a change that
    leaves the view as it was (a step starting or ending, times, exit codes, fetched logs, a task
    going from not started to running, which only a task with an executor task does) gives the
    runs scheduler nothing to do. A task's status is kept only once finished (its end frees its
    children and may decide the run's result); its archives' fetch state frees its children."""
    return (
        run.phase, run.result, run.stop, run.archived,
        tuple(
            (t.id, t.status if t.status.is_finished else None, t.skip, t.waiting_approval, t.approved,
             t.archives_fetch_finished)
            for t in run.tasks.values()
        ),
    )


def new_executor_task(run_id: str, rct: RunConfigTask, executor_id: str) -> ExecutorTask:
    """The executor task of a run task (same id: at most one executor task per run task)."""
    return ExecutorTask(
        id=rct.id,
        spec=ExecutorTaskSpec(executor_id=executor_id, run_id=run_id),
        status=ExecutorTaskStatus(
            id=rct.id,
            phase=ExecutorTaskPhase.NOT_STARTED,
            setup_step=ExecutorTaskStepStatus(),
            steps=[ExecutorTaskStepStatus() for _ in rct.steps],
        ),
    )


class CleanupKind(enum.StrEnum):
    NONE = "none"
    DELETE = "delete"  # its run left coordination (archived): drop the executor task
    STOP = "stop"  # finished task of a finished run: tell the executor to clean up
    FAIL = "fail"  # its executor is gone: the task can never finish by itself


@attrs.frozen
class Cleanup:
    kind: CleanupKind
    task: ExecutorTask  # the task to store (unchanged for NONE and DELETE)


def executor_task_cleanup(
    et: ExecutorTask,
    run: Run | None,
    executors: Mapping[str, Executor],
    now: datetime,
    *,
    heartbeat_expiry: timedelta = HEARTBEAT_EXPIRY,
) -> Cleanup:
    """What the executor tasks cleaner does with one executor task (``run`` None = not active).

    An unfinished task whose executor was deleted or stopped heartbeating is failed (end times
    set); the failure then reaches the run task through ``apply_executor_task_status``.
    """
    if et.status.phase.is_finished:
        if run is None:
            return Cleanup(CleanupKind.DELETE, et)
        if run.phase.is_finished and not et.spec.stop:
            return Cleanup(CleanupKind.STOP, attrs.evolve(et, spec=attrs.evolve(et.spec, stop=True)))
        return Cleanup(CleanupKind.NONE, et)
    reason = executor_gone_reason(executors.get(et.spec.executor_id), now, heartbeat_expiry)
    if reason is not None:
        return Cleanup(CleanupKind.FAIL, fail_executor_task(et, now, reason))
    return Cleanup(CleanupKind.NONE, et)
