"""Executor choice (§3.6 chooseExecutor) and the executor limit (quirk 11)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agola.services.runservice.logic import choose_executor, executor_load, schedule_run
from agola.types.runservice import Arch, Executor
from tests.runservice.builders import T0, World, executor, new_run, task


@pytest.mark.parametrize(
    ("executors", "rct", "chosen"),
    [
        pytest.param([executor("e1")], task("a"), "e1", id="alive"),
        pytest.param([executor("e1", seen=T0 - timedelta(seconds=61))], task("a"), None, id="expired"),
        pytest.param([executor("e1", seen=T0 - timedelta(seconds=60))], task("a"), "e1", id="60s-still-alive"),
        pytest.param([executor("e1"), executor("e0")], task("a"), "e0", id="first-by-id"),
        pytest.param([executor("e1", archs=[Arch.ARM64])], task("a", arch=Arch.AMD64), None, id="wrong-arch"),
        pytest.param([executor("e1", archs=[Arch.ARM64])], task("a"), "e1", id="any-arch"),
        pytest.param([executor("e1"), executor("e2", archs=[Arch.ARM64, Arch.AMD64])],
                     task("a", arch=Arch.ARM64), "e2", id="arch-match"),
        pytest.param([executor("e1")], task("a", privileged=True), None, id="privileged-refused"),
        pytest.param([executor("e1"), executor("e2", privileged=True)], task("a", privileged=True), "e2",
                     id="privileged-allowed"),
        pytest.param([executor("e1", limit=2, active=2)], task("a"), None, id="full"),
        pytest.param([executor("e1", limit=2, active=3), executor("e2", limit=2, active=1)], task("a"),
                     "e2", id="over-full-skipped"),
        pytest.param([executor("e1", limit=0, active=50)], task("a"), "e1", id="no-limit"),
    ],
)
def test_choose_executor(executors: list[Executor], rct: object, chosen: str | None) -> None:
    load = executor_load(executors, [])
    got = choose_executor(executors, rct, T0, load)  # type: ignore[arg-type]
    assert (got.id if got else None) == chosen


def test_tasks_assigned_in_the_same_pass_count_against_the_limit() -> None:
    """Quirk 11: the executor's own active count lags; the pass must count its assignments."""
    w = World.of(task("a"), task("b"), task("c"), task("d"),
                 executors=[executor("e1", limit=2), executor("e2", limit=1)])
    assert w.schedule() == ["a", "b", "c"]
    assert {tid: et.spec.executor_id for tid, et in w.executor_tasks.items()} == {
        "a": "e1", "b": "e1", "c": "e2"
    }
    assert w.run.tasks["d"].status.value == "notstarted"
    # the executors have not heartbeaten since: their stale active_tasks (0) is not trusted
    assert w.schedule() == []
    w.report("a", w.executor_tasks["a"].status.phase.RUNNING)
    w.report("a", w.executor_tasks["a"].status.phase.SUCCESS)
    assert w.schedule() == ["d"]
    assert w.executor_tasks["d"].spec.executor_id == "e1"


def test_load_carries_across_runs_of_one_pass() -> None:
    ex = [executor("e1", limit=2)]
    run1, rc1 = new_run(task("a"), task("b"), run_id="r1")
    run2, rc2 = new_run(task("c"), task("d"), run_id="r2")
    first = schedule_run(run1, rc1, [], ex, T0)
    second = schedule_run(run2, rc2, [], ex, T0, load=first.load)
    assert [t.id for t in first.new_tasks] == ["a", "b"]
    assert second.new_tasks == [] and second.waiting_for_executor == ["c", "d"]


def test_load_is_the_larger_of_report_and_our_unfinished_tasks() -> None:
    w = World.of(task("a"), task("b"), executors=[executor("e1", active=1)])
    w.schedule()
    assert w.load() == {"e1": 2}
    w.executors = [executor("e1", active=5)]
    assert w.load() == {"e1": 5}


def test_heartbeat_sets_our_time_and_finds_stale_dynamic_siblings() -> None:
    import attrs

    from agola.errors import BadRequest
    from agola.services.runservice.logic.executors import register_heartbeat, stale_siblings

    sent = attrs.evolve(executor("e1", seen=T0 - timedelta(days=3)), executor_group="g",
                        dynamic=True, siblings_executors=["e2"])
    stored = register_heartbeat(sent, "e1", T0)
    assert stored.last_status_update_time == T0
    with pytest.raises(BadRequest, match="does not match the path id"):
        register_heartbeat(sent, "e9", T0)
    others = [
        attrs.evolve(executor("e2"), executor_group="g", dynamic=True),
        attrs.evolve(executor("e3"), executor_group="g", dynamic=True),
        attrs.evolve(executor("e4"), executor_group="g", dynamic=False),
        attrs.evolve(executor("e5"), executor_group="other", dynamic=True),
        stored,
    ]
    assert stale_siblings(stored, others) == ["e3"]


def test_status_reports_replace_the_status_and_keep_the_spec() -> None:
    import attrs

    from agola.errors import BadRequest
    from agola.services.runservice.logic.transitions import receive_executor_task_status
    from agola.types.runservice import ExecutorTaskPhase

    w = World.of(task("a", steps=2))
    w.schedule()
    stored = attrs.evolve(w.executor_tasks["a"], spec=attrs.evolve(w.executor_tasks["a"].spec, stop=True))
    reported = attrs.evolve(stored, spec=attrs.evolve(stored.spec, stop=False, run_id="forged"),
                            status=attrs.evolve(stored.status, phase=ExecutorTaskPhase.RUNNING))
    got = receive_executor_task_status(stored, reported, "ex1")
    assert got.spec == stored.spec and got.status.phase is ExecutorTaskPhase.RUNNING
    with pytest.raises(BadRequest, match="not assigned to executor ex2"):
        receive_executor_task_status(stored, reported, "ex2")
    with pytest.raises(BadRequest, match="has 2 steps, the report has 1"):
        receive_executor_task_status(
            stored, attrs.evolve(reported, status=attrs.evolve(reported.status, steps=reported.status.steps[:1])), "ex1"
        )


def test_an_executor_coming_back_cannot_revive_a_task_failed_while_it_was_gone() -> None:
    import attrs

    from agola.services.runservice.logic.transitions import receive_executor_task_status
    from agola.types.runservice import ExecutorTaskPhase

    w = World.of(task("a"))
    w.schedule()
    w.report("a", ExecutorTaskPhase.RUNNING)
    w.later(120)  # heartbeat expired
    w.clean()
    failed = w.executor_tasks["a"]
    assert failed.status.phase is ExecutorTaskPhase.FAILED and failed.spec.stop
    still_running = attrs.evolve(failed, status=attrs.evolve(failed.status, phase=ExecutorTaskPhase.RUNNING))
    assert receive_executor_task_status(failed, still_running, "ex1") == failed
    assert w.status("a") == "failed"
