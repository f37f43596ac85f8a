"""Task lifecycle: live logs, stop mid-step, timeout, cancellation, host driver refusals."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from agola.services.executor.drivers.base import Driver, Pod, PodSpec, Sink, discard
from agola.services.executor.drivers.host import HostDriver
from agola.services.executor.logs import LogFile, read_log, truncation_marker
from agola.services.executor.store import LocalArchiveStore
from agola.services.executor.taskrunner import TaskRunner
from agola.types.runservice import (
    Container,
    ExecutorTaskPhase,
    ExecutorTaskStatus,
    RunStep,
    SaveCacheStep,
    SaveContent,
    SaveToWorkspaceStep,
)
from tests.executor.helpers import EXECUTOR_ID, Task, phases, runner, setup_log, spec, step_log
from tests.support.waiting import wait_for


def live_log(runner_: TaskRunner, index: int) -> LogFile | None:
    """Step ``index``'s log while it is being written, if it is."""
    return runner_.logs.live(False, index) if runner_.logs is not None else None


async def follow_until(runner_: TaskRunner, index: int, needle: bytes) -> bytes:
    """Follow step ``index``'s live log until ``needle`` shows up."""
    log = await wait_for(lambda: live_log(runner_, index), timeout=30)
    seen = b""
    async for chunk in log.follow():
        seen += chunk
        if needle in seen:
            return seen
    return seen


async def test_stop_mid_step_kills_the_pod_and_marks_the_step_stopped(
    driver: Driver, data_dir: Path, store: LocalArchiveStore
) -> None:
    reports: list[dict] = []
    task = spec(
        "t-stop",
        RunStep(command="echo early"),
        RunStep(command="echo started; sleep 60; echo never"),
        RunStep(command="echo not-run"),
    )
    r = runner(task, driver, data_dir, store, on_status=lambda s: reports.append(s.to_json()))
    running = asyncio.create_task(r.run())
    seen = await asyncio.wait_for(follow_until(r, 1, b"started"), 30)
    assert b"started" in seen  # delivered live, while the step is still running
    r.stop()
    status = await asyncio.wait_for(running, 30)
    assert status.phase == ExecutorTaskPhase.STOPPED
    assert phases(status) == ["success", "stopped", "notstarted"]
    assert not status.timedout
    assert "never" not in step_log(data_dir, "t-stop", 1)
    assert "Task stopped." in step_log(data_dir, "t-stop", 1)
    assert reports[-1]["phase"] == "stopped" and reports[0]["phase"] == "running"
    assert await driver.list_pods(EXECUTOR_ID) == []


async def test_task_timeout_stops_the_task_and_says_so(driver: Driver, data_dir: Path, store: LocalArchiveStore) -> None:
    # Generous against a loaded machine: the timeout counts from the start, setup included.
    task = spec("t-timeout", RunStep(command="echo go; sleep 60"), RunStep(command="true"), task_timeout_interval=timedelta(seconds=4))
    status = await asyncio.wait_for(runner(task, driver, data_dir, store).run(), 30)
    assert status.phase == ExecutorTaskPhase.FAILED and status.timedout
    assert phases(status) == ["stopped", "notstarted"]
    log = step_log(data_dir, "t-timeout", 0)
    assert log.startswith("go") and "Task timed out after 4s" in log


async def test_timeout_during_setup(data_dir: Path, store: LocalArchiveStore, host_driver: HostDriver) -> None:
    class SlowDriver(HostDriver):
        async def create_pod(self, spec: PodSpec, out: Sink = discard) -> Pod:
            await asyncio.sleep(60)  # a pull that never ends
            raise AssertionError("the task timeout cancels the setup first")

    task = spec("t-slow", RunStep(command="true"), task_timeout_interval=timedelta(seconds=0.2))
    status = await asyncio.wait_for(runner(task, SlowDriver(host_driver.config), data_dir, store).run(), 10)
    assert status.phase == ExecutorTaskPhase.FAILED and status.timedout
    assert status.setup_step.phase == ExecutorTaskPhase.STOPPED and phases(status) == ["notstarted"]
    assert "Task timed out after 0.2s" in setup_log(data_dir, "t-slow")


async def test_stop_before_start_cancels(driver: Driver, data_dir: Path, store: LocalArchiveStore) -> None:
    r = runner(spec("t-cancel", RunStep(command="true")), driver, data_dir, store)
    r.stop()
    status = await r.run()
    assert status.phase == ExecutorTaskPhase.CANCELLED and phases(status) == ["notstarted"]


async def test_large_output_is_streamed_to_file_and_followers(driver: Driver, data_dir: Path, store: LocalArchiveStore) -> None:
    size = 20 * 1024 * 1024
    task = spec("t-big", RunStep(command=f"head -c {size} /dev/zero | tr '\\0' x", tty=False))
    r = runner(task, driver, data_dir, store)
    running = asyncio.create_task(r.run())
    log = await wait_for(lambda: live_log(r, 0), timeout=30)
    total = 0
    async for chunk in log.follow():
        total += len(chunk)
    status = await running
    assert phases(status) == ["success"]
    assert total == size == (data_dir / "tasks/t-big/logs/steps/0.log").stat().st_size
    # A finished log is read back (for the runservice fetcher) with the same content.
    assert sum([len(c) async for c in read_log(data_dir / "tasks/t-big", None, step=0)]) == size


async def test_a_log_over_its_size_limit_is_cut_with_a_marker_and_the_step_goes_on(
    data_dir: Path, store: LocalArchiveStore, host_driver: HostDriver,
) -> None:
    task = spec("t-limit", RunStep(command="head -c 5000 /dev/zero | tr '\\0' x; echo; echo after > done.txt", tty=False))
    status = await runner(task, host_driver, data_dir, store, max_log_size=2048).run()
    assert phases(status) == ["success"]  # the step ran to its end, its output dropped past the limit
    assert step_log(data_dir, "t-limit", 0) == "x" * 2048 + truncation_marker(2048).decode()
    assert "log truncated: it reached 2048 bytes (executor.maxLogSize)" in truncation_marker(2048).decode()


async def test_an_archive_over_its_size_limit_fails_its_step_saying_so(
    data_dir: Path, store: LocalArchiveStore, host_driver: HostDriver,
) -> None:
    out = [SaveContent(source_dir="out", paths=["**"])]
    task = spec("t-arch", RunStep(command="mkdir out; head -c 3000 /dev/zero > out/big; echo hi > out/small"),
                SaveCacheStep(key="k", contents=out), SaveToWorkspaceStep(contents=out))
    status = await runner(task, host_driver, data_dir, store, max_archive_size=2048).run()
    assert phases(status) == ["success", "failed", "notstarted"]
    assert ("Error: the cache archive is over its size limit of 2048 bytes (executor.maxArchiveSize):"
            " save fewer files") in step_log(data_dir, "t-arch", 1)
    assert not await store.cache_exists("k")
    small = spec("t-arch2", RunStep(command="mkdir out; echo hi > out/small"), SaveToWorkspaceStep(contents=out))
    assert phases(await runner(small, host_driver, data_dir, store, max_archive_size=2048).run()) == ["success"] * 2


async def test_log_follow_wakes_on_each_write(tmp_path: Path) -> None:
    log = LogFile(tmp_path / "x.log")
    got: list[bytes] = []

    async def follower() -> None:
        async for chunk in log.follow():
            got.append(chunk)

    task = asyncio.create_task(follower())
    for i in range(3):
        await log.write(f"line{i}\n".encode())
        def lines_are(n: int = i + 1) -> bool:
            return b"".join(got).count(b"\n") == n

        await wait_for(lines_are, timeout=5)
    log.close()
    await asyncio.wait_for(task, 5)
    assert b"".join(got) == b"line0\nline1\nline2\n"


@pytest.mark.parametrize(
    "task, message",
    [
        (spec("h1", RunStep(command="true"), containers=[Container("img"), Container("sidecar")]),
         "service containers are not supported"),
        (spec("h2", RunStep(command="true"), containers=[Container("img", privileged=True)]), "privileged"),
        (spec("h3", RunStep(command="true"), image="img", user="nobody"), "another user"),
    ],
)
async def test_host_driver_refuses_what_it_cannot_honour(
    host_driver: HostDriver, data_dir: Path, store: LocalArchiveStore, task: Task, message: str
) -> None:
    status: ExecutorTaskStatus = await runner(task, host_driver, data_dir, store).run()
    assert status.setup_step.phase == ExecutorTaskPhase.FAILED and status.phase == ExecutorTaskPhase.FAILED
    assert message in setup_log(data_dir, task.task_id)
    assert phases(status) == ["notstarted"]
