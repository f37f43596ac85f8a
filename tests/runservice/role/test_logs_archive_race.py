"""A step log archived while the runservice relays it (the race fixed in 95c39f9).

GET /logs looks the step up (not archived yet) and relays to the executor; meanwhile the fetcher
archives the log and the executor drops its copy, so the relay gets a 404 (or, a little later, the
executor task is already deleted). The reader must get the archived log, not a 404 (the CLI, then
told the log is archived, printed "(no log)"; seen as a FLAKY in
tests/e2e/test_split_processes.py). The interleavings are forced with events, on real storage.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from agola.types.stepquery import parse_log_query
from tests.runservice.role.conftest import Instance, ScriptedExecutor, create_req, rct
from tests.runservice.role.test_runs_e2e import wait_run
from tests.support.waiting import wait_for

LINE = b"the step's only line\n"


class HoldingExecutor(ScriptedExecutor):
    """Holds the first followed log request until ``release``, then answers it like an executor
    that dropped the task's files: 404. Unfollowed reads (the fetcher's) are served at once."""

    def __init__(self, executor_id: str) -> None:
        super().__init__(executor_id)
        self.relay_arrived = asyncio.Event()
        self.release = asyncio.Event()
        self.held = 0

    async def _log(self, request: web.Request) -> web.StreamResponse:
        if parse_log_query(request.query).follow and self.held == 0:
            self.held += 1
            self.relay_arrived.set()
            await self.release.wait()
        return await super()._log(request)


@pytest.fixture
async def executor(rs: Instance) -> AsyncIterator[HoldingExecutor]:
    ex = HoldingExecutor("exec-race")
    await ex.start(rs.url)
    yield ex
    await ex.stop()


async def _running_task(rs: Instance, ex: HoldingExecutor) -> str:
    """A run whose task ``a`` runs, its step log on the executor; the run id."""
    run = (await rs.c.create_run(create_req(rct("a")))).run
    await rs.c.start_run(run.id)
    await ex.wait_tasks(1)
    ex.logs[("a", "setup")] = bytearray(b"setup done\n")
    ex.logs[("a", "0")] = bytearray(LINE)
    ex.finished_logs.update({("a", "setup"), ("a", "0")})
    await ex.report("a", "running", steps=["running"])
    await wait_run(rs, run.id, lambda r: r.tasks["a"].status.value == "running")
    return run.id


async def _follow_while(rs: Instance, run_id: str, held: Callable[[], Awaitable[object]],
                        meanwhile: Callable[[], Awaitable[None]]) -> bytes:
    """Follow the step log; once ``held`` says the runservice is stuck where the test holds it,
    run ``meanwhile`` (which lets it go on); what the reader got."""
    async def follow() -> bytes:
        return b"".join([c async for c in rs.c.get_log(run_id, "a", step=0, follow=True)])

    reader = asyncio.create_task(follow())
    try:
        await asyncio.wait_for(held(), 10)
        assert not reader.done()
        await meanwhile()
        return await asyncio.wait_for(reader, 15)
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


async def _archive_the_step(rs: Instance, ex: HoldingExecutor, run_id: str) -> None:
    """The step ends and the fetcher archives its log (reading the executor's copy)."""
    await ex.report("a", "success")
    await wait_run(rs, run_id, lambda r: r.tasks["a"].steps[0].log_phase.value == "finished")


async def test_log_archived_during_the_relay_is_served_from_the_archive(rs: Instance, executor: HoldingExecutor) -> None:
    run_id = await _running_task(rs, executor)

    async def meanwhile() -> None:
        await _archive_the_step(rs, executor, run_id)
        executor.logs.clear()  # the executor drops its copy: the held relay answers 404
        executor.release.set()

    # Held: the runservice resolved the log as live and waits on the executor's relay.
    assert await _follow_while(rs, run_id, executor.relay_arrived.wait, meanwhile) == LINE


async def test_log_archived_before_the_relay_starts_is_served_from_the_archive(
    rs: Instance, executor: HoldingExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The later window: the executor task is gone when the relay looks its executor up."""
    run_id = await _running_task(rs, executor)
    assert rs.role is not None and rs.role.core is not None
    store = rs.role.core.store
    lookup = store.get_executor_task
    looked_up, go = asyncio.Event(), asyncio.Event()

    async def held_lookup(task_id: str) -> Any:
        if not looked_up.is_set():  # the log relay's look-up (the first call from now on)
            looked_up.set()
            await go.wait()
        return await lookup(task_id)

    monkeypatch.setattr(store, "get_executor_task", held_lookup)

    async def meanwhile() -> None:
        await _archive_the_step(rs, executor, run_id)

        async def deleted() -> bool:
            return await lookup("a") is None  # everything fetched: the fetcher drops the executor task

        await wait_for(deleted, 10)
        go.set()

    assert await _follow_while(rs, run_id, looked_up.wait, meanwhile) == LINE
    assert executor.held == 0  # never relayed
