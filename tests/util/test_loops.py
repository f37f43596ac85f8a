"""The loop runner's contract: wake, interval, backoff, overrun, cancellation, the mutex."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from agola.storage.coord.base import Coordination
from agola.storage.coord.embedded import EmbeddedCoordination
from agola.util.loops import LoopRunner
from tests.support.logs import logged
from tests.support.waiting import wait_for


class Counting:
    """A job that counts its passes, records when they start, and fails its first ``fail`` ones."""

    name = "counting"

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.starts: list[float] = []

    @property
    def passes(self) -> int:
        return len(self.starts)

    async def run_once(self) -> None:
        self.starts.append(time.monotonic())
        if self.passes <= self.fail:
            raise RuntimeError(f"pass {self.passes} fails")


def failures(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return logged(caplog, "loop pass failed")


@pytest.fixture
async def started() -> AsyncIterator[Callable[[LoopRunner], LoopRunner]]:
    runners: list[LoopRunner] = []

    def start(runner: LoopRunner) -> LoopRunner:
        runners.append(runner)
        runner.start()
        return runner

    yield start
    for runner in runners:
        async with asyncio.timeout(5):
            await runner.stop()


async def test_a_pass_runs_at_start_and_when_woken(started: Callable[[LoopRunner], LoopRunner]) -> None:
    job = Counting()
    runner = started(LoopRunner(job, interval=3600))
    await wait_for(lambda: job.passes == 1, 5, message="first pass at start")
    runner.wake()
    await wait_for(lambda: job.passes == 2, 5, message="a pass when woken")


async def test_passes_repeat_every_interval(started: Callable[[LoopRunner], LoopRunner]) -> None:
    job = Counting()
    started(LoopRunner(job, interval=0.02))
    await wait_for(lambda: job.passes >= 4, 5, message="periodic passes")


async def test_a_woken_pass_gets_one_follow_up(started: Callable[[LoopRunner], LoopRunner]) -> None:
    job = Counting()
    runner = started(LoopRunner(job, interval=3600, follow_up=0.02))
    await wait_for(lambda: job.passes == 2, 5, message="the start pass and its follow-up")
    runner.wake()
    await wait_for(lambda: job.passes == 4, 5, message="the woken pass and its follow-up")


async def test_errors_back_off_exponentially_then_the_loop_recovers(
    started: Callable[[LoopRunner], LoopRunner], caplog: pytest.LogCaptureFixture
) -> None:
    job = Counting(fail=3)
    started(LoopRunner(job, interval=0.01, min_backoff=0.05, max_backoff=1.0))
    await wait_for(lambda: job.passes >= 6, 10, message="passes go on after the failures")
    assert len(failures(caplog)) == 3
    assert len(logged(caplog, "loop pass failed", loop="counting")) == 3
    gaps = [b - a for a, b in zip(job.starts, job.starts[1:])]
    for i in range(3):  # 0.05, 0.1, 0.2 (jitter ±20 %), whatever the 0.01 interval
        assert gaps[i] >= 0.05 * 2**i * 0.8, gaps


async def test_a_wake_does_not_cut_a_backoff_short(
    started: Callable[[LoopRunner], LoopRunner], caplog: pytest.LogCaptureFixture
) -> None:
    job = Counting(fail=1)
    runner = started(LoopRunner(job, interval=3600, min_backoff=0.3, max_backoff=0.3))
    await wait_for(lambda: failures(caplog), 5, message="first pass failed")
    runner.wake()
    await wait_for(lambda: job.passes == 2, 5, message="retried after the backoff")
    assert job.starts[1] - job.starts[0] >= 0.3 * 0.8


async def test_a_pass_longer_than_its_interval_logs_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    class Slow:
        name = "slow"

        async def run_once(self) -> None:
            await asyncio.sleep(0.05)

    await LoopRunner(Slow(), interval=0.01).run(loops=1)
    assert len(logged(caplog, "loop pass overran its interval", loop="slow")) == 1
    caplog.clear()
    await LoopRunner(Slow(), interval=10).run(loops=1)
    assert not logged(caplog, "loop pass overran its interval")


async def test_run_with_loops_runs_exactly_that_many_passes() -> None:
    job = Counting(fail=1)
    await LoopRunner(job, interval=0.01, min_backoff=0.01).run(loops=3)
    assert job.passes == 3


async def _cancel_during_a_pass(job: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Start a loop of ``job``, cancel it once a pass is in ``job``: the loop must end cancelled."""
    entered = asyncio.Event()

    class InPass:
        name = "inpass"

        async def run_once(self) -> None:
            await job(entered)

    task = asyncio.create_task(LoopRunner(InPass(), interval=0.001).run())
    async with asyncio.timeout(5):
        await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(5):
            await task


async def test_cancellation_stops_a_pass_at_once() -> None:
    async def blocked(entered: asyncio.Event) -> None:
        entered.set()
        await asyncio.Event().wait()

    await _cancel_during_a_pass(blocked)


async def test_a_cancellation_swallowed_by_the_job_still_stops_the_loop() -> None:
    async def swallower(entered: asyncio.Event) -> None:
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            pass  # a misbehaving library

    await _cancel_during_a_pass(swallower)


async def test_a_cancellation_racing_a_wake_is_never_swallowed() -> None:
    for _ in range(50):
        job = Counting()
        runner = LoopRunner(job, interval=0.001)
        task = asyncio.create_task(runner.run())
        await asyncio.sleep(0)
        runner.wake()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            async with asyncio.timeout(5):
                await task


async def test_stop_ends_the_loop_and_is_idempotent() -> None:
    job = Counting()
    runner = LoopRunner(job, interval=0.01)
    task = runner.start()
    await wait_for(lambda: job.passes >= 1, 5)
    async with asyncio.timeout(5):
        await runner.stop()
        await runner.stop()
    assert task.done() and task.cancelled()


# --- the mutex: several instances on one coordination -----------------------------------------


@pytest.fixture(params=["embedded", "etcd"])
async def two_coords(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Coordination, Coordination]]:
    prefix = f"loops-{uuid.uuid4().hex[:10]}/"
    if request.param == "embedded":
        a: Coordination = await EmbeddedCoordination.open(tmp_path / "coord", prefix)
        b: Coordination = await EmbeddedCoordination.open(tmp_path / "coord", prefix)
    else:
        from agola.storage.coord.etcd import EtcdCoordination

        server = request.getfixturevalue("etcd_server")
        a = EtcdCoordination([server.endpoint], prefix, timeout=5.0)
        b = EtcdCoordination([server.endpoint], prefix, timeout=5.0)
    yield a, b
    await a.close()
    await b.close()


class Exclusive:
    """Fails the test if two passes (of any instance) ever overlap."""

    name = "exclusive"

    def __init__(self) -> None:
        self.inside = 0
        self.max_inside = 0
        self.passes = 0

    async def run_once(self) -> None:
        self.inside += 1
        self.max_inside = max(self.max_inside, self.inside)
        try:
            await asyncio.sleep(0.01)  # hold the lock across a few loop turns
        finally:
            self.inside -= 1
        self.passes += 1


async def test_two_runners_on_one_coordination_never_run_a_pass_at_once(
    two_coords: tuple[Coordination, Coordination], started: Callable[[LoopRunner], LoopRunner]
) -> None:
    job = Exclusive()
    for coord in two_coords:
        started(LoopRunner(job, interval=0.001, busy_retry=0.001,
                           lock=lambda coord=coord: coord.mutex("locks/exclusive", ttl=5)))  # type: ignore[misc]
    await wait_for(lambda: job.passes >= 20, 30, message="passes of both runners")
    assert job.max_inside == 1


async def test_a_pass_is_skipped_while_another_instance_holds_the_lock(
    two_coords: tuple[Coordination, Coordination]
) -> None:
    a, b = two_coords
    job = Counting()
    runner = LoopRunner(job, interval=1, lock=lambda: b.mutex("locks/counting", ttl=5))
    holder = a.mutex("locks/counting", ttl=5)
    await holder.lock(timeout=5)
    try:
        assert await runner.run_once() is False
        assert job.passes == 0
    finally:
        await holder.unlock()
    assert await runner.run_once() is True
    assert job.passes == 1
    await runner.close()
