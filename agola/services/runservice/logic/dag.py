"""The run config task graph: parents, ancestors, descendants, validation and levels (§2.3, §3.4).

Edges point from a task to the parents it ``depends`` on. All functions are pure and read only the
run config tasks map (task id -> ``RunConfigTask``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from agola.errors import BadRequest
from agola.types.runservice import RunConfigTask

Tasks = Mapping[str, RunConfigTask]


def parents(tasks: Tasks, task: RunConfigTask) -> list[RunConfigTask]:
    """Direct parents of ``task`` that exist (unknown ids are reported by ``check_dag``)."""
    return [tasks[pid] for pid in task.depends if pid in tasks]


def ancestors(tasks: Tasks, task: RunConfigTask) -> list[RunConfigTask]:
    """Every transitive parent of ``task``, each once (cycle safe)."""
    seen: dict[str, RunConfigTask] = {}
    stack = list(parents(tasks, task))
    while stack:
        p = stack.pop()
        if p.id in seen:
            continue
        seen[p.id] = p
        stack.extend(parents(tasks, p))
    return list(seen.values())


def children(tasks: Tasks, task_id: str) -> list[RunConfigTask]:
    return [t for t in tasks.values() if task_id in t.depends]


def descendants(tasks: Tasks, task_ids: Iterable[str]) -> set[str]:
    """Ids of every task depending, directly or not, on one of ``task_ids`` (excluded)."""
    start = set(task_ids)
    found: set[str] = set()
    stack = list(start)
    while stack:
        tid = stack.pop()
        for child in children(tasks, tid):
            if child.id not in found:
                found.add(child.id)
                stack.append(child.id)
    return found - start


def dag_errors(tasks: Tasks) -> list[str]:
    """Every structural problem of the task graph, in the reference's order and wording.

    Empty when the graph is a valid DAG: ids consistent, parents exist, no cycles, no redundant
    dependency (a direct parent that is also an ancestor of another direct parent).
    """
    errors: list[str] = []
    for key, task in sorted(tasks.items()):
        if key != task.id:
            errors.append(f"task {task.name!r}: map key {key!r} differs from its id {task.id!r}")
        for pid, dep in sorted(task.depends.items()):
            if dep.task_id and dep.task_id != pid:
                errors.append(
                    f"task {task.name!r}: depends key {pid!r} differs from its task_id "
                    f"{dep.task_id!r}"
                )
            if pid not in tasks:
                errors.append(f'run task "{pid}" needed by task "{task.name}" doesn\'t exist')
    if errors:
        return errors

    for task in _sorted_by_name(tasks.values()):
        all_parents = ancestors(tasks, task)
        if any(p.id == task.id for p in all_parents):
            closing = [p for p in all_parents if task.id in p.depends]
            names = " ".join(f'"{p.name}"' for p in _sorted_by_name(closing))
            errors.append(f'circular dependency between task "{task.name}" and tasks {names}')
    if errors:
        return errors

    for task in _sorted_by_name(tasks.values()):
        direct = parents(tasks, task)
        for q in _sorted_by_name(direct):
            q_ancestors = {a.id for a in ancestors(tasks, q)}
            for p in _sorted_by_name(direct):
                if p.id in q_ancestors:
                    return [
                        f'task "{task.name}" and its dependency "{q.name}" have both a '
                        f'dependency on task "{p.name}"'
                    ]
    return []


def check_dag(tasks: Tasks) -> None:
    """Raise ``BadRequest`` listing every problem of the task graph."""
    errors = dag_errors(tasks)
    if errors:
        raise BadRequest("invalid run config tasks: " + "; ".join(errors), details=errors)


def levels(tasks: Tasks) -> dict[str, int]:
    """Task id -> level (roots 0, else 1 + max parent level). The graph must be a DAG."""
    result: dict[str, int] = {}
    pending = dict(tasks)
    while pending:
        progressed = False
        for tid, task in list(pending.items()):
            parent_ids = [pid for pid in task.depends if pid in tasks]
            if all(pid in result for pid in parent_ids):
                result[tid] = 1 + max((result[pid] for pid in parent_ids), default=-1)
                del pending[tid]
                progressed = True
        if not progressed:
            raise BadRequest("circular dependency detected")
    return result


def _sorted_by_name(tasks: Iterable[RunConfigTask]) -> list[RunConfigTask]:
    return sorted(tasks, key=lambda t: (t.name, t.id))
