"""Scheduling scenarios: a run's task DAG driven to the end through the pure logic (§3.6)."""

from __future__ import annotations

import pytest

from agola.services.runservice.logic import archivable, cancel_run, stop_run
from agola.types.runservice import ExecutorTaskPhase as P
from agola.types.runservice import RunConfigTask, RunPhase, RunResult
from tests.runservice.builders import World, executor, task


def test_chain_runs_in_order_then_result_and_end_are_two_events() -> None:
    w = World.of(task("a"), task("b", "a"), task("c", "b"))
    assert w.schedule() == ["a"]
    assert w.schedule() == []  # a already has an executor task
    w.report("a", P.RUNNING)
    assert w.schedule() == []
    w.report("a", P.SUCCESS)
    assert w.schedule() == ["b"]
    w.run_all()
    assert w.submitted == ["a", "b", "c"]
    assert w.run.result is RunResult.SUCCESS and w.run.phase is RunPhase.FINISHED
    assert w.events == [("running", "success"), ("finished", "success")]
    assert w.run.end_time == w.now


@pytest.mark.parametrize(
    ("tasks", "outcomes", "statuses", "result"),
    [
        pytest.param(
            [task("a"), task("b", "a"), task("c", "b")],
            {"a": P.FAILED},
            {"a": "failed", "b": "skipped", "c": "skipped"},
            "failed",
            id="failure-skips-the-whole-chain",
        ),
        pytest.param(
            [task("a"), task("b", ("a", ["on_failure"])), task("c", "a")],
            {"a": P.FAILED},
            {"a": "failed", "b": "success", "c": "skipped"},
            "failed",
            id="on-failure-child-runs",
        ),
        pytest.param(
            [task("a", skip=True), task("b", ("a", ["on_skipped"])), task("c", "a")],
            {},
            {"a": "skipped", "b": "success", "c": "skipped"},
            "success",
            id="on-skipped-honoured",
        ),
        pytest.param(
            [task("a"), task("b", ("a", ["on_success", "on_failure"]))],
            {"a": P.FAILED},
            {"a": "failed", "b": "success"},
            "failed",
            id="any-listed-condition-matches",
        ),
        pytest.param(
            [task("a", ignore_failure=True), task("b", "a")],
            {"a": P.FAILED},
            {"a": "failed", "b": "skipped"},
            "success",
            id="ignored-failure-does-not-fail-the-run",
        ),
        pytest.param(
            [task("a"), task("b"), task("c", "a", "b")],
            {"b": P.FAILED},
            {"a": "success", "b": "failed", "c": "skipped"},
            "failed",
            id="every-parent-must-match",
        ),
        pytest.param(
            [task("a"), task("b", ("a", ["on_failure"])), task("c", ("b", ["on_skipped"]))],
            {},
            {"a": "success", "b": "skipped", "c": "success"},
            "success",
            id="skip-then-on-skipped",
        ),
    ],
)
def test_depend_conditions_and_skip_propagation(
    tasks: list[RunConfigTask], outcomes: dict[str, P], statuses: dict[str, str], result: str
) -> None:
    w = World.of(*tasks)
    w.run_all(outcomes)
    assert w.statuses() == statuses
    assert w.run.result.value == result and w.run.phase is RunPhase.FINISHED
    # a task never sent to an executor has nothing to fetch: the run can be archived
    assert archivable(w.run)


def test_skips_propagate_down_a_chain_in_one_pass() -> None:
    w = World.of(task("a"), task("b", "a"), task("c", "b"), task("d", "c"))
    w.schedule()
    w.report("a", P.RUNNING)
    w.report("a", P.FAILED)
    w.schedule()
    assert w.statuses() == {"a": "failed", "b": "skipped", "c": "skipped", "d": "skipped"}


def test_children_wait_for_parent_archives_to_be_fetched() -> None:
    w = World.of(task("a", workspace=True), task("b", "a"), auto_fetch=False)
    w.schedule()
    w.report("a", P.RUNNING)
    w.report("a", P.SUCCESS)
    assert w.schedule() == []
    w.fetch("a")
    assert w.schedule() == ["b"]


def test_approval_holds_the_task_until_approved() -> None:
    from agola.services.runservice.logic import add_approver, approve_task, tasks_to_approve

    w = World.of(task("a"), task("b", "a", approval=True))
    w.run_all()
    assert w.status("b") == "notstarted" and w.run.tasks["b"].waiting_approval
    assert w.run.phase is RunPhase.RUNNING and w.run.result is RunResult.UNKNOWN
    assert tasks_to_approve(w.run) == []
    w.run = add_approver(w.run, "b", "user1")
    assert tasks_to_approve(w.run) == ["b"]
    w.run = approve_task(w.run, "b")
    assert w.schedule() == ["b"]
    w.run_all()
    assert w.run.result is RunResult.SUCCESS


def test_stop_stops_active_tasks_and_skips_the_rest() -> None:
    w = World.of(task("a"), task("b", "a"), task("c"), executors=[executor(limit=1)])
    w.schedule()
    assert w.submitted == ["a"]  # c waits: the executor is full
    w.report("a", P.RUNNING)
    w.run = stop_run(w.run)
    w.schedule()
    assert w.run.result is RunResult.STOPPED
    assert w.executor_tasks["a"].spec.stop
    assert w.statuses() == {"a": "running", "b": "skipped", "c": "skipped"}
    assert w.run.phase.value == "running"  # a is still active
    w.report("a", P.STOPPED)
    w.settle()
    assert w.run.phase is RunPhase.FINISHED and w.run.result is RunResult.STOPPED
    assert w.events == [("running", "stopped"), ("finished", "stopped")]


def test_unscheduled_roots_are_cancelled_once_the_result_is_decided() -> None:
    w = World.of(task("a"), task("b"), task("c", "a"), executors=[executor(limit=1)])
    w.schedule()
    w.report("a", P.RUNNING)
    w.report("a", P.FAILED)
    w.settle()
    assert w.statuses() == {"a": "failed", "b": "cancelled", "c": "skipped"}
    assert w.run.phase is RunPhase.FINISHED and w.run.result is RunResult.FAILED


def test_a_task_of_a_lost_executor_fails_with_end_times() -> None:
    w = World.of(task("a", steps=2), task("b", "a"))
    w.schedule()
    w.report("a", P.RUNNING)
    w.executors = []  # executor deleted
    w.later(5)
    w.clean()
    et = w.executor_tasks["a"]
    assert et.status.phase is P.FAILED
    assert et.status.fail_error == "the executor running the task was removed: the task was lost"
    assert w.run.tasks["a"].fail_error == et.status.fail_error  # the run task says why too
    assert et.status.end_time == w.now
    assert [s.end_time for s in w.run.tasks["a"].steps] == [w.now, w.now]
    assert w.run.tasks["a"].end_time == w.now and w.status("a") == "failed"
    w.fetch("a")
    w.settle()
    assert w.statuses() == {"a": "failed", "b": "skipped"}
    assert w.run.result is RunResult.FAILED and w.run.phase is RunPhase.FINISHED


def test_an_executor_whose_heartbeat_expired_gets_its_tasks_failed_and_no_new_ones() -> None:
    w = World.of(task("a"), task("b"))
    w.executors = [executor(limit=1)]
    w.schedule()
    w.report("a", P.RUNNING)
    w.later(61)
    assert w.schedule() == []  # b: no live executor
    w.clean()
    assert w.executor_tasks["a"].status.fail_error == w.run.tasks["a"].fail_error == (
        "the executor running the task (ex1) sent no heartbeat for 60s (it died or cannot reach the"
        " runservice): the task was lost")
    assert w.status("a") == "failed"


def test_cleanup_stops_finished_tasks_of_finished_runs_and_deletes_orphans() -> None:
    from agola.services.runservice.logic import CleanupKind, executor_task_cleanup

    w = World.of(task("a"))
    w.run_all()
    et = w.executor_tasks["a"]
    ex = {e.id: e for e in w.executors}
    stop = executor_task_cleanup(et, w.run, ex, w.now)
    assert stop.kind is CleanupKind.STOP and stop.task.spec.stop
    assert executor_task_cleanup(stop.task, w.run, ex, w.now).kind is CleanupKind.NONE
    assert executor_task_cleanup(et, None, ex, w.now).kind is CleanupKind.DELETE


def test_cancelled_run_is_archivable() -> None:
    """Quirk 7: the reference never archived cancelled runs (result stays unknown)."""
    w = World.of(task("a", workspace=True), task("b", "a"))
    queued = w.run.__class__.from_json({**w.run.to_json(), "phase": "queued"})
    cancelled = cancel_run(queued, w.now)
    assert cancelled.phase is RunPhase.CANCELLED and cancelled.end_time == w.now
    assert cancelled.result is RunResult.UNKNOWN
    assert archivable(cancelled) and not archivable(queued)


def test_stale_executor_updates_are_ignored() -> None:
    w = World.of(task("a"))
    w.schedule()
    w.report("a", P.RUNNING)
    w.report("a", P.SUCCESS)
    assert not w.report("a", P.RUNNING)
    assert w.status("a") == "success"


@pytest.mark.parametrize(
    ("current", "reported", "accepted"),
    [
        ("notstarted", P.NOT_STARTED, True),
        ("notstarted", P.CANCELLED, True),
        ("notstarted", P.RUNNING, True),
        ("notstarted", P.STOPPED, False),
        ("notstarted", P.SUCCESS, False),
        ("notstarted", P.FAILED, True),
        ("running", P.NOT_STARTED, False),
        ("running", P.CANCELLED, False),
        ("running", P.STOPPED, True),
        ("running", P.SUCCESS, True),
        ("running", P.FAILED, True),
        ("success", P.FAILED, False),
        ("success", P.SUCCESS, True),
        ("skipped", P.RUNNING, False),
        ("failed", P.FAILED, True),
        ("stopped", P.STOPPED, True),
        ("cancelled", P.CANCELLED, True),
    ],
)
def test_executor_phase_transition_table(current: str, reported: P, accepted: bool) -> None:
    import attrs

    from agola.services.runservice.logic import apply_executor_task_status
    from agola.types.runservice import RunTaskStatus

    w = World.of(task("a"))
    w.schedule()
    w.run = w.run.__class__(
        **{**attrs.asdict(w.run, recurse=False),
           "tasks": {"a": attrs.evolve(w.run.tasks["a"], status=RunTaskStatus(current))}}
    )
    et = attrs.evolve(w.executor_tasks["a"], status=attrs.evolve(w.executor_tasks["a"].status, phase=reported))
    run, ok = apply_executor_task_status(w.run, et)
    assert ok is accepted
    assert run.tasks["a"].status.value == (reported.value if accepted else current)
