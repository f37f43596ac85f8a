"""Choosing an executor for a task, and telling when an executor is gone (§3.6 chooseExecutor).

An executor can take a task when it is alive (heartbeat within ``HEARTBEAT_EXPIRY``), supports the
task's arch, allows privileged containers if the task has one, and is under its active task
limit. The load counts, besides what the executor last reported, the unfinished executor tasks
assigned to it and those assigned earlier in the same scheduling pass: the reference compared
only the heartbeat's ``active_tasks`` and could overfill an executor (quirk 11, fixed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

import attrs

from agola.errors import BadRequest
from agola.types.runservice import Executor, ExecutorTask, RunConfigTask

HEARTBEAT_EXPIRY = timedelta(seconds=60)

Load = dict[str, int]


def executor_alive(
    executor: Executor, now: datetime, expiry: timedelta = HEARTBEAT_EXPIRY
) -> bool:
    last = executor.last_status_update_time
    return last is not None and last + expiry >= now


def executor_load(executors: Iterable[Executor], executor_tasks: Iterable[ExecutorTask]) -> Load:
    """Executor id -> tasks it holds: the larger of its own report and our unfinished tasks."""
    ours: Load = {}
    for et in executor_tasks:
        if not et.status.phase.is_finished:
            ours[et.spec.executor_id] = ours.get(et.spec.executor_id, 0) + 1
    return {e.id: max(e.active_tasks, ours.get(e.id, 0)) for e in executors}


def has_capacity(executor: Executor, load: Mapping[str, int]) -> bool:
    limit = executor.active_tasks_limit
    return limit == 0 or load.get(executor.id, executor.active_tasks) < limit


def executor_accepts(
    executor: Executor,
    rct: RunConfigTask,
    now: datetime,
    load: Mapping[str, int],
    expiry: timedelta = HEARTBEAT_EXPIRY,
) -> bool:
    if not executor_alive(executor, now, expiry):
        return False
    if rct.runtime.privileged and not executor.allow_privileged_containers:
        return False
    if rct.runtime.arch is not None and rct.runtime.arch not in executor.archs:
        return False
    return has_capacity(executor, load)


def choose_executor(
    executors: Sequence[Executor],
    rct: RunConfigTask,
    now: datetime,
    load: Mapping[str, int],
    expiry: timedelta = HEARTBEAT_EXPIRY,
) -> Executor | None:
    """The first suitable executor in id order (the reference's etcd list order), or None."""
    for executor in sorted(executors, key=lambda e: e.id):
        if executor_accepts(executor, rct, now, load, expiry):
            return executor
    return None


def executor_gone_reason(
    executor: Executor | None, now: datetime, expiry: timedelta = HEARTBEAT_EXPIRY
) -> str | None:
    """Why tasks on this executor can no longer progress, or None if it is fine (the failed
    task's ``fail_error``, shown to users: it says what happened and that the work is lost)."""
    if executor is None:
        return "the executor running the task was removed: the task was lost"
    if not executor_alive(executor, now, expiry):
        return (f"the executor running the task ({executor.id}) sent no heartbeat for "
                f"{expiry.total_seconds():g}s (it died or cannot reach the runservice): the task was lost")
    return None


def register_heartbeat(executor: Executor, executor_id: str, now: datetime) -> Executor:
    """The executor as stored after a heartbeat: the path id must match, the time is ours."""
    if executor.id != executor_id:
        raise BadRequest(f"executor id {executor.id!r} does not match the path id {executor_id!r}")
    return attrs.evolve(executor, last_status_update_time=now)


def stale_siblings(sender: Executor, executors: Iterable[Executor]) -> list[str]:
    """Dynamic executors of the sender's group it no longer lists as siblings (e.g. pods of a
    scaled down deployment): the heartbeat handler deletes them."""
    if not sender.executor_group:
        return []
    return sorted(
        e.id
        for e in executors
        if e.dynamic
        and e.id != sender.id
        and e.executor_group == sender.executor_group
        and e.id not in sender.siblings_executors
    )
