"""One pass of the runs scheduler over many active runs: a run whose last decision was to do
nothing is not decided on again until the run or one of its executor tasks changes; nor is a run
with tasks waiting for an executor, until one has room. The store is an in-memory stand-in with
the coordination's mod revisions."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs
import pytest

from agola.errors import Conflict
from agola.services.runservice import logic
from agola.services.runservice.core import RunserviceOptions
from agola.services.runservice.loops import RunsScheduler
from agola.services.runservice.store import StoredRun
from agola.types.runservice import Executor, ExecutorTask, ExecutorTaskPhase, Run, RunConfig
from tests.runservice.builders import T0, executor, new_run, task


class MemoryStore:
    def __init__(self, runs: Iterable[tuple[Run, RunConfig]], executors: list[Executor]) -> None:
        self.revision = 1
        self.runs = {run.id: (run, 1) for run, _ in runs}
        self.rcs = {run.id: rc for run, rc in runs}
        self.executors = executors
        self.tasks: dict[str, tuple[ExecutorTask, int]] = {}

    def _next(self) -> int:
        self.revision += 1
        return self.revision

    async def list_executors(self) -> list[Executor]:
        return list(self.executors)

    async def list_executor_tasks(self) -> list[tuple[ExecutorTask, int]]:
        return list(self.tasks.values())

    async def list_active_runs(self) -> list[StoredRun]:
        return [StoredRun(run, rev) for run, rev in self.runs.values()]

    async def get_run_config(self, run_id: str) -> RunConfig:
        return self.rcs[run_id]

    async def put_run(self, run: Run, revision: int, *, event: bool = False) -> int:
        if self.runs[run.id][1] != revision:
            raise Conflict(f"run {run.id} was updated concurrently")
        self.runs[run.id] = (run, self._next())
        return self.revision

    async def create_executor_tasks(self, ets: list[ExecutorTask]) -> list[ExecutorTask]:
        created = [et for et in ets if et.id not in self.tasks]
        for et in created:
            self.tasks[et.id] = (et, self._next())
        return created

    def report(self, task_id: str, phase: ExecutorTaskPhase) -> None:
        """An executor task's status stored (and copied onto its run, as the runservice does)."""
        et, _ = self.tasks[task_id]
        et = attrs.evolve(et, status=attrs.evolve(et.status, phase=phase))
        self.tasks[task_id] = (et, self._next())
        run, _ = self.runs[et.spec.run_id]
        run, _accepted = logic.apply_executor_task_status(run, et)
        self.runs[run.id] = (run, self._next())


class MemoryCore:
    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.options = RunserviceOptions()
        self.pushed: list[str] = []

    def now(self) -> Any:
        return T0

    async def push_task(self, et: ExecutorTask, executor: Executor | None = None, run: Run | None = None) -> bool:
        self.pushed.append(et.id)
        return True

    def wake(self) -> None:
        pass


async def test_runs_with_nothing_to_do_are_decided_on_again_only_once_changed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    decided: list[str] = []
    schedule_run = logic.schedule_run

    def counted(run: Run, *args: Any, **kwargs: Any) -> logic.RunSchedule:
        decided.append(run.id)
        return schedule_run(run, *args, **kwargs)

    monkeypatch.setattr(logic, "schedule_run", counted)
    runs = [new_run(task("a"), run_id="r1"), new_run(task("b"), run_id="r2"), new_run(task("c"), run_id="r3")]
    store = MemoryStore(runs, [executor("e1", limit=2)])
    core = MemoryCore(store)
    scheduler = RunsScheduler(core)  # type: ignore[arg-type]

    await scheduler.run_once()
    assert core.pushed == ["a", "b"] and decided == ["r1", "r2", "r3"]  # r3 waits for a slot
    decided.clear()
    await scheduler.run_once()  # r1 and r2 decided again (now with nothing to do), not r3: no room
    assert decided == ["r1", "r2"]
    decided.clear()
    await scheduler.run_once()
    assert decided == [] and core.pushed == ["a", "b"]

    store.report("a", ExecutorTaskPhase.RUNNING)  # r1 and its executor task changed
    await scheduler.run_once()
    assert decided == ["r1"] and core.pushed == ["a", "b"]

    decided.clear()
    store.report("b", ExecutorTaskPhase.RUNNING)
    store.report("b", ExecutorTaskPhase.SUCCESS)  # a slot freed: r3's task goes, r2 gets its result
    await scheduler.run_once()
    assert decided == ["r2", "r3"] and core.pushed == ["a", "b", "c"]
    assert store.runs["r2"][0].result.value == "success"
