"""Run config generation: the wire shape the runservice consumes, and the reference's quirks fixed."""

from __future__ import annotations

import itertools

from agola.pipeline import RunContext, generate_run_configs, parse_pipeline
from agola.types.runservice import CloneStep
from agola.types.runservice import RunConfigTask as WireRunConfigTask

PIPELINE = """\
docker_registries_auth:
  registry.io: {username: ci, password: {from_variable: registry-password}}
runs:
  - name: ci
    tasks:
      - name: build
        runtime:
          arch: amd64
          containers:
            - image: registry.io/golang
              environment: {GOPATH: /go, SECRET: {from_variable: secret}}
              volumes: [{path: /tmp, tmpfs: {size: 64Mi}}, {path: /scratch, tmpfs: {}}]
            - image: postgres
              privileged: true
              entrypoint: docker-entrypoint.sh postgres
        environment: {CGO_ENABLED: "0"}
        working_dir: /src
        user: builder
        task_timeout_interval: 90s
        steps:
          - clone: {depth: 5, recurse_submodules: true}
          - run: {name: build, command: make, environment: {V: "1"}, working_dir: ./cmd, shell: /bin/bash, tty: false}
          - save_to_workspace: {contents: [{source_dir: bin, dest_dir: /bin, paths: ['*']}]}
          - save_cache: {key: 'go-{{ md5sum "go.sum" }}', contents: [{source_dir: /go/pkg}]}
          - restore_cache: {keys: ['go-'], dest_dir: /go/pkg}
      - name: test
        depends: [build]
        ignore_failure: true
        runtime: {containers: [{image: busybox}]}
        steps:
          - restore_workspace: {dest_dir: .}
          - run: make test
          - run:
              name: only on master
              command: make coverage
              when: {branch: master}
      - name: notify
        depends: [{test: [on_success, on_failure, on_skipped]}]
        approval: true
        runtime: {containers: [{image: busybox}]}
"""


def generate(ctx: RunContext, message: str = "commit", variables: dict[str, str] | None = None):
    config = parse_pipeline(".agola/config.yml", PIPELINE, ctx)
    ids = itertools.count(1)
    return generate_run_configs(config, ctx, message, variables or {}, lambda name: f"{name}-{next(ids)}")


def test_wire_shape_of_a_task() -> None:
    (run,) = generate(RunContext.for_branch("master"), variables={"secret": "s", "registry-password": "pw"})
    build = run.task_by_name("build").to_json()
    # The runservice's RunConfigTask as its codec writes it (omitempty as in the reference: level 0,
    # empty step names and dest_dir left out; privileged, entrypoint, volumes always written).
    assert build == {
        "id": "build-1",
        "name": "build",
        "runtime": {
            "type": "pod",
            "arch": "amd64",
            "containers": [
                {
                    "image": "registry.io/golang",
                    "environment": {"GOPATH": "/go", "SECRET": "s"},
                    "user": "",
                    "privileged": False,
                    "entrypoint": "",
                    "volumes": [{"path": "/tmp", "tmpfs": {"size": 64 * 1024 * 1024}},
                                {"path": "/scratch", "tmpfs": {"size": 0}}],
                },
                {"image": "postgres", "user": "", "privileged": True, "entrypoint": "docker-entrypoint.sh postgres",
                 "volumes": []},
            ],
        },
        "depends": {},
        "environment": {"CGO_ENABLED": "0"},
        "working_dir": "/src",
        "shell": "/bin/sh -e",
        "user": "builder",
        "steps": [
            {"type": "clone", "name": "Clone repository and checkout code", "depth": 5, "recurse_submodules": True},
            {"type": "run", "name": "build", "command": "make", "environment": {"V": "1"},
             "working_dir": "./cmd", "shell": "/bin/bash", "tty": False},
            {"type": "save_to_workspace", "contents": [{"source_dir": "bin", "dest_dir": "/bin", "paths": ["*"]}]},
            {"type": "save_cache", "key": 'go-{{ md5sum "go.sum" }}', "contents": [{"source_dir": "/go/pkg", "paths": ["**"]}]},
            {"type": "restore_cache", "keys": ["go-"], "dest_dir": "/go/pkg"},
        ],
        "docker_registries_auth": {"registry.io": {"type": "basic", "username": "ci", "password": "pw", "auth": ""}},
        "task_timeout_interval": 90 * 10**9,
    }


def test_depends_keep_on_skipped_and_levels() -> None:
    (run,) = generate(RunContext.for_branch("master"))
    notify = run.task_by_name("notify")
    test = run.task_by_name("test")
    assert [t.name for t in run.tasks.values()] == ["build", "test", "notify"]
    assert (run.task_by_name("build").level, test.level, notify.level) == (0, 1, 2)
    assert notify.to_json()["depends"] == {
        test.id: {"task_id": test.id, "conditions": ["on_success", "on_failure", "on_skipped"]}
    }
    assert notify.needs_approval and test.ignore_failure


def test_step_when_is_honoured() -> None:
    (on_master,) = generate(RunContext.for_branch("master"))
    (on_dev,) = generate(RunContext.for_branch("dev"))
    assert [s.name for s in on_master.task_by_name("test").steps] == ["", "make test", "only on master"]
    assert [s.name for s in on_dev.task_by_name("test").steps] == ["", "make test"]


def test_ci_skip_creates_nothing() -> None:
    assert generate(RunContext.for_branch("master"), "docs\n\n[ci skip]") == []
    assert len(generate(RunContext.for_branch("master"), "[ci  skip] is not it")) == 1


def test_the_runservice_decodes_generated_tasks() -> None:
    (run,) = generate(RunContext.for_tag("v1"), variables={"secret": "s"})
    for task in run.tasks.values():
        decoded = WireRunConfigTask.from_json(task.to_json_bytes())
        assert decoded == task
        clone = [s for s in decoded.steps if isinstance(s, CloneStep)]
        assert all(c.depth == 5 and c.recurse_submodules for c in clone)
    build = WireRunConfigTask.from_json({**run.task_by_name("build").to_json(), "steps": []})
    assert build.task_timeout_interval is not None and build.task_timeout_interval.total_seconds() == 90
    tmpfs = build.runtime.containers[0].volumes[0].tmpfs
    assert tmpfs is not None and tmpfs.size == 64 * 1024 * 1024
