"""Raw located document -> typed pipeline (spec §2.2), collecting every type error with its place.

Acceptance follows the reference's decoder: unknown keys are ignored (with a warning); plain
string fields of runs, tasks, runtimes, containers, volumes and registry auths also take numbers
and booleans (read as written), while values inside steps, depends, ``when`` and environment
values must really be strings. Entries the reference would crash on later (null steps,
containers, contents) are errors.

The readers are split by topic: ``parse_base`` (scalars, values, ``when``), ``parse_steps``
(``depends`` and steps) and this module (the document, runs, tasks and runtimes).
"""

from __future__ import annotations

from agola.pipeline.document import Node
from agola.pipeline.errors import ErrorList
from agola.pipeline.parse_steps import StepReader
from agola.pipeline.quantity import QuantityError, parse_quantity
from agola.pipeline.schema import (
    DEFAULT_WORKING_DIR,
    ConfigFormat,
    Container,
    PipelineConfig,
    Run,
    Runtime,
    Task,
    Tmpfs,
    Volume,
)
from agola.util.duration import DurationError, parse_duration


def parse_config(root: Node | None, file: str, fmt: ConfigFormat, errors: ErrorList) -> PipelineConfig:
    """Build the typed config; problems go to ``errors`` and the faulty parts are left out."""
    return _Parser(errors).config(root, file, fmt)


class _Parser(StepReader):
    """The document, runs, tasks and runtimes (the readers it inherits do the rest)."""


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
            task_timeout_interval=self.timeout(fields.get("task_timeout_interval")),
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
