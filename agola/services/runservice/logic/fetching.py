"""Logs and workspace archives of finished tasks: what remains to fetch from executors, where it
goes in object storage (§1.6), and which log a request designates (§3.9).
"""

from __future__ import annotations

import enum

import attrs

from agola.errors import BadRequest, NotExist
from agola.services.runservice.logic.run_tasks import with_task
from agola.services.runservice.logic.transitions import archivable
from agola.types.runservice import FetchPhase, Run, RunTask

MAX_CACHE_KEY_LENGTH = 200


class FetchKind(enum.StrEnum):
    LOG = "log"
    ARCHIVE = "archive"


@attrs.frozen
class Fetch:
    """One object to copy from an executor: a log (``step`` None = setup step) or an archive."""

    run_id: str
    task_id: str
    kind: FetchKind
    step: int | None

    @property
    def object_path(self) -> str:
        if self.kind is FetchKind.LOG:
            return log_object_path(self.task_id, self.step)
        assert self.step is not None
        return archive_object_path(self.task_id, self.step)


def log_object_path(task_id: str, step: int | None) -> str:
    """``logs/<task>/data/setup.log`` or ``logs/<task>/data/steps/<n>.log``."""
    if step is None:
        return f"logs/{task_id}/data/setup.log"
    return f"logs/{task_id}/data/steps/{step}.log"


def archive_object_path(task_id: str, step: int) -> str:
    return f"workspacearchives/{task_id}/data/{step}.tar"


def log_run_marker_path(task_id: str, run_id: str) -> str:
    """Empty marker: run ``run_id`` uses the logs of ``task_id`` (restarts share kept tasks)."""
    return f"logs/{task_id}/runs/{run_id}"


def archive_run_marker_path(task_id: str, run_id: str) -> str:
    return f"workspacearchives/{task_id}/runs/{run_id}"


def validate_cache_key(key: str) -> None:
    if not key:
        raise BadRequest("cache key is empty")
    if len(key) > MAX_CACHE_KEY_LENGTH:
        raise BadRequest(f"cache key too long ({len(key)} > {MAX_CACHE_KEY_LENGTH} characters)")


def cache_object_path(key: str) -> str:
    validate_cache_key(key)
    return f"caches/{key}.tar"


def pending_fetches(run: Run) -> list[Fetch]:
    """Logs and archives of finished tasks not yet in object storage, in a stable order."""
    fetches: list[Fetch] = []
    for task in sorted(run.tasks.values(), key=lambda t: t.id):
        if not task.status.is_finished:
            continue
        if task.setup_step.log_phase is FetchPhase.NOT_STARTED:
            fetches.append(Fetch(run.id, task.id, FetchKind.LOG, None))
        for i, step in enumerate(task.steps):
            if step.log_phase is FetchPhase.NOT_STARTED:
                fetches.append(Fetch(run.id, task.id, FetchKind.LOG, i))
        for archive_step, phase in zip(task.workspace_archives, task.workspace_archives_phase):
            if phase is FetchPhase.NOT_STARTED:
                fetches.append(Fetch(run.id, task.id, FetchKind.ARCHIVE, archive_step))
    return fetches


def mark_fetched(run: Run, fetch: Fetch) -> Run:
    """Record that ``fetch`` is done (stored, or nothing to store)."""
    task = run.tasks.get(fetch.task_id)
    if task is None:
        raise NotExist(f"run {run.id} has no task {fetch.task_id}")
    done = FetchPhase.FINISHED
    if fetch.kind is FetchKind.LOG:
        if fetch.step is None:
            task = attrs.evolve(task, setup_step=attrs.evolve(task.setup_step, log_phase=done))
        else:
            steps = list(task.steps)
            steps[fetch.step] = attrs.evolve(steps[fetch.step], log_phase=done)
            task = attrs.evolve(task, steps=steps)
    else:
        if fetch.step not in task.workspace_archives:
            raise NotExist(f"task {task.id} has no workspace archive of step {fetch.step}")
        index = task.workspace_archives.index(fetch.step)
        phases = list(task.workspace_archives_phase)
        phases[index] = done
        task = attrs.evolve(task, workspace_archives_phase=phases)
    return with_task(run, task)


def fetch_finished(task: RunTask) -> bool:
    """Everything of the task is in object storage: its executor task can be deleted."""
    return task.status.is_finished and task.logs_fetch_finished and task.archives_fetch_finished


def mark_archived(run: Run) -> Run:
    """The finished-runs archiver's mark before moving the run to the datamanager."""
    if not archivable(run):
        raise BadRequest(f"run {run.id} cannot be archived yet")
    return attrs.evolve(run, archived=True)


def log_selector(task: RunTask, *, setup: bool, step: int | None) -> int | None:
    """Validate a log request (exactly one of setup / step) and return the step (None = setup)."""
    if setup == (step is not None):
        raise BadRequest("exactly one of setup or step must be given")
    if step is None:
        return None
    if step < 0 or step >= len(task.steps):
        raise NotExist(f"no such step {step} in task {task.id}")
    return step


def log_archived(task: RunTask, step: int | None) -> bool:
    """Whether the log is in object storage (else it is still on the executor).

    The reference checked a step's log phase even for the setup log (quirk 4, fixed).
    """
    if step is None:
        return task.setup_step.log_phase is FetchPhase.FINISHED
    return task.steps[step].log_phase is FetchPhase.FINISHED
