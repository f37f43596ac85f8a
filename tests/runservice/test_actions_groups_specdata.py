"""Run actions (§3.5, §3.8), run groups and counters (§3.3), executor task spec data (§3.2)."""

from __future__ import annotations

import hashlib
import json
import re

import attrs
import pytest

from agola.errors import BadRequest
from agola.services.runservice.logic import (
    add_approver,
    approve_task,
    cancel_run,
    change_run_phase,
    executor_task_spec_data,
    group_matches,
    next_counter,
    parse_run_group,
    root_group_id,
    run_group_path,
    set_task_annotations,
    start_run,
    stop_run,
)
from agola.services.runservice.logic.actions import approvers, tasks_to_approve
from agola.services.runservice.logic.groups import (
    GroupBaseType,
    GroupSubType,
    approval_change_group,
    counter_change_group,
)
from agola.services.runservice.logic.run_queue import group_change_group, group_has_room
from agola.types.runservice import Run, RunPhase, WorkspaceOperation
from tests.runservice.builders import T0, World, new_run, task


def _run(phase: str) -> Run:
    run, _ = new_run(task("a", approval=True), started=False)
    return attrs.evolve(run, phase=RunPhase(phase))


@pytest.mark.parametrize(
    ("action", "phase", "message"),
    [
        ("start", "running", "cannot be started: it is running, not queued"),
        ("start", "finished", "cannot be started: it is finished"),
        ("cancel", "running", "only queued runs can be cancelled (stop it instead)"),
        ("cancel", "cancelled", "cannot be cancelled: it is cancelled"),
        ("stop", "queued", "cannot be stopped: it is queued, not running"),
        ("stop", "finished", "cannot be stopped: it is finished"),
    ],
)
def test_actions_that_do_not_apply_are_bad_requests(action: str, phase: str, message: str) -> None:
    run = _run(phase)
    with pytest.raises(BadRequest) as err:
        {"start": lambda: start_run(run, T0), "cancel": lambda: cancel_run(run, T0),
         "stop": lambda: stop_run(run)}[action]()
    assert message in str(err.value)


def test_change_phase_action() -> None:
    run = _run("queued")
    started = change_run_phase(run, RunPhase.RUNNING, T0)
    assert started.phase is RunPhase.RUNNING and started.start_time == T0 and started.end_time is None
    assert change_run_phase(run, RunPhase.CANCELLED, T0).end_time == T0
    with pytest.raises(BadRequest, match="unsupported change phase 'finished'"):
        change_run_phase(run, RunPhase.FINISHED, T0)
    assert stop_run(started).stop


def test_task_annotations_and_approval() -> None:
    run = _run("running")
    with pytest.raises(BadRequest, match="not waiting for approval"):
        approve_task(run, "a")
    with pytest.raises(BadRequest, match="has no task 'zz'"):
        set_task_annotations(run, "zz", {})
    run = set_task_annotations(run, "a", {"k": "v"})
    assert run.tasks["a"].annotations == {"k": "v"}
    run = attrs.evolve(run, tasks={"a": attrs.evolve(run.tasks["a"], waiting_approval=True)})
    with pytest.raises(BadRequest, match="needs a logged in user"):
        add_approver(run, "a", "")
    run = add_approver(run, "a", "u1")
    assert json.loads(run.tasks["a"].annotations["approvers"]) == ["u1"]
    assert run.tasks["a"].annotations["k"] == "v"
    with pytest.raises(BadRequest, match="already approved"):
        add_approver(run, "a", "u1")
    approved = approve_task(run, "a")
    assert approved.tasks["a"].approved and not approved.tasks["a"].waiting_approval
    with pytest.raises(BadRequest, match="already approved"):
        approve_task(approved, "a")


def test_a_run_group_has_room_below_its_limit() -> None:
    # What the scheduler checks before starting a group's oldest queued run; the FIFO order and the
    # limit under concurrent schedulers are tested on the scheduler itself (tests/scheduler).
    assert group_has_room(0, 1) and not group_has_room(1, 1)
    assert group_has_room(1, 2) and not group_has_room(2, 2)
    assert group_has_room(0, 0) and not group_has_room(1, 0)  # a limit below 1 is 1
    assert group_change_group("/project/p/branch/a") == hashlib.sha256(b"changegroup-/project/p/branch/a").hexdigest()


def test_approvers_come_from_the_annotation_and_a_malformed_one_records_nobody() -> None:
    run = _run("running")
    run = attrs.evolve(run, tasks={"a": attrs.evolve(run.tasks["a"], waiting_approval=True)})
    assert tasks_to_approve(run) == []
    for raw in ("not json", '{"u1": true}', "[]"):
        odd = set_task_annotations(run, "a", {"approvers": raw})
        assert approvers(odd.tasks["a"]) == [] and tasks_to_approve(odd) == []
    # a malformed annotation is overwritten by the first real approval
    approved = add_approver(set_task_annotations(run, "a", {"approvers": "not json"}), "a", "u1")
    assert approvers(approved.tasks["a"]) == ["u1"] and tasks_to_approve(approved) == ["a"]


def test_run_group_paths_escape_names_like_go() -> None:
    path = run_group_path(GroupBaseType.PROJECT, "p1", GroupSubType.BRANCH, "feature/x y:z")
    assert path == "/project/p1/branch/feature%2Fx%20y:z"
    group = parse_run_group(path)
    assert (group.base_id, group.sub_type, group.name) == ("p1", GroupSubType.BRANCH, "feature/x y:z")
    assert run_group_path(GroupBaseType.USER, "u1", GroupSubType.PULL_REQUEST, "12") == "/user/u1/pr/12"
    with pytest.raises(BadRequest, match="unknown base type 'org'"):
        parse_run_group("/org/o/branch/m")
    with pytest.raises(BadRequest, match=re.escape("expected /<project|user>")):
        parse_run_group("/project/p1")


@pytest.mark.parametrize(
    ("group_filter", "group", "matches"),
    [
        ("/project/X", "/project/X/branch/master", True),
        ("/project/X/", "/project/X/branch/master", True),
        ("/project/X/branch/feature", "/project/X/branch/feature", True),
        ("/project/X/branch/feature", "/project/X/branch/feature02", False),
        ("/project/X", "/project/XY/branch/master", False),
        ("/", "/user/u/tag/v1", True),
    ],
)
def test_group_filter_matches_whole_path_elements(group_filter: str, group: str, matches: bool) -> None:
    assert group_matches(group_filter, group) is matches


def test_counters_and_change_groups() -> None:
    assert root_group_id("/project/p1/branch/master") == "p1"
    assert counter_change_group("p1") == "counter-p1"
    assert next_counter(0) == 1 and next_counter(41) == 42
    assert approval_change_group("r1") == hashlib.sha256(b"approval-r1").hexdigest()
    with pytest.raises(BadRequest):
        root_group_id("/")


def test_spec_data_environment_workspaces_and_cache_prefix() -> None:
    w = World.of(
        task("a", workspace=True, environment={"A": "task", "CI": "task"}),
        task("b", "a", workspace=True),
        task("z", workspace=True),
        task("c", "b", "z", environment={"C": "1"}),
    )
    rc = attrs.evolve(w.rc, static_environment={"CI": "true", "AGOLA_X": "s"}, environment={"AGOLA_X": "o"})
    data = executor_task_spec_data(w.run, rc, "c")
    assert data.environment == {"C": "1", "CI": "true", "AGOLA_X": "o"}
    assert executor_task_spec_data(w.run, rc, "a").environment == {"A": "task", "CI": "true", "AGOLA_X": "o"}
    # every ancestor's save_to_workspace step, by ancestor level then name
    assert data.workspace_operations == [
        WorkspaceOperation(task_id="a", step=1),
        WorkspaceOperation(task_id="z", step=1),
        WorkspaceOperation(task_id="b", step=1),
    ]
    assert data.cache_prefix == "p1" and data.task_name == "c" and not data.privileged
    assert executor_task_spec_data(w.run, attrs.evolve(rc, cache_group="shared"), "c").cache_prefix == "shared"
    assert data.steps == rc.tasks["c"].steps and data.containers == rc.tasks["c"].runtime.containers
