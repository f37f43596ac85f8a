"""Run creation pieces that need no server: groups, clone URLs, annotations, [ci skip]."""

from __future__ import annotations

import pytest

from agola.errors import BadRequest, NotExist
from agola.services.gateway.actions.createrun import UserCreateRunRequest, resolve_ref
from agola.services.gateway.runcreation import (
    RunSource,
    cache_group,
    create_runs,
    git_host_port,
    run_annotations,
    run_group,
    static_environment,
)
from agola.types.runservice import Run, RunCreateRequest

PIPELINE = (
    b"runs:\n  - name: ci\n    tasks:\n      - name: t\n"
    b"        runtime: {containers: [{image: busybox}]}\n        steps: [{run: 'true'}]\n"
)


def _src(**kw: object) -> RunSource:
    base: dict[str, object] = dict(run_type="user", base_id="u1", ref_type="branch", ref="refs/heads/feature/x", branch="feature/x",
                commit_sha="abc", message="msg", clone_url="http://gw.example:8000/repos/u1/r1.git", repo_uuid="r1")
    base.update(kw)
    return RunSource(**base)  # type: ignore[arg-type]


def test_groups_clone_urls_and_annotations() -> None:
    src = _src()
    assert run_group(src) == "/user/u1/branch/feature%2Fx"
    assert run_group(_src(ref_type="pull_request", ref="refs/pull/3/head", branch="", pull_request_id="3")) == "/user/u1/pr/3"
    assert cache_group(src) == "u1-r1" and cache_group(_src(run_type="project", base_id="p1")) == ""
    assert git_host_port("git@github.com:a/b.git") == ("github.com", "22")
    assert git_host_port("ssh://git@host:2222/a/b.git") == ("host", "2222")
    assert git_host_port("https://host/a/b.git") == ("host", "22")
    env = static_environment(_src(ssh_host_key="host key", skip_ssh_host_key_check=True))
    assert env["AGOLA_GIT_HOST"] == "gw.example" and env["AGOLA_GIT_PORT"] == "8000"
    assert env["AGOLA_SSHHOSTKEY"] == "host key" and env["AGOLA_SKIPSSHHOSTKEYCHECK"] == "1"
    ann = run_annotations(src)
    assert ann["userid"] == "u1" and ann["branch"] == "feature/x" and "tag" not in ann


def test_ref_resolution() -> None:
    r = resolve_ref(UserCreateRunRequest(ref="refs/merge-requests/7/head"))
    assert (r.ref_type, r.pull_request_id) == ("pull_request", "7")
    r = resolve_ref(UserCreateRunRequest(ref="refs/custom/9", pull_request_ref_regexes=(r"refs/custom/(\d+)",)))
    assert (r.ref_type, r.pull_request_id) == ("pull_request", "9")
    assert resolve_ref(UserCreateRunRequest(tag="v1")).ref == "refs/tags/v1"


async def test_ci_skip_creates_nothing_and_the_first_config_file_wins() -> None:
    created: list[RunCreateRequest] = []
    asked: list[str] = []

    async def fetch(path: str) -> bytes:
        asked.append(path)
        if path != ".agola/config.yml":
            raise NotExist(path)
        return PIPELINE

    async def create(req: RunCreateRequest) -> Run:
        created.append(req)
        return Run(id=str(len(created)), name=req.name, group=req.group)

    assert await create_runs(_src(message="wip [ci skip]"), fetch, create) == []
    runs = await create_runs(_src(), fetch, create)
    assert [r.name for r in runs] == ["ci"] and created[0].cache_group == "u1-r1"
    assert asked[:3] == [".agola/config.star", ".agola/config.jsonnet", ".agola/config.json"]


async def test_secret_values_reach_every_task_as_masked_values() -> None:
    created: list[RunCreateRequest] = []

    async def fetch(path: str) -> bytes:
        if path != ".agola/config.yml":
            raise NotExist(path)
        return PIPELINE

    async def create(req: RunCreateRequest) -> Run:
        created.append(req)
        return Run(id="r", name=req.name, group=req.group)

    direct = _src(variables={"plain": "visible", "token": "tok-123456"}, secret_names=frozenset({"token"}),
                  ssh_private_key="KEY-BODY")
    await create_runs(direct, fetch, create)
    [task] = (created[-1].run_config_tasks or {}).values()
    assert task.masked_values == ["KEY-BODY", "tok-123456"]
    # A project's variables all come from its secrets: every value is masked.
    project = _src(run_type="project", base_id="p1", variables={"a": "value-a", "b": "value-b"})
    assert project.masked_values() == ["value-a", "value-b"]
    assert "tok-123456" not in repr(direct)
    req = UserCreateRunRequest.from_json({"variables": {"A": "1"}, "secret_variables": {"S": "s3cret"}})
    assert req.secret_variables == {"S": "s3cret"} and "s3cret" not in repr(req)
    for bad, message in (({"secret_variables": {"S": 1}}, "secret_variables: expected an object of strings"),
                         ({"variables": {"S": "a"}, "secret_variables": {"S": "b"}}, "both set S")):
        with pytest.raises(BadRequest, match=message):
            UserCreateRunRequest.from_json(bad)
