"""What an executor is asked to run (the task spec) and what it reports back (the task status).

The spec mirrors the reference's ``ExecutorTaskSpecData`` (JSON names kept, see the spec §3.2 and
§7.4) plus two additions of this re-implementation: the ``clone`` step is executed by the
executor itself from the host (the image needs no git), and ``task_timeout_interval`` (v0.8.0).

Clone parameters come from the run's static environment (``AGOLA_REPOSITORY_URL``,
``AGOLA_GIT_REF``, ``AGOLA_GIT_COMMITSHA``, ``AGOLA_SSHPRIVKEY``, ``AGOLA_SSHHOSTKEY``,
``AGOLA_SKIPSSHHOSTKEYCHECK``) exactly as the reference's generated clone script used them, or from
an explicit ``clone_source`` object (which also carries an HTTP auth header for token clones).
"""

from __future__ import annotations

import enum
import re
from datetime import datetime, timezone
from typing import Any, Mapping, Union

import attrs

from agola.errors import BadRequest

DEFAULT_SHELL = "/bin/sh -e"


def _hide_values(env: Mapping[str, str]) -> str:
    # Environments carry secrets (AGOLA_SSHPRIVKEY, variables): reprs show the names only.
    return "{" + ", ".join(f"{k!r}: ..." for k in env) + "}"

DEFAULT_WORKING_DIR = "~/project"


# ------------------------------------------------------------------------------------------- spec


@attrs.frozen
class Volume:
    path: str
    tmpfs_size: int = 0  # bytes; 0 = the engine's default


@attrs.frozen
class Container:
    image: str
    environment: Mapping[str, str] = attrs.field(factory=dict, repr=_hide_values)
    user: str = ""
    privileged: bool = False
    entrypoint: str = ""  # split on single spaces, like the reference
    volumes: tuple[Volume, ...] = ()


@attrs.frozen
class RegistryAuth:
    type: str = "basic"  # basic | encodedauth
    username: str = ""
    password: str = attrs.field(default="", repr=False)
    auth: str = attrs.field(default="", repr=False)


@attrs.frozen
class SaveContent:
    source_dir: str = ""
    dest_dir: str = ""
    paths: tuple[str, ...] = ()


CLONE_STEP_NAME = "Clone repository and checkout code"


@attrs.frozen
class CloneStep:
    name: str = CLONE_STEP_NAME
    depth: int | None = None
    recurse_submodules: bool = False
    type = "clone"


@attrs.frozen
class RunStep:
    command: str
    name: str = ""
    environment: Mapping[str, str] = attrs.field(factory=dict, repr=_hide_values)
    working_dir: str = ""
    shell: str = ""
    tty: bool = True
    type = "run"


@attrs.frozen
class SaveToWorkspaceStep:
    contents: tuple[SaveContent, ...] = ()
    name: str = ""
    type = "save_to_workspace"


@attrs.frozen
class RestoreWorkspaceStep:
    dest_dir: str = ""
    name: str = ""
    type = "restore_workspace"


@attrs.frozen
class SaveCacheStep:
    key: str
    contents: tuple[SaveContent, ...] = ()
    name: str = ""
    type = "save_cache"


@attrs.frozen
class RestoreCacheStep:
    keys: tuple[str, ...]
    dest_dir: str = ""
    name: str = ""
    type = "restore_cache"


Step = Union[CloneStep, RunStep, SaveToWorkspaceStep, RestoreWorkspaceStep, SaveCacheStep, RestoreCacheStep]


@attrs.frozen
class WorkspaceOperation:
    """An ancestor's ``save_to_workspace`` archive to restore (level/name order is the caller's)."""

    task_id: str
    step: int
    overwrite: bool = False


@attrs.frozen
class CloneSource:
    repository_url: str
    ref: str = ""
    commit_sha: str = ""
    ssh_private_key: str = attrs.field(default="", repr=False)
    ssh_host_key: str = ""
    skip_host_key_check: bool = False
    # Full header line for HTTP(S) clones, e.g. "Authorization: Bearer <token>". Never logged.
    http_auth_header: str = attrs.field(default="", repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CloneSource | None:
        url = env.get("AGOLA_REPOSITORY_URL", "")
        if not url:
            return None
        return cls(
            repository_url=url,
            ref=env.get("AGOLA_GIT_REF", ""),
            commit_sha=env.get("AGOLA_GIT_COMMITSHA", ""),
            ssh_private_key=env.get("AGOLA_SSHPRIVKEY", ""),
            ssh_host_key=env.get("AGOLA_SSHHOSTKEY", ""),
            skip_host_key_check=bool(env.get("AGOLA_SKIPSSHHOSTKEYCHECK", "")),
        )


@attrs.frozen
class TaskSpec:
    task_id: str
    containers: tuple[Container, ...]
    steps: tuple[Step, ...]
    task_name: str = ""
    arch: str = ""
    environment: Mapping[str, str] = attrs.field(factory=dict, repr=_hide_values)
    working_dir: str = DEFAULT_WORKING_DIR
    shell: str = ""
    user: str = ""
    workspace_operations: tuple[WorkspaceOperation, ...] = ()
    docker_registries_auth: Mapping[str, RegistryAuth] = attrs.field(factory=dict)
    cache_prefix: str = ""
    task_timeout_interval: float | None = None  # seconds
    clone_source: CloneSource | None = None

    @property
    def step_user(self) -> str:
        """The user of every step exec: task ``user``, else container 0's ``user``."""
        return self.user or (self.containers[0].user if self.containers else "")

    def effective_clone_source(self) -> CloneSource | None:
        return self.clone_source or CloneSource.from_env(self.environment)

    @classmethod
    def from_spec_data(cls, task_id: str, data: Any) -> TaskSpec:
        """From ``agola.types.runservice.ExecutorTaskSpecData`` (what the runservice sends)."""
        return cls.from_json(task_id, data.to_json())

    @classmethod
    def from_json(cls, task_id: str, data: Mapping[str, Any]) -> TaskSpec:
        """Parse the reference's ``ExecutorTaskSpecData`` JSON (unknown step types are rejected)."""
        return _spec_from_json(task_id, data)


# ----------------------------------------------------------------------------------------- status


class Phase(str, enum.Enum):
    NOTSTARTED = "notstarted"
    CANCELLED = "cancelled"
    RUNNING = "running"
    STOPPED = "stopped"
    SUCCESS = "success"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (Phase.CANCELLED, Phase.STOPPED, Phase.SUCCESS, Phase.FAILED)


def _now() -> datetime:
    return datetime.now(timezone.utc)


@attrs.define
class StepStatus:
    phase: Phase = Phase.NOTSTARTED
    start_time: datetime | None = None
    end_time: datetime | None = None
    exit_status: int | None = None

    def start(self) -> None:
        self.phase, self.start_time = Phase.RUNNING, _now()

    def finish(self, phase: Phase, exit_status: int | None = None) -> None:
        self.phase, self.end_time, self.exit_status = phase, _now(), exit_status

    def to_json(self) -> dict[str, Any]:
        return {
            "phase": self.phase.value,
            "start_time": _ts(self.start_time),
            "end_time": _ts(self.end_time),
            "exit_status": self.exit_status,
        }


@attrs.define
class TaskStatus:
    task_id: str
    phase: Phase = Phase.NOTSTARTED
    setup_step: StepStatus = attrs.field(factory=StepStatus)
    steps: list[StepStatus] = attrs.field(factory=list)
    start_time: datetime | None = None
    end_time: datetime | None = None
    timedout: bool = False
    fail_error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.task_id,
            "phase": self.phase.value,
            "fail_error": self.fail_error,
            "timedout": self.timedout,
            "setup_step": self.setup_step.to_json(),
            "steps": [s.to_json() for s in self.steps],
            "start_time": _ts(self.start_time),
            "end_time": _ts(self.end_time),
        }


def _ts(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


# ------------------------------------------------------------------------------------ JSON parsing

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> float | None:
    """A Go duration: integer nanoseconds or a string such as ``"1m30s"``; None/0 = no timeout."""
    if value in (None, "", 0):
        return None
    if isinstance(value, bool):
        raise BadRequest(f"invalid duration {value!r}")
    if isinstance(value, (int, float)):
        return float(value) / 1e9
    text = str(value).strip()
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise BadRequest(f"invalid duration {value!r}")
    return total or None


def _str_map(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (value or {}).items()}


def _contents(value: Any, default_paths: tuple[str, ...]) -> tuple[SaveContent, ...]:
    return tuple(
        SaveContent(
            source_dir=str(c.get("source_dir") or ""),
            dest_dir=str(c.get("dest_dir") or ""),
            paths=tuple(str(p) for p in (c.get("paths") or ())) or default_paths,
        )
        for c in (value or ())
    )


def step_from_json(data: Mapping[str, Any]) -> Step:
    kind = data.get("type")
    name = str(data.get("name") or "")
    if kind == "clone":
        depth = data.get("depth")
        return CloneStep(
            name=name or CLONE_STEP_NAME,
            depth=int(depth) if depth else None,
            recurse_submodules=bool(data.get("recurse_submodules")),
        )
    if kind == "run":
        tty = data.get("tty")
        return RunStep(
            name=name,
            command=str(data.get("command") or ""),
            environment=_str_map(data.get("environment")),
            working_dir=str(data.get("working_dir") or ""),
            shell=str(data.get("shell") or ""),
            tty=True if tty is None else bool(tty),
        )
    if kind == "save_to_workspace":
        return SaveToWorkspaceStep(name=name, contents=_contents(data.get("contents"), ()))
    if kind == "restore_workspace":
        return RestoreWorkspaceStep(name=name, dest_dir=str(data.get("dest_dir") or ""))
    if kind == "save_cache":
        return SaveCacheStep(name=name, key=str(data.get("key") or ""), contents=_contents(data.get("contents"), ("**",)))
    if kind == "restore_cache":
        return RestoreCacheStep(
            name=name, keys=tuple(str(k) for k in data.get("keys") or ()), dest_dir=str(data.get("dest_dir") or "")
        )
    raise BadRequest(f"unknown step type: {kind}")


def _container_from_json(data: Mapping[str, Any]) -> Container:
    return Container(
        image=str(data.get("image") or ""),
        environment=_str_map(data.get("environment")),
        user=str(data.get("user") or ""),
        privileged=bool(data.get("privileged")),
        entrypoint=str(data.get("entrypoint") or ""),
        volumes=tuple(
            Volume(path=str(v["path"]), tmpfs_size=int((v.get("tmpfs") or {}).get("size") or 0))
            for v in data.get("volumes") or ()
        ),
    )


def _spec_from_json(task_id: str, data: Mapping[str, Any]) -> TaskSpec:
    runtime = data.get("runtime") or {}
    containers = data.get("containers") or runtime.get("containers") or ()
    clone = data.get("clone_source")
    return TaskSpec(
        task_id=task_id,
        task_name=str(data.get("task_name") or ""),
        arch=str(data.get("arch") or runtime.get("arch") or ""),
        containers=tuple(_container_from_json(c) for c in containers),
        environment=_str_map(data.get("environment")),
        working_dir=str(data.get("working_dir") or DEFAULT_WORKING_DIR),
        shell=str(data.get("shell") or ""),
        user=str(data.get("user") or ""),
        steps=tuple(step_from_json(s) for s in data.get("steps") or ()),
        workspace_operations=tuple(
            WorkspaceOperation(task_id=str(w["task_id"]), step=int(w["step"]), overwrite=bool(w.get("overwrite")))
            for w in data.get("workspace_operations") or ()
        ),
        docker_registries_auth={
            str(k): RegistryAuth(
                type=str(v.get("type") or "basic"),
                username=str(v.get("username") or ""),
                password=str(v.get("password") or ""),
                auth=str(v.get("auth") or ""),
            )
            for k, v in (data.get("docker_registries_auth") or {}).items()
        },
        cache_prefix=str(data.get("cache_prefix") or ""),
        task_timeout_interval=parse_duration(data.get("task_timeout_interval")),
        clone_source=CloneSource(**clone) if clone else None,
    )
