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
    RestoreCacheStep,
    RestoreWorkspaceStep,
    Run,
    RunStep,
    SaveCacheStep,
    SaveContent,
    SaveToWorkspaceStep,
    Step,
    Task,
    Value,
)
from agola.pipeline.when import match_when

NewId = Callable[[str], str]


def random_id(_task_name: str) -> str:
    """The default task id generator: a random UUIDv4, as the reference."""
    return str(uuid.uuid4())


def ci_skip(commit_message: str) -> bool:
    """A commit whose message (subject or body) contains ``[ci skip]`` creates no run."""
    return "[ci skip]" in commit_message


# -- generated types --------------------------------------------------------------------------


def _content_json(c: SaveContent) -> dict[str, Any]:
    return {"source_dir": c.source_dir, "dest_dir": c.dest_dir, "paths": list(c.paths)}


@attrs.frozen
class CloneOperation:
    """Check out the commit being built into the task working dir (done by the executor)."""

    name: str = CLONE_STEP_NAME
    depth: int | None = None
    recurse_submodules: bool = False
    type: str = attrs.field(default="clone", init=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "name": self.name}
        if self.depth is not None:
            out["depth"] = self.depth
        if self.recurse_submodules:
            out["recurse_submodules"] = True
        return out


@attrs.frozen
class RunOperation:
    name: str
    command: str
    environment: dict[str, str] = attrs.Factory(dict)
    working_dir: str = ""
    shell: str = ""
    tty: bool = True
    type: str = attrs.field(default="run", init=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "name": self.name, "command": self.command}
        if self.environment:
            out["environment"] = dict(self.environment)
        if self.working_dir:
            out["working_dir"] = self.working_dir
        if self.shell:
            out["shell"] = self.shell
        out["tty"] = self.tty
        return out


@attrs.frozen
class SaveToWorkspaceOperation:
    name: str
    contents: tuple[SaveContent, ...] = ()
    type: str = attrs.field(default="save_to_workspace", init=False)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "contents": [_content_json(c) for c in self.contents]}


@attrs.frozen
class RestoreWorkspaceOperation:
    name: str
    dest_dir: str = ""
    type: str = attrs.field(default="restore_workspace", init=False)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "dest_dir": self.dest_dir}


@attrs.frozen
class SaveCacheOperation:
    name: str
    key: str
    contents: tuple[SaveContent, ...] = ()
    type: str = attrs.field(default="save_cache", init=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "name": self.name,
            "key": self.key,
            "contents": [_content_json(c) for c in self.contents],
        }


@attrs.frozen
class RestoreCacheOperation:
    name: str
    keys: tuple[str, ...]
    dest_dir: str = ""
    type: str = attrs.field(default="restore_cache", init=False)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "keys": list(self.keys), "dest_dir": self.dest_dir}


Operation = (
    CloneOperation
    | RunOperation
    | SaveToWorkspaceOperation
    | RestoreWorkspaceOperation
    | SaveCacheOperation
    | RestoreCacheOperation
)


@attrs.frozen
class GeneratedVolume:
    path: str
    tmpfs_size: int = 0  # bytes, 0 = engine default

    def to_json(self) -> dict[str, Any]:
        tmpfs: dict[str, Any] = {"size": self.tmpfs_size} if self.tmpfs_size else {}
        return {"path": self.path, "tmpfs": tmpfs}


@attrs.frozen
class GeneratedContainer:
    image: str
    environment: dict[str, str] = attrs.Factory(dict)
    user: str = ""
    privileged: bool = False
    entrypoint: str = ""
    volumes: tuple[GeneratedVolume, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"image": self.image}
        if self.environment:
            out["environment"] = dict(self.environment)
        if self.user:
            out["user"] = self.user
        out["privileged"] = self.privileged
        out["entrypoint"] = self.entrypoint
        if self.volumes:
            out["volumes"] = [v.to_json() for v in self.volumes]
        return out


@attrs.frozen
class GeneratedRuntime:
    type: str = "pod"
    arch: str = ""
    containers: tuple[GeneratedContainer, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.arch:
            out["arch"] = self.arch
        out["containers"] = [c.to_json() for c in self.containers]
        return out


@attrs.frozen
class ResolvedRegistryAuth:
    type: str = "basic"
    username: str = ""
    password: str = ""
    auth: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for field in ("username", "password", "auth"):
            if getattr(self, field):
                out[field] = getattr(self, field)
        return out


@attrs.frozen
class TaskDepend:
    task_id: str
    conditions: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "conditions": list(self.conditions)}


@attrs.frozen
class RunConfigTask:
    id: str
    name: str
    level: int
    runtime: GeneratedRuntime
    depends: dict[str, TaskDepend] = attrs.Factory(dict)
    environment: dict[str, str] = attrs.Factory(dict)
    working_dir: str = ""
    shell: str = DEFAULT_SHELL
    user: str = ""
    steps: tuple[Operation, ...] = ()
    ignore_failure: bool = False
    needs_approval: bool = False
    skip: bool = False
    docker_registries_auth: dict[str, ResolvedRegistryAuth] = attrs.Factory(dict)
    task_timeout_interval: int = 0  # nanoseconds, 0 = no timeout

    def to_json(self) -> dict[str, Any]:
        """The runservice ``RunConfigTask`` wire shape (omitempty like the reference)."""
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "level": self.level,
            "depends": {k: v.to_json() for k, v in self.depends.items()},
            "runtime": self.runtime.to_json(),
        }
        if self.environment:
            out["environment"] = dict(self.environment)
        out["working_dir"] = self.working_dir
        out["shell"] = self.shell
        if self.user:
            out["user"] = self.user
        out["steps"] = [s.to_json() for s in self.steps]
        if self.ignore_failure:
            out["ignore_failure"] = True
        if self.needs_approval:
            out["needs_approval"] = True
        if self.skip:
            out["skip"] = True
        out["docker_registries_auth"] = {k: v.to_json() for k, v in self.docker_registries_auth.items()}
        if self.task_timeout_interval:
            out["task_timeout_interval"] = self.task_timeout_interval
        return out


@attrs.frozen
class GeneratedRun:
    """One run to create: its name and its tasks, keyed by id, ordered by level then file order."""

    name: str
    tasks: dict[str, RunConfigTask]

    def task_by_name(self, name: str) -> RunConfigTask:
        for task in self.tasks.values():
            if task.name == name:
                return task
        raise KeyError(name)

    def levels(self) -> list[list[RunConfigTask]]:
        out: list[list[RunConfigTask]] = []
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
) -> RunConfigTask:
    depends = {}
    for dep in task.depends:
        parent = ids[dep.task]
        depends[parent] = TaskDepend(parent, tuple(str(c) for c in dep.effective_conditions()))
    assert task.runtime is not None  # validated
    return RunConfigTask(
        id=ids[task.name],
        name=task.name,
        level=level,
        runtime=GeneratedRuntime(
            type=task.runtime.type or "pod",
            arch=task.runtime.arch,
            containers=tuple(_container(c, variables) for c in task.runtime.containers),
        ),
        depends=depends,
        environment=_env(task.environment, variables),
        working_dir=task.working_dir,
        shell=task.shell or DEFAULT_SHELL,
        user=task.user,
        steps=tuple(
            _operation(s, variables)
            for s in task.steps
            if match_when(s.when, ctx.ref_type, ctx.branch, ctx.tag, ctx.ref)
        ),
        ignore_failure=task.ignore_failure,
        needs_approval=task.approval,
        skip=not match_when(task.when, ctx.ref_type, ctx.branch, ctx.tag, ctx.ref),
        docker_registries_auth=_registries(config, run, task, variables),
        task_timeout_interval=task.task_timeout_interval or config.task_timeout_interval or 0,
    )


def _env(env: Mapping[str, Value], variables: dict[str, str]) -> dict[str, str]:
    return {name: value.resolve(variables) for name, value in env.items()}


def _container(c: Container, variables: dict[str, str]) -> GeneratedContainer:
    return GeneratedContainer(
        image=c.image,
        environment=_env(c.environment, variables),
        user=c.user,
        privileged=c.privileged,
        entrypoint=c.entrypoint,
        volumes=tuple(
            GeneratedVolume(v.path, (v.tmpfs.size or 0) if v.tmpfs is not None else 0) for v in c.volumes
        ),
    )


def _registries(
    config: PipelineConfig, run: Run, task: Task, variables: dict[str, str]
) -> dict[str, ResolvedRegistryAuth]:
    """Global < run < task, per registry."""
    merged: dict[str, RegistryAuth] = {}
    for level in (config.docker_registries_auth, run.docker_registries_auth, task.docker_registries_auth):
        merged.update(level)
    return {
        registry: ResolvedRegistryAuth(
            type=str(auth.type),
            username=auth.username.resolve(variables),
            password=auth.password.resolve(variables),
            auth=auth.auth.resolve(variables),
        )
        for registry, auth in merged.items()
    }


def _operation(step: Step, variables: dict[str, str]) -> Operation:
    if isinstance(step, CloneStep):
        return CloneOperation(
            name=step.name or CLONE_STEP_NAME, depth=step.depth, recurse_submodules=step.recurse_submodules
        )
    if isinstance(step, RunStep):
        return RunOperation(
            name=step.name,
            command=step.command,
            environment=_env(step.environment, variables),
            working_dir=step.working_dir,
            shell=step.shell,
            tty=step.tty,
        )
    if isinstance(step, SaveToWorkspaceStep):
        return SaveToWorkspaceOperation(step.name, step.contents)
    if isinstance(step, RestoreWorkspaceStep):
        return RestoreWorkspaceOperation(step.name, step.dest_dir)
    if isinstance(step, SaveCacheStep):
        return SaveCacheOperation(step.name, step.key, step.contents)
    if isinstance(step, RestoreCacheStep):
        return RestoreCacheOperation(step.name, step.keys, step.dest_dir)
    raise TypeError(f"unknown step {step!r}")  # pragma: no cover
