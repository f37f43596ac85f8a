"""Small building blocks on run tasks: creating them from config and replacing them in a run."""

from __future__ import annotations

import attrs

from agola.types.runservice import (
    FetchPhase,
    Run,
    RunConfigTask,
    RunTask,
    RunTaskStatus,
    RunTaskStep,
)


def new_run_task(rct: RunConfigTask) -> RunTask:
    """A fresh run task for a config task: ``notstarted`` (``skipped`` when ``skip``)."""
    archives = rct.workspace_archive_steps
    task = RunTask(
        id=rct.id,
        status=RunTaskStatus.SKIPPED if rct.skip else RunTaskStatus.NOT_STARTED,
        skip=rct.skip,
        setup_step=RunTaskStep(),
        steps=[RunTaskStep() for _ in rct.steps],
        workspace_archives=archives,
        workspace_archives_phase=[FetchPhase.NOT_STARTED for _ in archives],
    )
    # A task that will never run has nothing to fetch; saying so at once lets its children be
    # evaluated without waiting for a fetcher pass.
    return mark_nothing_to_fetch(task) if rct.skip else task


def mark_nothing_to_fetch(task: RunTask) -> RunTask:
    """Mark every log and workspace archive of a task that never ran as fetched."""
    done = FetchPhase.FINISHED
    return attrs.evolve(
        task,
        setup_step=attrs.evolve(task.setup_step, log_phase=done),
        steps=[attrs.evolve(s, log_phase=done) for s in task.steps],
        workspace_archives_phase=[done for _ in task.workspace_archives_phase],
    )


def with_task(run: Run, task: RunTask) -> Run:
    """The run with ``task`` replacing the task of the same id."""
    return attrs.evolve(run, tasks={**run.tasks, task.id: task})


def finish_without_running(task: RunTask, status: RunTaskStatus) -> RunTask:
    """``task`` ended as ``skipped``/``cancelled`` before ever being sent to an executor."""
    return mark_nothing_to_fetch(attrs.evolve(task, status=status))
