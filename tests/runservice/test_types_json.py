"""Wire compatibility of the runservice types: example JSON written from the spec's field lists
(§3.2) parses, and serializes back to the same JSON."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agola.errors import BadRequest
from agola.types.runservice import (
    Executor,
    ExecutorTask,
    ExecutorTaskPhase,
    ExecutorTaskSpecData,
    FetchPhase,
    RestoreCacheStep,
    Run,
    RunConfig,
    RunConfigTask,
    RunCreateRequest,
    RunEvent,
    RunPhase,
    RunResult,
    RunStep,
    RunTaskStatus,
    SaveToWorkspaceStep,
)

RUN = {
    "id": "0000000000001-0000000000002",
    "name": "build",
    "counter": 2,
    "group": "/project/0cb4b2a2-0000-4000-8000-000000000001/branch/feature%2Fx",
    "annotations": {"branch": "feature/x", "commit_sha": "abc"},
    "phase": "running",
    "result": "unknown",
    "stop": True,
    "tasks": {
        "t1": {
            "id": "t1",
            "status": "running",
            "annotations": {"approvers": '["u1"]'},
            "waiting_approval": True,
            "setup_step": {
                "phase": "success",
                "log_phase": "finished",
                "exit_status": None,
                "start_time": "2026-01-01T12:00:00Z",
                "end_time": "2026-01-01T12:00:01.5Z",
            },
            "steps": [
                {"phase": "success", "log_phase": "notstarted", "exit_status": 0},
                {"phase": "running", "log_phase": "notstarted", "exit_status": None},
            ],
            "workspace_archives": [1],
            "workspace_archives_phase": ["notstarted"],
            "start_time": "2026-01-01T12:00:00Z",
        },
        "t2": {
            "id": "t2",
            "status": "skipped",
            "skip": True,
            "setup_step": {"exit_status": None},
        },
    },
    "enqueue_time": "2026-01-01T11:59:00Z",
    "start_time": "2026-01-01T12:00:00Z",
    "archived": False,
}

RUN_CONFIG = {
    "id": "0000000000001-0000000000002",
    "name": "build",
    "group": "/project/p1/branch/master",
    "setup_errors": ["oops"],
    "annotations": {"a": "b"},
    "static_environment": {"CI": "true", "AGOLA_GIT_BRANCH": "master"},
    "environment": {"OVERRIDE": "1"},
    "cache_group": "p1",
    "tasks": {
        "t1": {
            "level": 1,
            "id": "t1",
            "name": "test",
            "depends": {"t0": {"task_id": "t0", "conditions": ["on_success", "on_skipped"]}},
            "runtime": {
                "type": "pod",
                "arch": "arm64",
                "containers": [
                    {
                        "image": "golang:1.22",
                        "environment": {"GOPATH": "/go"},
                        "user": "root",
                        "privileged": True,
                        "entrypoint": "/bin/sh -c",
                        "volumes": [{"path": "/mnt/tmp", "tmpfs": {"size": 1073741824}}],
                    }
                ],
            },
            "environment": {"A": "1"},
            "working_dir": "~/project",
            "shell": "/bin/sh -e",
            "user": "build",
            "steps": [
                {"type": "run", "name": "build", "command": "make", "environment": {"X": "y"},
                 "working_dir": "src", "shell": "/bin/bash", "tty": False},
                {"type": "save_to_workspace", "name": "save",
                 "contents": [{"source_dir": "bin", "dest_dir": "/out", "paths": ["**"]}]},
                {"type": "restore_workspace", "name": "restore", "dest_dir": "."},
                {"type": "save_cache", "name": "cache", "key": "k-{{ arch }}",
                 "contents": [{"source_dir": "/go/pkg", "paths": ["**"]}]},
                {"type": "restore_cache", "name": "rcache", "keys": ["k-", "j-"], "dest_dir": "/go"},
            ],
            "ignore_failure": True,
            "needs_approval": True,
            "skip": True,
            "docker_registries_auth": {
                "index.docker.io": {"type": "basic", "username": "u", "password": "s3cr3t-pw", "auth": ""}
            },
            "task_timeout_interval": 15000000000,
        },
        "t0": {
            "id": "t0",
            "name": "checkout",
            "depends": {},
            "runtime": {"type": "pod", "containers": [{"image": "alpine", "user": "",
                        "privileged": False, "entrypoint": "", "volumes": []}]},
            "docker_registries_auth": {},
        },
    },
}

EXECUTOR = {
    "id": "ex1",
    "listenURL": "http://127.0.0.1:4002",
    "archs": ["amd64"],
    "labels": {"zone": "a"},
    "allow_privileged_containers": True,
    "active_tasks_limit": 2,
    "active_tasks": 1,
    "dynamic": True,
    "executor_group": "g1",
    "siblings_executors": ["ex2"],
    "last_status_update_time": "2026-01-01T12:00:00.123456Z",
}

EXECUTOR_TASK = {
    "id": "t1",
    "spec": {"executor_id": "ex1", "run_id": "run1", "stop": True},
    "status": {
        "id": "t1",
        "revision": 3,
        "phase": "failed",
        "fail_error": "executor deleted",
        "setup_step": {"phase": "success", "start_time": "2026-01-01T12:00:00Z",
                       "end_time": "2026-01-01T12:00:01Z"},
        "steps": [{"phase": "failed", "exit_status": 2}, {}],
        "start_time": "2026-01-01T12:00:00Z",
        "end_time": "2026-01-01T12:00:05Z",
    },
}

SPEC_DATA = {
    "task_name": "test",
    "arch": "amd64",
    "containers": [{"image": "alpine", "user": "", "privileged": False, "entrypoint": "",
                    "volumes": []}],
    "environment": {"A": "1"},
    "working_dir": "~/project",
    "shell": "/bin/sh -e",
    "user": "root",
    "privileged": False,
    "workspace_operations": [{"task_id": "t0", "step": 1}],
    "docker_registries_auth": {},
    "cache_prefix": "p1",
    "steps": [{"type": "run", "name": "x", "command": "true", "tty": True}],
}


@pytest.mark.parametrize(
    ("cls", "example"),
    [(Run, RUN), (RunConfig, RUN_CONFIG), (Executor, EXECUTOR), (ExecutorTask, EXECUTOR_TASK),
     (ExecutorTaskSpecData, SPEC_DATA)],
    ids=["run", "runconfig", "executor", "executortask", "specdata"],
)
def test_example_json_round_trips_exactly(cls: Any, example: dict[str, Any]) -> None:
    value = cls.from_json(example)
    assert value.to_json() == _canonical(example)
    assert cls.from_json(json.dumps(example)) == value
    assert cls.from_json(value.to_json_bytes()) == value


def _canonical(example: dict[str, Any]) -> dict[str, Any]:
    """The example as we write it back: omitempty fields dropped when empty."""
    text = json.dumps(example)
    text = text.replace('"archived": false, ', "").replace(', "archived": false', "")
    out: dict[str, Any] = json.loads(text)
    if "tasks" in out and "t2" in out["tasks"]:
        # A non-pointer Go struct is never omitted; its empty phases are written as notstarted.
        out["tasks"]["t2"]["setup_step"] = {"phase": "notstarted", "log_phase": "notstarted",
                                            "exit_status": None}
    if out.get("status", {}).get("steps"):
        out["status"]["steps"][1] = {"phase": "notstarted"}
    return out


def test_parsed_values_are_typed() -> None:
    run = Run.from_json(RUN)
    assert run.phase is RunPhase.RUNNING and run.result is RunResult.UNKNOWN
    t1 = run.tasks["t1"]
    assert t1.status is RunTaskStatus.RUNNING
    assert t1.setup_step.end_time == datetime(2026, 1, 1, 12, 0, 1, 500000, tzinfo=UTC)
    assert t1.steps[0].exit_status == 0 and t1.steps[1].exit_status is None
    assert t1.workspace_archives_phase == [FetchPhase.NOT_STARTED]
    rc = RunConfig.from_json(RUN_CONFIG)
    steps = rc.tasks["t1"].steps
    assert isinstance(steps[0], RunStep) and steps[0].tty is False
    assert isinstance(steps[1], SaveToWorkspaceStep)
    assert isinstance(steps[4], RestoreCacheStep) and steps[4].keys == ["k-", "j-"]
    assert rc.tasks["t1"].task_timeout_interval == timedelta(seconds=15)
    assert rc.tasks["t1"].workspace_archive_steps == [1]


def test_not_omitempty_fields_are_always_written() -> None:
    rct = RunConfigTask.from_json({"id": "a", "name": "a", "runtime": {"containers": [{"image": "x"}]}})
    out = rct.to_json()
    assert out["depends"] == {} and out["docker_registries_auth"] == {}
    assert out["runtime"]["containers"][0] == {
        "image": "x", "user": "", "privileged": False, "entrypoint": "", "volumes": []
    }
    run = Run.from_json({"id": "r", "tasks": {"a": {"id": "a"}}})
    assert run.to_json()["tasks"]["a"]["setup_step"]["exit_status"] is None
    # A run step without tty means tty (Go decodes a nil pointer as true).
    step = RunConfigTask.from_json(
        {"id": "a", "name": "a", "runtime": {}, "steps": [{"type": "run", "command": "x"}]}
    ).steps[0]
    assert isinstance(step, RunStep) and step.tty is True


def test_timestamps_accept_go_nanoseconds_and_offsets_and_write_utc_z() -> None:
    ex = Executor.from_json({"id": "e", "last_status_update_time": "2026-01-01T14:00:00.123456789+02:00"})
    assert ex.last_status_update_time == datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert ex.to_json()["last_status_update_time"] == "2026-01-01T12:00:00.123456Z"


def test_executor_task_carries_spec_data_only_when_sent() -> None:
    et = ExecutorTask.from_json(EXECUTOR_TASK)
    data = ExecutorTaskSpecData.from_json(SPEC_DATA)
    sent = et.to_json(data)
    assert sent["spec"]["executor_id"] == "ex1" and sent["spec"]["task_name"] == "test"
    assert "task_name" not in et.to_json()["spec"]
    parsed, parsed_data = ExecutorTask.from_json_with_data(sent)
    assert parsed == et and parsed_data == data
    # The stored form drops the data on parse; without data there is none.
    assert ExecutorTask.from_json(sent) == et
    assert ExecutorTask.from_json_with_data(EXECUTOR_TASK)[1] is None
    assert et.status.steps[0].phase is ExecutorTaskPhase.FAILED


def test_run_event_uses_go_field_names_and_create_request_its_odd_key() -> None:
    ev = RunEvent.from_json({"Sequence": "s", "RunID": "r", "Phase": "finished", "Result": "success"})
    assert ev.to_json() == {"Sequence": "s", "RunID": "r", "Phase": "finished", "Result": "success"}
    req = RunCreateRequest.from_json({"group": "/project/p/branch/b", "changeup_update_tokens": "tok",
                                      "run_config_tasks": None, "setup_errors": ["e"]})
    assert req.change_groups_update_token == "tok" and req.run_config_tasks is None


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"id": "a", "name": "a"}, "runtime: missing required field"),
        ({"id": "a", "name": "a", "runtime": {"containers": [{"user": "x"}]}},
         "runtime.containers[0].image: missing required field"),
        ({"id": "a", "name": "a", "runtime": {}, "colour": 1}, "unknown field 'colour'"),
        ({"id": "a", "name": "a", "runtime": {"arch": "sparc"}}, "runtime.arch: invalid value 'sparc'"),
        ({"id": "a", "name": "a", "runtime": {}, "steps": [{"type": "teleport"}]},
         "steps[0].type: unknown step type 'teleport'"),
        ({"id": "a", "name": "a", "runtime": {}, "steps": [{"type": "run", "cmd": "x"}]},
         "steps[0]: unknown field 'cmd'"),
        ({"id": "a", "name": "a", "runtime": {}, "skip": "yes"}, "skip: expected a boolean, got a string"),
        ({"id": "a", "name": "a", "runtime": {}, "level": True}, "level: expected an integer"),
        ({"id": "a", "name": "a", "runtime": {}, "depends": {"b": {"conditions": ["on_success"]}}},
         "depends.b.task_id: missing required field"),
        ({"id": "a", "name": "a", "runtime": {},
          "depends": {"b": {"task_id": "b", "conditions": ["on_whatever"]}}},
         "depends.b.conditions[0]: invalid value 'on_whatever'"),
    ],
)
def test_strict_parsing_names_the_field(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(BadRequest) as err:
        RunConfigTask.from_json(doc)
    assert message in str(err.value)


def test_bad_timestamps_and_bad_json_are_bad_requests() -> None:
    with pytest.raises(BadRequest, match="start_time: invalid RFC3339"):
        Run.from_json({"id": "r", "start_time": "yesterday"})
    with pytest.raises(BadRequest, match="no timezone"):
        Run.from_json({"id": "r", "start_time": "2026-01-01T00:00:00"})
    with pytest.raises(BadRequest, match="invalid JSON"):
        Run.from_json("{not json")
    with pytest.raises(BadRequest, match=re.escape("tasks.t1.status: invalid value 'done'")):
        Run.from_json({"id": "r", "tasks": {"t1": {"id": "t1", "status": "done"}}})


def test_registry_credentials_never_in_repr() -> None:
    rc = RunConfig.from_json(RUN_CONFIG)
    assert rc.tasks["t1"].docker_registries_auth["index.docker.io"].password == "s3cr3t-pw"
    assert "s3cr3t-pw" not in repr(rc)


def test_masked_values_round_trip_to_the_executor_and_stay_out_of_repr() -> None:
    from agola.services.runservice.logic.spec_data import executor_task_spec_data

    raw = {"id": "t1", "name": "t", "runtime": {"containers": [{"image": "x"}]},
           "masked_values": ["hunter22-secret"]}
    rct = RunConfigTask.from_json(raw)
    assert rct.masked_values == ["hunter22-secret"] and rct.to_json()["masked_values"] == ["hunter22-secret"]
    assert "masked_values" not in RunConfigTask.from_json({**raw, "masked_values": []}).to_json()
    run = Run.from_json({"id": "r", "tasks": {"t1": {"id": "t1"}}})
    data = executor_task_spec_data(run, RunConfig(id="r", group="/user/u1", tasks={"t1": rct}), "t1")
    et = ExecutorTask.from_json(EXECUTOR_TASK)
    assert ExecutorTask.from_json_with_data(et.to_json(data))[1] == data
    assert data.masked_values == ["hunter22-secret"]
    assert "hunter22" not in repr(rct) + repr(data) + repr(RunConfig(id="r", tasks={"t1": rct}))
