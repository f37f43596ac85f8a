"""Direct runs through the real stack: push through the gateway's git proxy to the gitserver,
``POST /user/createrun``, runs in the runservice (spec §6.6, §6.8)."""

from __future__ import annotations

import functools
import uuid
from pathlib import Path

import aiohttp
import pytest

from agola.client import errors
from agola.client.types import UserCreateRunRequest
from tests.gateway.conftest import Env, make_repo, push
from tests.support.waiting import wait_for

PIPELINE = """\
runs:
  - name: ci
    tasks:
      - name: build
        runtime: {containers: [{image: busybox}]}
        environment: {SECRET: {from_variable: password}}
        steps:
          - clone:
          - run: echo hello
  - name: only-on-tags
    when: {tag: '/^v/'}
    tasks:
      - name: release
        runtime: {containers: [{image: busybox}]}
        steps: [{run: "true"}]
"""


async def _direct_run(env: Env, tmp: Path, token_user: tuple, files: dict[str, str], **kw):
    user, client = token_user
    repo_uuid = str(uuid.uuid4())
    sha = await make_repo(tmp / repo_uuid, files)
    await push(tmp / repo_uuid, f"{env.url}/repos/{user.id}/{repo_uuid}.git", "refs/heads/" + kw.get("branch", "master"),
               client._token)
    req = UserCreateRunRequest(repo_uuid=repo_uuid, repo_path=f"{user.id}/{repo_uuid}", commit_sha=sha,
                               branch=kw.get("branch", "master"), variables=kw.get("variables", {}))
    res = await client.user_create_run(req)
    return repo_uuid, sha, res.run_ids


async def test_direct_run_created_with_environment_annotations_and_cache_group(env: Env, tmp_path: Path) -> None:
    alice = await env.user("alice")
    repo_uuid, sha, run_ids = await _direct_run(env, tmp_path, alice, {".agola/config.yml": PIPELINE, "README": "x"},
                                                variables={"password": "s3cret"})
    assert len(run_ids) == 1  # the tag-only run does not match a branch
    user = alice[0]
    run = await alice[1].get_run(run_ids[0])
    assert run.name == "ci" and run.phase == "queued"
    assert run.annotations["run_type"] == "user" and run.annotations["userid"] == user.id
    assert run.annotations["ref_type"] == "branch" and run.annotations["branch"] == "master"
    assert run.annotations["commit_sha"] == sha and run.annotations["message"] == "agola direct run"
    assert run.annotations["run_creation_trigger"] == "manual"

    rs_run = await env.rs.get_run(run_ids[0])
    assert rs_run.run.group == f"/user/{user.id}/branch/master"
    rc = rs_run.run_config
    assert rc is not None
    assert rc.cache_group == f"{user.id}-{repo_uuid}"
    senv = rc.static_environment
    assert senv["CI"] == "true"
    assert senv["AGOLA_REPOSITORY_URL"] == f"{env.url}/repos/{user.id}/{repo_uuid}.git"
    assert senv["AGOLA_GIT_HOST"] == "127.0.0.1" and senv["AGOLA_GIT_PORT"] == env.url.rsplit(":", 1)[1]
    assert senv["AGOLA_GIT_BRANCH"] == "master" and senv["AGOLA_GIT_REF"] == "refs/heads/master"
    assert senv["AGOLA_GIT_COMMITSHA"] == sha
    (task,) = rc.tasks.values()
    assert task.environment["SECRET"] == "s3cret"  # from the request's variables

    # The run is listed in the user's group, and the executor can clone it without credentials.
    async def listed() -> bool:
        rows = await alice[1].list_runs(f"/user/{user.id}")
        return [r.id for r in rows] == run_ids

    await wait_for(listed, 10)
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{env.url}/repos/{user.id}/{repo_uuid}.git/raw/{sha}/README") as r:
            assert r.status == 200 and await r.read() == b"x"


async def test_two_repositories_of_one_user_get_different_cache_groups(env: Env, tmp_path: Path) -> None:
    alice = await env.user("alice")
    files = {".agola/config.yml": PIPELINE}
    u1, _, (r1,) = await _direct_run(env, tmp_path, alice, files)
    u2, _, (r2,) = await _direct_run(env, tmp_path, alice, files)
    c1 = (await env.rs.get_run(r1)).run_config.cache_group  # type: ignore[union-attr]
    c2 = (await env.rs.get_run(r2)).run_config.cache_group  # type: ignore[union-attr]
    assert c1 != c2 and c1.endswith(u1) and c2.endswith(u2)


async def test_broken_or_missing_pipeline_gives_a_setup_error_run(env: Env, tmp_path: Path) -> None:
    alice = await env.user("alice")
    broken = "runs:\n  - name: ci\n    tasks:\n      - name: build\n        steps: [{run: x}]\n"
    _, _, (run_id,) = await _direct_run(env, tmp_path, alice, {".agola/config.yml": broken})
    run = await alice[1].get_run(run_id)
    assert run.phase == "setuperror" and run.name == "Setup Error"
    assert run.setup_errors and any(".agola/config.yml" in e and "runtime" in e for e in run.setup_errors)
    assert any(":4:" in e or "line 4" in e for e in run.setup_errors), run.setup_errors

    _, _, (run_id,) = await _direct_run(env, tmp_path, alice, {"README": "no pipeline"})
    run = await alice[1].get_run(run_id)
    assert run.phase == "setuperror" and "no pipeline file" in run.setup_errors[0]


async def test_direct_run_permissions(env: Env, tmp_path: Path) -> None:
    alice = await env.user("alice")
    _bob_user, as_bob = await env.user("bob")
    repo_uuid, sha, (run_id,) = await _direct_run(env, tmp_path, alice, {".agola/config.yml": PIPELINE})
    alice_id = alice[0].id

    # Another user's run: not visible, no actions, no logs, not in their listing.
    with pytest.raises(errors.Forbidden):
        await as_bob.get_run(run_id)
    with pytest.raises(errors.Forbidden):
        await as_bob.cancel_run(run_id)
    with pytest.raises(errors.Forbidden):
        await as_bob.list_runs(f"/user/{alice_id}")
    with pytest.raises(errors.Forbidden):
        await as_bob.get_log(run_id, "any", step=0)
    with pytest.raises(errors.Unauthorized):
        await env.client().get_run(run_id)

    # Runs in another user's repository path, and pushes to it, are refused.
    with pytest.raises(errors.Forbidden):
        await as_bob.user_create_run(UserCreateRunRequest(repo_uuid=repo_uuid, repo_path=f"{alice_id}/{repo_uuid}",
                                                          commit_sha=sha, branch="master"))
    code, out = await push(tmp_path / repo_uuid, f"{env.url}/repos/{alice_id}/{repo_uuid}.git", "refs/heads/evil",
                           as_bob._token, check=False)
    assert code != 0 and "403" in out
    code, out = await push(tmp_path / repo_uuid, f"{env.url}/repos/{alice_id}/{repo_uuid}.git", "refs/heads/evil",
                           check=False)
    assert code != 0

    # Request validation.
    base = dict(repo_uuid=repo_uuid, repo_path=f"{alice_id}/{repo_uuid}", commit_sha=sha)
    with pytest.raises(errors.BadRequest, match="one of branch, tag or ref"):
        await alice[1].user_create_run(UserCreateRunRequest(**base))
    with pytest.raises(errors.BadRequest, match="only one"):
        await alice[1].user_create_run(UserCreateRunRequest(**base, branch="a", tag="b"))
    with pytest.raises(errors.BadRequest, match="wrong repo path"):
        await alice[1].user_create_run(UserCreateRunRequest(**{**base, "repo_path": "x/y/z"}, branch="a"))

    # The owner cancels the queued run.
    before = await alice[1].cancel_run(run_id)
    assert before.phase == "queued"
    assert (await alice[1].get_run(run_id)).phase == "cancelled"
    restarted = await alice[1].restart_run(run_id, from_start=True)
    assert restarted.id != run_id and restarted.phase == "queued"


async def test_pull_request_and_tag_refs(env: Env, tmp_path: Path) -> None:
    user, client = await env.user("alice")
    repo_uuid = str(uuid.uuid4())
    sha = await make_repo(tmp_path / "r", {".agola/config.yml": PIPELINE})
    url = f"{env.url}/repos/{user.id}/{repo_uuid}.git"
    await push(tmp_path / "r", url, "refs/tags/v1.0", client._token)
    await push(tmp_path / "r", url, "refs/pull/42/head", client._token)
    request = functools.partial(UserCreateRunRequest, repo_uuid=repo_uuid, repo_path=f"{user.id}/{repo_uuid}",
                                commit_sha=sha)
    tag_runs = (await client.user_create_run(request(ref="refs/tags/v1.0"))).run_ids
    assert len(tag_runs) == 2
    pr_runs = (await client.user_create_run(request(ref="refs/pull/42/head"))).run_ids
    (pr,) = pr_runs
    assert (await env.rs.get_run(pr)).run.group == f"/user/{user.id}/pr/42"
    assert (await client.get_run(pr)).annotations["pull_request_id"] == "42"
    with pytest.raises(errors.BadRequest, match="not a branch"):
        await client.user_create_run(request(ref="refs/weird/1"))
