"""Building a new run, or a restarted one, from a ``RunCreateRequest`` (§3.4, §3.7).

The run id and counter come from storage (sequence, datamanager counter) and are passed in, as
are the clock and the task id generator, so these functions are pure.

Difference from the reference: a run config whose task graph is invalid (unknown parent, cycle,
redundant dependency, task without containers) is refused with ``BadRequest`` naming every
problem, instead of creating a run in ``setuperror``. Setup errors sent by the caller (a pipeline
file that failed to parse) still create a ``setuperror`` run, without tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

import attrs

from agola.errors import BadRequest, Internal
from agola.services.runservice.logic.actions import check_restartable
from agola.services.runservice.logic.dag import dag_errors, descendants, levels
from agola.services.runservice.logic.groups import validate_group
from agola.services.runservice.logic.run_tasks import new_run_task
from agola.types.runservice import (
    Run,
    RunConfig,
    RunConfigTask,
    RunCreateRequest,
    RunPhase,
    RunResult,
    RunTask,
    RunTaskStatus,
)


def run_config_task_errors(tasks: Mapping[str, RunConfigTask]) -> list[str]:
    """Every problem of a run config task map that would make its run impossible to schedule."""
    errors: list[str] = []
    for tid, task in sorted(tasks.items()):
        label = f"task {task.name!r}" if task.name else f"task {tid!r}"
        if not task.name:
            errors.append(f"{label}: name is empty")
        if not task.runtime.containers:
            errors.append(f"{label}: runtime must define at least one container")
        for i, container in enumerate(task.runtime.containers):
            if not container.image:
                errors.append(f"{label}: container {i} has no image")
    return errors + dag_errors(tasks)


def validate_new_run_request(req: RunCreateRequest) -> None:
    validate_group(req.group)
    if req.run_config_tasks is None and not req.setup_errors:
        raise BadRequest("run_config_tasks is required (or setup_errors for a failed setup)")
    if req.setup_errors:
        return  # tasks are dropped anyway: the run only reports its setup errors
    errors = run_config_task_errors(req.run_config_tasks or {})
    if errors:
        raise BadRequest("invalid run config: " + "; ".join(errors), details=errors)


def run_from_config(rc: RunConfig, counter: int, now: datetime) -> Run:
    """A new queued run of ``rc`` (``setuperror`` without tasks if it has setup errors)."""
    run = Run(
        id=rc.id,
        name=rc.name,
        counter=counter,
        group=rc.group,
        annotations=dict(rc.annotations),
        phase=RunPhase.QUEUED,
        result=RunResult.UNKNOWN,
        enqueue_time=now,
    )
    if rc.setup_errors:
        return attrs.evolve(run, phase=RunPhase.SETUP_ERROR)
    return attrs.evolve(run, tasks={tid: new_run_task(t) for tid, t in rc.tasks.items()})


def build_new_run(
    req: RunCreateRequest, run_id: str, counter: int, now: datetime
) -> tuple[Run, RunConfig]:
    """Validate the request and build the run and its (immutable) run config."""
    if req.run_id:
        raise BadRequest("run_id is set: this is a restart, not a new run")
    validate_new_run_request(req)
    tasks = dict(req.run_config_tasks or {})
    if not req.setup_errors:
        task_levels = levels(tasks)
        tasks = {tid: attrs.evolve(t, level=task_levels[tid]) for tid, t in tasks.items()}
    rc = RunConfig(
        id=run_id,
        name=req.name,
        group=req.group,
        setup_errors=list(req.setup_errors),
        annotations=dict(req.annotations),
        static_environment=dict(req.static_environment),
        environment=dict(req.environment),
        tasks=tasks,
        cache_group=req.cache_group,
    )
    return run_from_config(rc, counter, now), rc


def tasks_to_recreate(run: Run, rc: RunConfig, from_start: bool) -> set[str]:
    """All tasks (from start), or the unsuccessful ones plus every descendant of those."""
    if from_start:
        return set(rc.tasks)
    failed = {tid for tid, t in run.tasks.items() if t.status is not RunTaskStatus.SUCCESS}
    return failed | descendants(rc.tasks, failed)


def build_restarted_run(
    req: RunCreateRequest,
    old_run: Run,
    old_rc: RunConfig,
    run_id: str,
    counter: int,
    now: datetime,
    new_task_id: Callable[[], str],
) -> tuple[Run, RunConfig]:
    """A new run repeating ``old_run``: recreated tasks get new ids (so their logs and archives,
    keyed by task id, are new); kept successful tasks keep ids, status, logs and archives."""
    check_restartable(old_run, req.from_start)
    recreate = tasks_to_recreate(old_run, old_rc, req.from_start)
    id_map = {old: new_task_id() for old in sorted(recreate)}
    if len(set(id_map.values()) | (set(old_rc.tasks) - recreate)) != len(old_rc.tasks):
        raise Internal("task id generator returned a duplicate id")

    def new_id(tid: str) -> str:
        return id_map.get(tid, tid)

    tasks: dict[str, RunConfigTask] = {}
    for tid, rct in old_rc.tasks.items():
        depends = {
            new_id(pid): attrs.evolve(dep, task_id=new_id(pid)) for pid, dep in rct.depends.items()
        }
        tasks[new_id(tid)] = attrs.evolve(rct, id=new_id(tid), depends=depends)
    rc = attrs.evolve(old_rc, id=run_id, environment=dict(req.environment), tasks=tasks)

    run_tasks: dict[str, RunTask] = {}
    for tid in old_rc.tasks:
        if tid in recreate:
            run_tasks[new_id(tid)] = new_run_task(tasks[new_id(tid)])
        else:
            run_tasks[tid] = old_run.tasks[tid]
    run = Run(
        id=run_id,
        name=old_run.name,
        counter=counter,
        group=old_run.group,
        annotations=dict(old_run.annotations),
        phase=RunPhase.QUEUED,
        result=RunResult.UNKNOWN,
        tasks=run_tasks,
        enqueue_time=now,
    )
    return run, rc
