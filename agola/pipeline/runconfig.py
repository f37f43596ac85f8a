"""Run config generation (spec §2.4): a parsed pipeline + the run context -> runservice tasks.

For every run whose ``when`` matches (and none when the commit message contains ``[ci skip]``)
this produces the tasks of the run config: one id per task (from the injected ``new_id``), DAG
levels, ``skip`` from the task's ``when``, environment and registry credentials resolved from
the run variables, the default shell, approval and dependency conditions. ``to_json()`` gives
the wire shape of the runservice's ``RunConfigTask`` (spec §3.2).

Differences from the reference (v0.4.0), on purpose:

* ``on_skipped`` depend conditions are kept (the reference dropped them, §11.1 item 2).
* A step whose ``when`` does not match the ref is left out of the task (the reference parsed
  step ``when`` and ignored it, §11.1 item 3).
* A ``clone`` step stays a structured clone operation (``{"type": "clone", "depth",
  "recurse_submodules"}``) that the executor performs itself, instead of a shell script that
  needs ``git`` and ``ssh`` in the image.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from agola.pipeline import dag
from agola.pipeline.context import RunContext
from agola.pipeline.schema import (
    CLONE_STEP_NAME,
    DEFAULT_SHELL,
    CloneStep,
    Container,
    PipelineConfig,
    RegistryAuth,
    Run,
    SaveContent,
    Step,
    Task,
    Value,
)
from agola.pipeline.when import match_when
from agola.types import runservice as wire
from agola.util.duration import to_timedelta

NewId = Callable[[str], str]


def random_id(_task_name: str) -> str:
    """The default task id generator: a random UUIDv4, as the reference."""
    return str(uuid.uuid4())


def ci_skip(commit_message: str) -> bool:
    """A commit whose message (subject or body) contains ``[ci skip]`` creates no run."""
    return "[ci skip]" in commit_message


# -- generated types --------------------------------------------------------------------------
# The run config tasks are the runservice's wire types (``agola.types.runservice``): a field added
# to a wire step and to the pipeline schema's step of the same kind is carried over by name.

_WIRE_STEPS: dict[str, type[wire.Step]] = {
    str(cls().type): cls
    for cls in (
        wire.CloneStep,
        wire.RunStep,
        wire.SaveToWorkspaceStep,
        wire.RestoreWorkspaceStep,
        wire.SaveCacheStep,
        wire.RestoreCacheStep,
    )
}


@attrs.frozen
class GeneratedRun:
    """One run to create: its name and its tasks, keyed by id, ordered by level then file order."""

    name: str
    tasks: dict[str, wire.RunConfigTask]

    def task_by_name(self, name: str) -> wire.RunConfigTask:
        for task in self.tasks.values():
            if task.name == name:
                return task
        raise KeyError(name)

    def levels(self) -> list[list[wire.RunConfigTask]]:
        out: list[list[wire.RunConfigTask]] = []
        for task in self.tasks.values():
            while len(out) <= task.level:
                out.append([])
            out[task.level].append(task)
        return out

    def tasks_json(self) -> dict[str, Any]:
        """The ``run_config_tasks`` map of a runservice run creation request."""
        return {tid: t.to_json() for tid, t in self.tasks.items()}

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "tasks": self.tasks_json()}


# -- generation -------------------------------------------------------------------------------


def generate_run_configs(
    config: PipelineConfig,
    ctx: RunContext,
    commit_message: str = "",
    variables: Mapping[str, str] | None = None,
    new_id: NewId = random_id,
) -> list[GeneratedRun]:
    """The runs to create for a commit: none on ``[ci skip]``, else every run whose ``when`` matches."""
    if ci_skip(commit_message):
        return []
    return [
        generate_run(config, run, ctx, variables, new_id)
        for run in config.runs
        if run_matches(run, ctx)
    ]


def run_matches(run: Run, ctx: RunContext) -> bool:
    return match_when(run.when, ctx.ref_type, ctx.branch, ctx.tag, ctx.ref)


def generate_run(
    config: PipelineConfig,
    run: Run,
    ctx: RunContext,
    variables: Mapping[str, str] | None = None,
    new_id: NewId = random_id,
) -> GeneratedRun:
    """The run config tasks of one run (whether or not its ``when`` matches)."""
    values = dict(variables or {})
    ids = {task.name: new_id(task.name) for task in run.tasks}
    graph = {ids[t.name]: [ids[d.task] for d in t.depends if d.task in ids] for t in run.tasks}
    level = dag.levels(graph)
    tasks = [_task(config, run, task, ids, level[ids[task.name]], ctx, values) for task in run.tasks]
    ordered = sorted(enumerate(tasks), key=lambda it: (it[1].level, it[0]))
    return GeneratedRun(run.name, {t.id: t for _, t in ordered})


def _task(
    config: PipelineConfig,
    run: Run,
    task: Task,
    ids: Mapping[str, str],
    level: int,
    ctx: RunContext,
    variables: dict[str, str],
) -> wire.RunConfigTask:
    depends = {}
    for dep in task.depends:
        parent = ids[dep.task]
        conditions = [wire.DependCondition(str(c)) for c in dep.effective_conditions()]
        depends[parent] = wire.RunConfigTaskDepend(task_id=parent, conditions=conditions)
    assert task.runtime is not None  # validated
    timeout = task.task_timeout_interval or config.task_timeout_interval
    return wire.RunConfigTask(
        id=ids[task.name],
        name=task.name,
        level=level,
        runtime=wire.Runtime(
            type=wire.RuntimeType(task.runtime.type or "pod"),
            arch=wire.Arch(task.runtime.arch) if task.runtime.arch else None,
            containers=[_container(c, variables) for c in task.runtime.containers],
        ),
        depends=depends,
        environment=_env(task.environment, variables),
        working_dir=task.working_dir,
        shell=task.shell or DEFAULT_SHELL,
        user=task.user,
        steps=[
            _step(s, variables)
            for s in task.steps
            if match_when(s.when, ctx.ref_type, ctx.branch, ctx.tag, ctx.ref)
        ],
        ignore_failure=task.ignore_failure,
        needs_approval=task.approval,
        skip=not match_when(task.when, ctx.ref_type, ctx.branch, ctx.tag, ctx.ref),
        docker_registries_auth=_registries(config, run, task, variables),
        task_timeout_interval=to_timedelta(timeout) if timeout else None,
    )


def _env(env: Mapping[str, Value], variables: dict[str, str]) -> dict[str, str]:
    return {name: value.resolve(variables) for name, value in env.items()}


def _container(c: Container, variables: dict[str, str]) -> wire.Container:
    return wire.Container(
        image=c.image,
        environment=_env(c.environment, variables),
        user=c.user,
        privileged=c.privileged,
        entrypoint=c.entrypoint,
        # Every volume is a tmpfs (the only kind there is); size 0 = the engine's default.
        volumes=[
            wire.Volume(path=v.path, tmpfs=wire.VolumeTmpFS(size=(v.tmpfs.size or 0) if v.tmpfs else 0))
            for v in c.volumes
        ],
    )


def _registries(
    config: PipelineConfig, run: Run, task: Task, variables: dict[str, str]
) -> dict[str, wire.DockerRegistryAuth]:
    """Global < run < task, per registry."""
    merged: dict[str, RegistryAuth] = {}
    for level in (config.docker_registries_auth, run.docker_registries_auth, task.docker_registries_auth):
        merged.update(level)
    return {
        registry: wire.DockerRegistryAuth(
            type=wire.DockerRegistryAuthType(str(auth.type)),
            username=auth.username.resolve(variables),
            password=auth.password.resolve(variables),
            auth=auth.auth.resolve(variables),
        )
        for registry, auth in merged.items()
    }


def _step(step: Step, variables: dict[str, str]) -> wire.Step:
    """The wire step of a pipeline step: the fields they share, by name, with values resolved."""
    target = _WIRE_STEPS[step.type]
    values = {
        f.name: _wire_value(getattr(step, f.name), variables)
        for f in attrs.fields(target)
        if f.name != "type" and hasattr(step, f.name)
    }
    if isinstance(step, CloneStep) and not step.name:
        values["name"] = CLONE_STEP_NAME
    return target(**values)


def _wire_value(value: object, variables: dict[str, str]) -> Any:
    if isinstance(value, SaveContent):
        return wire.SaveContent(source_dir=value.source_dir, dest_dir=value.dest_dir, paths=list(value.paths))
    if isinstance(value, tuple):
        return [_wire_value(v, variables) for v in value]
    if isinstance(value, Mapping):
        return {k: v.resolve(variables) if isinstance(v, Value) else v for k, v in value.items()}
    return value
