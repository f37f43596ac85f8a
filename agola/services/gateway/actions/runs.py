"""Runs, tasks and logs (spec §6.2, §6.7, §3.8): reads need ``CanGetRun``, actions
``CanDoRunActions``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import attrs

from agola.errors import BadRequest, NotExist
from agola.services.gateway.actions import Services
from agola.services.gateway.auth import Identity
from agola.services.gateway.permissions import can_do_run_actions, can_get_run, deny, require_user
from agola.services.runservice.logic.actions import add_approver
from agola.services.runservice.logic.groups import approval_change_group
from agola.types.runservice import Run, RunConfigTask, RunResponse, RunTask

DEFAULT_RUNS_LIMIT = 25
MAX_RUNS_LIMIT = 40


@attrs.frozen
class RunsQuery:
    group: str
    # Further groups listed with ``group`` in one page (a user's direct runs and their projects'
    # runs, newest first): each needs the same permission.
    more_groups: tuple[str, ...] = ()
    phases: tuple[str, ...] = ()
    results: tuple[str, ...] = ()
    change_groups: tuple[str, ...] = ()
    last_run: bool = False
    start: str = ""
    limit: int = 0
    asc: bool = False


@attrs.frozen
class TaskView:
    run: Run
    task: RunTask
    config: RunConfigTask | None


async def list_runs(svc: Services, ident: Identity, q: RunsQuery) -> list[Run]:
    require_user(ident)
    groups = list(dict.fromkeys(g for g in (q.group, *q.more_groups) if g))
    if not groups:
        raise BadRequest("no groups specified")
    for group in groups:
        if not await can_get_run(svc.configstore, ident, group):
            raise deny(ident, "see the runs of this group")
    limit = DEFAULT_RUNS_LIMIT if q.limit <= 0 else min(q.limit, MAX_RUNS_LIMIT)
    runs, _ = await svc.runservice.list_runs(
        groups=groups, phases=list(q.phases), results=list(q.results), change_groups=list(q.change_groups),
        last_run=q.last_run, start=q.start, limit=limit, asc=q.asc)
    return runs


async def _readable_run(svc: Services, ident: Identity, run_id: str, change_groups: list[str] | None = None) -> RunResponse:
    resp = await svc.runservice.get_run(run_id, change_groups)
    if not await can_get_run(svc.configstore, ident, resp.run.group):
        # Same answer as a missing run for those who may not know it exists.
        raise deny(ident, "see this run")
    return resp


async def _actionable_run(svc: Services, ident: Identity, run_id: str, change_groups: list[str] | None = None) -> RunResponse:
    require_user(ident)
    resp = await svc.runservice.get_run(run_id, change_groups)
    if not await can_do_run_actions(svc.configstore, ident, resp.run.group):
        raise deny(ident, "act on this run")
    return resp


async def get_run(svc: Services, ident: Identity, run_id: str) -> RunResponse:
    return await _readable_run(svc, ident, run_id)


async def run_action(svc: Services, ident: Identity, run_id: str, action: str, from_start: bool) -> RunResponse:
    before = await _actionable_run(svc, ident, run_id)
    if action == "restart":
        return await svc.runservice.restart_run(run_id, from_start=from_start)
    if action == "cancel":
        await svc.runservice.cancel_run(run_id)
        return before
    if action == "stop":
        await svc.runservice.stop_run(run_id)
        return before
    raise BadRequest(f"wrong run action type {action!r} (expected restart, cancel or stop)")


def _task(resp: RunResponse, task_id: str) -> TaskView:
    task = resp.run.tasks.get(task_id)
    if task is None:
        raise NotExist(f"run {resp.run.id} has no task {task_id}")
    config = resp.run_config.tasks.get(task_id) if resp.run_config is not None else None
    return TaskView(resp.run, task, config)


async def get_task(svc: Services, ident: Identity, run_id: str, task_id: str) -> TaskView:
    return _task(await _readable_run(svc, ident, run_id), task_id)


async def task_action(svc: Services, ident: Identity, run_id: str, task_id: str, action: str) -> None:
    if action != "approve":
        raise BadRequest(f"wrong task action type {action!r} (expected approve)")
    group = approval_change_group(run_id)
    resp = await _actionable_run(svc, ident, run_id, [group])
    if ident.user is None:
        raise BadRequest("approving needs a user: the admin token has none")
    _task(resp, task_id)  # NotExist for an unknown task
    # The approval is an annotation; the scheduler's approve pass approves the task in the runservice.
    approved = add_approver(resp.run, task_id, ident.user.id, ident.user.name)
    annotations = approved.tasks[task_id].annotations
    await svc.runservice.set_task_annotations(run_id, task_id, annotations, resp.change_groups_update_token)


async def get_log(svc: Services, ident: Identity, run_id: str, task_id: str, *, setup: bool, step: int | None,
                  follow: bool) -> AsyncIterator[bytes]:
    """Check access, then the log stream (errors of the runservice surface on the first chunk)."""
    await _readable_run(svc, ident, run_id)
    return svc.runservice.get_log(run_id, task_id, setup=setup, step=step, follow=follow)


async def delete_log(svc: Services, ident: Identity, run_id: str, task_id: str, *, setup: bool,
                     step: int | None) -> None:
    await _actionable_run(svc, ident, run_id)
    await svc.runservice.delete_log(run_id, task_id, setup=setup, step=step)
