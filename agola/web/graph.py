"""The task graph of a run laid out for an inline SVG: one column per DAG level, one row per task
of that level (ordered by name), an edge from each dependency to its dependent task.

Pure layout from the gateway's run response (``serialize.run``): the template draws it, CSS gives
the status colours.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from agola.web.timefmt import elapsed

__all__ = ["Edge", "Graph", "Node", "layout"]

NODE_W = 190
NODE_H = 48
COL_GAP = 56
ROW_GAP = 14
PAD = 8


@attrs.frozen
class Node:
    id: str
    name: str
    state: str  # the task status, or "waiting" for a task waiting for an approval
    level: int
    x: int
    y: int
    duration: str
    note: str  # why a task did not run, its dependency conditions: shown as the node's title

    @property
    def w(self) -> int:
        return NODE_W

    @property
    def h(self) -> int:
        return NODE_H


@attrs.frozen
class Edge:
    source: str
    target: str
    path: str  # SVG path data
    state: str  # the source task's state: colours the edge
    conditions: str


@attrs.frozen
class Graph:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    width: int
    height: int


def task_state(task: Mapping[str, Any]) -> str:
    if task.get("waiting_approval") and not task.get("approved"):
        return "waiting"
    return str(task.get("status") or "notstarted")


def _note(task: Mapping[str, Any], state: str) -> str:
    depends = task.get("depends") or {}
    conds = [f"{dep}: {', '.join(d.get('conditions') or ['on_success'])}" for dep, d in sorted(depends.items())]
    parts = [f"status {state}"]
    if state == "skipped":
        parts.append("skipped: its dependency conditions were not met" if depends else "skipped")
    if state == "waiting":
        parts.append("waiting for an approval")
    if conds:
        parts.append("depends on " + "; ".join(conds))
    return " · ".join(parts)


def layout(tasks: Mapping[str, Mapping[str, Any]], now: Any = None) -> Graph:
    """``tasks``: the ``tasks`` map of a gateway run response."""
    levels: dict[int, list[Mapping[str, Any]]] = {}
    for task in tasks.values():
        levels.setdefault(int(task.get("level") or 0), []).append(task)
    nodes: dict[str, Node] = {}
    columns = sorted(levels)
    for col, level in enumerate(columns):
        for row, task in enumerate(sorted(levels[level], key=lambda t: (str(t.get("name")), str(t.get("id"))))):
            state = task_state(task)
            nodes[str(task["id"])] = Node(
                id=str(task["id"]), name=str(task.get("name") or task["id"]), state=state, level=level,
                x=PAD + col * (NODE_W + COL_GAP), y=PAD + row * (NODE_H + ROW_GAP),
                duration=elapsed(task.get("start_time"), task.get("end_time"), now), note=_note(task, state))
    edges = []
    for task in tasks.values():
        target = nodes[str(task["id"])]
        for dep_id, dep in sorted((task.get("depends") or {}).items()):
            source = nodes.get(dep_id)
            if source is None:
                continue
            x1, y1 = source.x + NODE_W, source.y + NODE_H // 2
            x2, y2 = target.x, target.y + NODE_H // 2
            bend = (x2 - x1) // 2
            edges.append(Edge(source=source.id, target=target.id, state=source.state,
                              path=f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}",
                              conditions=", ".join(dep.get("conditions") or ["on_success"])))
    rows = max((len(v) for v in levels.values()), default=0)
    width = PAD * 2 + max(len(columns), 1) * NODE_W + max(len(columns) - 1, 0) * COL_GAP
    height = PAD * 2 + max(rows, 1) * NODE_H + max(rows - 1, 0) * ROW_GAP
    return Graph(nodes=tuple(nodes.values()), edges=tuple(edges), width=width, height=height)
