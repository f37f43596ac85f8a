"""Dependency graphs of tasks: parents, ancestors and DAG levels.

A graph maps each task (by name or id) to the list of its direct parents.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def direct_parents(graph: Mapping[str, Sequence[str]], node: str) -> list[str]:
    return list(graph.get(node, ()))


def all_ancestors(graph: Mapping[str, Sequence[str]], node: str) -> set[str]:
    """Every transitive parent; with a cycle through ``node`` it contains ``node`` itself."""
    seen: set[str] = set()
    stack = list(graph.get(node, ()))
    while stack:
        parent = stack.pop()
        if parent in seen:
            continue
        seen.add(parent)
        stack.extend(graph.get(parent, ()))
    return seen


class CycleError(ValueError):
    pass


def levels(graph: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Level of each node: roots are 0, others one more than their highest parent.

    Raises ``CycleError`` if some nodes are on (or after) a cycle.
    """
    level: dict[str, int] = {}
    remaining = set(graph)
    current = 0
    while remaining:
        ready = {n for n in remaining if all(p in level and level[p] < current for p in graph[n])}
        if not ready:
            raise CycleError("circular dependency detected")
        for n in ready:
            level[n] = current
        remaining -= ready
        current += 1
    return level
