"""Shared readers of the located document: scalars with the reference's coercions, values,
registry credentials and ``when`` conditions. See ``agola.pipeline.parse``.
"""

from __future__ import annotations

import difflib
import typing

import attrs

from agola.pipeline.document import Node, missing_loc
from agola.pipeline.errors import ErrorList
from agola.pipeline.schema import (
    Container,
    Depend,
    RegistryAuth,
    RegistryAuthType,
    Run,
    Runtime,
    SaveContent,
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
)
from agola.pipeline.when import RegexpError, compile_condition_regexp


# Keys each object knows: the fields of its schema type (a field added there is a key the parser
# accepts). Others are ignored (as the reference does) with a warning.
def _keys(cls: type, first: tuple[str, ...] = ()) -> tuple[str, ...]:
    return first + tuple(f.name for f in attrs.fields(cls) if f.name != "loc" and f.name not in first)


_STEP_COMMON = ("name", "when", "type")
KNOWN_KEYS: dict[str, tuple[str, ...]] = {
    "run": _keys(Run),
    "task": _keys(Task),
    "runtime": _keys(Runtime),
    "container": _keys(Container),
    "volume": _keys(Volume),
    "tmpfs": _keys(Tmpfs),
    "registry auth": _keys(RegistryAuth),
    "when": _keys(When),
    "depend": _keys(Depend),
    "content": _keys(SaveContent),
    **{f"{cls().type} step": _keys(cls, _STEP_COMMON) for cls in typing.get_args(Step)},
}



class Reader:
    """Reads typed values from nodes, reporting type errors to ``errors``."""

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
