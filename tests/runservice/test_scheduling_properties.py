"""Properties of the scheduling logic over random DAGs, executors and interleavings:

* an executor is never given more tasks than its ``active_tasks_limit`` allows;
* a task is sent to an executor only after its parents finished (with their archives fetched)
  and matched its depend conditions; every run ends with every task finished and the right result.
"""

from __future__ import annotations

from datetime import timedelta

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agola.services.runservice.logic import (
    apply_executor_task_status,
    approve_task,
    executor_alive,
    executor_load,
    schedule_run,
)
from agola.services.runservice.logic.run_tasks import mark_nothing_to_fetch, with_task
from agola.services.runservice.logic.runnable import conditions_of
from agola.types.runservice import (
    Arch,
    Executor,
    ExecutorTask,
    ExecutorTaskPhase,
    Run,
    RunConfig,
    RunConfigTask,
    RunPhase,
    RunResult,
    RunTaskStatus,
)
from tests.runservice.builders import T0, executor, new_run, task

PROPERTY_SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

CONDITION_SETS = [["on_success"], ["on_failure"], ["on_skipped"], ["on_success", "on_failure"],
                  ["on_success", "on_skipped"]]


@st.composite
def dags(draw: st.DrawFn, max_tasks: int = 7) -> list[RunConfigTask]:
    """Random valid DAGs: parents among earlier tasks, no redundant edge."""
    n = draw(st.integers(1, max_tasks))
    tasks: list[RunConfigTask] = []
    ancestors: dict[str, set[str]] = {}
    for i in range(n):
        tid = f"t{i}"
        candidates = [t.id for t in tasks]
        chosen = draw(st.lists(st.sampled_from(candidates), unique=True, max_size=3)) if candidates else []
        # keep only parents that are not ancestors of another chosen parent (no redundant edge)
        parents = [p for p in chosen if not any(p in ancestors[q] for q in chosen if q != p)]
        ancestors[tid] = set(parents).union(*(ancestors[p] for p in parents)) if parents else set()
        deps = [(p, draw(st.sampled_from(CONDITION_SETS))) for p in parents]
        tasks.append(
            task(
                tid,
                *deps,
                workspace=draw(st.booleans()),
                skip=draw(st.booleans()) and draw(st.booleans()),
                approval=draw(st.booleans()) and draw(st.booleans()),
                ignore_failure=draw(st.booleans()) and draw(st.booleans()),
                arch=draw(st.sampled_from([None, None, Arch.AMD64, Arch.ARM64])),
            )
        )
    return tasks


def _check_submittable(run: Run, rc: RunConfig, tid: str) -> None:
    rct = rc.tasks[tid]
    for pid in rct.depends:
        parent = run.tasks[pid]
        assert parent.status.is_finished, f"{tid} sent before parent {pid} finished"
        assert parent.archives_fetch_finished, f"{tid} sent before {pid}'s archives were fetched"
        matched = any(
            (c.value, parent.status.value) in {("on_success", "success"), ("on_failure", "failed"),
                                               ("on_skipped", "skipped")}
            for c in conditions_of(rct, pid)
        )
        assert matched, f"{tid} sent although its condition on {pid} is unmet"
    assert not rct.skip and (not rct.needs_approval or run.tasks[tid].approved)


@PROPERTY_SETTINGS
@given(tasks=dags(), data=st.data())
def test_tasks_run_only_after_their_parents_and_every_run_ends(tasks: list[RunConfigTask], data: st.DataObject) -> None:
    run, rc = new_run(*tasks)
    executors = [executor("amd", archs=[Arch.AMD64], limit=2), executor("arm", archs=[Arch.ARM64])]
    ets: dict[str, ExecutorTask] = {}
    unfetched: set[str] = set()
    now = T0
    for _ in range(200):
        decision = schedule_run(run, rc, ets.values(), executors, now)
        run = decision.run
        for et in decision.new_tasks:
            _check_submittable(run, rc, et.id)
            assert et.id not in ets, "a task got two executor tasks"
            ets[et.id] = et
        # the world moves on: approvals, executor progress, fetches, in a random order
        moves: list[tuple[str, str]] = [("approve", t.id) for t in run.tasks.values() if t.waiting_approval]
        moves += [("progress", tid) for tid, et in ets.items() if not et.status.phase.is_finished]
        moves += [("fetch", tid) for tid in sorted(unfetched)]
        if not moves:
            if run.phase is RunPhase.FINISHED:
                break
            continue
        kind, tid = data.draw(st.sampled_from(moves))
        if kind == "approve":
            run = approve_task(run, tid)
        elif kind == "fetch":
            run = with_task(run, mark_nothing_to_fetch(run.tasks[tid]))
            unfetched.discard(tid)
        else:
            et = ets[tid]
            if et.status.phase is ExecutorTaskPhase.NOT_STARTED:
                phase = ExecutorTaskPhase.RUNNING
            else:
                phase = data.draw(st.sampled_from([ExecutorTaskPhase.SUCCESS, ExecutorTaskPhase.FAILED]))
            et = attrs.evolve(et, status=attrs.evolve(et.status, phase=phase))
            ets[tid] = et
            run, accepted = apply_executor_task_status(run, et)
            assert accepted
            if phase.is_finished:
                unfetched.add(tid)
        now += timedelta(seconds=1)
    else:
        raise AssertionError(f"run did not finish: {run}")

    assert run.phase is RunPhase.FINISHED
    assert all(t.status.is_finished for t in run.tasks.values())
    # whatever state the logic produces survives the wire unchanged
    assert Run.from_json(run.to_json_bytes()) == run
    assert RunConfig.from_json(rc.to_json_bytes()) == rc
    assert all(ExecutorTask.from_json(et.to_json()) == et for et in ets.values())
    failed = any(t.status is RunTaskStatus.FAILED and not rc.tasks[t.id].ignore_failure
                 for t in run.tasks.values())
    assert run.result is (RunResult.FAILED if failed else RunResult.SUCCESS)
    # every task with an executor task really ran; every other one ended without running
    for tid, t in run.tasks.items():
        ran = tid in ets
        assert ran == (t.status in (RunTaskStatus.SUCCESS, RunTaskStatus.FAILED)), (tid, t.status)


@st.composite
def fleets(draw: st.DrawFn) -> list[Executor]:
    n = draw(st.integers(1, 4))
    return [
        executor(
            f"e{i}",
            limit=draw(st.integers(0, 3)),
            active=draw(st.integers(0, 4)),
            archs=draw(st.lists(st.sampled_from([Arch.AMD64, Arch.ARM64]), min_size=1, unique=True)),
            seen=T0 - timedelta(seconds=draw(st.sampled_from([0, 30, 59, 61, 600]))),
        )
        for i in range(n)
    ]


@PROPERTY_SETTINGS
@given(fleet=fleets(), runs=st.lists(dags(max_tasks=5), min_size=1, max_size=4), data=st.data())
def test_an_executor_never_gets_more_tasks_than_its_limit(
    fleet: list[Executor], runs: list[list[RunConfigTask]], data: st.DataObject
) -> None:
    states = [new_run(*tasks, run_id=f"r{i}") for i, tasks in enumerate(runs)]
    ets: dict[tuple[str, str], ExecutorTask] = {}
    for _ in range(8):  # scheduling passes, with some tasks finishing in between
        load = executor_load(fleet, ets.values())
        before = dict(load)
        assigned: dict[str, int] = {}
        for i, (run, rc) in enumerate(states):
            own = [et for (rid, _), et in ets.items() if rid == run.id]
            decision = schedule_run(run, rc, own, fleet, T0, load=load)
            load = decision.load
            states[i] = (decision.run, rc)
            for et in decision.new_tasks:
                ets[(run.id, et.id)] = et
                assigned[et.spec.executor_id] = assigned.get(et.spec.executor_id, 0) + 1
                ex = next(e for e in fleet if e.id == et.spec.executor_id)
                arch = rc.tasks[et.id].runtime.arch
                assert arch is None or arch in ex.archs
                assert executor_alive(ex, T0), "a task went to a dead executor"
        for ex in fleet:
            if ex.active_tasks_limit:
                room = max(0, ex.active_tasks_limit - before[ex.id])
                assert assigned.get(ex.id, 0) <= room, (ex, before, assigned)
        # some unfinished tasks finish
        for key, et in list(ets.items()):
            if not et.status.phase.is_finished and data.draw(st.booleans()):
                done = attrs.evolve(et, status=attrs.evolve(et.status, phase=ExecutorTaskPhase.SUCCESS))
                ets[key] = done
                i = next(j for j, (r, _) in enumerate(states) if r.id == key[0])
                run, rc = states[i]
                run, _ = apply_executor_task_status(
                    run, attrs.evolve(done, status=attrs.evolve(done.status, phase=ExecutorTaskPhase.RUNNING))
                )
                run, _ = apply_executor_task_status(run, done)
                states[i] = (with_task(run, mark_nothing_to_fetch(run.tasks[et.id])), rc)
