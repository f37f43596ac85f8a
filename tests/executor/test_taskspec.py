"""The task spec the executor runs comes from the runservice's wire types; its status goes back."""

from __future__ import annotations

import pytest

from agola.errors import BadRequest
from agola.services.executor.taskspec import (
    CloneStep,
    Phase,
    RunStep,
    SaveCacheStep,
    StepStatus,
    TaskSpec,
    TaskStatus,
    parse_duration,
)
from agola.types.runservice import ExecutorTaskSpecData, ExecutorTaskStatus

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


def test_spec_from_the_runservice_wire_types() -> None:
    spec = TaskSpec.from_spec_data("tid", ExecutorTaskSpecData.from_json(RAW))
    assert spec.containers[0].volumes[0].tmpfs_size == 1024
    assert spec.steps[0] == RunStep(command="make", tty=False)
    assert isinstance(spec.steps[1], SaveCacheStep) and spec.steps[1].contents[0].paths == ("**",)  # cache default
    assert spec.task_timeout_interval == 15.0
    assert spec.workspace_operations[0].task_id == "parent"
    assert spec.effective_clone_source().repository_url == "ssh://git@h/r.git"
    # Secrets never show in a repr (logs, test output).
    assert "very-secret" not in repr(spec) and "hunter2" not in repr(spec)


def test_clone_step_and_unknown_steps() -> None:
    spec = TaskSpec.from_json("t", {"containers": [{"image": "x"}], "steps": [{"type": "clone", "depth": 1}]})
    assert spec.steps == (CloneStep(depth=1),)
    with pytest.raises(BadRequest, match="unknown step type"):
        TaskSpec.from_json("t", {"containers": [{"image": "x"}], "steps": [{"type": "nope"}]})


def test_status_decodes_as_the_wire_status() -> None:
    status = TaskStatus("tid", steps=[StepStatus(), StepStatus()], timedout=True)
    status.setup_step.start()
    status.setup_step.finish(Phase.SUCCESS, 0)
    status.steps[0].start()
    status.steps[0].finish(Phase.FAILED, 2)
    wire = ExecutorTaskStatus.from_json(status.to_json())
    assert wire.setup_step.phase.value == "success"
    assert [s.phase.value for s in wire.steps] == ["failed", "notstarted"]
    assert wire.steps[0].exit_status == 2 and wire.timedout


@pytest.mark.parametrize("raw, seconds", [(None, None), (0, None), ("15s", 15.0), ("1m30s", 90.0), (2_000_000_000, 2.0)])
def test_durations(raw: object, seconds: float | None) -> None:
    assert parse_duration(raw) == seconds
