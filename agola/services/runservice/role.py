"""The runservice role: owns runs, schedules their tasks onto executors, keeps logs and archives.

Storage: coordination (``runservice/`` prefix: etcd, or embedded under ``<dataDir>/coord``),
object storage (``runservice.objectStorage``), a datamanager on both (``rundata``), and a local
readdb (``<dataDir>/readdb/db``). Several instances may share etcd + S3.

Modes, maintenance and stop: ``agola.services.stateful``. In normal mode the scheduler loops run
too, each a ``LoopRunner`` under its coordination lock, woken by a watch on ``scheduler/``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from aiohttp import web

from agola.config import Config
from agola.errors import Unavailable
from agola.services.runservice import logic
from agola.services.runservice.api import build_app
from agola.services.runservice.core import RunserviceCore, RunserviceOptions
from agola.services.runservice.logic import SchedulingView
from agola.services.runservice.loops import (
    CacheCleaner,
    ExecutorTasksCleaner,
    Fetcher,
    FinishedRunsArchiver,
    RunsScheduler,
    TaskUpdater,
    WorkspaceCleaner,
)
from agola.services.runservice.readdb import RunReadDB
from agola.services.runservice.store import (
    DATA_BASE_PATH,
    DATATYPES,
    EXECUTORS_PREFIX,
    RUNS_PREFIX,
    SCHEDULER,
    TASKS_PREFIX,
    RunStore,
    lock_key,
    utcnow,
)
from agola.services.stateful import StatefulRole
from agola.storage.coord.base import Compacted, Event
from agola.storage.datamanager import DataManager
from agola.types.runservice import Run, RunPhase
from agola.util.aio import cancel_and_wait
from agola.util.log import get_logger
from agola.util.loops import LockedJob, LoopRunner, stop_all

log = get_logger(__name__)

COORD_PREFIX = "runservice/"
WATCH_RETRY = 0.5

# The loops a change of a run or an executor task may give work to. The runs scheduler starts
# tasks: it is woken at once. The others (fetching the logs of finished tasks, archiving finished
# runs, cleaning up stray executor tasks) are off that path: they are woken at most ``LAZY_WAKE``
# seconds after a change, so a burst of changes (every status report, every run write) costs them
# one pass, not one each (each pass takes and releases a coordination lock and lists every active
# run: with 8 tasks running, these passes were most of the runservice's coordination writes).
_WOKEN_AT_ONCE = {RunsScheduler.name}
_WOKEN_LAZILY = {ExecutorTasksCleaner.name, Fetcher.name, FinishedRunsArchiver.name}
LAZY_WAKE = 0.5


class RunserviceRole(StatefulRole[RunReadDB]):
    name = "runservice"
    data_base_path = DATA_BASE_PATH
    datatypes = tuple(DATATYPES)

    def __init__(
        self,
        config: Config,
        *,
        options: RunserviceOptions | None = None,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.options = options or RunserviceOptions(
            heartbeat_expiry=timedelta(seconds=config.runservice.executor_heartbeat_timeout))
        super().__init__(config, coord_prefix=COORD_PREFIX, datamanager_options=self.options.datamanager)
        self._now = now
        self.store: RunStore | None = None
        self.core: RunserviceCore | None = None
        self._runners: dict[str, LoopRunner] = {}
        self._watch_changes: asyncio.Task[None] | None = None
        self._lazy_wake: asyncio.TimerHandle | None = None
        # Run key -> what the runs scheduler decides on, as of the last version the watch saw.
        self._views: dict[str, SchedulingView] = {}
        self._app: web.Application | None = None

    def web_app(self) -> web.Application:
        if self._app is None:
            self._app = build_app(self, api_token=self.config.api_token_for(self.name))
        return self._app

    def store_required(self) -> RunStore:
        if self.store is None:
            raise Unavailable("runservice not started")
        return self.store

    # --- stateful role hooks ------------------------------------------------------------------

    async def storage_opened(self) -> None:
        assert self.coord is not None and self.ost is not None and self.dm is not None
        self.store = RunStore(self.coord, self.dm, now=self._now)
        self.core = RunserviceCore(
            self.store, self.ost, self.options, wake=self.wake,
            executor_token=self.config.api_token_for("executor", caller=self.name))

    async def storage_closing(self) -> None:
        if self.core is not None:
            await self.core.close()

    async def datamanager_for_serving(self) -> DataManager:
        dm = await super().datamanager_for_serving()
        await dm.init()  # the store writes at once: no background init
        return dm

    def new_readdb(self, dm: DataManager) -> RunReadDB:
        path = self.readdb_path()
        if path is None:
            raise Unavailable("runservice: no dataDir configured for its readdb")
        assert self.coord is not None
        return RunReadDB(path, self.coord, dm)

    async def serving_started(self) -> None:
        core = self.core
        assert core is not None
        o = self.options
        section = self.config.runservice
        jobs: list[tuple[LockedJob, float]] = [
            (RunsScheduler(core), o.scheduler_interval),
            (ExecutorTasksCleaner(core), o.cleaner_interval),
            (TaskUpdater(core), o.task_updater_interval),
            (Fetcher(core), o.fetcher_interval),
            (FinishedRunsArchiver(core), o.archiver_interval),
            (CacheCleaner(core, section.run_cache_expire_interval), o.cache_cleaner_interval),
            (WorkspaceCleaner(core, section.run_workspace_expire_interval), o.workspace_cleaner_interval),
        ]
        self._runners = {job.name: self._runner(job, interval) for job, interval in jobs}
        for runner in self._runners.values():
            runner.start()
        self._watch_changes = asyncio.create_task(self._follow_changes(), name="runservice-wakeups")

    async def serving_stopping(self) -> None:
        task, self._watch_changes = self._watch_changes, None
        if task is not None:
            await cancel_and_wait([task])
        timer, self._lazy_wake = self._lazy_wake, None
        if timer is not None:
            timer.cancel()
        runners, self._runners = list(self._runners.values()), {}
        await stop_all(runners)

    def _runner(self, job: LockedJob, interval: float) -> LoopRunner:
        assert self.coord is not None
        o = self.options
        return LoopRunner.for_locked_job(job, interval, self.coord, lock_key=lock_key, lock_ttl=o.lock_ttl,
                                         max_backoff=o.max_backoff)

    # --- wake-ups -----------------------------------------------------------------------------

    def wake(self) -> None:
        """Something the scheduler loops care about changed: a pass of each soon (the runs
        scheduler's now, the others' within ``LAZY_WAKE``)."""
        for name in _WOKEN_AT_ONCE:
            runner = self._runners.get(name)
            if runner is not None:
                runner.wake()
        self._wake_lazy_loops()

    def _wake_lazy_loops(self) -> None:
        if self._lazy_wake is None and self._runners:
            self._lazy_wake = asyncio.get_running_loop().call_later(LAZY_WAKE, self._wake_lazily)

    def _wake_lazily(self) -> None:
        self._lazy_wake = None
        for name in _WOKEN_LAZILY:
            runner = self._runners.get(name)
            if runner is not None:
                runner.wake()

    async def _follow_changes(self) -> None:
        """Push-based scheduling: any change of a run, executor task or executor wakes the loops
        (lock keys and sequences, also under ``scheduler/``, are ignored). A change of an executor
        task does not wake the runs scheduler: what it decides on comes with the run write that
        follows (a status is copied onto the run task) or is its own write (tasks it created,
        stopped), and finished tasks are only deleted. Nor does a new queued run: there is
        nothing to do for it until it starts (a pass then would only delay the one its start
        wakes). Nor does a run write leaving what it decides on as it was
        (``logic.scheduling_view``: a step starting or ending, a task starting, logs fetched):
        with 8 tasks running, such passes were most of them, each listing every active run."""
        assert self.coord is not None
        while True:
            try:
                async with self.coord.watch(SCHEDULER) as watcher:
                    self._views.clear()  # changes may have been missed: compare from now on
                    async for ev in watcher:
                        key = ev.kv.key
                        if key.startswith(RUNS_PREFIX):
                            if self._run_needs_scheduling(ev):
                                self.wake()
                            else:
                                self._wake_lazy_loops()
                        elif key.startswith(TASKS_PREFIX):
                            self._wake_lazy_loops()
                        elif key.startswith(EXECUTORS_PREFIX):
                            runner = self._runners.get(RunsScheduler.name)
                            if runner is not None:
                                runner.wake()
            except asyncio.CancelledError:
                raise
            except Compacted:
                self.wake()
            except Exception as exc:  # noqa: BLE001 - the periodic passes cover the gap
                log.warning("scheduler watch failed", error=repr(exc))
                await asyncio.sleep(WATCH_RETRY)

    def _run_needs_scheduling(self, ev: Event) -> bool:
        """Whether a run's change may give the runs scheduler something to do: a new run unless
        it is queued (runs are created queued or, with setup errors, already finished: those the
        runs scheduler marks fetched), a deleted one, or a change of its ``scheduling_view``."""
        key = ev.kv.key
        previous = self._views.pop(key, None)
        if ev.type == "delete":
            return True
        try:
            run = self.store.decoded_run(ev.kv) if self.store is not None else Run.from_json(ev.kv.value)
        except ValueError:  # not a run we wrote: wake as for any change
            return True
        view = self._views[key] = logic.scheduling_view(run)
        if previous is None:
            return not (ev.kv.version == 1 and run.phase is RunPhase.QUEUED)
        return view != previous
