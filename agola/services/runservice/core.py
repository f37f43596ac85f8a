"""The runservice's shared business operations: what HTTP handlers and scheduler loops both do.

Pure decisions come from ``agola.services.runservice.logic``; this module reads and writes the
store, talks to executors, and retries on optimistic concurrency conflicts.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import attrs

from agola.errors import AgolaError, BadRequest, Conflict, NotExist, Unavailable
from agola.roleclients.executor import ExecutorClient
from agola.services.runservice import logic
from agola.services.runservice.logic.executors import HEARTBEAT_EXPIRY
from agola.services.runservice.store import RunChangeGroupsToken, RunStore, StoredRun
from agola.storage.datamanager import DataManagerOptions
from agola.storage.objectstorage.base import ObjectStorage
from agola.types.runservice import (
    Executor,
    ExecutorTask,
    ExecutorTaskSpecData,
    Run,
    RunConfig,
    RunCreateRequest,
)
from agola.util.log import get_logger

log = get_logger(__name__)

RETRIES = 20


@attrs.frozen(kw_only=True)
class RunserviceOptions:
    """Loop periods and timeouts. Loops are woken by coordination watches; the periods are only
    the safety net. Tests shrink them."""

    scheduler_interval: float = 2.0
    cleaner_interval: float = 1.0
    task_updater_interval: float = 10.0
    fetcher_interval: float = 2.0
    archiver_interval: float = 2.0
    cache_cleaner_interval: float = 24 * 3600.0
    workspace_cleaner_interval: float = 24 * 3600.0
    heartbeat_expiry: timedelta = HEARTBEAT_EXPIRY
    lock_ttl: float = 10.0
    executor_timeout: float = 10.0
    max_backoff: float = 5.0
    # Fetches run concurrently up to this many per fetcher pass.
    fetch_concurrency: int = 8
    datamanager: DataManagerOptions | None = None


class RunserviceCore:
    def __init__(
        self,
        store: RunStore,
        ost: ObjectStorage,
        options: RunserviceOptions,
        *,
        wake: Callable[[], None] = lambda: None,
        executor_token: str = "",
    ) -> None:
        """``executor_token``: the executors' API token (``runservice.executorAPIToken``)."""
        self.store = store
        self.ost = ost
        self.options = options
        self.wake = wake  # wake the scheduler loops (something they care about changed)
        self._session: aiohttp.ClientSession | None = None
        self._executor_token = executor_token

    @property
    def now(self) -> Callable[[], datetime]:
        return self.store.now

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.options.executor_timeout)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- run creation and actions ------------------------------------------------------------

    async def create_run(self, req: RunCreateRequest) -> tuple[Run, RunConfig]:
        now = self.now()
        if req.run_id:
            old = await self.store.get_run(req.run_id)
            old_rc = await self.store.get_run_config(req.run_id)
            if old is None or old_rc is None:
                raise BadRequest(f"run {req.run_id} to restart does not exist")
            logic.check_restartable(old.run, req.from_start)
            run_id = await self.store.new_run_id()
            run, rc = logic.build_restarted_run(
                req, old.run, old_rc, run_id, 0, now, lambda: str(uuid.uuid4())
            )
        else:
            logic.validate_new_run_request(req)
            run_id = await self.store.new_run_id()
            run, rc = logic.build_new_run(req, run_id, 0, now)
        # No wake-up: a queued run is the scheduler role's business until it starts.
        run = await self.store.create_run(run, rc)
        return run, rc

    async def update_run(
        self,
        run_id: str,
        change: Callable[[Run], Run],
        *,
        token: RunChangeGroupsToken | None = None,
    ) -> Run:
        """Apply ``change`` to the active run and store it, retrying on concurrent updates (a
        caller's change groups token is checked, not retried: it then gets the conflict)."""
        for _ in range(RETRIES):
            stored = await self.store.get_active_run(run_id)
            if stored is None:
                archived = await self.store.get_archived_run(run_id)
                if archived is None:
                    raise NotExist(f"run {run_id} does not exist")
                change(archived)  # the logic explains why the action does not apply
                raise BadRequest(f"run {run_id} is archived: it cannot change any more")
            new = change(stored.run)
            if new == stored.run and token is None:
                return new
            try:
                await self.store.put_run(
                    new, stored.revision, event=logic.run_event_needed(stored.run, new), token=token
                )
            except Conflict:
                if token is not None:
                    raise
                continue
            self.wake()
            return new
        raise Conflict(f"run {run_id}: too many concurrent updates")

    # --- executor tasks ----------------------------------------------------------------------

    async def spec_data(self, et: ExecutorTask, run: Run | None = None) -> ExecutorTaskSpecData:
        if run is None:
            stored = await self.store.get_run(et.spec.run_id)
            if stored is None:
                raise NotExist(f"run {et.spec.run_id} of task {et.id} does not exist")
            run = stored.run
        rc = await self.store.get_run_config(et.spec.run_id)
        if rc is None:
            raise NotExist(f"run config {et.spec.run_id} does not exist")
        return logic.executor_task_spec_data(run, rc, et.id)

    async def spec_data_if_any(self, et: ExecutorTask) -> ExecutorTaskSpecData | None:
        try:
            return await self.spec_data(et)
        except NotExist:
            return None  # its run is gone: the executor only needs to know it must stop

    async def task_with_data(self, et: ExecutorTask) -> dict[str, Any]:
        return et.to_json(await self.spec_data_if_any(et))

    def executor_client(self, executor: Executor) -> ExecutorClient:
        """A client of ``executor``'s API on our session (cheap: make one per use)."""
        return ExecutorClient(executor.listen_url, token=self._executor_token, session=self.session,
                              timeout=self.options.executor_timeout)

    async def push_task(self, et: ExecutorTask, executor: Executor | None = None, run: Run | None = None) -> bool:
        """POST the task with its spec data to its executor. Failures are fine: executors poll."""
        if executor is None:
            executor = await self.store.get_executor(et.spec.executor_id)
        if executor is None or not executor.listen_url:
            return False
        data = await self.spec_data(et, run) if run is not None else await self.spec_data_if_any(et)
        try:
            await self.executor_client(executor).push_task(et, data)
            return True
        except Unavailable as exc:
            log.info("pushing task to executor failed (it will poll)", executor=executor.id, task=et.id,
                     error=exc.message)
        except AgolaError as exc:
            log.warning("executor refused task", executor=executor.id, task=et.id, error=exc.message)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.info("pushing task to executor failed (it will poll)", executor=executor.id, task=et.id,
                     error=repr(exc))
        return False

    async def apply_task_status(self, et: ExecutorTask) -> bool:
        """Copy an executor task's status onto its run task (retrying on conflicts)."""
        for _ in range(RETRIES):
            stored = await self.store.get_active_run(et.spec.run_id)
            if stored is None:
                return False
            new, accepted = logic.apply_executor_task_status(stored.run, et)
            if not accepted:
                task = stored.run.tasks.get(et.id)
                if task is not None and task.status.value != et.status.phase.value:
                    log.info("executor task status ignored", task=et.id, run=stored.run.id,
                             status=task.status.value, phase=et.status.phase.value)
                return False
            if new == stored.run:
                return True
            ended = new.tasks_finished and not new.phase.is_finished
            active: set[str] | None = None
            rc = await self.store.get_run_config(new.id) if ended else None
            if rc is not None:
                # The last task ended: the run's result goes with its status, in one write (and
                # one run event), not in a write of its own after it.
                active = await self._active_task_ids(new.id)
                new = logic.advance_run(new, rc, active, self.now())
            try:
                revision = await self.store.put_run(new, stored.revision, event=logic.run_event_needed(stored.run, new))
            except Conflict:
                continue
            if ended:
                await self.advance_ended_run(new.id, StoredRun(new, revision), active, rc)
            if logic.scheduling_view(new) != logic.scheduling_view(stored.run):
                self.wake()  # else nothing to do for the runs scheduler (the write wakes the others)
            return True
        return False

    async def _active_task_ids(self, run_id: str) -> set[str]:
        """Ids of the run's executor tasks not finished yet."""
        return {et.id for et, _ in await self.store.list_executor_tasks()
                if et.spec.run_id == run_id and not et.status.phase.is_finished}

    async def advance_ended_run(self, run_id: str, known: StoredRun | None = None,
                                active: set[str] | None = None, rc: RunConfig | None = None) -> None:
        """The last task of a run ended: set its result, then finish it (two run events, as the
        scheduler's passes do) now, rather than two scheduler passes later. ``known``: the run as
        just written, with the ``active`` task ids it was decided on and its config ``rc`` (no
        read again; each step goes on from the run it wrote). No executor is chosen here, so the scheduler's lock is not
        needed; after a conflict (a scheduler pass wrote the run meanwhile) the run is read again,
        so the report is answered once the run's end is written, by us or by the pass."""
        if rc is None:
            rc = await self.store.get_run_config(run_id)  # a run's config never changes
            if rc is None:
                return
        for _ in range(3):
            stored, known = known or await self.store.get_active_run(run_id), None
            if stored is None:
                return
            if active is None:
                active = await self._active_task_ids(run_id)
            new = logic.advance_run(stored.run, rc, active, self.now())
            if new == stored.run:
                return
            try:
                revision = await self.store.put_run(new, stored.revision, event=logic.run_event_needed(stored.run, new))
            except Conflict:  # a scheduler pass wrote it meanwhile: see what it did
                active = None
                continue
            # Its executor tasks only ever finish: the ones seen finished stay so for the next step.
            known = StoredRun(new, revision)

    async def executor_task_update(self, executor_id: str, received: ExecutorTask) -> None:
        """An executor reports a task status: store it (keeping our spec), then update the run."""
        for _ in range(RETRIES):
            found = await self.store.get_executor_task(received.id)
            if found is None:
                raise BadRequest(f"executor task {received.id} does not exist")
            et, rev = found
            if et.status.phase.is_finished and received.status.phase != et.status.phase:
                # Final already (e.g. failed because its executor was considered gone): keep it.
                return
            new = logic.receive_executor_task_status(et, received, executor_id)
            if new != et:
                try:
                    if await self._store_with_run(new, rev):
                        return
                    await self.store.put_executor_task(new, rev)
                except Conflict:
                    continue
            await self.apply_task_status(new)
            return
        raise Conflict(f"executor task {received.id}: too many concurrent updates")

    async def _store_with_run(self, et: ExecutorTask, et_revision: int) -> bool:
        """Store a reported executor task and its status copied onto its run in one transaction
        (an executor reports each step's start and end: one commit per report, not two). False,
        with nothing stored, when the run does not take it that simply (gone, the status refused
        or changing nothing, or the run's last task ending: its result and end go with it), for
        ``apply_task_status`` to handle; ``Conflict`` when either changed meanwhile."""
        stored = await self.store.get_active_run(et.spec.run_id)
        if stored is None:
            return False
        new, accepted = logic.apply_executor_task_status(stored.run, et)
        if not accepted or new == stored.run or (new.tasks_finished and not new.phase.is_finished):
            return False
        await self.store.put_run_and_executor_task(new, stored.revision, et, et_revision,
                                                   event=logic.run_event_needed(stored.run, new))
        if logic.scheduling_view(new) != logic.scheduling_view(stored.run):
            self.wake()
        return True

    async def heartbeat(self, executor: Executor) -> Executor:
        """Register or refresh an executor; drop dynamic siblings it no longer lists."""
        executor = logic.register_heartbeat(executor, executor.id, self.now())
        previous = await self.store.get_executor(executor.id)
        await self.store.put_executor(executor)
        if executor.executor_group:
            for stale in logic.stale_siblings(executor, await self.store.list_executors()):
                await self.store.delete_executor(stale)
        if previous is None or previous.active_tasks != executor.active_tasks:
            self.wake()  # new capacity
        return executor

    async def executor_tasks(self, executor_id: str) -> list[ExecutorTask]:
        return [et for et, _ in await self.store.list_executor_tasks() if et.spec.executor_id == executor_id]


async def gather_limited(n: int, jobs: list[Callable[[], Awaitable[object]]]) -> list[object]:
    sem = asyncio.Semaphore(max(1, n))

    async def one(job: Callable[[], Awaitable[object]]) -> object:
        async with sem:
            return await job()

    return list(await asyncio.gather(*(one(j) for j in jobs), return_exceptions=True))

