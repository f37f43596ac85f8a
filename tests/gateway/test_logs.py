"""Logs through the gateway: followed live from the executor while the step runs, and read from
the runservice's archive afterwards; another user is refused. The executor is the runservice
tests' scripted executor (it speaks the executor protocol and serves logs from memory)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import aiohttp
import pytest

from agola.client import errors
from agola.client.types import UserCreateRunRequest
from agola.services.scheduler.role import Scheduler
from tests.gateway.conftest import Env, make_repo, push
from tests.runservice.role.conftest import ScriptedExecutor
from tests.support.stepquery import LOG_QUERIES, Query, check_server
from tests.support.waiting import wait_for

PIPELINE = """\
runs:
  - name: ci
    tasks:
      - name: build
        runtime: {containers: [{image: busybox}]}
        steps: [{run: "echo hello"}]
"""


async def test_follow_a_running_step_then_read_the_archive(env: Env, tmp_path: Path) -> None:
    (user, client), (_, as_bob) = await env.user("alice"), await env.user("bob")
    repo_uuid = str(uuid.uuid4())
    sha = await make_repo(tmp_path / "r", {".agola/config.yml": PIPELINE})
    await push(tmp_path / "r", f"{env.url}/repos/{user.id}/{repo_uuid}.git", "refs/heads/master", client._token)
    (run_id,) = (await client.user_create_run(UserCreateRunRequest(
        repo_uuid=repo_uuid, repo_path=f"{user.id}/{repo_uuid}", commit_sha=sha, branch="master"))).run_ids

    executor = ScriptedExecutor(f"exec-{uuid.uuid4().hex[:8]}")
    await executor.start(env.rs_url, heartbeat_every=0.3)
    try:
        scheduler = Scheduler(env.rs)

        async def started() -> bool:
            await scheduler.run_once()
            return (await client.get_run(run_id)).phase == "running"

        await wait_for(started, 10)
        (pushed,) = await executor.wait_tasks(1, timeout=15)
        task_id = pushed["id"]
        executor.logs[(task_id, "setup")] = bytearray(b"setup done\n")
        executor.finished_logs.add((task_id, "setup"))
        executor.logs[(task_id, "0")] = bytearray(b"line 1\n")
        await executor.report(task_id, "running", steps=["running"])

        got = bytearray()

        async def follow() -> None:
            async for chunk in client.stream_log(run_id, task_id, step=0, follow=True):
                got.extend(chunk)

        follower = asyncio.create_task(follow())
        await wait_for(lambda: b"line 1\n" in got, 10)
        executor.logs[(task_id, "0")].extend(b"line 2\n")
        executor.finished_logs.add((task_id, "0"))
        await asyncio.wait_for(follower, 10)
        assert bytes(got) == b"line 1\nline 2\n"
        assert await client.get_log(run_id, task_id, setup=True) == b"setup done\n"
        with pytest.raises(errors.Forbidden):
            await as_bob.get_log(run_id, task_id, step=0)

        # The step ends; once the runservice has fetched the log it serves it from its archive.
        await executor.report(task_id, "success", steps=["success"])

        async def archived() -> bool:
            task = await client.get_task(run_id, task_id)
            return bool(task.steps) and task.steps[0].log_archived

        await wait_for(archived, 15)
        assert await client.get_log(run_id, task_id, step=0) == b"line 1\nline 2\n"
        with pytest.raises(errors.Forbidden):
            await as_bob.delete_log(run_id, task_id, step=0)
    finally:
        await executor.stop()


async def test_step_queries(env: Env) -> None:
    _, client = await env.user("carol")
    async with aiohttp.ClientSession(headers={"Authorization": f"token {client._token}"}) as http:

        async def get(query: Query) -> aiohttp.ClientResponse:
            params = {"runID": "no-run", "taskID": "no-task", **query}
            return await http.get(f"{env.url}/api/v1alpha/logs", params=params)

        await check_server(get, LOG_QUERIES)
