"""Reading ``depends`` and ``steps`` (both syntaxes of each). See ``agola.pipeline.parse``."""

from __future__ import annotations

from collections.abc import Callable

import attrs

from agola.pipeline.document import Node
from agola.pipeline.parse_base import Reader
from agola.pipeline.schema import (
    MAX_STEP_NAME_LENGTH,
    STEP_TYPES,
    CloneStep,
    Depend,
    DependCondition,
    RestoreCacheStep,
    RestoreWorkspaceStep,
    RunStep,
    SaveCacheStep,
    SaveContent,
    SaveToWorkspaceStep,
    Step,
    When,
)

_DEPEND_CONDITIONS = tuple(c.value for c in DependCondition)


class StepReader(Reader):
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
    """Lines as Agola's ``util.CountLines`` counts them: every newline starts one more line, a
    trailing one too, so a ``run: |`` block holding one command (``"make\\n"``) has two lines and
    needs a step name, as with the reference."""
    if not text:
        return 0
    return text.count("\n") + 1
