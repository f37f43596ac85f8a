"""The typed pipeline file (spec §2.2): what ``parse`` produces once every field has been read.

Values are final: defaults of §2.3 rule 9 are applied (``working_dir`` ``~/project``, runtime type
``pod``, registry auth type ``basic``, run step ``tty`` true and default name, ``save_cache``
paths ``["**"]``). Each object keeps its ``loc`` so validation can point at it; ``loc`` is left
out of equality.
"""

from __future__ import annotations

import enum

import attrs

from agola.pipeline.errors import Loc, LocatedError
from agola.types.when import WhenConditionType as WhenConditionType  # re-export: When's kinds

DEFAULT_WORKING_DIR = "~/project"
DEFAULT_SHELL = "/bin/sh -e"
VALID_ARCHS = ("386", "amd64", "arm", "arm64")
MAX_RUN_NAME_LENGTH = 100
MAX_TASK_NAME_LENGTH = 100
MAX_STEP_NAME_LENGTH = 100
CLONE_STEP_NAME = "Clone repository and checkout code"


def _loc() -> Loc:
    return attrs.field(default=Loc(), eq=False, repr=False)


class ValueType(enum.StrEnum):
    STRING = "string"
    FROM_VARIABLE = "from_variable"


@attrs.frozen
class Value:
    """An environment or credential value: a literal, or the name of a run variable."""

    type: ValueType = ValueType.STRING
    value: str = ""

    def resolve(self, variables: dict[str, str]) -> str:
        if self.type is ValueType.FROM_VARIABLE:
            return variables.get(self.value, "")
        return self.value


class RegistryAuthType(enum.StrEnum):
    BASIC = "basic"
    ENCODED_AUTH = "encodedauth"


@attrs.frozen
class RegistryAuth:
    type: str = RegistryAuthType.BASIC
    username: Value = Value()
    password: Value = Value()
    auth: Value = Value()
    loc: Loc = _loc()


@attrs.frozen
class WhenCondition:
    type: WhenConditionType
    match: str


@attrs.frozen
class WhenConditions:
    include: tuple[WhenCondition, ...] = ()
    exclude: tuple[WhenCondition, ...] = ()


@attrs.frozen
class When:
    """``None`` for a ref kind means "no condition on it" (see ``agola.pipeline.when``)."""

    branch: WhenConditions | None = None
    tag: WhenConditions | None = None
    ref: WhenConditions | None = None


@attrs.frozen
class Tmpfs:
    size: int | None = None  # bytes; None or 0 = the engine's default
    loc: Loc = _loc()


@attrs.frozen
class Volume:
    path: str = ""
    tmpfs: Tmpfs | None = None
    loc: Loc = _loc()


@attrs.frozen
class Container:
    image: str = ""
    environment: dict[str, Value] = attrs.Factory(dict)
    user: str = ""
    privileged: bool = False
    entrypoint: str = ""
    volumes: tuple[Volume, ...] = ()
    loc: Loc = _loc()


@attrs.frozen
class Runtime:
    type: str = "pod"
    arch: str = ""
    containers: tuple[Container, ...] = ()
    loc: Loc = _loc()


class DependCondition(enum.StrEnum):
    ON_SUCCESS = "on_success"
    ON_FAILURE = "on_failure"
    ON_SKIPPED = "on_skipped"


@attrs.frozen
class Depend:
    task: str
    conditions: tuple[DependCondition, ...] = ()
    loc: Loc = _loc()

    def effective_conditions(self) -> tuple[DependCondition, ...]:
        return self.conditions or (DependCondition.ON_SUCCESS,)


@attrs.frozen
class SaveContent:
    source_dir: str = ""
    dest_dir: str = ""
    paths: tuple[str, ...] = ()


@attrs.frozen
class CloneStep:
    name: str = ""
    depth: int | None = None
    recurse_submodules: bool = False
    when: When | None = None
    loc: Loc = _loc()
    type: str = attrs.field(default="clone", init=False)


@attrs.frozen
class RunStep:
    name: str = ""
    command: str = ""
    environment: dict[str, Value] = attrs.Factory(dict)
    working_dir: str = ""
    shell: str = ""
    tty: bool = True
    when: When | None = None
    loc: Loc = _loc()
    type: str = attrs.field(default="run", init=False)


@attrs.frozen
class SaveToWorkspaceStep:
    name: str = ""
    contents: tuple[SaveContent, ...] = ()
    when: When | None = None
    loc: Loc = _loc()
    type: str = attrs.field(default="save_to_workspace", init=False)


@attrs.frozen
class RestoreWorkspaceStep:
    name: str = ""
    dest_dir: str = ""
    when: When | None = None
    loc: Loc = _loc()
    type: str = attrs.field(default="restore_workspace", init=False)


@attrs.frozen
class SaveCacheStep:
    name: str = ""
    key: str = ""
    contents: tuple[SaveContent, ...] = ()
    when: When | None = None
    loc: Loc = _loc()
    type: str = attrs.field(default="save_cache", init=False)


@attrs.frozen
class RestoreCacheStep:
    name: str = ""
    keys: tuple[str, ...] = ()
    dest_dir: str = ""
    when: When | None = None
    loc: Loc = _loc()
    type: str = attrs.field(default="restore_cache", init=False)


Step = CloneStep | RunStep | SaveToWorkspaceStep | RestoreWorkspaceStep | SaveCacheStep | RestoreCacheStep
STEP_TYPES = (
    "clone",
    "run",
    "save_to_workspace",
    "restore_workspace",
    "save_cache",
    "restore_cache",
)


@attrs.frozen
class Task:
    name: str = ""
    runtime: Runtime | None = None
    environment: dict[str, Value] = attrs.Factory(dict)
    working_dir: str = DEFAULT_WORKING_DIR
    shell: str = ""
    user: str = ""
    steps: tuple[Step, ...] = ()
    depends: tuple[Depend, ...] = ()
    ignore_failure: bool = False
    approval: bool = False
    when: When | None = None
    docker_registries_auth: dict[str, RegistryAuth] = attrs.Factory(dict)
    task_timeout_interval: int | None = None  # nanoseconds, as Go's time.Duration
    loc: Loc = _loc()


@attrs.frozen
class Run:
    name: str = ""
    tasks: tuple[Task, ...] = ()
    when: When | None = None
    docker_registries_auth: dict[str, RegistryAuth] = attrs.Factory(dict)
    loc: Loc = _loc()

    def task(self, name: str) -> Task:
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(name)


class ConfigFormat(enum.StrEnum):
    YAML = "yaml"
    JSON = "json"
    JSONNET = "jsonnet"
    STARLARK = "starlark"


@attrs.frozen
class PipelineConfig:
    """A parsed and validated pipeline file."""

    runs: tuple[Run, ...] = ()
    docker_registries_auth: dict[str, RegistryAuth] = attrs.Factory(dict)
    # Agola HEAD: the default of the tasks that set none (nanoseconds).
    task_timeout_interval: int | None = None
    file: str = ""
    format: ConfigFormat = ConfigFormat.YAML
    # Accepted but suspicious (unknown keys): shown by `agola pipeline check`.
    warnings: tuple[LocatedError, ...] = attrs.field(default=(), eq=False)

    def run(self, name: str) -> Run:
        for run in self.runs:
            if run.name == name:
                return run
        raise KeyError(name)
