"""The scheduler against a real runservice role (embedded storage): FIFO per run group, the per
group limit, concurrent schedulers, approvals, and the role's loop (spec §6.11, §3.8)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agola.config import parse_config
from agola.roleclients.runservice import RunserviceClient
from agola.services.role import RoleHost
from agola.services.runservice.role import RunserviceRole
from agola.services.scheduler.role import Scheduler, SchedulerRole
from agola.types.runservice import Container, RunConfigTask, RunCreateRequest, RunStep, Runtime
from tests.gateway.conftest import FAST
from tests.gateway.conftest import _bounded as bounded
from tests.support.services import INTERNAL_API_TOKEN, TOKEN_LINE, free_port
from tests.support.waiting import wait_for

A = "/project/p1/branch/master"
B = "/project/p1/branch/dev"


@pytest.fixture
async def rs(tmp_path: Path) -> AsyncIterator[tuple[RunserviceClient, str]]:
    port = free_port()
    config = parse_config(f"dataDir: {tmp_path}\n{TOKEN_LINE}runservice: {{web: {{listenAddress: '127.0.0.1:{port}'}}}}\n")
    host = RoleHost([RunserviceRole(config, options=FAST)], shutdown_timeout=1)
    await host.start()
    client = RunserviceClient(f"http://127.0.0.1:{port}", token=INTERNAL_API_TOKEN)
    try:
        yield client, f"http://127.0.0.1:{port}"
    finally:
        await client.close()
        await bounded("runservice", host.stop())


def _task(approval: bool = False) -> RunConfigTask:
    return RunConfigTask(id="t1", name="build", runtime=Runtime(containers=[Container(image="busybox")]),
                         steps=[RunStep(command="true")], needs_approval=approval)


async def _create(client: RunserviceClient, group: str, approval: bool = False) -> str:
    resp = await client.create_run(RunCreateRequest(name="ci", group=group, run_config_tasks={"t1": _task(approval)}))
    run_id = resp.run.id

    # Listings come from the runservice's readdb, which follows writes shortly after. Any phase:
    # a scheduler role, pushed by the run's queued event, may start it before this sees it queued.
    async def listed() -> bool:
        runs, _ = await client.list_runs(groups=[group], limit=40)
        return run_id in {r.id for r in runs}

    await wait_for(listed, 10)
    return run_id


async def _phase(client: RunserviceClient, run_id: str) -> str:
    return str((await client.get_run(run_id)).run.phase)


async def test_oldest_queued_run_per_group_starts(rs: tuple[RunserviceClient, str]) -> None:
    client, _ = rs
    a1, a2, b1 = await _create(client, A), await _create(client, A), await _create(client, B)
    sched = Scheduler(client)
    started = await sched.schedule()
    assert sorted(r.id for r in started) == sorted([a1, b1])
    assert [await _phase(client, r) for r in (a1, a2, b1)] == ["running", "queued", "running"]
    assert await sched.schedule() == []  # the group is busy

    # When a1 ends, a2 (the next oldest of its group) starts.
    await client.stop_run(a1)

    async def a1_finished() -> bool:
        return await _phase(client, a1) == "finished"

    await wait_for(a1_finished, 10)
    # The runs listing (the runservice's readdb) follows a1's end a moment after its phase: a
    # pass made before then still sees the group busy and starts nothing; a later one starts a2.
    started_now: list[str] = []

    async def a2_started() -> bool:
        started_now.extend(r.id for r in await sched.schedule())
        return bool(started_now)

    await wait_for(a2_started, 10)
    assert started_now == [a2]


async def test_runs_per_group_limit(rs: tuple[RunserviceClient, str]) -> None:
    client, _ = rs
    runs = [await _create(client, A) for _ in range(3)]
    await Scheduler(client, runs_per_group_limit=2).schedule()
    assert [await _phase(client, r) for r in runs] == ["running", "running", "queued"]


async def test_concurrent_schedulers_respect_the_limit(rs: tuple[RunserviceClient, str]) -> None:
    client, _ = rs
    runs = [await _create(client, A) for _ in range(3)]
    others = [RunserviceClient(client.base_url, token=INTERNAL_API_TOKEN) for _ in range(3)]
    try:
        await asyncio.gather(*(Scheduler(c).schedule() for c in others))
    finally:
        for c in others:
            await c.close()
    phases = [await _phase(client, r) for r in runs]
    assert phases.count("running") == 1 and phases[0] == "running"


async def test_approval_needs_a_recorded_approver(rs: tuple[RunserviceClient, str]) -> None:
    client, _ = rs
    run_id = await _create(client, A, approval=True)
    sched = Scheduler(client)
    await sched.run_once()

    async def waiting() -> bool:
        return (await client.get_run(run_id)).run.tasks["t1"].waiting_approval

    await wait_for(waiting, 10)
    assert await sched.approve() == []  # nobody approved yet
    run = (await client.get_run(run_id)).run
    await client.set_task_annotations(run_id, "t1", {"approvers": json.dumps(["user-1"])})
    assert await sched.approve() == [(run_id, "t1")]
    task = (await client.get_run(run_id)).run.tasks["t1"]
    assert task.approved and not task.waiting_approval
    assert run.tasks["t1"].annotations == {}


async def test_passes_look_for_approvals_at_most_once_per_approve_interval(rs: tuple[RunserviceClient, str]) -> None:
    """A look lists every running run: the passes woken by run events leave it to the periodic
    pass (the role's approve interval is its pass interval); with no interval, every pass looks."""
    client, _ = rs
    run_id = await _create(client, A, approval=True)
    sched = Scheduler(client, approve_interval=3600)
    looks: list[int] = []
    approve = sched.approve

    async def counted() -> list[tuple[str, str]]:
        looks.append(1)
        return await approve()

    sched.approve = counted  # type: ignore[method-assign]
    await sched.run_once()  # starts the run, and looks (the first pass does)

    async def waiting() -> bool:
        return (await client.get_run(run_id)).run.tasks["t1"].waiting_approval

    await wait_for(waiting, 10)
    await client.set_task_annotations(run_id, "t1", {"approvers": json.dumps(["user-1"])})
    await sched.run_once()  # a woken pass: no look
    assert len(looks) == 1 and not (await client.get_run(run_id)).run.tasks["t1"].approved
    sched.approve_interval = 0
    await sched.run_once()
    assert len(looks) == 2 and (await client.get_run(run_id)).run.tasks["t1"].approved


async def test_role_loop_starts_queued_runs(rs: tuple[RunserviceClient, str], tmp_path: Path) -> None:
    client, url = rs
    config = parse_config(f"{TOKEN_LINE}scheduler: {{runserviceURL: '{url}', runsPerGroupLimit: 1}}\n")
    config.validate({"scheduler"})
    role = SchedulerRole(config, interval=0.1)
    await role.start()
    try:
        run_id = await _create(client, B)

        async def running() -> bool:
            return await _phase(client, run_id) == "running"

        await wait_for(running, 10)
    finally:
        await role.stop()


async def test_role_starts_runs_when_pushed_not_only_periodically(rs: tuple[RunserviceClient, str]) -> None:
    """With a 30 s periodic interval, runs still start within seconds: the role follows the run
    events stream (a run queued, a run finished freeing its group's slot)."""
    client, url = rs
    config = parse_config(f"{TOKEN_LINE}scheduler: {{runserviceURL: '{url}', runsPerGroupLimit: 1}}\n")
    config.validate({"scheduler"})
    role = SchedulerRole(config, interval=30)
    await role.start()
    try:
        first = await _create(client, A)

        async def running(run_id: str) -> bool:
            return await _phase(client, run_id) == "running"

        await wait_for(lambda: running(first), 10)
        second = await _create(client, A)
        assert await _phase(client, second) == "queued"  # the group is busy
        await client.stop_run(first)  # its end frees the slot: the finished event wakes a pass
        await wait_for(lambda: running(second), 10)
    finally:
        stopping = asyncio.ensure_future(role.stop())
        done, _ = await asyncio.wait({stopping}, timeout=5)
        assert done, "the scheduler role did not stop"  # following the events stream must not hang stop()


async def test_role_starts_the_next_run_of_a_group_from_listings_and_events_alone(
        rs: tuple[RunserviceClient, str]) -> None:
    """Between a run's end and the start of the next queued run of its group, the role reads no
    run: the run events tell which runs are past queued, the listings at their revision the rest
    (each read was a request on the way to the next run's start)."""
    client, url = rs
    config = parse_config(f"{TOKEN_LINE}scheduler: {{runserviceURL: '{url}', runsPerGroupLimit: 1}}\n")
    config.validate({"scheduler"})
    role = SchedulerRole(config, interval=30)
    await role.start()
    assert role.client is not None
    reads: list[str] = []
    get_run = role.client.get_run

    async def counted_get_run(run_id: str, *args: Any, **kwargs: Any) -> Any:
        reads.append(run_id)
        return await get_run(run_id, *args, **kwargs)

    role.client.get_run = counted_get_run  # type: ignore[method-assign]
    try:
        first = await _create(client, A)
        await wait_for(lambda: _is(client, first, "running"), 10)
        second, third = await _create(client, A), await _create(client, A)
        await client.stop_run(first)
        await wait_for(lambda: _is(client, second, "running"), 10)
        assert await _phase(client, third) == "queued"  # the limit still holds
        await client.stop_run(second)
        await wait_for(lambda: _is(client, third, "running"), 10)
        assert reads == []
    finally:
        await role.stop()


def _listed_while_queued_are(calls: list[str]) -> bool:
    """Whether a listing of running runs started while one of queued runs was in flight (which of
    the two ends first does not matter)."""
    for i, call in enumerate(calls):
        if call == "start queued" and "end queued" in calls[i:]:
            if "start running" in calls[i:calls.index("end queued", i)]:
                return True
    return False


async def test_a_queued_run_of_a_recent_group_has_its_group_listed_with_the_queued_runs(
        rs: tuple[RunserviceClient, str]) -> None:
    """A pass woken by a queued run asks for the running runs of the groups where runs were
    started last while it lists the queued runs, not after (one listing less in a row)."""
    client, url = rs
    config = parse_config(f"{TOKEN_LINE}scheduler: {{runserviceURL: '{url}', runsPerGroupLimit: 1}}\n")
    config.validate({"scheduler"})
    role = SchedulerRole(config, interval=30)
    await role.start()
    assert role.client is not None
    calls: list[str] = []
    list_runs = role.client.list_runs_json

    async def recorded_list_runs(*args: Any, phases: list[str], **kwargs: Any) -> Any:
        calls.append(f"start {phases[0]}")
        try:
            return await list_runs(*args, phases=phases, **kwargs)
        finally:
            calls.append(f"end {phases[0]}")

    role.client.list_runs_json = recorded_list_runs  # type: ignore[method-assign, assignment]
    try:
        first = await _create(client, A)
        await wait_for(lambda: _is(client, first, "running"), 10)
        await client.stop_run(first)
        await wait_for(lambda: _is(client, first, "finished"), 10)
        calls.clear()  # (the pass woken by first's end may still be listing)
        second = await _create(client, A)
        await wait_for(lambda: _is(client, second, "running"), 10)
        assert _listed_while_queued_are(calls), calls
    finally:
        await role.stop()


async def _is(client: RunserviceClient, run_id: str, phase: str) -> bool:
    return await _phase(client, run_id) == phase


async def test_role_reconnects_to_the_events_stream_after_a_runservice_restart(tmp_path: Path) -> None:
    port = free_port()
    config = parse_config(f"dataDir: {tmp_path}\n{TOKEN_LINE}runservice: {{web: {{listenAddress: '127.0.0.1:{port}'}}}}\n"
                          f"scheduler: {{runserviceURL: 'http://127.0.0.1:{port}'}}\n")
    host = RoleHost([RunserviceRole(config, options=FAST)], shutdown_timeout=1)
    await host.start()
    role = SchedulerRole(config, interval=30, max_backoff=1)
    await role.start()
    client = RunserviceClient(f"http://127.0.0.1:{port}", token=INTERNAL_API_TOKEN)
    try:
        await bounded("runservice", host.stop())  # breaks the scheduler's events stream
        host = RoleHost([RunserviceRole(config, options=FAST)], shutdown_timeout=1)
        await host.start()
        run_id = await _create(client, A)

        async def running() -> bool:
            return await _phase(client, run_id) == "running"

        await wait_for(running, 10)
    finally:
        await role.stop()
        await client.close()
        await bounded("runservice", host.stop())
