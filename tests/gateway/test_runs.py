"""Runs through the gateway with the scheduler: approval, stop, restart, events, logs, badges."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import aiohttp
import attrs
import pytest

from agola.client import errors
from agola.client.types import CreateProjectRequest, RunActionsRequest, UserCreateRunRequest
from agola.errors import Forbidden
from agola.services.gateway.actions import runs as run_actions
from agola.services.gateway.auth import extract_credentials
from agola.services.scheduler.role import Scheduler
from tests.gateway.conftest import ADMIN_TOKEN, Env, make_repo, push
from tests.support.waiting import wait_for

PIPELINE = """\
runs:
  - name: deploy
    tasks:
      - name: approve-me
        approval: true
        runtime: {containers: [{image: busybox}]}
        steps: [{run: "true"}]
"""


async def _create(env: Env, tmp: Path, user: tuple, branch: str = "master") -> str:
    u, client = user
    repo_uuid = str(uuid.uuid4())
    sha = await make_repo(tmp / repo_uuid, {".agola/config.yml": PIPELINE})
    await push(tmp / repo_uuid, f"{env.url}/repos/{u.id}/{repo_uuid}.git", f"refs/heads/{branch}", client._token)
    res = await client.user_create_run(UserCreateRunRequest(repo_uuid=repo_uuid, repo_path=f"{u.id}/{repo_uuid}",
                                                            commit_sha=sha, branch=branch))
    (run_id,) = res.run_ids
    return run_id


async def test_approval_stop_and_restart(env: Env, tmp_path: Path) -> None:
    alice = await env.user("alice")
    bob = await env.user("bob")
    client = alice[1]
    scheduler = Scheduler(env.rs)
    run_id = await _create(env, tmp_path, alice)

    async def started() -> bool:
        # The runservice lists a new run shortly after creating it (its readdb follows).
        await scheduler.run_once()
        return (await client.get_run(run_id)).phase == "running"

    await wait_for(started, 10)

    async def waiting() -> bool:
        return bool((await client.get_run(run_id)).tasks_waiting_approval)

    await wait_for(waiting, 10)
    run = await client.get_run(run_id)
    (task_id,) = run.tasks_waiting_approval
    assert run.tasks[task_id].name == "approve-me" and run.tasks[task_id].waiting_approval
    task = await client.get_task(run_id, task_id)
    assert task.setup_step.name == "Task setup"  # type: ignore[union-attr]
    assert [(s.type, s.command) for s in task.steps] == [("run", "true")]

    # Only who may act on the run approves; the admin token has no user to record.
    with pytest.raises(errors.Forbidden):
        await bob[1].approve_task(run_id, task_id)
    with pytest.raises(errors.BadRequest):
        await env.admin.approve_task(run_id, task_id)
    await client.approve_task(run_id, task_id)
    with pytest.raises(errors.BadRequest, match="already approved"):
        await client.approve_task(run_id, task_id)
    assert (await client.get_task(run_id, task_id)).approval_annotations["approvers"] == f'["{alice[0].id}"]'

    # The scheduler's approve pass turns the recorded approval into the runservice approval.
    await scheduler.run_once()
    task = await client.get_task(run_id, task_id)
    assert task.approved and not task.waiting_approval

    # Stop: the run ends stopped (no executor ever took the task); then restart from failed tasks.
    with pytest.raises(errors.Forbidden):
        await bob[1].stop_run(run_id)
    await client.stop_run(run_id)

    async def finished() -> bool:
        return (await client.get_run(run_id)).phase == "finished"

    await wait_for(finished, 15)
    run = await client.get_run(run_id)
    assert run.result == "stopped" and run.can_restart_from_failed_tasks
    new = await client.restart_run(run_id)
    assert new.id != run_id and new.phase == "queued"
    with pytest.raises(errors.BadRequest, match="wrong run action"):
        await client.run_action(run_id, RunActionsRequest("dance"))


async def test_events_are_filtered_per_user(env: Env, tmp_path: Path) -> None:
    alice = await env.user("alice")
    bob = await env.user("bob")
    alice_run = await _create(env, tmp_path, alice)
    bob_run = await _create(env, tmp_path, bob)
    got: list[str] = []

    async def listen() -> None:
        async for event in bob[1].run_events():
            got.append(event.run_id)
            if event.run_id == bob_run:
                return

    task = asyncio.create_task(listen())

    async def cancel_both() -> bool:
        # Repeat the actions until the listener saw bob's event (subscription timing).
        if task.done():
            return True
        for rid, c in ((alice_run, alice[1]), (bob_run, bob[1])):
            run = await c.get_run(rid)
            if run.phase == "queued":
                await c.cancel_run(rid)
            else:
                await c.restart_run(rid, from_start=True)
        return task.done()

    await wait_for(cancel_both, 15)
    await task
    assert bob_run in got and alice_run not in got


async def test_logs_badges_and_listing(env: Env, tmp_path: Path) -> None:
    alice = await env.user("alice")
    run_id = await _create(env, tmp_path, alice)
    async with aiohttp.ClientSession() as s:
        headers = {"Authorization": f"token {alice[1]._token}"}
        async with s.get(f"{env.url}/api/v1alpha/logs", params={"runID": run_id, "taskID": "x"}, headers=headers) as r:
            assert r.status == 400 and "setup or step" in (await r.json())["message"]
        async with s.get(f"{env.url}/api/v1alpha/runs", headers=headers) as r:
            assert r.status == 400 and (await r.json())["message"] == "no groups specified"

        project = await alice[1].create_project(CreateProjectRequest("app", "user/alice"))
        async with s.get(f"{env.url}/api/v1alpha/badges/{project.id}", params={"branch": "master"}) as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("image/svg+xml")
            assert r.headers["Cache-Control"] == "no-cache"
            assert "unknown" in await r.text()

    async def listed() -> bool:
        rows = await alice[1].list_runs(f"/user/{alice[0].id}", phases=["queued"])
        return [r.id for r in rows] == [run_id]

    await wait_for(listed, 10)
    assert await alice[1].list_runs(f"/user/{alice[0].id}", phases=["running"]) == []

    # Several groups in one page (the web UI's home page), each one checked for the caller.
    bob = await env.user("bob")
    bob_run = await _create(env, tmp_path, bob)
    svc, auth = env.role.services, env.role.auth
    assert svc is not None and auth is not None
    as_alice = await auth.identify(extract_credentials("", alice[1]._token))
    as_admin = await auth.identify(extract_credentials("", ADMIN_TOKEN))
    mine = run_actions.RunsQuery(group=f"/user/{alice[0].id}", more_groups=(f"/project/{project.id}",))
    assert [r.id for r in await run_actions.list_runs(svc, as_alice, mine)] == [run_id]
    with pytest.raises(Forbidden):
        await run_actions.list_runs(svc, as_alice, attrs.evolve(mine, more_groups=(f"/user/{bob[0].id}",)))

    async def both() -> bool:
        both = attrs.evolve(mine, more_groups=(f"/user/{bob[0].id}",))
        return [r.id for r in await run_actions.list_runs(svc, as_admin, both)] == [bob_run, run_id]

    await wait_for(both, 10)
