"""The checks of spec §2.3 over a typed pipeline, reporting every failure with its location.

The reference stops at the first error; here every rule runs and all errors are returned, with
follow-up noise avoided (a dependency on a missing task is reported once, and left out of the
cycle checks). Messages keep the reference's wording, with a hint on what would be right.
"""

from __future__ import annotations

import re

from agola.pipeline import cachekey
from agola.pipeline.dag import all_ancestors, direct_parents
from agola.pipeline.errors import ErrorList, Loc
from agola.pipeline.parse_steps import count_lines
from agola.pipeline.schema import (
    MAX_RUN_NAME_LENGTH,
    MAX_TASK_NAME_LENGTH,
    VALID_ARCHS,
    CloneStep,
    PipelineConfig,
    RestoreCacheStep,
    Run,
    RunStep,
    SaveCacheStep,
    Task,
)


def validate_config(config: PipelineConfig, errors: ErrorList) -> None:
    if not config.runs:
        # After a parse error (a run entry that is null or not a mapping) this would be noise.
        if not errors:
            errors.add("no runs defined", _top(config), "add a `runs:` list with at least one run")
        return
    _check_runs(config, errors)
    for run in config.runs:
        graph = _dependency_graph(run, errors)
        ancestors = {name: all_ancestors(graph, name) for name in graph}
        if _check_cycles(run, graph, ancestors, errors):
            _check_redundant(run, graph, ancestors, errors)
        _check_duplicate_depends(run, errors)
    for run in config.runs:
        for task in run.tasks:
            _check_steps(task, errors)


def _top(config: PipelineConfig) -> Loc:
    return Loc(config.file, None, None, "runs")


def _too_long(name: str, limit: int) -> bool:
    return len(name.encode()) > limit


def _check_runs(config: PipelineConfig, errors: ErrorList) -> None:
    seen_runs: set[str] = set()
    for ri, run in enumerate(config.runs):
        if run.name == "":
            errors.add(f"run at index {ri} has empty name", run.loc, "give the run a `name:`")
        elif _too_long(run.name, MAX_RUN_NAME_LENGTH):
            errors.add(f'run name "{run.name}" too long', run.loc, f"at most {MAX_RUN_NAME_LENGTH} bytes")
        elif run.name in seen_runs:
            errors.add(f"duplicate run name: {run.name}", run.loc, "run names must be unique")
        seen_runs.add(run.name)
        seen_tasks: set[str] = set()
        for ti, task in enumerate(run.tasks):
            if task.name == "":
                errors.add(f'run "{run.name}": task at index {ti} has empty name', task.loc, "give the task a `name:`")
            elif _too_long(task.name, MAX_TASK_NAME_LENGTH):
                errors.add(f'task name "{task.name}" too long', task.loc, f"at most {MAX_TASK_NAME_LENGTH} bytes")
            elif task.name in seen_tasks:
                errors.add(f"duplicate task name: {task.name}", task.loc, "task names must be unique within a run")
            seen_tasks.add(task.name)
            _check_runtime(task, errors)


def _check_runtime(task: Task, errors: ErrorList) -> None:
    r = task.runtime
    if r is None:
        if errors.has_under(f"{task.loc.path}.runtime"):
            return  # the runtime is there but malformed, already reported
        errors.add(
            f'task "{task.name}": runtime is not defined',
            task.loc,
            "add `runtime: {containers: [{image: ...}]}`",
        )
        return
    if r.type not in ("", "pod"):
        errors.add(f'task "{task.name}" runtime: wrong type "{r.type}"', r.loc, 'the only runtime type is "pod"')
    if not r.containers:
        errors.add(
            f'task "{task.name}" runtime: at least one container must be defined',
            r.loc,
            "add `containers: [{image: ...}]`",
        )
    if r.arch and r.arch not in VALID_ARCHS:
        errors.add(
            f'task "{task.name}" runtime: invalid arch "{r.arch}"',
            r.loc,
            "valid archs: " + ", ".join(VALID_ARCHS),
        )
    for container in r.containers:
        for volume in container.volumes:
            if volume.tmpfs is None:
                errors.add(
                    "no volume config specified",
                    volume.loc,
                    "only tmpfs volumes exist: add `tmpfs: {}` (optionally with a size)",
                )


def _dependency_graph(run: Run, errors: ErrorList) -> dict[str, list[str]]:
    """task name -> names of its direct parents that exist (rule 4 reports the others)."""
    names = {t.name for t in run.tasks}
    graph: dict[str, list[str]] = {}
    for task in run.tasks:
        parents = []
        for dep in task.depends:
            if dep.task not in names:
                errors.add(
                    f'run task "{dep.task}" needed by task "{task.name}" doesn\'t exist',
                    dep.loc,
                    "tasks in this run: " + ", ".join(sorted(n for n in names if n)) if names else "",
                )
                continue
            if dep.task not in parents:
                parents.append(dep.task)
        graph.setdefault(task.name, parents)
    return graph


def _check_cycles(
    run: Run, graph: dict[str, list[str]], ancestors_of: dict[str, set[str]], errors: ErrorList
) -> bool:
    """Rule 5; returns True when the run has no cycle."""
    ok = True
    order = [t.name for t in run.tasks]
    for task in run.tasks:
        ancestors = ancestors_of.get(task.name, set())
        if task.name not in ancestors:
            continue
        ok = False
        closing = [a for a in order if a in ancestors and task.name in direct_parents(graph, a)]
        errors.add(
            f'circular dependency between task "{task.name}" and tasks '
            + " ".join(f'"{a}"' for a in closing),
            task.loc,
            "remove one of the depends that close the cycle",
        )
    return ok


def _check_redundant(
    run: Run, graph: dict[str, list[str]], ancestors_of: dict[str, set[str]], errors: ErrorList
) -> None:
    """Rule 6: a direct parent P of T that is also an ancestor of another direct parent Q."""
    for task in run.tasks:
        parents = direct_parents(graph, task.name)
        for q in parents:
            q_ancestors = ancestors_of.get(q, set())
            for p in parents:
                if p in q_ancestors:
                    errors.add(
                        f'task "{task.name}" and its dependency "{q}" have both a dependency on task "{p}"',
                        _depend_loc(task, p),
                        f'drop "{p}" from the depends of "{task.name}": it already comes through "{q}"',
                    )


def _depend_loc(task: Task, name: str) -> Loc:
    for dep in task.depends:
        if dep.task == name:
            return dep.loc
    return task.loc


def _check_duplicate_depends(run: Run, errors: ErrorList) -> None:
    for task in run.tasks:
        seen: set[str] = set()
        for dep in task.depends:
            if dep.task in seen:
                errors.add(
                    f"duplicate task dependency: {task.name}",
                    dep.loc,
                    f'"{dep.task}" is listed more than once; merge the conditions into one entry',
                )
            seen.add(dep.task)


def _step_index(loc: Loc, fallback: int) -> int:
    """The step's index in the file (steps that failed to parse are not in ``task.steps``)."""
    m = re.search(r"\[(\d+)\]$", loc.path)
    return int(m.group(1)) if m else fallback


def _check_steps(task: Task, errors: ErrorList) -> None:
    for position, step in enumerate(task.steps):
        i = _step_index(step.loc, position)
        if isinstance(step, CloneStep):
            if step.depth is not None and step.depth < 1:
                errors.add(
                    f'depth value must be greater than 0 for clone step in task "{task.name}"',
                    step.loc,
                    "omit depth for a full clone",
                )
        elif isinstance(step, RunStep):
            if step.command == "":
                errors.add(
                    f'no command defined for step {i} (run) in task "{task.name}"',
                    step.loc,
                    "e.g. `- run: make test`",
                )
            elif step.name == "" and count_lines(step.command) > 1:
                errors.add(
                    f'missing step name for step {i} (run) in task "{task.name}", '
                    "required since command is more than one line",
                    step.loc,
                    "add `name:` to the step",
                )
        elif isinstance(step, SaveCacheStep):
            if step.key == "":
                errors.add(
                    f'no key defined for step {i} (save_cache) in task "{task.name}"',
                    step.loc,
                    'e.g. `key: cache-{{ md5sum "go.sum" }}`',
                )
            else:
                _check_key(step.key, i, "save_cache", task, step.loc, errors)
        elif isinstance(step, RestoreCacheStep):
            if not step.keys:
                errors.add(
                    f'no keys defined for step {i} (restore_cache) in task "{task.name}"',
                    step.loc,
                    "give at least one key prefix under `keys:`",
                )
            for key in step.keys:
                _check_key(key, i, "restore_cache", task, step.loc, errors)


def _check_key(key: str, index: int, kind: str, task: Task, loc: Loc, errors: ErrorList) -> None:
    try:
        cachekey.parse(key)
    except cachekey.CacheKeyError as exc:
        errors.add(f'invalid cache key template for step {index} ({kind}) in task "{task.name}": {exc}', loc)
