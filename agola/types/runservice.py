"""Runservice wire types (spec §3.2): runs, run configs, executors and executor tasks.

JSON names, enum strings and ``omitempty`` follow the reference so existing clients keep working.
All types are frozen: state changes are made by the pure functions of
``agola.services.runservice.logic`` which return new values (``attrs.evolve``).

Timestamps are timezone-aware UTC ``datetime`` values, written as RFC3339.
"""

from __future__ import annotations

import enum
import json
from datetime import datetime, timedelta
from typing import Any

import attrs

from agola.errors import BadRequest
from agola.types._json import JSONType, decode_object, jfield, json_keys

# -- enums -----------------------------------------------------------------------------------


class RunPhase(enum.StrEnum):
    SETUP_ERROR = "setuperror"
    QUEUED = "queued"
    CANCELLED = "cancelled"
    RUNNING = "running"
    FINISHED = "finished"

    @property
    def is_finished(self) -> bool:
        return self in (RunPhase.SETUP_ERROR, RunPhase.CANCELLED, RunPhase.FINISHED)


class RunResult(enum.StrEnum):
    UNKNOWN = "unknown"
    STOPPED = "stopped"
    SUCCESS = "success"
    FAILED = "failed"

    @property
    def is_set(self) -> bool:
        return self is not RunResult.UNKNOWN


class RunTaskStatus(enum.StrEnum):
    NOT_STARTED = "notstarted"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    RUNNING = "running"
    STOPPED = "stopped"
    SUCCESS = "success"
    FAILED = "failed"

    @property
    def is_finished(self) -> bool:
        return self not in (RunTaskStatus.NOT_STARTED, RunTaskStatus.RUNNING)


class ExecutorTaskPhase(enum.StrEnum):
    NOT_STARTED = "notstarted"
    CANCELLED = "cancelled"
    RUNNING = "running"
    STOPPED = "stopped"
    SUCCESS = "success"
    FAILED = "failed"

    @property
    def is_finished(self) -> bool:
        return self not in (ExecutorTaskPhase.NOT_STARTED, ExecutorTaskPhase.RUNNING)


class FetchPhase(enum.StrEnum):
    """Whether a task's log or workspace archive was copied from the executor (RunTaskFetchPhase)."""

    NOT_STARTED = "notstarted"
    FINISHED = "finished"


class DependCondition(enum.StrEnum):
    ON_SUCCESS = "on_success"
    ON_FAILURE = "on_failure"
    ON_SKIPPED = "on_skipped"


class RuntimeType(enum.StrEnum):
    POD = "pod"


class Arch(enum.StrEnum):
    I386 = "386"
    AMD64 = "amd64"
    ARM = "arm"
    ARM64 = "arm64"


class DockerRegistryAuthType(enum.StrEnum):
    BASIC = "basic"
    ENCODED_AUTH = "encodedauth"


# -- run config ------------------------------------------------------------------------------


@attrs.frozen
class VolumeTmpFS(JSONType):
    size: int = jfield("size", omitempty=False, default=0)  # bytes, 0 = unlimited


@attrs.frozen
class Volume(JSONType):
    path: str = jfield("path", omitempty=False)
    tmpfs: VolumeTmpFS | None = jfield("tmpfs", omitempty=False, default=None)


@attrs.frozen
class Container(JSONType):
    image: str = jfield("image")
    environment: dict[str, str] = jfield("environment", factory=dict)
    user: str = jfield("user", omitempty=False, default="")
    privileged: bool = jfield("privileged", omitempty=False, default=False)
    entrypoint: str = jfield("entrypoint", omitempty=False, default="")
    volumes: list[Volume] = jfield("volumes", omitempty=False, factory=list)


@attrs.frozen
class Runtime(JSONType):
    type: RuntimeType = jfield("type", default=RuntimeType.POD)
    arch: Arch | None = jfield("arch", default=None)  # None = any executor arch
    containers: list[Container] = jfield("containers", factory=list)

    @property
    def privileged(self) -> bool:
        return any(c.privileged for c in self.containers)


@attrs.frozen
class DockerRegistryAuth(JSONType):
    type: DockerRegistryAuthType = jfield(
        "type", omitempty=False, default=DockerRegistryAuthType.BASIC
    )
    username: str = jfield("username", omitempty=False, default="")
    password: str = jfield("password", omitempty=False, default="")
    auth: str = jfield("auth", omitempty=False, default="")

    def __repr__(self) -> str:  # never print credentials in logs or test output
        return f"DockerRegistryAuth(type={self.type.value!r}, username={self.username!r}, ...)"


@attrs.frozen
class RunConfigTaskDepend(JSONType):
    task_id: str = jfield("task_id")
    conditions: list[DependCondition] = jfield("conditions", factory=list)


@attrs.frozen
class SaveContent(JSONType):
    source_dir: str = jfield("source_dir", default="")
    dest_dir: str = jfield("dest_dir", default="")
    paths: list[str] = jfield("paths", factory=list)


class StepType(enum.StrEnum):
    CLONE = "clone"
    RUN = "run"
    SAVE_TO_WORKSPACE = "save_to_workspace"
    RESTORE_WORKSPACE = "restore_workspace"
    SAVE_CACHE = "save_cache"
    RESTORE_CACHE = "restore_cache"


@attrs.frozen
class Step(JSONType):
    """Base of the step kinds; the JSON ``type`` key selects the concrete class when parsing."""

    type: StepType = jfield("type")
    name: str = jfield("name", default="")

    @classmethod
    def __json_decode__(cls, raw: Any, path: str) -> Step:
        if not isinstance(raw, dict):
            raise BadRequest(f"{path}: expected an object" if path else "expected an object")
        kind = raw.get("type")
        target = _STEP_CLASSES.get(kind) if isinstance(kind, str) else None
        if target is None:
            where = f"{path}.type" if path else "type"
            allowed = ", ".join(repr(k) for k in _STEP_CLASSES)
            raise BadRequest(f"{where}: unknown step type {kind!r}, expected one of {allowed}")
        step: Step = decode_object(raw, target, path)
        return step


@attrs.frozen
class CloneStep(Step):
    """Check out the run's commit into the working dir (done by the executor on the host side:
    the image needs no git)."""

    type: StepType = jfield("type", default=StepType.CLONE)
    depth: int | None = jfield("depth", default=None)
    recurse_submodules: bool = jfield("recurse_submodules", default=False)


@attrs.frozen
class RunStep(Step):
    type: StepType = jfield("type", default=StepType.RUN)
    command: str = jfield("command", default="")
    environment: dict[str, str] = jfield("environment", factory=dict)
    working_dir: str = jfield("working_dir", default="")
    shell: str = jfield("shell", default="")
    tty: bool = jfield("tty", omitempty=False, default=True)  # absent => true, as in Go


@attrs.frozen
class SaveToWorkspaceStep(Step):
    type: StepType = jfield("type", default=StepType.SAVE_TO_WORKSPACE)
    contents: list[SaveContent] = jfield("contents", factory=list)


@attrs.frozen
class RestoreWorkspaceStep(Step):
    type: StepType = jfield("type", default=StepType.RESTORE_WORKSPACE)
    dest_dir: str = jfield("dest_dir", default="")


@attrs.frozen
class SaveCacheStep(Step):
    type: StepType = jfield("type", default=StepType.SAVE_CACHE)
    key: str = jfield("key", default="")
    contents: list[SaveContent] = jfield("contents", factory=list)


@attrs.frozen
class RestoreCacheStep(Step):
    type: StepType = jfield("type", default=StepType.RESTORE_CACHE)
    keys: list[str] = jfield("keys", factory=list)
    dest_dir: str = jfield("dest_dir", default="")


_STEP_CLASSES: dict[str, type[Step]] = {
    StepType.CLONE.value: CloneStep,
    StepType.RUN.value: RunStep,
    StepType.SAVE_TO_WORKSPACE.value: SaveToWorkspaceStep,
    StepType.RESTORE_WORKSPACE.value: RestoreWorkspaceStep,
    StepType.SAVE_CACHE.value: SaveCacheStep,
    StepType.RESTORE_CACHE.value: RestoreCacheStep,
}


@attrs.frozen
class RunConfigTask(JSONType):
    id: str = jfield("id")
    name: str = jfield("name")
    runtime: Runtime = jfield("runtime")
    level: int = jfield("level", default=0)  # depth in the DAG: roots 0, else 1 + max parent level
    depends: dict[str, RunConfigTaskDepend] = jfield("depends", omitempty=False, factory=dict)
    environment: dict[str, str] = jfield("environment", factory=dict)
    working_dir: str = jfield("working_dir", default="")
    shell: str = jfield("shell", default="")
    user: str = jfield("user", default="")
    steps: list[Step] = jfield("steps", factory=list)
    ignore_failure: bool = jfield("ignore_failure", default=False)
    needs_approval: bool = jfield("needs_approval", default=False)
    skip: bool = jfield("skip", default=False)
    docker_registries_auth: dict[str, DockerRegistryAuth] = jfield(
        "docker_registries_auth", omitempty=False, factory=dict
    )
    # Added after v0.4.0 (v0.8.0): the task fails as timed out after this long; None = no limit.
    task_timeout_interval: timedelta | None = jfield("task_timeout_interval", default=None)
    # Not in the reference: the secret values of the run (its secret-backed variables, the clone
    # key), written as ``***`` in the task's logs by the executor. Set by the gateway at creation;
    # internal only (the public API never shows run config tasks whole).
    masked_values: list[str] = jfield("masked_values", factory=list, repr=False)

    @property
    def workspace_archive_steps(self) -> list[int]:
        """Indexes of the steps producing a workspace archive."""
        return [i for i, s in enumerate(self.steps) if isinstance(s, SaveToWorkspaceStep)]


@attrs.frozen
class RunConfig(JSONType):
    """The immutable description of a run, written once at creation."""

    id: str = jfield("id")
    name: str = jfield("name", default="")
    group: str = jfield("group", default="")
    setup_errors: list[str] = jfield("setup_errors", factory=list)
    annotations: dict[str, str] = jfield("annotations", factory=dict)
    static_environment: dict[str, str] = jfield("static_environment", factory=dict)
    environment: dict[str, str] = jfield("environment", factory=dict)
    tasks: dict[str, RunConfigTask] = jfield("tasks", factory=dict)
    cache_group: str = jfield("cache_group", default="")


# -- run -------------------------------------------------------------------------------------


@attrs.frozen
class RunTaskStep(JSONType):
    phase: ExecutorTaskPhase = jfield("phase", default=ExecutorTaskPhase.NOT_STARTED)
    log_phase: FetchPhase = jfield("log_phase", default=FetchPhase.NOT_STARTED)
    exit_status: int | None = jfield("exit_status", omitempty=False, default=None)
    start_time: datetime | None = jfield("start_time", default=None)
    end_time: datetime | None = jfield("end_time", default=None)


@attrs.frozen
class RunTask(JSONType):
    id: str = jfield("id")
    status: RunTaskStatus = jfield("status", default=RunTaskStatus.NOT_STARTED)
    annotations: dict[str, str] = jfield("annotations", factory=dict)
    skip: bool = jfield("skip", default=False)
    waiting_approval: bool = jfield("waiting_approval", default=False)
    approved: bool = jfield("approved", default=False)
    # Go never omits this non-pointer struct, so neither do we.
    setup_step: RunTaskStep = jfield("setup_step", omitempty=False, factory=RunTaskStep)
    steps: list[RunTaskStep] = jfield("steps", factory=list)
    workspace_archives: list[int] = jfield("workspace_archives", factory=list)
    workspace_archives_phase: list[FetchPhase] = jfield("workspace_archives_phase", factory=list)
    start_time: datetime | None = jfield("start_time", default=None)
    end_time: datetime | None = jfield("end_time", default=None)
    timedout: bool = jfield("timedout", default=False)  # added after v0.4.0 (task timeouts)
    # Not in the reference: why the task failed when no step says it (its executor died or
    # restarted, its setup failed), copied from the executor task status.
    fail_error: str = jfield("fail_error", default="")

    @property
    def logs_fetch_finished(self) -> bool:
        return self.setup_step.log_phase is FetchPhase.FINISHED and all(
            s.log_phase is FetchPhase.FINISHED for s in self.steps
        )

    @property
    def archives_fetch_finished(self) -> bool:
        return all(p is FetchPhase.FINISHED for p in self.workspace_archives_phase)


@attrs.frozen
class Run(JSONType):
    id: str = jfield("id")
    name: str = jfield("name", default="")
    counter: int = jfield("counter", default=0)
    group: str = jfield("group", default="")
    annotations: dict[str, str] = jfield("annotations", factory=dict)
    phase: RunPhase = jfield("phase", default=RunPhase.QUEUED)
    result: RunResult = jfield("result", default=RunResult.UNKNOWN)
    stop: bool = jfield("stop", default=False)
    tasks: dict[str, RunTask] = jfield("tasks", factory=dict)
    enqueue_time: datetime | None = jfield("enqueue_time", default=None)
    start_time: datetime | None = jfield("start_time", default=None)
    end_time: datetime | None = jfield("end_time", default=None)
    archived: bool = jfield("archived", default=False)

    @property
    def tasks_finished(self) -> bool:
        return all(t.status.is_finished for t in self.tasks.values())


# -- executors -------------------------------------------------------------------------------


@attrs.frozen
class Executor(JSONType):
    id: str = jfield("id")
    listen_url: str = jfield("listenURL", default="")
    archs: list[Arch] = jfield("archs", factory=list)
    labels: dict[str, str] = jfield("labels", factory=dict)
    allow_privileged_containers: bool = jfield("allow_privileged_containers", default=False)
    active_tasks_limit: int = jfield("active_tasks_limit", default=0)  # 0 = unlimited
    active_tasks: int = jfield("active_tasks", default=0)
    dynamic: bool = jfield("dynamic", default=False)
    executor_group: str = jfield("executor_group", default="")
    siblings_executors: list[str] = jfield("siblings_executors", factory=list)
    # Set by the runservice on every heartbeat, never trusted from the executor.
    last_status_update_time: datetime | None = jfield("last_status_update_time", default=None)


@attrs.frozen
class WorkspaceOperation(JSONType):
    """Restore the archive of step ``step`` of ancestor task ``task_id`` (a run task id)."""

    task_id: str = jfield("task_id")
    step: int = jfield("step", default=0)
    overwrite: bool = jfield("overwrite", default=False)


@attrs.frozen
class ExecutorTaskSpecData(JSONType):
    """What the executor needs to run a task; generated from the run and run config on every send.

    Never stored in coordination: it is bulky and fully derived.
    """

    task_name: str = jfield("task_name", default="")
    arch: Arch | None = jfield("arch", default=None)
    containers: list[Container] = jfield("containers", factory=list)
    environment: dict[str, str] = jfield("environment", factory=dict)
    working_dir: str = jfield("working_dir", default="")
    shell: str = jfield("shell", default="")
    user: str = jfield("user", default="")
    privileged: bool = jfield("privileged", omitempty=False, default=False)
    workspace_operations: list[WorkspaceOperation] = jfield("workspace_operations", factory=list)
    docker_registries_auth: dict[str, DockerRegistryAuth] = jfield(
        "docker_registries_auth", omitempty=False, factory=dict
    )
    cache_prefix: str = jfield("cache_prefix", default="")
    steps: list[Step] = jfield("steps", factory=list)
    task_timeout_interval: timedelta | None = jfield("task_timeout_interval", default=None)
    # The run config task's masked_values: replaced by ``***`` in this task's logs.
    masked_values: list[str] = jfield("masked_values", factory=list)

    def __repr__(self) -> str:
        # The environment carries secrets (AGOLA_SSHPRIVKEY, variables), as do container
        # environments, registry auths and masked_values: never in logs or test output.
        images = [c.image for c in self.containers]
        return f"ExecutorTaskSpecData(task_name={self.task_name!r}, images={images!r}, steps={len(self.steps)}, ...)"


@attrs.frozen
class ExecutorTaskSpec(JSONType):
    """Which run task runs where, and whether it must stop. Stored in coordination."""

    executor_id: str = jfield("executor_id")
    run_id: str = jfield("run_id")
    stop: bool = jfield("stop", default=False)


@attrs.frozen
class ExecutorTaskStepStatus(JSONType):
    phase: ExecutorTaskPhase = jfield("phase", default=ExecutorTaskPhase.NOT_STARTED)
    start_time: datetime | None = jfield("start_time", default=None)
    end_time: datetime | None = jfield("end_time", default=None)
    exit_status: int | None = jfield("exit_status", omitempty="nil", default=None)  # Go *int: 0 is kept


@attrs.frozen
class ExecutorTaskStatus(JSONType):
    """What happened to a task on its executor, as last reported."""

    id: str = jfield("id", default="")
    revision: int = jfield("revision", default=0)
    phase: ExecutorTaskPhase = jfield("phase", default=ExecutorTaskPhase.NOT_STARTED)
    fail_error: str = jfield("fail_error", default="")
    timedout: bool = jfield("timedout", default=False)
    setup_step: ExecutorTaskStepStatus = jfield(
        "setup_step", omitempty=False, factory=ExecutorTaskStepStatus
    )
    steps: list[ExecutorTaskStepStatus] = jfield("steps", factory=list)
    start_time: datetime | None = jfield("start_time", default=None)
    end_time: datetime | None = jfield("end_time", default=None)


_SPEC_KEYS = json_keys(ExecutorTaskSpec)


@attrs.frozen
class ExecutorTask(JSONType):
    """An executor task (id == run task id). On the wire the spec data may be inlined in ``spec``.

    ``to_json()`` is the stored form (no spec data); ``to_json(spec_data)`` is what an executor
    receives. ``from_json`` accepts both and drops the data; ``from_json_with_data`` keeps it.
    """

    id: str = jfield("id")
    spec: ExecutorTaskSpec = jfield("spec", omitempty=False)
    status: ExecutorTaskStatus = jfield("status", omitempty=False, factory=ExecutorTaskStatus)

    def to_json(self, spec_data: ExecutorTaskSpecData | None = None) -> dict[str, Any]:
        out = super().to_json()
        if spec_data is not None:
            out["spec"] = {**out["spec"], **spec_data.to_json()}
        return out

    @classmethod
    def __json_decode__(cls, raw: Any, path: str) -> ExecutorTask:
        return cls.from_json_with_data(raw, path=path)[0]

    @classmethod
    def from_json_with_data(
        cls, raw: Any, *, path: str = ""
    ) -> tuple[ExecutorTask, ExecutorTaskSpecData | None]:
        if isinstance(raw, (str, bytes, bytearray)):
            return cls.from_json_with_data(_loads(raw), path=path)
        if not isinstance(raw, dict):
            raise BadRequest(f"{path}: expected an object" if path else "expected an object")
        spec_raw = raw.get("spec")
        data: ExecutorTaskSpecData | None = None
        if isinstance(spec_raw, dict):
            spec_part = {k: v for k, v in spec_raw.items() if k in _SPEC_KEYS}
            data_part = {k: v for k, v in spec_raw.items() if k not in _SPEC_KEYS}
            if data_part:
                spec_path = f"{path}.spec" if path else "spec"
                data = decode_object(data_part, ExecutorTaskSpecData, spec_path)
            raw = {**raw, "spec": spec_part}
        task: ExecutorTask = decode_object(raw, cls, path)
        return task, data


def _loads(raw: str | bytes | bytearray) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"invalid JSON: {exc}") from None


# -- API messages ----------------------------------------------------------------------------


@attrs.frozen
class RunEvent(JSONType):
    """A run phase/result change. The reference has no JSON tags here, hence the Go names."""

    sequence: str = jfield("Sequence")
    run_id: str = jfield("RunID")
    phase: RunPhase = jfield("Phase")
    result: RunResult = jfield("Result")


@attrs.frozen
class RunCreateRequest(JSONType):
    """``POST /api/v1alpha/runs``: a new run (``run_id`` empty) or a restart of ``run_id``."""

    run_config_tasks: dict[str, RunConfigTask] | None = jfield("run_config_tasks", default=None)
    name: str = jfield("name", default="")
    group: str = jfield("group", default="")
    setup_errors: list[str] = jfield("setup_errors", factory=list)
    static_environment: dict[str, str] = jfield("static_environment", factory=dict)
    cache_group: str = jfield("cache_group", default="")
    run_id: str = jfield("run_id", default="")
    from_start: bool = jfield("from_start", default=False)
    reset_tasks: list[str] = jfield("reset_tasks", factory=list)  # accepted, unused (as in v0.4.0)
    environment: dict[str, str] = jfield("environment", factory=dict)
    annotations: dict[str, str] = jfield("annotations", factory=dict)
    # sic: the reference's JSON key really is "changeup_update_tokens".
    change_groups_update_token: str = jfield("changeup_update_tokens", default="")


@attrs.frozen
class RunResponse(JSONType):
    """Answer of run creation and ``GET /runs/{id}``."""

    run: Run = jfield("run", omitempty=False)
    run_config: RunConfig | None = jfield("run_config", omitempty=False, default=None)
    change_groups_update_token: str = jfield(
        "change_groups_update_tokens", omitempty=False, default=""
    )


class RunActionType(enum.StrEnum):
    CHANGE_PHASE = "changephase"
    STOP = "stop"


@attrs.frozen
class RunActionsRequest(JSONType):
    action_type: RunActionType = jfield("action_type")
    phase: RunPhase | None = jfield("phase", default=None)
    change_groups_update_token: str = jfield("change_groups_update_tokens", default="")


class RunTaskActionType(enum.StrEnum):
    SET_ANNOTATIONS = "setannotations"
    APPROVE = "approve"


@attrs.frozen
class RunTaskActionsRequest(JSONType):
    action_type: RunTaskActionType = jfield("action_type")
    annotations: dict[str, str] = jfield("annotations", factory=dict)
    change_groups_update_token: str = jfield("change_groups_update_tokens", default="")
