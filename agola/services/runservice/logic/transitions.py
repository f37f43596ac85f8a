"""Run phase/result transitions and run task updates from executor task statuses (§3.6).

``advance_run`` is the only place deciding a started run's result and its end.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import attrs

from agola.errors import BadRequest
from agola.services.runservice.logic.run_tasks import mark_nothing_to_fetch, with_task
from agola.types.runservice import (
    ExecutorTask,
    ExecutorTaskPhase,
    ExecutorTaskStepStatus,
    Run,
    RunConfig,
    RunPhase,
    RunResult,
    RunTaskStatus,
    RunTaskStep,
)


def change_phase(run: Run, phase: RunPhase, now: datetime) -> Run:
    """Set the phase with its timestamps: ``running`` starts the clock, finished phases stop it."""
    run = attrs.evolve(run, phase=phase)
    if phase is RunPhase.RUNNING:
        run = attrs.evolve(run, start_time=now)
    if phase.is_finished:
        run = attrs.evolve(run, end_time=now)
    return run


def advance_run(run: Run, rc: RunConfig, active: Collection[str], now: datetime) -> Run:
    """Decide the result of a running run, then its end. ``active`` = ids of unfinished executor
    tasks of the run.

    * a failed task whose config doesn't ``ignore_failure`` makes the result ``failed``, and so
      does a task ``stopped`` without a stop of the run (an executor shut down while it ran);
    * otherwise all tasks finished makes it ``success`` (and nothing more this pass, so the
      result and the end are two distinct run events, as in the reference);
    * otherwise a requested stop makes it ``stopped``;
    * once a result is set, all tasks finished and no executor task active: phase ``finished``.

    A run in a finished phase gets the logs and archives of its never started tasks marked as
    fetched (nothing to fetch), so it can be archived. The reference did this only when a result
    was set, so cancelled runs (result ``unknown``) were never archived: quirk 7, fixed.
    """
    if not run.result.is_set and run.phase is RunPhase.RUNNING:
        for task in run.tasks.values():
            if task.status is RunTaskStatus.FAILED and not rc.tasks[task.id].ignore_failure:
                run = attrs.evolve(run, result=RunResult.FAILED)
                break
            # A task stopped although nobody stopped the run (its executor shut down while it
            # ran) did not do its work: the run failed, it did not succeed.
            if task.status is RunTaskStatus.STOPPED and not run.stop:
                run = attrs.evolve(run, result=RunResult.FAILED)
                break

    if not run.result.is_set and run.phase is RunPhase.RUNNING:
        if run.tasks_finished:
            return attrs.evolve(run, result=RunResult.SUCCESS)
        if run.stop:
            run = attrs.evolve(run, result=RunResult.STOPPED)

    if run.result.is_set and run.tasks_finished and not run.phase.is_finished and not active:
        run = change_phase(run, RunPhase.FINISHED, now)

    if run.phase.is_finished:
        run = mark_unstarted_tasks_fetched(run)
    return run


def mark_unstarted_tasks_fetched(run: Run) -> Run:
    for task in list(run.tasks.values()):
        if task.status is RunTaskStatus.NOT_STARTED and not (
            task.logs_fetch_finished and task.archives_fetch_finished
        ):
            run = with_task(run, mark_nothing_to_fetch(task))
    return run


def run_event_needed(before: Run, after: Run) -> bool:
    """Phase or result changed: subscribers (notification, UI) must hear about it."""
    return before.phase is not after.phase or before.result is not after.result


def archivable(run: Run) -> bool:
    """A finished run (any finished phase, cancelled included) whose logs and archives are all
    in object storage may move from coordination to the datamanager."""
    return run.phase.is_finished and all(
        t.logs_fetch_finished and t.archives_fetch_finished for t in run.tasks.values()
    )


# executor phase -> run task statuses it may follow; anything else is a stale or bogus update.
_ALLOWED_PREVIOUS: dict[ExecutorTaskPhase, frozenset[RunTaskStatus]] = {
    ExecutorTaskPhase.NOT_STARTED: frozenset({RunTaskStatus.NOT_STARTED}),
    ExecutorTaskPhase.CANCELLED: frozenset({RunTaskStatus.CANCELLED, RunTaskStatus.NOT_STARTED}),
    ExecutorTaskPhase.RUNNING: frozenset({RunTaskStatus.RUNNING, RunTaskStatus.NOT_STARTED}),
    ExecutorTaskPhase.STOPPED: frozenset({RunTaskStatus.STOPPED, RunTaskStatus.RUNNING}),
    ExecutorTaskPhase.SUCCESS: frozenset({RunTaskStatus.SUCCESS, RunTaskStatus.RUNNING}),
    ExecutorTaskPhase.FAILED: frozenset(
        {RunTaskStatus.FAILED, RunTaskStatus.NOT_STARTED, RunTaskStatus.RUNNING}
    ),
}


def receive_executor_task_status(
    stored: ExecutorTask, reported: ExecutorTask, executor_id: str
) -> ExecutorTask:
    """The stored executor task after an executor's status report: the status is replaced, the
    stored spec (executor, run, stop flag) kept. Only the owning executor may report."""
    if reported.id != stored.id:
        raise BadRequest(f"reported task id {reported.id!r} does not match {stored.id!r}")
    if stored.spec.executor_id != executor_id:
        raise BadRequest(f"task {stored.id} is not assigned to executor {executor_id}")
    if len(reported.status.steps) != len(stored.status.steps):
        raise BadRequest(
            f"task {stored.id} has {len(stored.status.steps)} steps, "
            f"the report has {len(reported.status.steps)}"
        )
    if stored.status.phase.is_finished and not reported.status.phase.is_finished:
        # A finished status is final: e.g. a task failed because its executor vanished, which
        # then came back still running it. Its ``spec.stop`` tells it to stop.
        return stored
    return attrs.evolve(stored, status=reported.status)


def apply_executor_task_status(run: Run, et: ExecutorTask) -> tuple[Run, bool]:
    """Copy an executor task's status onto its run task. Returns the run and whether the update
    was accepted (a phase not allowed after the current task status is ignored; the caller logs
    it). Unknown task ids are not accepted either."""
    task = run.tasks.get(et.id)
    if task is None:
        return run, False
    status = et.status
    if task.status not in _ALLOWED_PREVIOUS[status.phase]:
        return run, False
    steps = list(task.steps)
    for i, step_status in enumerate(status.steps[: len(steps)]):
        steps[i] = _copy_step(steps[i], step_status, with_exit_status=True)
    task = attrs.evolve(
        task,
        status=RunTaskStatus(status.phase.value),
        start_time=status.start_time,
        end_time=status.end_time,
        timedout=status.timedout,
        fail_error=status.fail_error,
        setup_step=_copy_step(task.setup_step, status.setup_step, with_exit_status=False),
        steps=steps,
    )
    return with_task(run, task), True


def _copy_step(
    step: RunTaskStep, status: ExecutorTaskStepStatus, *, with_exit_status: bool
) -> RunTaskStep:
    step = attrs.evolve(
        step, phase=status.phase, start_time=status.start_time, end_time=status.end_time
    )
    if with_exit_status:
        step = attrs.evolve(step, exit_status=status.exit_status)
    return step


def fail_executor_task(et: ExecutorTask, now: datetime, reason: str) -> ExecutorTask:
    """An executor task whose executor is gone: ``failed`` with ``reason``, ended now, and every
    step that was running failed and ended now too (steps never started stay untouched). It is
    also flagged ``stop``, so an executor coming back stops running it."""
    status = et.status

    def fail_step(step: ExecutorTaskStepStatus) -> ExecutorTaskStepStatus:
        if step.phase is not ExecutorTaskPhase.RUNNING:
            return step
        return attrs.evolve(step, phase=ExecutorTaskPhase.FAILED, end_time=now)

    return attrs.evolve(
        et,
        spec=attrs.evolve(et.spec, stop=True),
        status=attrs.evolve(
            status,
            phase=ExecutorTaskPhase.FAILED,
            fail_error=reason,
            end_time=now,
            setup_step=fail_step(status.setup_step),
            steps=[fail_step(s) for s in status.steps],
        ),
    )
