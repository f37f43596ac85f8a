"""A step log archived while the runservice relays it (the race fixed in 95c39f9).

GET /logs looks the step up (not archived yet) and relays to the executor; meanwhile the fetcher
archives the log and the executor drops its copy, so the relay gets a 404. The reader must get
the archived log, not a 404 (the CLI, then told the log is archived, printed "(no log)").
The interleaving is forced with events: the executor holds the relay until the archive is done.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from agola.types.stepquery import parse_log_query
from tests.runservice.role.conftest import Instance, ScriptedExecutor, create_req, rct
from tests.runservice.role.test_runs_e2e import wait_run


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


async def test_log_archived_during_the_relay_is_served_from_the_archive(rs: Instance) -> None:
    ex = HoldingExecutor("exec-race")
    await ex.start(rs.url)
    try:
        run = (await rs.c.create_run(create_req(rct("a")))).run
        await rs.c.start_run(run.id)
        await ex.wait_tasks(1)
        ex.logs[("a", "setup")] = bytearray(b"setup done\n")
        ex.finished_logs.add(("a", "setup"))
        ex.logs[("a", "0")] = bytearray(b"the step's only line\n")
        ex.finished_logs.add(("a", "0"))
        await ex.report("a", "running", steps=["running"])
        await wait_run(rs, run.id, lambda r: r.tasks["a"].status.value == "running")

        async def follow() -> bytes:
            return b"".join([c async for c in rs.c.get_log(run.id, "a", step=0, follow=True)])

        reader = asyncio.create_task(follow())
        try:
            # The runservice resolved the log as live and is now waiting on the executor's relay.
            await asyncio.wait_for(ex.relay_arrived.wait(), 10)
            assert not reader.done()
            # The step ends; the fetcher archives its log (reading the executor's copy)...
            await ex.report("a", "success")
            await wait_run(rs, run.id, lambda r: r.tasks["a"].steps[0].log_phase.value == "finished")
            # ... and the executor drops its copy: the held relay answers 404.
            ex.logs.clear()
            ex.release.set()
            got = await asyncio.wait_for(reader, 15)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        assert got == b"the step's only line\n"
    finally:
        await ex.stop()
