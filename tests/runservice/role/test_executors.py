"""Executor-facing behaviour: limits, lost executors, polling, caches, logs relayed live."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import attrs
import pytest

from agola.errors import BadRequest, NotExist
from agola.types.runservice import RunPhase, RunResult, RunTaskStatus
from tests.runservice.role.conftest import FAST, Instance, create_req, rct
from tests.runservice.role.test_runs_e2e import wait_run
from tests.support.waiting import wait_for


async def test_executor_limit_is_never_exceeded(rs: Instance, make_executor: Callable[..., Any]) -> None:
    ex = await make_executor(rs.url, limit=2)
    run = (await rs.c.create_run(create_req(*(rct(f"t{i}") for i in range(6))))).run
    await rs.c.start_run(run.id)
    done = 0
    while done < 6:
        await ex.wait_tasks(done + 1)
        # Whatever the timing, never more unfinished tasks on the executor than its limit.
        unfinished = [t for t in ex.pushed if t["id"] not in ex.finished_logs_tasks()]
        assert len(unfinished) <= 2
        ex.active = len(unfinished)
        await ex.run_task(unfinished[0]["id"])
        done += 1
    final = await wait_run(rs, run.id, lambda r: r.phase is RunPhase.FINISHED)
    assert final.result is RunResult.SUCCESS


async def test_deleted_executor_fails_its_tasks(rs: Instance, make_executor: Callable[..., Any]) -> None:
    ex = await make_executor(rs.url)
    run = (await rs.c.create_run(create_req(rct("a", steps=2)))).run
    await rs.c.start_run(run.id)
    await ex.wait_tasks(1)
    await ex.report("a", "running", steps=["running", "notstarted"])
    await wait_run(rs, run.id, lambda r: r.tasks["a"].status is RunTaskStatus.RUNNING)
    await ex.stop_heartbeats()
    await rs.c.delete_executor(ex.id)
    final = await wait_run(rs, run.id, lambda r: r.phase is RunPhase.FINISHED)
    task = final.tasks["a"]
    assert final.result is RunResult.FAILED and task.status is RunTaskStatus.FAILED
    assert task.end_time is not None
    assert task.steps[0].phase.value == "failed" and task.steps[0].end_time is not None
    assert task.steps[1].phase.value == "notstarted"
    with pytest.raises(NotExist):
        await rs.c.delete_executor(ex.id)


async def test_executor_with_expired_heartbeat_fails_its_tasks(
    make_instance: Callable[..., Any], make_executor: Callable[..., Any]
) -> None:
    rs = await make_instance(options=attrs.evolve(FAST, heartbeat_expiry=timedelta(seconds=1)))
    ex = await make_executor(rs.url, heartbeat_every=0.2)
    run = (await rs.c.create_run(create_req(rct("a")))).run
    await rs.c.start_run(run.id)
    await ex.wait_tasks(1)
    await ex.report("a", "running", steps=["running"])
    await ex.stop_heartbeats()
    final = await wait_run(rs, run.id, lambda r: r.phase is RunPhase.FINISHED)
    assert final.tasks["a"].status is RunTaskStatus.FAILED and final.tasks["a"].end_time is not None
    # A late report from the lost executor does not resurrect the task.
    try:
        await ex.report("a", "success")  # ignored, or refused once the executor task is gone
    except BadRequest:
        pass
    assert (await rs.c.get_run(run.id)).run.tasks["a"].status is RunTaskStatus.FAILED


async def test_executor_polls_tasks_with_spec_data(rs: Instance, make_executor: Callable[..., Any]) -> None:
    ex = await make_executor(rs.url)
    run = (await rs.c.create_run(create_req(rct("a"), static_environment={"CI": "true"},
                                            environment={"X": "1"}))).run
    await rs.c.start_run(run.id)
    await ex.wait_tasks(1)
    ex.pushed.clear()
    ex.tasks.clear()
    await ex.poll()
    [task] = ex.pushed
    assert task["spec"]["environment"] == {"CI": "true", "X": "1"}
    assert task["spec"]["cache_prefix"] == "p1"
    # The executor decodes what we send with the wire types.
    from agola.types.runservice import ExecutorTask, RunStep

    _, spec = ExecutorTask.from_json_with_data(task)
    assert spec is not None and spec.containers[0].image == "busybox"
    assert isinstance(spec.steps[0], RunStep) and spec.steps[0].command == "echo 0"
    assert ex.client is not None
    et, data = await ex.client.executor_task(ex.id, "a")
    assert et.spec.run_id == run.id and data is not None and data.task_name == "a"
    with pytest.raises(NotExist):
        await ex.client.executor_task("other-executor", "a")
    # Once started, a task is listed without spec data (an executor only starts not started ones).
    await ex.report("a", "running")
    [(listed, listed_data)] = await ex.client.executor_tasks(ex.id)
    assert listed.id == "a" and listed.status.phase.value == "running" and listed_data is None


async def test_caches_exact_and_prefix(rs: Instance) -> None:
    c = rs.c
    assert not await c.cache_exists("p1/cache-1")
    assert await c.put_cache("p1/cache-1", b"one")
    assert not await c.put_cache("p1/cache-1", b"changed")  # first upload stays (304)
    await asyncio.sleep(0.01)
    assert await c.put_cache("p1/cache-2", b"two")
    assert b"".join([x async for x in c.get_cache("p1/cache-1")]) == b"one"
    assert await c.cache_exists("p1/cache-", prefix=True)
    # The newest object with the prefix wins.
    assert b"".join([x async for x in c.get_cache("p1/cache-", prefix=True)]) == b"two"
    with pytest.raises(NotExist):
        _ = [x async for x in c.get_cache("p1/other", prefix=True)]
    with pytest.raises(BadRequest, match="too long"):
        await c.put_cache("k" * 201, b"x")


async def test_log_follow_sees_new_lines_promptly(rs: Instance, make_executor: Callable[..., Any]) -> None:
    ex = await make_executor(rs.url)
    run = (await rs.c.create_run(create_req(rct("a")))).run
    await rs.c.start_run(run.id)
    await ex.wait_tasks(1)
    await ex.report("a", "running", steps=["running"])
    ex.logs[("a", "0")] = bytearray(b"first\n")
    received: list[tuple[float, bytes]] = []

    async def follow() -> None:
        async for chunk in rs.c.get_log(run.id, "a", step=0, follow=True):
            received.append((time.monotonic(), chunk))

    follower = asyncio.create_task(follow())
    await wait_for(lambda: b"first\n" in b"".join(c for _, c in received), 5)
    written = time.monotonic()
    ex.logs[("a", "0")] += b"second\n"
    await wait_for(lambda: b"second\n" in b"".join(c for _, c in received), 5)
    arrival = next(t for t, c in received if b"second" in c)
    assert arrival - written < 1.0  # relayed as it comes, not at the end (target: 100 ms)
    ex.finished_logs.add(("a", "0"))
    await asyncio.wait_for(follower, 5)
    assert b"".join(c for _, c in received) == b"first\nsecond\n"

    with pytest.raises(BadRequest, match="exactly one"):
        _ = [x async for x in rs.c.get_log(run.id, "a")]
    with pytest.raises(NotExist, match="no such step"):
        _ = [x async for x in rs.c.get_log(run.id, "a", step=5)]
    with pytest.raises(BadRequest, match="not yet archived"):
        await rs.c.delete_log(run.id, "a", step=0)
    await ex.run_task("a")
    await wait_run(rs, run.id, lambda r: r.tasks["a"].steps[0].log_phase.value == "finished")
    await rs.c.delete_log(run.id, "a", step=0)
    with pytest.raises(NotExist):
        _ = [x async for x in rs.c.get_log(run.id, "a", step=0)]


async def test_run_events_stream(rs: Instance, make_executor: Callable[..., Any]) -> None:
    events: list[Any] = []
    revisions: list[int] = []
    connected = asyncio.Event()

    async def listen() -> None:
        async for revision, ev in rs.c.run_events_at(on_connected=connected.set):
            events.append(ev)
            revisions.append(revision)

    listener = asyncio.create_task(listen())
    await wait_for(connected.is_set, 10)  # the stream is "from now": follow it before the run starts
    ex = await make_executor(rs.url)
    run = (await rs.c.create_run(create_req(rct("a")))).run
    # Each event carries its revision: a listing at that revision shows the run it announced
    # (the scheduler starts a queued run on the event, not on the readdb's next look).
    await wait_for(lambda: any(e.run_id == run.id for e in events), 10)
    assert revisions[0] > 0
    queued, _ = await rs.c.list_runs(phases=["queued"], min_revision=revisions[0])
    assert [r.id for r in queued] == [run.id]
    await rs.c.start_run(run.id)
    await ex.wait_tasks(1)
    await ex.run_task("a")
    await wait_for(lambda: any(e.phase is RunPhase.FINISHED for e in events), 10)
    listener.cancel()
    seen = [(e.phase.value, e.result.value) for e in events if e.run_id == run.id]
    assert seen == [("queued", "unknown"), ("running", "unknown"), ("running", "success"), ("finished", "success")]


async def test_executor_uploads_logs_and_archives(rs: Instance, make_executor: Callable[..., Any]) -> None:
    ex = await make_executor(rs.url)
    run = (await rs.c.create_run(create_req(rct("a", workspace=True)))).run
    await rs.c.start_run(run.id)
    await ex.wait_tasks(1)
    assert ex.client is not None

    async def body() -> Any:
        for part in (b"uploaded ", b"log\n"):
            yield part

    # Uploaded (streamed) by the executor itself: the runservice does not fetch them again.
    await ex.client.upload_log("a", body(), step=0)
    await ex.client.upload_log("a", b"setup\n", setup=True)
    await ex.client.upload_archive("a", 1, b"tar bytes")
    with pytest.raises(NotExist):
        await ex.client.upload_log("unknown-task", b"x", step=0)
    await ex.report("a", "running", steps=["running", "notstarted"])
    await ex.report("a", "success", steps=["success", "success"])
    await wait_run(rs, run.id, lambda r: r.archived)
    assert b"".join([x async for x in rs.c.get_log(run.id, "a", step=0)]) == b"uploaded log\n"
    assert b"".join([x async for x in rs.c.get_archive("a", 1)]) == b"tar bytes"
