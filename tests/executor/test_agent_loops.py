"""The agent's periodic jobs on ``agola.util.loops.LoopRunner``: a pass of each at start, the poll
woken when a slot frees up, a failed pass logged with the job's name, a prompt stop. The runservice
is a fake client: no server, no driver work (host driver, no task)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agola.roleclients.runservice import RunserviceClient
from agola.services.executor.agent import AgentOptions, AgentSettings, ExecutorAgent
from agola.services.executor.drivers.host import HostDriver, HostDriverConfig
from agola.services.executor.store import LocalArchiveStore
from agola.types.runservice import Executor, ExecutorTask, ExecutorTaskSpecData
from tests.support.logs import logged
from tests.support.waiting import wait_for

LOOPS = ("executor-heartbeat", "executor-poll", "executor-status", "executor-orphans", "executor-taskdata")
# Long intervals: every pass after the first one is one a test asked for.
SLOW = AgentOptions(heartbeat_interval=3600, poll_interval=3600, status_interval=3600, orphans_interval=3600,
                    data_clean_interval=3600, stop_grace=1.0)


class FakeRunservice(RunserviceClient):
    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:1")
        self.heartbeats: list[Executor] = []
        self.polls = 0
        self.fail_heartbeats = False

    async def executor_heartbeat(self, executor: Executor) -> Executor:
        if self.fail_heartbeats:
            raise ConnectionError("runservice unreachable")
        self.heartbeats.append(executor)
        return executor

    async def executor_tasks(self, executor_id: str) -> list[tuple[ExecutorTask, ExecutorTaskSpecData | None]]:
        self.polls += 1
        return []


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[tuple[ExecutorAgent, FakeRunservice]]:
    client = FakeRunservice()
    agent = ExecutorAgent(
        AgentSettings(executor_id="ex1", listen_url="http://127.0.0.1:2", data_dir=tmp_path / "data"),
        client=client,
        driver=HostDriver(HostDriverConfig(base_dir=tmp_path / "pods")),
        store=LocalArchiveStore(tmp_path / "store"),
        options=SLOW,
    )
    try:
        yield agent, client
    finally:
        await agent.stop()
        await client.close()


async def test_every_job_has_a_named_runner_at_its_interval(agent: tuple[ExecutorAgent, FakeRunservice]) -> None:
    executor, _ = agent
    assert tuple(executor.runners) == LOOPS
    assert all(r.interval == 3600 for r in executor.runners.values())


async def test_each_job_runs_at_start_and_the_poll_when_woken(agent: tuple[ExecutorAgent, FakeRunservice]) -> None:
    executor, client = agent
    await executor.start()
    await wait_for(lambda: client.heartbeats and client.polls == 1, 5, message="first heartbeat and poll")
    assert client.heartbeats[0].id == "ex1" and client.heartbeats[0].listen_url == "http://127.0.0.1:2"
    executor.wake_poll()
    await wait_for(lambda: client.polls == 2, 5, message="a poll when woken")
    assert len(client.heartbeats) == 1  # the others wait for their interval


async def test_a_pass_can_be_run_directly(agent: tuple[ExecutorAgent, FakeRunservice]) -> None:
    executor, client = agent
    assert await executor.runners["executor-heartbeat"].run_once()
    assert [e.id for e in client.heartbeats] == ["ex1"]


async def test_a_failed_pass_is_logged_with_its_job_and_retried(
        agent: tuple[ExecutorAgent, FakeRunservice], caplog: pytest.LogCaptureFixture) -> None:
    executor, client = agent
    client.fail_heartbeats = True
    await executor.start()
    await wait_for(lambda: logged(caplog, "loop pass failed", loop="executor-heartbeat"), 5,
                   message="the failed heartbeat logged")
    client.fail_heartbeats = False
    # Retried after a backoff (capped at the interval), not an hour later.
    await wait_for(lambda: client.heartbeats, 5, message="the heartbeat retried")


async def test_stop_ends_every_loop(agent: tuple[ExecutorAgent, FakeRunservice]) -> None:
    executor, client = agent
    await executor.start()
    await wait_for(lambda: client.polls == 1, 5)
    await executor.stop()
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("loop-executor-")]
    executor.wake_poll()  # a task ending during the stop wakes a stopped runner: harmless


class SlowRemovalDriver(HostDriver):
    """A host driver whose pod removal waits until the test lets it go."""

    def __init__(self, base_dir: Path) -> None:
        super().__init__(HostDriverConfig(base_dir=base_dir))
        self.removal_allowed = asyncio.Event()

    async def remove_pod(self, pod_id: str) -> None:
        await self.removal_allowed.wait()
        await super().remove_pod(pod_id)


class RecordingRunservice(FakeRunservice):
    """Lists the tasks assigned (so polls keep them running), records the final reports."""

    def __init__(self) -> None:
        super().__init__()
        self.final: set[str] = set()
        self.assigned: list[tuple[ExecutorTask, ExecutorTaskSpecData | None]] = []
        self.calls: list[str] = []  # "final <task id>" and "heartbeat <active tasks>", in order
        self.final_gate = asyncio.Event()
        self.final_gate.set()

    async def executor_tasks(self, executor_id: str) -> list[tuple[ExecutorTask, ExecutorTaskSpecData | None]]:
        self.polls += 1
        return list(self.assigned)

    async def executor_heartbeat(self, executor: Executor) -> Executor:
        self.calls.append(f"heartbeat {executor.active_tasks}")
        return await super().executor_heartbeat(executor)

    async def update_executor_task_status(self, executor_id: str, et: ExecutorTask) -> None:
        if et.status.phase.is_finished:
            self.calls.append(f"final {et.id}")
            await self.final_gate.wait()  # a runservice still writing the run's end
            self.final.add(et.id)


async def test_a_slot_frees_when_the_task_ends_not_when_its_pod_is_removed(tmp_path: Path) -> None:
    """Limit 1: task b starts while a's pod is still being removed, and the heartbeat says at once
    (not at its interval) that the executor has room again, so the runservice sends b now."""
    from agola.types.runservice import Container, ExecutorTaskSpec, RunStep

    client = RecordingRunservice()
    driver = SlowRemovalDriver(tmp_path / "pods")
    agent = ExecutorAgent(
        AgentSettings(executor_id="ex1", listen_url="http://127.0.0.1:2", data_dir=tmp_path / "data",
                      active_tasks_limit=1),
        client=client, driver=driver, store=LocalArchiveStore(tmp_path / "store"), options=SLOW,
    )
    data = ExecutorTaskSpecData(containers=[Container(image="any")], steps=[RunStep(command="echo hi")])

    def task(task_id: str) -> ExecutorTask:
        et = ExecutorTask(id=task_id, spec=ExecutorTaskSpec(executor_id="ex1", run_id="r1"))
        client.assigned.append((et, None))  # listed without data: a poll does not start it
        return et

    try:
        await agent.start()
        await wait_for(lambda: client.heartbeats, 30, message="first heartbeat")
        assert agent.receive(task("a"), data) == "started"
        assert agent.receive(task("b"), data) == "busy"
        polls = client.polls
        await wait_for(lambda: "a" in client.final, 30, message="a's final status")
        # b was refused for want of a slot: the freed slot also polls (b waits in the listing).
        await wait_for(lambda: client.polls > polls, 30, message="a poll when the slot freed")
        # Generous timeouts (conditions, not sleeps): a run at load 15 once missed 5-10 s; the
        # heartbeat interval is an hour, so only the immediate heartbeat can satisfy this.
        await wait_for(lambda: client.heartbeats[-1].active_tasks == 0, 30, message="a heartbeat with a free slot")
        assert agent.tasks["a"].running  # its pod is still being removed
        assert agent.receive(task("b"), data) == "started"
    finally:
        driver.removal_allowed.set()
        await agent.stop()
        await client.close()


async def test_the_heartbeat_of_a_freed_slot_follows_the_final_report(tmp_path: Path) -> None:
    """The runservice writes the run's end on the final report: the heartbeat saying the slot is
    free comes right after it, not alongside it (where its writes delayed the run's end)."""
    from agola.types.runservice import Container, ExecutorTaskSpec, RunStep

    client = RecordingRunservice()
    agent = ExecutorAgent(
        AgentSettings(executor_id="ex1", listen_url="http://127.0.0.1:2", data_dir=tmp_path / "data"),
        client=client, driver=HostDriver(HostDriverConfig(base_dir=tmp_path / "pods")),
        store=LocalArchiveStore(tmp_path / "store"), options=SLOW,
    )
    data = ExecutorTaskSpecData(containers=[Container(image="any")], steps=[RunStep(command="echo hi")])
    try:
        await agent.start()
        await wait_for(lambda: client.heartbeats, 30, message="first heartbeat")
        et = ExecutorTask(id="a", spec=ExecutorTaskSpec(executor_id="ex1", run_id="r1"))
        client.assigned.append((et, None))
        client.final_gate.clear()
        assert agent.receive(et, data) == "started"
        await wait_for(lambda: "final a" in client.calls, 30, message="the final report sent")
        job = agent.tasks["a"].job
        await wait_for(lambda: job is not None and job.done(), 30, message="the task's job over (pod removed)")
        for _ in range(50):  # the agent's other tasks get their turns (no wall time involved)
            await asyncio.sleep(0)
        assert "heartbeat 0" not in client.calls[1:]  # none while the report is being stored
        client.final_gate.set()
        await wait_for(lambda: "heartbeat 0" in client.calls[1:], 30, message="the heartbeat of the freed slot")
        # (The final status may go twice: once more as the task's job ended meanwhile.)
        assert client.calls[1:-1] in (["final a"], ["final a", "final a"]) and client.calls[-1] == "heartbeat 0"
    finally:
        await agent.stop()
        await client.close()


async def test_a_freed_slot_polls_only_when_a_task_was_refused_for_want_of_one(tmp_path: Path) -> None:
    """The runservice pushes the next task when the heartbeat says a slot is free: without a task
    refused meanwhile, a freed slot costs a heartbeat, not a listing of every task."""
    from agola.types.runservice import Container, ExecutorTaskSpec, RunStep

    client = RecordingRunservice()
    agent = ExecutorAgent(
        AgentSettings(executor_id="ex1", listen_url="http://127.0.0.1:2", data_dir=tmp_path / "data",
                      active_tasks_limit=1),
        client=client, driver=HostDriver(HostDriverConfig(base_dir=tmp_path / "pods")),
        store=LocalArchiveStore(tmp_path / "store"), options=SLOW,
    )
    data = ExecutorTaskSpecData(containers=[Container(image="any")], steps=[RunStep(command="true")])
    try:
        await agent.start()
        await wait_for(lambda: client.heartbeats and client.polls == 1, 30, message="first heartbeat and poll")
        et = ExecutorTask(id="a", spec=ExecutorTaskSpec(executor_id="ex1", run_id="r1"))
        assert agent.receive(et, data) == "started"
        await wait_for(lambda: "a" in client.final and client.heartbeats[-1].active_tasks == 0, 30,
                       message="a's final status and the heartbeat with a free slot")
        await wait_for(lambda: "a" not in agent.tasks, 30, message="a done and forgotten")
        assert client.polls == 1  # the heartbeat woke the runservice; no listing was needed
    finally:
        await agent.stop()
        await client.close()
