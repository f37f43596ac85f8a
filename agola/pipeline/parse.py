"""Raw located document -> typed pipeline (spec §2.2), collecting every type error with its place.

Acceptance follows the reference's decoder: unknown keys are ignored; plain string fields of runs,
tasks, runtimes, containers, volumes and registry auths also take numbers and booleans (read as
written), while values inside steps, depends, ``when`` and environment values must really be
strings. Entries the reference would crash on later (null steps, containers, contents) are errors.
"""

from __future__ import annotations

from typing import Callable, TypeVar

import difflib

import attrs

from agola.pipeline.document import Node, missing_loc
from agola.pipeline.duration import DurationError, parse_duration
from agola.pipeline.errors import ErrorList
from agola.pipeline.quantity import QuantityError, parse_quantity
from agola.pipeline.schema import (
    DEFAULT_WORKING_DIR,
    MAX_STEP_NAME_LENGTH,
    CloneStep,
    ConfigFormat,
    Container,
    Depend,
    DependCondition,
    PipelineConfig,
    RegistryAuth,
    RegistryAuthType,
    RestoreCacheStep,
    RestoreWorkspaceStep,
    Run,
    RunStep,
    Runtime,
    SaveCacheStep,
    SaveContent,
    SaveToWorkspaceStep,
    Step,
    Task,
    Tmpfs,
    Value,
    ValueType,
    Volume,
    When,
    WhenCondition,
    WhenConditions,
    WhenConditionType,
    STEP_TYPES,
)
from agola.pipeline.when import RegexpError, compile_condition_regexp

T = TypeVar("T")

_DEPEND_CONDITIONS = tuple(c.value for c in DependCondition)

# Keys each object knows; others are ignored (as the reference does) with a warning.
_STEP_COMMON = ("name", "when", "type")
KNOWN_KEYS: dict[str, tuple[str, ...]] = {
    "run": ("name", "tasks", "when", "docker_registries_auth"),
    "task": (
        "name", "runtime", "environment", "working_dir", "shell", "user", "steps", "depends",
        "ignore_failure", "approval", "when", "docker_registries_auth", "task_timeout_interval",
    ),
    "runtime": ("type", "arch", "containers"),
    "container": ("image", "environment", "user", "privileged", "entrypoint", "volumes"),
    "volume": ("path", "tmpfs"),
    "tmpfs": ("size",),
    "registry auth": ("type", "username", "password", "auth"),
    "when": ("branch", "tag", "ref"),
    "depend": ("task", "conditions"),
    "content": ("source_dir", "dest_dir", "paths"),
    "clone step": _STEP_COMMON + ("depth", "recurse_submodules"),
    "run step": _STEP_COMMON + ("command", "environment", "working_dir", "shell", "tty"),
    "save_to_workspace step": _STEP_COMMON + ("contents",),
    "restore_workspace step": _STEP_COMMON + ("dest_dir",),
    "save_cache step": _STEP_COMMON + ("key", "contents"),
    "restore_cache step": _STEP_COMMON + ("keys", "dest_dir"),
}


def parse_config(root: Node | None, file: str, fmt: ConfigFormat, errors: ErrorList) -> PipelineConfig:
    """Build the typed config; problems go to ``errors`` and the faulty parts are left out."""
    return _Parser(errors).config(root, file, fmt)


class _Parser:
    def __init__(self, errors: ErrorList) -> None:
        self.errors = errors

    # -- scalar readers ------------------------------------------------------------------

    def _type_error(self, node: Node, expected: str, hint: str = "") -> None:
        self.errors.add(f"expected {expected}, got {node.describe()}", node.loc, hint)

    def text(self, node: Node | None, *, coerce: bool) -> str:
        """A string field. ``coerce``: numbers and booleans are accepted as written."""
        if node is None or node.kind == "null":
            return ""
        if node.kind == "str":
            return str(node.value)
        if coerce and node.kind in ("int", "float", "bool"):
            return node.text
        hint = 'quote it: "..."' if node.kind in ("int", "float", "bool") else ""
        self._type_error(node, "a string", hint)
        return ""

    def boolean(self, node: Node | None) -> bool:
        if node is None or node.kind == "null":
            return False
        if node.kind == "bool":
            return bool(node.value)
        self._type_error(node, "a boolean (true or false)")
        return False

    def mapping(self, node: Node | None, what: str) -> dict[str, Node]:
        if node is None or node.kind == "null":
            return {}
        if node.kind == "map":
            return dict(node.value)
        self._type_error(node, f"a mapping for {what}")
        return {}

    def check_keys(self, fields: dict[str, Node], what: str) -> None:
        """Warn about keys ``what`` does not know (typos such as ``comand``)."""
        known = KNOWN_KEYS[what]
        for key, value in fields.items():
            if key in known:
                continue
            close = difflib.get_close_matches(key, known, n=1)
            hint = f'did you mean "{close[0]}"?' if close else "known keys: " + ", ".join(known)
            self.errors.warn(f'unknown key "{key}" in {what} (ignored)', value.loc, hint)

    def sequence(self, node: Node | None, what: str) -> list[Node]:
        if node is None or node.kind == "null":
            return []
        if node.kind == "seq":
            return list(node.value)
        self._type_error(node, f"a list for {what}")
        return []

    def strings(self, node: Node | None, what: str) -> tuple[str, ...]:
        return tuple(self.text(item, coerce=False) for item in self.sequence(node, what))

    # -- top level -----------------------------------------------------------------------

    def config(self, root: Node | None, file: str, fmt: ConfigFormat) -> PipelineConfig:
        if root is None or root.kind == "null":
            return PipelineConfig(file=file, format=fmt)
        if root.kind != "map":
            self.errors.add(
                f"failed to unmarshal config: expected a mapping at the top level, got {root.describe()}",
                root.loc,
                "a pipeline file starts with `runs:`",
            )
            return PipelineConfig(file=file, format=fmt)
        fields = root.value
        runs = []
        for i, item in enumerate(self.sequence(fields.get("runs"), "runs")):
            if item.kind == "null":
                self.errors.add(f"run at index {i} is empty", item.loc)
                continue
            run = self.run(item)
            if run is not None:
                runs.append(run)
        return PipelineConfig(
            runs=tuple(runs),
            docker_registries_auth=self.registries(fields.get("docker_registries_auth")),
            file=file,
            format=fmt,
        )

    def run(self, node: Node) -> Run | None:
        if node.kind != "map":
            self._type_error(node, "a mapping for a run")
            return None
        f = node.value
        self.check_keys(f, "run")
        name = self.text(f.get("name"), coerce=True)
        tasks = []
        for i, item in enumerate(self.sequence(f.get("tasks"), "tasks")):
            if item.kind == "null":
                self.errors.add(f'run "{name}": task at index {i} is empty', item.loc)
                continue
            task = self.task(item)
            if task is not None:
                tasks.append(task)
        return Run(
            name=name,
            tasks=tuple(tasks),
            when=self.when(f.get("when")),
            docker_registries_auth=self.registries(f.get("docker_registries_auth")),
            loc=node.loc,
        )

    def task(self, node: Node) -> Task | None:
        if node.kind != "map":
            self._type_error(node, "a mapping for a task")
            return None
        f = node.value
        self.check_keys(f, "task")
        name = self.text(f.get("name"), coerce=True)
        runtime_node = f.get("runtime")
        runtime = None
        if runtime_node is not None and runtime_node.kind != "null":
            runtime = self.runtime(runtime_node)
        return Task(
            name=name,
            runtime=runtime,
            environment=self.environment(f.get("environment")),
            working_dir=self.text(f.get("working_dir"), coerce=True) or DEFAULT_WORKING_DIR,
            shell=self.text(f.get("shell"), coerce=True),
            user=self.text(f.get("user"), coerce=True),
            steps=self.steps(f.get("steps")),
            depends=self.depends(f.get("depends")),
            ignore_failure=self.boolean(f.get("ignore_failure")),
            approval=self.boolean(f.get("approval")),
            when=self.when(f.get("when")),
            docker_registries_auth=self.registries(f.get("docker_registries_auth")),
            task_timeout_interval=self.timeout(f.get("task_timeout_interval")),
            loc=node.loc,
        )

    def timeout(self, node: Node | None) -> int | None:
        if node is None or node.kind == "null":
            return None
        if node.kind == "int" or (node.kind == "float" and float(node.value).is_integer()):
            value = int(node.value)
        elif node.kind == "str":
            try:
                value = parse_duration(str(node.value))
            except DurationError as exc:
                self.errors.add(
                    f"invalid task_timeout_interval {node.value!r}: {exc}",
                    node.loc,
                    'use a duration like "15s", "10m" or "1h30m", or nanoseconds as an integer',
                )
                return None
        else:
            self._type_error(node, 'a duration ("15s") or integer nanoseconds')
            return None
        if value < 0:
            self.errors.add("task_timeout_interval must not be negative", node.loc)
            return None
        return value or None

    # -- runtime ---------------------------------------------------------------------------

    def runtime(self, node: Node) -> Runtime | None:
        f = self.mapping(node, "runtime")
        if node.kind != "map":
            return None
        self.check_keys(f, "runtime")
        containers = []
        for i, item in enumerate(self.sequence(f.get("containers"), "containers")):
            if item.kind == "null":
                self.errors.add(f"container at index {i} is empty", item.loc, "give at least an image")
                continue
            container = self.container(item)
            if container is not None:
                containers.append(container)
        return Runtime(
            type=self.text(f.get("type"), coerce=True) or "pod",
            arch=self.text(f.get("arch"), coerce=True),
            containers=tuple(containers),
            loc=node.loc,
        )

    def container(self, node: Node) -> Container | None:
        if node.kind != "map":
            self._type_error(node, "a mapping for a container")
            return None
        f = node.value
        self.check_keys(f, "container")
        volumes = []
        for item in self.sequence(f.get("volumes"), "volumes"):
            if item.kind != "map":
                # The reference reads a null volume as one without tmpfs.
                if item.kind != "null":
                    self._type_error(item, "a mapping for a volume")
                    continue
                volumes.append(Volume(loc=item.loc))
                continue
            volumes.append(self.volume(item))
        return Container(
            image=self.text(f.get("image"), coerce=True),
            environment=self.environment(f.get("environment")),
            user=self.text(f.get("user"), coerce=True),
            privileged=self.boolean(f.get("privileged")),
            entrypoint=self.text(f.get("entrypoint"), coerce=True),
            volumes=tuple(volumes),
            loc=node.loc,
        )

    def volume(self, node: Node) -> Volume:
        f = node.value
        self.check_keys(f, "volume")
        tmpfs_node = f.get("tmpfs")
        tmpfs = None
        if tmpfs_node is not None and tmpfs_node.kind != "null":
            tf = self.mapping(tmpfs_node, "tmpfs")
            self.check_keys(tf, "tmpfs")
            size = None
            size_node = tf.get("size")
            if size_node is not None and size_node.kind != "null":
                if size_node.kind in ("str", "int", "float"):
                    try:
                        size = parse_quantity(size_node.text if size_node.kind != "str" else size_node.value)
                    except QuantityError as exc:
                        self.errors.add(
                            f"invalid tmpfs size {size_node.text!r}: {exc}",
                            size_node.loc,
                            'use a quantity like "512Mi" or "1Gi"',
                        )
                else:
                    self._type_error(size_node, 'a size like "1Gi"')
            tmpfs = Tmpfs(size=size, loc=tmpfs_node.loc)
        return Volume(path=self.text(f.get("path"), coerce=True), tmpfs=tmpfs, loc=node.loc)

    # -- values ----------------------------------------------------------------------------

    def value(self, node: Node | None) -> Value:
        if node is None or node.kind == "null":
            # Go decodes a JSON null into the zero Value: an empty literal.
            return Value()
        if node.kind == "str":
            return Value(ValueType.STRING, str(node.value))
        if node.kind == "map":
            ref = node.value.get("from_variable")
            if ref is None:
                return Value()
            if ref.kind != "str":
                self.errors.add(
                    f"unknown value format: {ref.text or ref.describe()}",
                    ref.loc,
                    "from_variable takes a variable name",
                )
                return Value()
            return Value(ValueType.FROM_VARIABLE, str(ref.value))
        self.errors.add(
            f"unknown value format: {node.text or node.describe()}",
            node.loc,
            'a value is a string (quote numbers: "1") or {from_variable: NAME}',
        )
        return Value()

    def environment(self, node: Node | None) -> dict[str, Value]:
        return {k: self.value(v) for k, v in self.mapping(node, "environment").items()}

    def registries(self, node: Node | None) -> dict[str, RegistryAuth]:
        out = {}
        for registry, item in self.mapping(node, "docker_registries_auth").items():
            if item.kind == "null":
                self.errors.add(f'docker registry auth for "{registry}" is empty', item.loc)
                continue
            if item.kind != "map":
                self._type_error(item, "a mapping for a docker registry auth")
                continue
            f = item.value
            self.check_keys(f, "registry auth")
            auth_type = self.text(f.get("type"), coerce=True) or RegistryAuthType.BASIC
            if auth_type not in tuple(t.value for t in RegistryAuthType):
                self.errors.add(
                    f'unsupported docker registry auth type "{auth_type}"',
                    f["type"].loc,
                    'use "basic" (username/password) or "encodedauth" (auth)',
                )
            out[registry] = RegistryAuth(
                type=auth_type,
                username=self.value(f.get("username")),
                password=self.value(f.get("password")),
                auth=self.value(f.get("auth")),
                loc=item.loc,
            )
        return out

    # -- when ------------------------------------------------------------------------------

    def when(self, node: Node | None) -> When | None:
        if node is None or node.kind == "null":
            return None
        if node.kind != "map":
            self._type_error(node, "a mapping for when", "use branch, tag and/or ref keys")
            return None
        f = node.value
        self.check_keys(f, "when")
        return When(
            branch=self.conditions(f.get("branch")),
            tag=self.conditions(f.get("tag")),
            ref=self.conditions(f.get("ref")),
        )

    def conditions(self, node: Node | None) -> WhenConditions | None:
        if node is None or node.kind == "null":
            return None
        include: list[Node] = []
        exclude: list[Node] = []
        if node.kind == "str":
            include = [node]
        elif node.kind == "seq":
            include = self._condition_strings(node)
        elif node.kind == "map":
            for key, value in node.value.items():
                if key == "include":
                    include = self._string_or_list(value)
                elif key == "exclude":
                    exclude = self._string_or_list(value)
                else:
                    self.errors.add(
                        f'expected one of "include" or "exclude", got {key}',
                        missing_loc(node, key),
                    )
        else:
            self.errors.add(
                "wrong when format",
                node.loc,
                "a condition is a string, a list of strings or {include: ..., exclude: ...}",
            )
            return None
        return WhenConditions(
            include=tuple(self.condition(n) for n in include),
            exclude=tuple(self.condition(n) for n in exclude),
        )

    def _condition_strings(self, node: Node) -> list[Node]:
        out = []
        for item in node.value:
            if item.kind != "str":
                self.errors.add("expected string", item.loc, "when conditions are strings")
                continue
            out.append(item)
        return out

    def _string_or_list(self, node: Node) -> list[Node]:
        if node.kind == "str":
            return [node]
        if node.kind == "seq":
            return self._condition_strings(node)
        if node.kind == "null":
            return []
        self._type_error(node, "a string or a list of strings")
        return []

    def condition(self, node: Node) -> WhenCondition:
        text = str(node.value)
        if len(text) > 2 and text[0] in "/#" and text[-1] == text[0]:
            pattern = text[1:-1]
            try:
                compile_condition_regexp(pattern)
            except RegexpError as exc:
                self.errors.add(f"wrong regular expression: {exc}", node.loc)
            return WhenCondition(WhenConditionType.REGEXP, pattern)
        return WhenCondition(WhenConditionType.SIMPLE, text)

    # -- depends ---------------------------------------------------------------------------

    def depends(self, node: Node | None) -> tuple[Depend, ...]:
        out = []
        for item in self.sequence(node, "depends"):
            depend = self.depend(item)
            if depend is not None:
                out.append(depend)
        return tuple(out)

    def depend(self, node: Node) -> Depend | None:
        if node.kind == "str":
            return Depend(str(node.value), loc=node.loc)
        if node.kind != "map":
            self._unsupported_depend(node)
            return None
        entries = node.value
        if len(entries) == 1:
            ((task_name, value),) = entries.items()
            if value.kind == "seq":
                return Depend(task_name, self.depend_conditions(value), loc=node.loc)
            if value.kind != "str":
                self._unsupported_depend(node)
                return None
        self.check_keys(entries, "depend")
        task = entries.get("task")
        return Depend(
            self.text(task, coerce=False),
            self.depend_conditions(entries.get("conditions")),
            loc=node.loc,
        )

    def _unsupported_depend(self, node: Node) -> None:
        self.errors.add(
            "unsupported depend entry format",
            node.loc,
            'use "task", {task: [conditions]} or {task: name, conditions: [...]}',
        )

    def depend_conditions(self, node: Node | None) -> tuple[DependCondition, ...]:
        out = []
        for item in self.sequence(node, "conditions"):
            text = self.text(item, coerce=False)
            if item.kind != "str":
                continue
            if text not in _DEPEND_CONDITIONS:
                self.errors.add(
                    f'unknown depend condition "{text}"',
                    item.loc,
                    "use on_success, on_failure or on_skipped",
                )
                continue
            out.append(DependCondition(text))
        return tuple(out)

    # -- steps -----------------------------------------------------------------------------

    def steps(self, node: Node | None) -> tuple[Step, ...]:
        out = []
        for i, item in enumerate(self.sequence(node, "steps")):
            before = len(self.errors.items)
            step = self.step(i, item)
            # A step with a malformed field is left out: checking it further would only
            # repeat the same problem ("no command" after "command must be a string").
            if step is not None and len(self.errors.items) == before:
                out.append(step)
        return tuple(out)

    def step(self, index: int, node: Node) -> Step | None:
        if node.kind == "null" or (node.kind == "map" and not node.value):
            self.errors.add(f"step at index {index} is empty", node.loc, "e.g. `- run: make`")
            return None
        if node.kind != "map":
            hint = "e.g. `- run: make` or `- type: run`"
            if node.kind == "str" and node.value in STEP_TYPES:
                hint = f"write `- {node.value}:` with a colon"
            self._type_error(node, "a mapping for a step", hint)
            return None
        fields = node.value
        if "type" in fields:
            type_node = fields["type"]
            if type_node.kind != "str":
                self.errors.add(f"step type at index {index} must be a string", type_node.loc)
                return None
            return self.typed_step(str(type_node.value), node, fields)
        if len(fields) > 1:
            self.errors.add(
                f"wrong steps description at index {index}: more than one step name per list entry",
                node.loc,
                f"keys found: {', '.join(fields)}; write one step per list entry",
            )
            return None
        ((step_type, spec),) = fields.items()
        if step_type == "run" and spec.kind == "str":
            return self._finish_run(RunStep(command=str(spec.value), loc=node.loc))
        if spec.kind == "null":
            return self.typed_step(step_type, node, {})
        if spec.kind != "map":
            if step_type in STEP_TYPES:
                self._type_error(spec, f"a mapping for the {step_type} step fields")
                return None
        return self.typed_step(step_type, node, spec.value if spec.kind == "map" else {})

    def typed_step(self, step_type: str, node: Node, f: dict[str, Node]) -> Step | None:
        builder: dict[str, Callable[[Node, dict[str, Node], str, When | None], Step | None]] = {
            "clone": self._clone,
            "run": self._run,
            "save_to_workspace": self._save_to_workspace,
            "restore_workspace": self._restore_workspace,
            "save_cache": self._save_cache,
            "restore_cache": self._restore_cache,
        }
        make = builder.get(step_type)
        if make is None:
            self.errors.add(
                f"unknown step type: {step_type}",
                node.loc,
                "step types are " + ", ".join(STEP_TYPES),
            )
            return None
        self.check_keys(f, f"{step_type} step")
        name = self.text(f.get("name"), coerce=False)
        return make(node, f, name, self.when(f.get("when")))

    def _clone(self, node: Node, f: dict[str, Node], name: str, when: When | None) -> Step:
        depth = None
        depth_node = f.get("depth")
        if depth_node is not None and depth_node.kind != "null":
            if depth_node.kind == "int":
                depth = int(depth_node.value)
            else:
                self._type_error(depth_node, "an integer for depth")
        return CloneStep(
            name=name,
            depth=depth,
            recurse_submodules=self.boolean(f.get("recurse_submodules")),
            when=when,
            loc=node.loc,
        )

    def _run(self, node: Node, f: dict[str, Node], name: str, when: When | None) -> Step:
        tty_node = f.get("tty")
        tty = True if tty_node is None or tty_node.kind == "null" else self.boolean(tty_node)
        step = RunStep(
            name=name,
            command=self.text(f.get("command"), coerce=False),
            environment=self.environment(f.get("environment")),
            working_dir=self.text(f.get("working_dir"), coerce=False),
            shell=self.text(f.get("shell"), coerce=False),
            tty=tty,
            when=when,
            loc=node.loc,
        )
        return self._finish_run(step)

    @staticmethod
    def _finish_run(step: RunStep) -> RunStep:
        """Default name (rule 9): a one-line command names its step (first 100 bytes)."""
        if step.name or not step.command or count_lines(step.command) > 1:
            return step
        name = step.command.encode()[:MAX_STEP_NAME_LENGTH].decode(errors="ignore").rstrip("\n")
        return attrs.evolve(step, name=name)

    def contents(self, node: Node | None, *, default_paths: tuple[str, ...]) -> tuple[SaveContent, ...]:
        out = []
        for i, item in enumerate(self.sequence(node, "contents")):
            if item.kind != "map":
                if item.kind == "null":
                    self.errors.add(f"content at index {i} is empty", item.loc, "give source_dir and paths")
                else:
                    self._type_error(item, "a mapping for a content entry")
                continue
            f = item.value
            self.check_keys(f, "content")
            paths = self.strings(f.get("paths"), "paths") or default_paths
            out.append(
                SaveContent(
                    source_dir=self.text(f.get("source_dir"), coerce=False),
                    dest_dir=self.text(f.get("dest_dir"), coerce=False),
                    paths=paths,
                )
            )
        return tuple(out)

    def _save_to_workspace(self, node: Node, f: dict[str, Node], name: str, when: When | None) -> Step:
        return SaveToWorkspaceStep(
            name=name, contents=self.contents(f.get("contents"), default_paths=()), when=when, loc=node.loc
        )

    def _restore_workspace(self, node: Node, f: dict[str, Node], name: str, when: When | None) -> Step:
        return RestoreWorkspaceStep(
            name=name, dest_dir=self.text(f.get("dest_dir"), coerce=False), when=when, loc=node.loc
        )

    def _save_cache(self, node: Node, f: dict[str, Node], name: str, when: When | None) -> Step:
        return SaveCacheStep(
            name=name,
            key=self.text(f.get("key"), coerce=False),
            contents=self.contents(f.get("contents"), default_paths=("**",)),
            when=when,
            loc=node.loc,
        )

    def _restore_cache(self, node: Node, f: dict[str, Node], name: str, when: When | None) -> Step:
        return RestoreCacheStep(
            name=name,
            keys=self.strings(f.get("keys"), "keys"),
            dest_dir=self.text(f.get("dest_dir"), coerce=False),
            when=when,
            loc=node.loc,
        )


def count_lines(text: str) -> int:
    """Lines as Go's bufio.Scanner counts them: a trailing newline does not start a new line."""
    if not text:
        return 0
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return len(lines)

