"""Small builders for runservice logic tests, and ``World``: the scheduling logic driven in memory
the way the runservice role drives it (store the decision, executors report, the fetcher fetches).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

import attrs

from agola.services.runservice.logic import (
    apply_executor_task_status,
    build_new_run,
    executor_task_cleanup,
    schedule_run,
    start_run,
)
from agola.services.runservice.logic.executors import executor_load
from agola.services.runservice.logic.run_tasks import mark_nothing_to_fetch, with_task
from agola.types.runservice import (
    Arch,
    Container,
    DependCondition,
    Executor,
    ExecutorTask,
    ExecutorTaskPhase,
    ExecutorTaskStepStatus,
    Run,
    RunConfig,
    RunConfigTask,
    RunConfigTaskDepend,
    RunCreateRequest,
    RunStep,
    Runtime,
    SaveContent,
    SaveToWorkspaceStep,
    Step,
)

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
GROUP = "/project/p1/branch/master"


def task(
    tid: str,
    *parents: str | tuple[str, Sequence[str]],
    steps: int = 1,
    workspace: bool = False,
    skip: bool = False,
    approval: bool = False,
    ignore_failure: bool = False,
    arch: Arch | None = None,
    privileged: bool = False,
    environment: dict[str, str] | None = None,
) -> RunConfigTask:
    """A config task named and identified ``tid``; a parent is an id or (id, [conditions])."""
    depends: dict[str, RunConfigTaskDepend] = {}
    for parent in parents:
        pid, conds = (parent, ["on_success"]) if isinstance(parent, str) else parent
        depends[pid] = RunConfigTaskDepend(
            task_id=pid, conditions=[DependCondition(c) for c in conds]
        )
    step_list: list[Step] = [RunStep(name=f"step{i}", command="true") for i in range(steps)]
    if workspace:
        step_list.append(SaveToWorkspaceStep(contents=[SaveContent(source_dir=".", paths=["**"])]))
    return RunConfigTask(
        id=tid,
        name=tid,
        runtime=Runtime(arch=arch, containers=[Container(image="busybox", privileged=privileged)]),
        depends=depends,
        steps=step_list,
        skip=skip,
        needs_approval=approval,
        ignore_failure=ignore_failure,
        environment=environment or {},
    )


def create_request(*tasks: RunConfigTask, group: str = GROUP, **kw: object) -> RunCreateRequest:
    return RunCreateRequest(
        run_config_tasks={t.id: t for t in tasks}, name="run", group=group, **kw  # type: ignore[arg-type]
    )


def new_run(*tasks: RunConfigTask, run_id: str = "run1", started: bool = True) -> tuple[Run, RunConfig]:
    run, rc = build_new_run(create_request(*tasks), run_id, 1, T0)
    return (start_run(run, T0) if started else run), rc


def executor(
    eid: str = "ex1",
    *,
    limit: int = 0,
    active: int = 0,
    archs: Iterable[Arch] = (Arch.AMD64,),
    privileged: bool = False,
    seen: datetime = T0,
) -> Executor:
    return Executor(
        id=eid,
        listen_url=f"http://127.0.0.1:1/{eid}",
        archs=list(archs),
        allow_privileged_containers=privileged,
        active_tasks_limit=limit,
        active_tasks=active,
        last_status_update_time=seen,
    )


@attrs.define
class World:
    """One run scheduled in memory; records every submission for assertions."""

    run: Run
    rc: RunConfig
    executors: list[Executor]
    now: datetime = T0
    executor_tasks: dict[str, ExecutorTask] = attrs.field(factory=dict)
    submitted: list[str] = attrs.field(factory=list)
    events: list[tuple[str, str]] = attrs.field(factory=list)
    auto_fetch: bool = True

    @classmethod
    def of(cls, *tasks: RunConfigTask, executors: list[Executor] | None = None, **kw: object) -> World:
        run, rc = new_run(*tasks)
        return cls(run=run, rc=rc, executors=executors or [executor()], **kw)  # type: ignore[arg-type]

    def schedule(self) -> list[str]:
        """One scheduling pass; returns ids of the tasks sent to executors."""
        decision = schedule_run(self.run, self.rc, self.executor_tasks.values(), self.executors, self.now)
        if decision.run_event:
            self.events.append((decision.run.phase.value, decision.run.result.value))
        self.run = decision.run
        for et in [*decision.stop_tasks, *decision.new_tasks]:
            self.executor_tasks[et.id] = et
        new = [et.id for et in decision.new_tasks]
        self.submitted.extend(new)
        return new

    def settle(self, passes: int = 10) -> None:
        for _ in range(passes):
            before = (self.run, dict(self.executor_tasks))
            self.schedule()
            if (self.run, self.executor_tasks) == before:
                return

    def report(self, tid: str, phase: ExecutorTaskPhase) -> bool:
        """The executor reports ``phase`` for the task (steps follow the task phase)."""
        et = self.executor_tasks[tid]
        step_phase = phase if phase is not ExecutorTaskPhase.CANCELLED else ExecutorTaskPhase.NOT_STARTED
        status = attrs.evolve(
            et.status,
            phase=phase,
            start_time=et.status.start_time or self.now,
            end_time=self.now if phase.is_finished else None,
            setup_step=ExecutorTaskStepStatus(phase=ExecutorTaskPhase.SUCCESS),
            steps=[
                ExecutorTaskStepStatus(
                    phase=step_phase,
                    exit_status=(0 if phase is ExecutorTaskPhase.SUCCESS else 1)
                    if phase.is_finished and phase is not ExecutorTaskPhase.CANCELLED
                    else None,
                )
                for _ in et.status.steps
            ],
        )
        et = attrs.evolve(et, status=status)
        self.executor_tasks[tid] = et
        self.run, accepted = apply_executor_task_status(self.run, et)
        if accepted and phase.is_finished and self.auto_fetch:
            self.fetch(tid)
        return accepted

    def fetch(self, tid: str) -> None:
        """The fetcher copied the task's logs and archives."""
        self.run = with_task(self.run, mark_nothing_to_fetch(self.run.tasks[tid]))

    def run_all(self, outcomes: dict[str, ExecutorTaskPhase] | None = None) -> None:
        """Run everything to the end: each submitted task runs then ends with its outcome."""
        outcomes = outcomes or {}
        for _ in range(100):
            self.settle()
            pending = [
                tid for tid, et in self.executor_tasks.items() if not et.status.phase.is_finished
            ]
            if not pending:
                self.settle()
                return
            for tid in pending:
                self.report(tid, ExecutorTaskPhase.RUNNING)
                self.report(tid, outcomes.get(tid, ExecutorTaskPhase.SUCCESS))
        raise AssertionError("run did not settle")

    def clean(self) -> None:
        """One executor tasks cleaner pass, applying failures to the run."""
        by_id = {e.id: e for e in self.executors}
        for et in list(self.executor_tasks.values()):
            decision = executor_task_cleanup(et, self.run, by_id, self.now)
            self.executor_tasks[et.id] = decision.task
            if decision.kind.value == "fail":
                self.run, _ = apply_executor_task_status(self.run, decision.task)

    def status(self, tid: str) -> str:
        return self.run.tasks[tid].status.value

    def statuses(self) -> dict[str, str]:
        return {tid: t.status.value for tid, t in sorted(self.run.tasks.items())}

    def load(self) -> dict[str, int]:
        return executor_load(self.executors, self.executor_tasks.values())

    def later(self, seconds: float) -> None:
        self.now = self.now + timedelta(seconds=seconds)
