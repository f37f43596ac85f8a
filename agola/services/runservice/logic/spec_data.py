"""The bulky part of an executor task, generated from the run and its config when sent (§3.2).

It is never stored in coordination: everything here is derived from the immutable run config and
the run's task list, so it can be rebuilt on every push to, or fetch by, an executor.
"""

from __future__ import annotations

from agola.errors import NotExist
from agola.services.runservice.logic.dag import ancestors
from agola.services.runservice.logic.groups import root_group_id
from agola.types.runservice import (
    ExecutorTaskSpecData,
    Run,
    RunConfig,
    WorkspaceOperation,
)


def cache_prefix(rc: RunConfig) -> str:
    """The cache namespace: the run config's cache group, else the project or user id."""
    return rc.cache_group or root_group_id(rc.group)


def task_environment(rc: RunConfig, task_id: str) -> dict[str, str]:
    """Task environment < run static environment (CI/AGOLA_*) < run environment override."""
    rct = rc.tasks[task_id]
    return {**rct.environment, **rc.static_environment, **rc.environment}


def workspace_operations(run: Run, rc: RunConfig, task_id: str) -> list[WorkspaceOperation]:
    """Every ``save_to_workspace`` archive of every ancestor, by ancestor level then name."""
    rct = rc.tasks[task_id]
    ops: list[WorkspaceOperation] = []
    for parent in sorted(ancestors(rc.tasks, rct), key=lambda t: (t.level, t.name, t.id)):
        for step in run.tasks[parent.id].workspace_archives:
            ops.append(WorkspaceOperation(task_id=parent.id, step=step))
    return ops


def executor_task_spec_data(run: Run, rc: RunConfig, task_id: str) -> ExecutorTaskSpecData:
    rct = rc.tasks.get(task_id)
    if rct is None or task_id not in run.tasks:
        raise NotExist(f"run {run.id} has no task {task_id}")
    return ExecutorTaskSpecData(
        task_name=rct.name,
        arch=rct.runtime.arch,
        containers=list(rct.runtime.containers),
        environment=task_environment(rc, task_id),
        working_dir=rct.working_dir,
        shell=rct.shell,
        user=rct.user,
        # Always false, as in the reference: the per-container flag is what the executor uses.
        privileged=False,
        workspace_operations=workspace_operations(run, rc, task_id),
        docker_registries_auth=dict(rct.docker_registries_auth),
        cache_prefix=cache_prefix(rc),
        steps=list(rct.steps),
        task_timeout_interval=rct.task_timeout_interval,
        masked_values=list(rct.masked_values),
    )
