"""The executor runs the runservice's wire types as decoded by the one codec: what a task spec
JSON becomes, what the executor derives from it, and its status on the way back."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agola.errors import BadRequest
from agola.services.executor.gitclone import clone_source
from agola.services.executor.steps import cache_contents, step_user
from agola.types.runservice import (
    CloneStep,
    Container,
    ExecutorTask,
    ExecutorTaskPhase,
    ExecutorTaskSpecData,
    ExecutorTaskStatus,
    ExecutorTaskStepStatus,
    RunStep,
    SaveCacheStep,
)

RAW = {
    "task_name": "build",
    "containers": [{"image": "busybox", "environment": {"C": "1"}, "volumes": [{"path": "/x", "tmpfs": {"size": 1024}}]}],
    "environment": {"AGOLA_SSHPRIVKEY": "very-secret", "AGOLA_REPOSITORY_URL": "ssh://git@h/r.git"},
    "working_dir": "~/p",
    "shell": "/bin/sh -e",
    "steps": [
        {"type": "run", "command": "make", "tty": False},
        {"type": "save_cache", "key": "k", "contents": [{"source_dir": ".", "paths": []}]},
    ],
    "workspace_operations": [{"task_id": "parent", "step": 1}],
    "docker_registries_auth": {"quay.io": {"type": "basic", "username": "u", "password": "hunter2"}},
    "cache_prefix": "proj",
    "task_timeout_interval": 15_000_000_000,
}


def test_spec_from_the_runservice_wire_json() -> None:
    spec = ExecutorTaskSpecData.from_json(RAW)
    volume = spec.containers[0].volumes[0]
    assert volume.path == "/x" and volume.tmpfs is not None and volume.tmpfs.size == 1024
    assert spec.steps[0] == RunStep(command="make", tty=False)
    assert isinstance(spec.steps[1], SaveCacheStep)
    assert cache_contents(spec.steps[1])[0].paths == ["**"]  # a cache without paths saves everything
    assert spec.task_timeout_interval == timedelta(seconds=15)
    assert spec.workspace_operations[0].task_id == "parent"
    source = clone_source(spec.environment)
    assert source is not None and source.repository_url == "ssh://git@h/r.git"
    # Secrets never show in a repr (logs, test output).
    assert "very-secret" not in repr(spec) and "hunter2" not in repr(spec)
    assert "very-secret" not in repr(source)


def test_pushed_task_carries_its_spec_data_inline() -> None:
    task, data = ExecutorTask.from_json_with_data(
        {"id": "t1", "spec": {"executor_id": "e1", "run_id": "r1", **RAW}, "status": {"phase": "notstarted"}}
    )
    assert task.spec.executor_id == "e1" and data == ExecutorTaskSpecData.from_json(RAW)
    assert ExecutorTask.from_json_with_data(task.to_json()) == (task, None)  # its run is gone: no data


def test_clone_step_and_unknown_steps() -> None:
    spec = ExecutorTaskSpecData.from_json({"containers": [{"image": "x"}], "steps": [{"type": "clone", "depth": 1}]})
    assert spec.steps == [CloneStep(depth=1)]
    with pytest.raises(BadRequest, match="unknown step type"):
        ExecutorTaskSpecData.from_json({"containers": [{"image": "x"}], "steps": [{"type": "nope"}]})


def test_step_user_is_the_task_user_else_the_first_container_user() -> None:
    assert step_user(ExecutorTaskSpecData(containers=[Container(image="x", user="c")])) == "c"
    assert step_user(ExecutorTaskSpecData(containers=[Container(image="x", user="c")], user="t")) == "t"
    assert step_user(ExecutorTaskSpecData()) == ""


def test_status_round_trips_with_its_exit_statuses() -> None:
    status = ExecutorTaskStatus(
        id="tid",
        timedout=True,
        setup_step=ExecutorTaskStepStatus(phase=ExecutorTaskPhase.SUCCESS, exit_status=0),
        steps=[ExecutorTaskStepStatus(phase=ExecutorTaskPhase.FAILED, exit_status=2), ExecutorTaskStepStatus()],
    )
    wire = ExecutorTaskStatus.from_json(status.to_json())
    assert wire == status
    assert wire.setup_step.exit_status == 0  # Go *int: a 0 exit status is kept
    assert [s.phase.value for s in wire.steps] == ["failed", "notstarted"]


@pytest.mark.parametrize(
    "raw, expected",
    [(None, None), (0, timedelta(0)), ("15s", timedelta(seconds=15)), ("1m30s", timedelta(seconds=90)),
     (2_000_000_000, timedelta(seconds=2))],
)
def test_task_timeouts(raw: object, expected: timedelta | None) -> None:
    timeout = ExecutorTaskSpecData.from_json({"task_timeout_interval": raw}).task_timeout_interval
    assert timeout == expected
    assert bool(timeout) == bool(expected)  # 0 and absent both mean no timeout
