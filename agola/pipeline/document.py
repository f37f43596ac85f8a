"""The located document: a pipeline file as a tree of ``Node`` with a ``Loc`` on each value.

YAML (and JSON, which the reference reads as YAML) is parsed by libyaml and composed by PyYAML's
Python composer, so each value keeps its line and column. The loader is bounded: nesting depth and the number of
values produced (which an alias bomb would blow up) are capped and keys must be scalars. A key
written twice in one mapping keeps its last value with a located warning, as the reference does
(ghodss/yaml over yaml.v2 in non-strict mode overwrites silently). Jsonnet and Starlark produce plain
JSON-like values; those become nodes with a path but no line.
"""

from __future__ import annotations

import re
from typing import Any

import attrs
import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, ScalarNode, SequenceNode
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from agola.pipeline.errors import Loc, LocatedError, PipelineError

MAX_DEPTH = 64
MAX_NODES = 100_000

_TAG = "tag:yaml.org,2002:"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@attrs.frozen
class Node:
    """One value of the document.

    ``kind`` is ``map``, ``seq``, ``str``, ``int``, ``float``, ``bool`` or ``null``; ``value`` is
    a ``dict[str, Node]``, a ``list[Node]`` or the Python scalar; ``text`` is the scalar as
    written in the file (used where the reference accepts a number or bool for a string field).
    """

    kind: str
    value: Any
    loc: Loc
    text: str = ""

    def describe(self) -> str:
        return {
            "map": "a mapping",
            "seq": "a list",
            "str": "a string",
            "int": "a number",
            "float": "a number",
            "bool": "a boolean",
            "null": "null",
        }[self.kind]


def child_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if not _IDENT.match(key):
        escaped = key.replace("\\", "\\\\").replace('"', '\\"')
        return f'{path}["{escaped}"]'
    return f"{path}.{key}" if path else key


def missing_loc(parent: Node, key: str | int) -> Loc:
    """Where to point for a key that is absent: the parent's position with the child's path."""
    return attrs.evolve(parent.loc, path=child_path(parent.loc.path, key))


try:
    # libyaml, the C library the reference's Go YAML parser was ported from: fast, same grammar.
    from yaml._yaml import CParser

    _EVENT_SOURCE: tuple[type, ...] = (CParser,)
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml.parser import Parser

    _EVENT_SOURCE = (Reader, Scanner, Parser)


class _BoundedLoader(Composer, *_EVENT_SOURCE, SafeConstructor, Resolver):  # type: ignore[misc]  # bases picked at import
    """A parser producing events under PyYAML's Python composer, with a nesting-depth cap.

    The composer comes first in the MRO so its ``get_node``/``compose_node`` are used instead
    of libyaml's recursive C ones.
    """

    def __init__(self, stream: str) -> None:
        if len(_EVENT_SOURCE) == 1:
            _EVENT_SOURCE[0].__init__(self, stream)  # type: ignore[misc]  # the bases picked at import
        else:  # pragma: no cover
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            _EVENT_SOURCE[2].__init__(self)  # type: ignore[misc]  # the bases picked at import
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _TooDeep(mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _TooDeep(Exception):
    def __init__(self, mark: Any) -> None:
        super().__init__("too deep")
        self.mark = mark


class _Budget:
    """What the conversion of one document shares: the values left, the warnings found."""

    def __init__(self) -> None:
        self.left = MAX_NODES
        self.warnings: list[LocatedError] = []


_SCALARS = SafeConstructor()


def _mark_loc(file: str, mark: Any, path: str) -> Loc:
    if mark is None:
        return Loc(file, None, None, path)
    return Loc(file, mark.line + 1, mark.column + 1, path)


def parse_yaml(text: str, file: str, warnings: list[LocatedError] | None = None) -> Node | None:
    """Parse YAML (or JSON) text into a located tree; ``None`` for an empty document.

    Only the first document of a multi-document stream is used, as the reference does.
    Raises ``PipelineError`` for syntax errors and for documents over the safety limits;
    things accepted but probably not meant (duplicate keys) are appended to ``warnings``.
    """
    loader = _BoundedLoader(text)
    try:
        root = loader.get_node() if loader.check_node() else None
    except _TooDeep as exc:
        raise PipelineError(
            [
                LocatedError(
                    f"document nested more than {MAX_DEPTH} levels deep",
                    _mark_loc(file, exc.mark, ""),
                    "pipeline files never need this much nesting",
                )
            ]
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            problem = f"{exc.problem} ({exc.context})"
        raise PipelineError(
            [LocatedError(f"failed to unmarshal config: {problem}", _mark_loc(file, mark, ""), _tab_hint(text, mark))]
        ) from None
    except yaml.YAMLError as exc:
        raise PipelineError([LocatedError(f"failed to unmarshal config: {exc}", Loc(file))]) from None
    finally:
        loader.dispose()
    if root is None:
        return None
    _check_expansion(root, file)
    errors: list[LocatedError] = []
    budget = _Budget()
    node = _convert(root, file, "", 0, budget, errors)
    if warnings is not None:
        # A mapping reached through several aliases is converted once per alias: warn once.
        warnings.extend(dict.fromkeys(budget.warnings))
    if errors:
        raise PipelineError(errors)
    return node


def _tab_hint(text: str, mark: Any) -> str:
    """Name the tab character YAML chokes on (libyaml only says "cannot start any token")."""
    if mark is None:
        return ""
    lines = text.split("\n")
    if mark.line >= len(lines):
        return ""
    line = lines[mark.line]
    indent = line[: len(line) - len(line.lstrip())]
    at_tab = mark.column < len(line) and line[mark.column] == "\t"
    if at_tab or "\t" in indent:
        return "a tab character here: YAML indents with spaces only"
    return ""


def _check_expansion(root: Any, file: str) -> None:
    """Refuse documents whose aliases expand past the limits, before expanding anything.

    Sizes are computed once per distinct node (aliases share nodes), so a "billion laughs"
    document is measured in microseconds instead of being built.
    """
    sizes: dict[int, int] = {}
    busy: set[int] = set()

    def size(node: Any, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if depth > MAX_DEPTH or key in busy:
            raise PipelineError(
                [
                    LocatedError(
                        f"document nested more than {MAX_DEPTH} levels deep (recursive alias?)",
                        _mark_loc(file, node.start_mark, ""),
                        "pipeline files never need this much nesting",
                    )
                ]
            )
        busy.add(key)
        total = 1
        if isinstance(node, SequenceNode):
            total += sum(size(child, depth + 1) for child in node.value)
        elif isinstance(node, MappingNode):
            total += sum(size(k, depth + 1) + size(v, depth + 1) for k, v in node.value)
        busy.discard(key)
        sizes[key] = total
        if total > MAX_NODES:
            raise PipelineError(
                [
                    LocatedError(
                        "document expands to too many values (YAML alias bomb?)",
                        Loc(file),
                        f"pipeline files are limited to {MAX_NODES} values once aliases are expanded",
                    )
                ]
            )
        return total

    size(root, 0)


def _convert(
    ynode: Any, file: str, path: str, depth: int, budget: _Budget, errors: list[LocatedError]
) -> Node:
    loc = _mark_loc(file, ynode.start_mark, path)
    budget.left -= 1
    if budget.left < 0:
        # Where the budget ran out says nothing useful: report on the whole document.
        raise PipelineError(
            [
                LocatedError(
                    "document expands to too many values (YAML alias bomb?)",
                    Loc(file),
                    f"pipeline files are limited to {MAX_NODES} values once aliases are expanded",
                )
            ]
        )
    if depth > MAX_DEPTH:
        raise PipelineError(
            [
                LocatedError(
                    f"document nested more than {MAX_DEPTH} levels deep (recursive alias?)",
                    attrs.evolve(loc, path=""),
                    "pipeline files never need this much nesting",
                )
            ]
        )
    if isinstance(ynode, ScalarNode):
        return _scalar(ynode, loc)
    if isinstance(ynode, SequenceNode):
        items = [
            _convert(item, file, child_path(path, i), depth + 1, budget, errors)
            for i, item in enumerate(ynode.value)
        ]
        return Node("seq", items, loc)
    if isinstance(ynode, MappingNode):
        return Node("map", _mapping(ynode, file, path, depth, budget, errors), loc)
    raise PipelineError([LocatedError("unsupported YAML node", loc)])  # pragma: no cover


def _mapping(
    ynode: MappingNode, file: str, path: str, depth: int, budget: _Budget, errors: list[LocatedError]
) -> dict[str, Node]:
    merged: dict[str, Node] = {}
    own: dict[str, Node] = {}
    for key_node, value_node in ynode.value:
        if key_node.tag == _TAG + "merge":
            for source in _merge_sources(value_node, file, path, errors):
                sub = _convert(source, file, path, depth, budget, errors)
                for k, v in sub.value.items():
                    merged.setdefault(k, v)
            continue
        key = _key_text(key_node, file, path, errors)
        if key is None:
            continue
        if key in own:
            budget.warnings.append(
                LocatedError(
                    f'mapping key "{key}" already defined (the last value is used)',
                    _mark_loc(file, key_node.start_mark, child_path(path, key)),
                    "each key should appear once per mapping",
                )
            )
        own[key] = _convert(value_node, file, child_path(path, key), depth + 1, budget, errors)
    if merged:
        merged.update(own)
        return merged
    return own


def _merge_sources(value: Any, file: str, path: str, errors: list[LocatedError]) -> list[Any]:
    if isinstance(value, MappingNode):
        return [value]
    if isinstance(value, SequenceNode) and all(isinstance(v, MappingNode) for v in value.value):
        # Earlier mappings win, as in YAML's merge key spec.
        return list(value.value)
    errors.append(
        LocatedError(
            "merge key << needs a mapping or a list of mappings",
            _mark_loc(file, value.start_mark, path),
        )
    )
    return []


def _key_text(key_node: Any, file: str, path: str, errors: list[LocatedError]) -> str | None:
    loc = _mark_loc(file, key_node.start_mark, path)
    if not isinstance(key_node, ScalarNode):
        errors.append(LocatedError("mapping keys must be strings", loc, "use a plain scalar key"))
        return None
    if key_node.tag == _TAG + "null":
        errors.append(LocatedError("mapping keys must be strings, got null", loc, "quote the key"))
        return None
    # Numbers and booleans used as keys keep their text ("on", "1"), as written.
    return str(key_node.value)


def _scalar(ynode: ScalarNode, loc: Loc) -> Node:
    tag = ynode.tag
    text = str(ynode.value)
    try:
        if tag == _TAG + "int":
            return Node("int", _SCALARS.construct_yaml_int(ynode), loc, text)
        if tag == _TAG + "float":
            return Node("float", _SCALARS.construct_yaml_float(ynode), loc, text)
        if tag == _TAG + "bool":
            return Node("bool", _SCALARS.construct_yaml_bool(ynode), loc, text)
        if tag == _TAG + "null":
            return Node("null", None, loc, text)
    except (ValueError, yaml.YAMLError):
        pass
    # str, timestamps, binary and custom tags are read as their text.
    return Node("str", text, loc, text)


def from_plain(value: Any, file: str, path: str = "") -> Node:
    """A located tree (paths only) from JSON-like values produced by Jsonnet or Starlark."""
    loc = Loc(file, None, None, path)
    if isinstance(value, dict):
        return Node("map", {str(k): from_plain(v, file, child_path(path, str(k))) for k, v in value.items()}, loc)
    if isinstance(value, (list, tuple)):
        return Node("seq", [from_plain(v, file, child_path(path, i)) for i, v in enumerate(value)], loc)
    if isinstance(value, bool):
        return Node("bool", value, loc, "true" if value else "false")
    if isinstance(value, int):
        return Node("int", value, loc, str(value))
    if isinstance(value, float):
        text = str(int(value)) if value.is_integer() else repr(value)
        return Node("float", value, loc, text)
    if value is None:
        return Node("null", None, loc, "null")
    return Node("str", str(value), loc, str(value))


def json_tabs_to_spaces(text: str) -> str:
    """Replace tabs outside strings by spaces, column for column.

    The reference's YAML parser accepts tab-indented JSON (tabs are fine in flow context) but
    PyYAML does not; for a valid JSON document this rewrite changes nothing else.
    """
    if "\t" not in text:
        return text
    out = []
    in_string = False
    escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            out.append(ch)
        else:
            if ch == '"':
                in_string = True
            out.append(" " if ch == "\t" else ch)
    return "".join(out)
