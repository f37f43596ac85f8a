"""Which run tasks may start: depend conditions, skip propagation, approval (§3.6 step 5, §3.8).

A task may start when it is ``notstarted`` and not skipped, every parent has finished **and** its
workspace archives were fetched (children restore them), the depend conditions hold, any approval
was granted, and no executor task exists for it yet.
"""

from __future__ import annotations

from collections.abc import Collection

import attrs

from agola.services.runservice.logic.run_tasks import finish_without_running, with_task
from agola.types.runservice import (
    DependCondition,
    Run,
    RunConfig,
    RunConfigTask,
    RunTaskStatus,
)

_CONDITION_STATUS = {
    DependCondition.ON_SUCCESS: RunTaskStatus.SUCCESS,
    DependCondition.ON_FAILURE: RunTaskStatus.FAILED,
    DependCondition.ON_SKIPPED: RunTaskStatus.SKIPPED,
}


def conditions_of(rct: RunConfigTask, parent_id: str) -> list[DependCondition]:
    """The conditions on a parent; none listed means ``on_success`` (as the config file says)."""
    dep = rct.depends.get(parent_id)
    return list(dep.conditions) if dep and dep.conditions else [DependCondition.ON_SUCCESS]


def depend_conditions_met(run: Run, rct: RunConfigTask) -> bool:
    """Every parent matches at least one of its conditions. ``stopped``/``cancelled`` match none.

    ``on_skipped`` is honoured (quirk 2 of the reference lost it when generating run configs).
    """
    for pid in rct.depends:
        status = run.tasks[pid].status
        if not any(_CONDITION_STATUS[c] is status for c in conditions_of(rct, pid)):
            return False
    return True


def parents_done(run: Run, rct: RunConfigTask) -> bool:
    """Every parent finished and its workspace archives are in object storage."""
    for pid in rct.depends:
        parent = run.tasks[pid]
        if not parent.status.is_finished or not parent.archives_fetch_finished:
            return False
    return True


def advance_run_tasks(run: Run, rc: RunConfig, scheduled: Collection[str]) -> Run:
    """Settle the fate of not started tasks; ``scheduled`` = ids that have an executor task.

    * stop requested: every unscheduled not started task is ``skipped`` (what the reference does
      since v0.6.0; v0.4.0 could still start children of tasks finishing after the stop);
    * result decided: unscheduled root tasks are ``cancelled``;
    * parents done but conditions unmet: ``skipped``; met and approval needed: waiting approval.

    Unlike the reference, skips propagate down a whole chain in one call (it re-read the
    pre-update snapshot and needed one scheduling pass per level).
    """
    if run.stop:
        for task in list(run.tasks.values()):
            if task.status is RunTaskStatus.NOT_STARTED and task.id not in scheduled:
                run = with_task(run, finish_without_running(task, RunTaskStatus.SKIPPED))

    if run.result.is_set:
        for task in list(run.tasks.values()):
            rct = rc.tasks[task.id]
            if (
                not rct.depends
                and not task.skip
                and task.status is RunTaskStatus.NOT_STARTED
                and task.id not in scheduled
            ):
                run = with_task(run, finish_without_running(task, RunTaskStatus.CANCELLED))

    changed = True
    while changed:
        changed = False
        for task in list(run.tasks.values()):
            rct = rc.tasks[task.id]
            if task.skip or task.status is not RunTaskStatus.NOT_STARTED:
                continue
            if not parents_done(run, rct):
                continue
            if not depend_conditions_met(run, rct):
                if task.id not in scheduled:
                    run = with_task(run, finish_without_running(task, RunTaskStatus.SKIPPED))
                    changed = True
            elif rct.needs_approval and not task.waiting_approval and not task.approved:
                run = with_task(run, attrs.evolve(task, waiting_approval=True))
    return run


def tasks_to_run(run: Run, rc: RunConfig, scheduled: Collection[str]) -> list[RunConfigTask]:
    """Config tasks to send to an executor now, ordered by level then name (deterministic)."""
    ready: list[RunConfigTask] = []
    for task in run.tasks.values():
        rct = rc.tasks[task.id]
        if task.skip or task.status is not RunTaskStatus.NOT_STARTED or task.id in scheduled:
            continue
        if not parents_done(run, rct) or not depend_conditions_met(run, rct):
            continue
        if rct.needs_approval and not task.approved:
            continue
        ready.append(rct)
    return sorted(ready, key=lambda t: (t.level, t.name, t.id))
