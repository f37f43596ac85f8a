"""Run and run task actions: start, cancel, stop, approve, annotations, restart checks (§3.5, §3.7,
§3.8, §6.11). Each validates and returns the new run, or raises ``BadRequest`` saying why the
action does not apply.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

import attrs

from agola.errors import BadRequest
from agola.services.runservice.logic.run_tasks import with_task
from agola.services.runservice.logic.transitions import change_phase, mark_unstarted_tasks_fetched
from agola.types.runservice import Run, RunPhase, RunResult, RunTask, RunTaskStatus

APPROVERS_ANNOTATION = "approvers"


def change_run_phase(run: Run, phase: RunPhase, now: datetime) -> Run:
    """The ``changephase`` action: only ``running`` (start) and ``cancelled``, both from queued."""
    if phase is RunPhase.RUNNING:
        return start_run(run, now)
    if phase is RunPhase.CANCELLED:
        return cancel_run(run, now)
    raise BadRequest(f"unsupported change phase {phase.value!r}: only running and cancelled")


def start_run(run: Run, now: datetime) -> Run:
    if run.phase is not RunPhase.QUEUED:
        raise BadRequest(f"run {run.id} cannot be started: it is {run.phase.value}, not queued")
    return change_phase(run, RunPhase.RUNNING, now)


def cancel_run(run: Run, now: datetime) -> Run:
    """Cancel a queued run. Its tasks never ran, so there is nothing to fetch and the run can be
    archived at once (the reference never archived cancelled runs: quirk 7)."""
    if run.phase is not RunPhase.QUEUED:
        hint = " (stop it instead)" if run.phase is RunPhase.RUNNING else ""
        raise BadRequest(
            f"run {run.id} cannot be cancelled: it is {run.phase.value}, only queued runs "
            f"can be cancelled{hint}"
        )
    return mark_unstarted_tasks_fetched(change_phase(run, RunPhase.CANCELLED, now))


def stop_run(run: Run) -> Run:
    """Request a stop of a running run; the scheduler then stops its executor tasks."""
    if run.phase is not RunPhase.RUNNING:
        raise BadRequest(f"run {run.id} cannot be stopped: it is {run.phase.value}, not running")
    return attrs.evolve(run, stop=True)


def _task(run: Run, task_id: str) -> RunTask:
    task = run.tasks.get(task_id)
    if task is None:
        raise BadRequest(f"run {run.id} has no task {task_id!r}")
    return task


def set_task_annotations(run: Run, task_id: str, annotations: Mapping[str, str]) -> Run:
    """Replace a task's annotations."""
    return with_task(run, attrs.evolve(_task(run, task_id), annotations=dict(annotations)))


def approve_task(run: Run, task_id: str) -> Run:
    task = _task(run, task_id)
    if task.approved:
        raise BadRequest(f"task {task_id} of run {run.id} is already approved")
    if not task.waiting_approval:
        raise BadRequest(f"task {task_id} of run {run.id} is not waiting for approval")
    return with_task(run, attrs.evolve(task, waiting_approval=False, approved=True))


def approvers(task: RunTask) -> list[str]:
    """User ids recorded in the task's ``approvers`` annotation (a JSON array). Annotations are
    free for users to set: one that is not a JSON array records nobody."""
    raw = task.annotations.get(APPROVERS_ANNOTATION)
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


def add_approver(run: Run, task_id: str, user_id: str, user_name: str = "") -> Run:
    """Record a user's approval (the gateway's step of §3.8); the scheduler's approve pass does the
    rest (``tasks_to_approve``). ``user_name`` only names the user in errors."""
    if not user_id:
        raise BadRequest("approving a task needs a logged in user")
    task = _task(run, task_id)
    if not task.waiting_approval:
        raise BadRequest(f"task {task_id} is not waiting for an approval")
    current = approvers(task)
    if user_id in current:
        raise BadRequest(f"user {user_name or user_id} has already approved task {task_id}")
    annotations = {**task.annotations, APPROVERS_ANNOTATION: json.dumps([*current, user_id])}
    return with_task(run, attrs.evolve(task, annotations=annotations))


def tasks_to_approve(run: Run) -> list[str]:
    """Tasks waiting approval that a user approved: the scheduler's approve pass approves them
    (``approve_task``) in the runservice, guarded by ``groups.approval_change_group``."""
    return sorted(
        t.id
        for t in run.tasks.values()
        if t.waiting_approval and not t.approved and approvers(t)
    )


def restart_refusal(run: Run, from_start: bool) -> str | None:
    """Why ``run`` cannot be restarted (from scratch or from its failed tasks), or None."""
    if run.phase is RunPhase.SETUP_ERROR:
        return "the run has setup errors"
    if not run.phase.is_finished:
        return f"the run is {run.phase.value}, wait for it to finish or stop it first"
    if from_start:
        return None
    if run.result is RunResult.SUCCESS:
        return "the run succeeded, there are no failed tasks to restart (restart from start)"
    for task in sorted(run.tasks.values(), key=lambda t: t.id):
        if task.status is RunTaskStatus.SUCCESS and not (
            task.logs_fetch_finished and task.archives_fetch_finished
        ):
            return f"logs or workspace archives of task {task.id} are still being fetched"
    return None


def check_restartable(run: Run, from_start: bool) -> None:
    reason = restart_refusal(run, from_start)
    if reason is not None:
        raise BadRequest(f"run cannot be restarted: {reason}")

