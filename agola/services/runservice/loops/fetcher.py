"""The fetcher (spec §3.9): copy logs and workspace archives of finished tasks from their executor
into object storage, mark them fetched on the run, then drop the executor task."""

from __future__ import annotations

from functools import partial

from agola.errors import Conflict
from agola.services.runservice import logic
from agola.services.runservice.core import RETRIES, RunserviceCore, gather_limited
from agola.services.runservice.logic.executors import executor_gone_reason
from agola.services.runservice.logic.fetching import (
    Fetch,
    FetchKind,
    archive_run_marker_path,
    fetch_finished,
    log_run_marker_path,
)
from agola.services.runservice.logs import fetch_archive, fetch_log
from agola.types.runservice import Executor, ExecutorTask, Run
from agola.util.log import get_logger

log = get_logger(__name__)


class Fetcher:
    name = "fetcher"
    lock = "fetcher"

    def __init__(self, core: RunserviceCore) -> None:
        self.core = core
        # (task id, run id) whose markers are in object storage: not looked at again each pass.
        self._marked: set[tuple[str, str]] = set()

    async def run_once(self) -> None:
        store = self.core.store
        executors = {e.id: e for e in await store.list_executors()}
        ets = {et.id: et for et, _ in await store.list_executor_tasks()}
        runs = await store.list_active_runs()
        active = {stored.run.id for stored in runs}
        self._marked = {m for m in self._marked if m[1] in active}
        for stored in runs:
            run = stored.run
            fetches = logic.pending_fetches(run)
            if fetches:
                await self._markers(run, {f.task_id for f in fetches})
                results = await gather_limited(
                    self.core.options.fetch_concurrency,
                    [partial(self._fetch, f, ets.get(f.task_id), executors) for f in fetches],
                )
                done = [f for f, ok in zip(fetches, results) if ok is True]
                for f, err in zip(fetches, results):
                    if isinstance(err, BaseException):
                        log.info("fetch failed, will retry", run=run.id, task=f.task_id, kind=f.kind.value,
                                 step=f.step, error=repr(err))
                if done:
                    marked = await self._mark(run.id, done)
                    if marked is None:
                        continue
                    run = marked
            for task in run.tasks.values():
                if fetch_finished(task) and task.id in ets and ets[task.id].spec.run_id == run.id:
                    await store.delete_executor_task(task.id)

    async def _markers(self, run: Run, task_ids: set[str]) -> None:
        for tid in task_ids:
            if (tid, run.id) in self._marked:
                continue
            for path in (log_run_marker_path(tid, run.id), archive_run_marker_path(tid, run.id)):
                if not await self.core.ost.exists(path):
                    await self.core.ost.write(path, b"")
            self._marked.add((tid, run.id))

    async def _fetch(self, fetch: Fetch, et: ExecutorTask | None, executors: dict[str, Executor]) -> bool:
        """True when the object is stored or there is nothing to store."""
        ost = self.core.ost
        if await ost.exists(fetch.object_path):
            return True  # uploaded by the executor, or fetched by an earlier pass
        if et is None:
            # Never ran (skipped, cancelled) or its executor task is gone: nothing to fetch.
            return True
        executor = executors.get(et.spec.executor_id)
        if executor is None or executor_gone_reason(
            executor, self.core.now(), self.core.options.heartbeat_expiry
        ) is not None:
            return True  # the executor is gone and its files with it
        if fetch.kind is FetchKind.LOG:
            await fetch_log(self.core, executor, fetch.task_id, fetch.step, fetch.object_path)
        else:
            assert fetch.step is not None  # an archive is always a step's
            await fetch_archive(self.core, executor, fetch.task_id, fetch.step, fetch.object_path)
        return True

    async def _mark(self, run_id: str, done: list[Fetch]) -> Run | None:
        store = self.core.store
        for _ in range(RETRIES):
            stored = await store.get_active_run(run_id)
            if stored is None:
                return None
            run = stored.run
            for f in done:
                run = logic.mark_fetched(run, f)
            if run == stored.run:
                return run
            try:
                await store.put_run(run, stored.revision)
            except Conflict:
                continue
            return run
        return None
