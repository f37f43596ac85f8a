"""Run creation and restart from a run create request (§3.4, §3.7)."""

from __future__ import annotations

import itertools

import attrs
import pytest

from agola.errors import BadRequest
from agola.services.runservice.logic import build_new_run, build_restarted_run, executor_task_spec_data
from agola.types.runservice import (
    Container,
    FetchPhase,
    RunCreateRequest,
    RunPhase,
    RunResult,
    Runtime,
    WorkspaceOperation,
)
from agola.types.runservice import ExecutorTaskPhase as P
from tests.runservice.builders import GROUP, T0, World, create_request, task


def test_new_run_is_queued_with_levels_and_fresh_tasks() -> None:
    req = create_request(task("a", workspace=True), task("b", "a"), task("c", "a", "b"), task("s", skip=True))
    req = attrs.evolve(req, static_environment={"CI": "true"}, annotations={"branch": "master"},
                       cache_group="cg")
    # c -> a and c -> b -> a is a redundant dependency: drop it to make the DAG valid
    req = attrs.evolve(req, run_config_tasks={**req.run_config_tasks, "c": task("c", "b")})  # type: ignore[dict-item]
    run, rc = build_new_run(req, "run1", 7, T0)
    assert (run.id, rc.id, run.counter, run.group, run.name) == ("run1", "run1", 7, GROUP, "run")
    assert run.phase is RunPhase.QUEUED and run.result is RunResult.UNKNOWN
    assert run.enqueue_time == T0 and run.start_time is None
    assert run.annotations == rc.annotations == {"branch": "master"}
    assert {tid: t.level for tid, t in rc.tasks.items()} == {"a": 0, "b": 1, "c": 2, "s": 0}
    a = run.tasks["a"]
    assert a.status.value == "notstarted" and len(a.steps) == 2
    assert a.workspace_archives == [1] and a.workspace_archives_phase == [FetchPhase.NOT_STARTED]
    assert run.tasks["s"].status.value == "skipped"
    assert rc.static_environment == {"CI": "true"} and rc.cache_group == "cg"


def test_setup_errors_make_a_setuperror_run_without_tasks() -> None:
    req = RunCreateRequest(name="Setup Error", group=GROUP, setup_errors=["bad yaml at line 3"])
    run, rc = build_new_run(req, "run1", 1, T0)
    assert run.phase is RunPhase.SETUP_ERROR and run.tasks == {}
    assert rc.setup_errors == ["bad yaml at line 3"]


@pytest.mark.parametrize(
    ("req", "message"),
    [
        pytest.param(create_request(task("a"), group=""), "run group is empty", id="no-group"),
        pytest.param(create_request(task("a"), group="project/x"), "must be an absolute path", id="relative-group"),
        pytest.param(RunCreateRequest(group=GROUP), "run_config_tasks is required", id="no-tasks"),
        pytest.param(create_request(task("a", "ghost")),
                     "run task \"ghost\" needed by task \"a\" doesn't exist", id="unknown-parent"),
        pytest.param(create_request(task("a", "b"), task("b", "a")),
                     'circular dependency between task "a" and tasks "b"', id="cycle"),
        pytest.param(create_request(task("a", "c"), task("b", "a"), task("c", "b")),
                     'circular dependency between task "b" and tasks "c"', id="long-cycle"),
        pytest.param(create_request(task("a", "a")),
                     'circular dependency between task "a" and tasks "a"', id="self-loop"),
        pytest.param(create_request(task("a"), task("b", "a"), task("c", "a", "b")),
                     'task "c" and its dependency "b" have both a dependency on task "a"', id="redundant"),
        pytest.param(create_request(attrs.evolve(task("a"), runtime=Runtime())),
                     "task 'a': runtime must define at least one container", id="no-container"),
        pytest.param(create_request(attrs.evolve(task("a"), runtime=Runtime(containers=[Container(image="")]))),
                     "task 'a': container 0 has no image", id="no-image"),
        pytest.param(create_request(attrs.evolve(task("a"), name="")), "task 'a': name is empty", id="no-name"),
        pytest.param(RunCreateRequest(group=GROUP, run_config_tasks={"x": task("a")}),
                     "map key 'x' differs from its id 'a'", id="key-mismatch"),
    ],
)
def test_bad_create_requests_are_bad_requests_naming_the_problem(req: RunCreateRequest, message: str) -> None:
    with pytest.raises(BadRequest) as err:
        build_new_run(req, "run1", 1, T0)
    assert message in str(err.value)


def test_a_cycle_reports_every_task_of_it() -> None:
    with pytest.raises(BadRequest) as err:
        build_new_run(create_request(task("a", "b"), task("b", "a")), "run1", 1, T0)
    assert err.value.details == [
        'circular dependency between task "a" and tasks "b"',
        'circular dependency between task "b" and tasks "a"',
    ]


def test_missing_fields_in_the_json_request_name_the_field() -> None:
    body = {"group": GROUP, "run_config_tasks": {"t1": {"id": "t1", "name": "build"}}}
    with pytest.raises(BadRequest, match=r"run_config_tasks\.t1\.runtime: missing required field"):
        RunCreateRequest.from_json(body)


def _ids() -> object:
    counter = itertools.count(1)
    return lambda: f"new{next(counter)}"


def _finished_world(outcomes: dict[str, P]) -> World:
    w = World.of(task("a", workspace=True), task("b", "a"), task("c", "b"), task("d", "a"))
    w.run_all(outcomes)
    assert w.run.phase is RunPhase.FINISHED
    return w


def test_restart_from_failed_recreates_failed_tasks_and_their_descendants() -> None:
    w = _finished_world({"b": P.FAILED})
    assert w.statuses() == {"a": "success", "b": "failed", "c": "skipped", "d": "success"}
    req = RunCreateRequest(run_id=w.run.id, environment={"X": "1"})
    run, rc = build_restarted_run(req, w.run, w.rc, "run2", 2, T0, _ids())  # type: ignore[arg-type]
    assert sorted(run.tasks) == ["a", "d", "new1", "new2"]  # b -> new1, c -> new2 (sorted old ids)
    assert run.tasks["a"] == w.run.tasks["a"]  # kept: same id, status, fetched logs/archives
    assert rc.tasks["new1"].name == "b" and set(rc.tasks["new1"].depends) == {"a"}
    assert set(rc.tasks["new2"].depends) == {"new1"}
    assert rc.tasks["new2"].depends["new1"].task_id == "new1"
    assert run.tasks["new1"].status.value == "notstarted"
    assert (run.id, rc.id, run.counter, run.phase, run.result) == ("run2", "run2", 2, RunPhase.QUEUED, RunResult.UNKNOWN)
    assert rc.environment == {"X": "1"} and run.group == w.run.group and run.name == w.run.name
    assert run.start_time is None and run.end_time is None and not run.stop
    # the recreated b restores the workspace of the kept a, by a's (unchanged) id
    assert executor_task_spec_data(run, rc, "new1").workspace_operations == [
        WorkspaceOperation(task_id="a", step=1)
    ]
    # the restarted run runs only what was recreated; kept workspaces are restored by id
    w2 = World(run=run, rc=rc, executors=w.executors)
    w2.run = w2.run.__class__.from_json({**run.to_json(), "phase": "running"})
    w2.run_all()
    assert w2.submitted == ["new1", "new2"] and w2.run.result is RunResult.SUCCESS


def test_restart_from_start_recreates_everything() -> None:
    w = _finished_world({"b": P.FAILED})
    run, rc = build_restarted_run(RunCreateRequest(run_id=w.run.id, from_start=True),
                                  w.run, w.rc, "run2", 2, T0, _ids())  # type: ignore[arg-type]
    assert sorted(run.tasks) == ["new1", "new2", "new3", "new4"]
    assert all(t.status.value == "notstarted" for t in run.tasks.values())
    assert sorted(t.name for t in rc.tasks.values()) == ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    ("phase", "result", "from_start", "message"),
    [
        ("running", "unknown", True, "the run is running"),
        ("queued", "unknown", False, "the run is queued"),
        ("setuperror", "unknown", True, "the run has setup errors"),
        ("finished", "success", False, "the run succeeded"),
    ],
)
def test_restart_refusals(phase: str, result: str, from_start: bool, message: str) -> None:
    w = _finished_world({})
    run = w.run.__class__.from_json({**w.run.to_json(), "phase": phase, "result": result})
    with pytest.raises(BadRequest) as err:
        build_restarted_run(RunCreateRequest(run_id=run.id, from_start=from_start), run, w.rc, "r2", 2, T0, _ids())  # type: ignore[arg-type]
    assert str(err.value).startswith("run cannot be restarted: ") and message in str(err.value)


def test_restart_from_failed_waits_for_fetches_of_successful_tasks() -> None:
    w = _finished_world({"b": P.FAILED})
    unfetched = attrs.evolve(w.run.tasks["a"], workspace_archives_phase=[FetchPhase.NOT_STARTED])
    run = attrs.evolve(w.run, tasks={**w.run.tasks, "a": unfetched})
    with pytest.raises(BadRequest, match="still being fetched"):
        build_restarted_run(RunCreateRequest(run_id=run.id), run, w.rc, "r2", 2, T0, _ids())  # type: ignore[arg-type]
    # from start does not reuse anything, so it need not wait
    build_restarted_run(RunCreateRequest(run_id=run.id, from_start=True), run, w.rc, "r2", 2, T0, _ids())  # type: ignore[arg-type]
