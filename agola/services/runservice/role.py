"""The runservice role: owns runs, schedules their tasks onto executors, keeps logs and archives.

Storage: coordination (``runservice/`` prefix: etcd, or embedded under ``<dataDir>/coord``),
object storage (``runservice.objectStorage``), a datamanager on both (``rundata``), and a local
readdb (``<dataDir>/readdb/db``). Several instances may share etcd + S3.

Modes: normal (datamanager loops, readdb, scheduler loops, full API) or maintenance (only the
maintenance/export/import API). Every instance watches the ``maintenance`` key and switches.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from aiohttp import web

from agola.config import Config
from agola.errors import Unavailable
from agola.services.role import Role
from agola.services.runservice.api import build_app
from agola.services.runservice.core import RunserviceCore, RunserviceOptions
from agola.services.runservice.loops import (
    CacheCleaner,
    ExecutorTasksCleaner,
    Fetcher,
    FinishedRunsArchiver,
    LoopRunner,
    RunsScheduler,
    TaskUpdater,
    WorkspaceCleaner,
)
from agola.services.runservice.readdb import RunReadDB
from agola.services.runservice.store import (
    DATA_BASE_PATH,
    DATATYPES,
    EXECUTORS_PREFIX,
    MAINTENANCE_KEY,
    RUNS_PREFIX,
    SCHEDULER,
    TASKS_PREFIX,
    RunStore,
    utcnow,
)
from agola.storage.coord.base import Compacted, Coordination
from agola.storage.coord.factory import open_coordination
from agola.storage.datamanager import DataManager
from agola.storage.objectstorage.base import ObjectStorage
from agola.util.log import get_logger

log = get_logger(__name__)

COORD_PREFIX = "runservice/"
MODE_SWITCH_DELAY = 0.2


async def open_object_storage(cfg: Any) -> ObjectStorage:
    """The configured object storage (the shared factory when present)."""
    try:
        from agola.storage.objectstorage.factory import open_object_storage as factory  # type: ignore

        ost = factory(cfg)
        if asyncio.iscoroutine(ost):
            ost = await ost
        return ost  # type: ignore[no-any-return]
    except ImportError:
        pass
    if cfg is None:
        raise Unavailable("runservice: no objectStorage configured")
    if cfg.type == "s3":
        from agola.storage.objectstorage.s3 import S3ObjectStorage

        return S3ObjectStorage(
            cfg.endpoint, cfg.bucket, cfg.access_key, cfg.secret_access_key, cfg.location, cfg.disable_tls
        )
    from agola.storage.objectstorage.posix import PosixObjectStorage

    return PosixObjectStorage(cfg.path)


class RunserviceRole(Role):
    name = "runservice"

    def __init__(
        self,
        config: Config,
        *,
        options: RunserviceOptions | None = None,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__(config)
        self.options = options or RunserviceOptions()
        self._now = now
        self.coord: Coordination | None = None
        self.ost: ObjectStorage | None = None
        self.dm: DataManager | None = None
        self.store: RunStore | None = None
        self.core: RunserviceCore | None = None
        self.readdb: RunReadDB | None = None
        self.maintenance = False
        self.runners: dict[str, LoopRunner] = {}
        self._mode_tasks: list[asyncio.Task[None]] = []
        self._watch_task: asyncio.Task[None] | None = None
        self._mode_lock = asyncio.Lock()
        self._app: web.Application | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        section = self.section
        self.coord = await open_coordination(section.etcd, section.data_dir, COORD_PREFIX)
        self.ost = await open_object_storage(section.object_storage)
        self.dm = DataManager(self.coord, self.ost, DATA_BASE_PATH, DATATYPES, self.options.datamanager)
        self.store = RunStore(self.coord, self.dm, now=self._now)
        self.core = RunserviceCore(self.store, self.ost, self.options, wake=self.wake)
        # Pin the watch before reading the flag: a switch in between is not missed.
        watcher = self.coord.watch(MAINTENANCE_KEY)
        await watcher.__aenter__()
        self.maintenance = await self.store.maintenance_enabled()
        if not self.maintenance:
            await self._start_normal()
        self._watch_task = asyncio.create_task(self._watch_maintenance(watcher), name="runservice-maintenance")

    async def stop(self) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
            await asyncio.gather(self._watch_task, return_exceptions=True)
            self._watch_task = None
        await self._stop_normal()
        if self.core is not None:
            await self.core.close()
        if self.ost is not None:
            await self.ost.close()
            self.ost = None
        if self.coord is not None:
            await self.coord.close()
            self.coord = None

    def web_app(self) -> web.Application:
        if self._app is None:
            self._app = build_app(self)
        return self._app

    def store_required(self) -> RunStore:
        if self.store is None:
            raise Unavailable("runservice not started")
        return self.store

    # --- modes --------------------------------------------------------------------------------

    async def _start_normal(self) -> None:
        assert self.coord is not None and self.dm is not None and self.core is not None
        await self.dm.init()
        await self.dm.start()
        self.readdb = RunReadDB(Path(self.section.data_dir) / "readdb" / "db", self.coord, self.dm)
        await self.readdb.start()
        o = self.options
        core = self.core
        jobs: list[tuple[Any, float]] = [
            (RunsScheduler(core), o.scheduler_interval),
            (ExecutorTasksCleaner(core), o.cleaner_interval),
            (TaskUpdater(core), o.task_updater_interval),
            (Fetcher(core), o.fetcher_interval),
            (FinishedRunsArchiver(core), o.archiver_interval),
            (CacheCleaner(core, self.section.run_cache_expire_interval), o.cache_cleaner_interval),
            (WorkspaceCleaner(core, self.section.run_workspace_expire_interval), o.workspace_cleaner_interval),
        ]
        self.runners = {
            job.name: LoopRunner(job, self.coord, interval, lock_ttl=o.lock_ttl, max_backoff=o.max_backoff)
            for job, interval in jobs
        }
        self._mode_tasks = [
            asyncio.create_task(r.loop(), name=f"runservice-{name}") for name, r in self.runners.items()
        ]
        self._mode_tasks.append(asyncio.create_task(self._watch_scheduler(), name="runservice-wakeups"))

    async def _stop_normal(self) -> None:
        tasks, self._mode_tasks = self._mode_tasks, []
        for t in tasks:
            t.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=5)
            for t in pending:
                log.warning("runservice task slow to stop", task=t.get_name())
            await asyncio.gather(*tasks, return_exceptions=True)
        for runner in self.runners.values():
            await runner.close()
        self.runners = {}
        if self.readdb is not None:
            await self.readdb.stop()
            self.readdb = None
        if self.dm is not None:
            await self.dm.stop()

    async def _watch_maintenance(self, watcher: Any) -> None:
        try:
            while True:
                try:
                    async for ev in watcher:
                        if ev.kv.key == MAINTENANCE_KEY:
                            await self._switch(ev.type == "put")
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - re-watch from the current state
                    log.warning("maintenance watch failed", error=repr(exc))
                    await watcher.aclose()
                    await asyncio.sleep(MODE_SWITCH_DELAY)
                    assert self.coord is not None and self.store is not None
                    watcher = self.coord.watch(MAINTENANCE_KEY)
                    await watcher.__aenter__()
                    await self._switch(await self.store.maintenance_enabled())
        finally:
            await watcher.aclose()

    async def _switch(self, maintenance: bool) -> None:
        async with self._mode_lock:
            if maintenance == self.maintenance:
                return
            log.info("runservice switching mode", maintenance=maintenance)
            self.maintenance = maintenance
            if maintenance:
                await self._stop_normal()
            else:
                await self._start_normal()

    # --- wake-ups -----------------------------------------------------------------------------

    def wake(self) -> None:
        for runner in self.runners.values():
            if runner.job.name in _WOKEN_BY_CHANGES:
                runner.wake()

    async def _watch_scheduler(self) -> None:
        """Push-based scheduling: any change of a run, executor task or executor wakes the loops
        (lock keys and sequences, also under ``scheduler/``, are ignored)."""
        assert self.coord is not None
        while True:
            try:
                async with self.coord.watch(SCHEDULER) as watcher:
                    async for ev in watcher:
                        key = ev.kv.key
                        if key.startswith((RUNS_PREFIX, TASKS_PREFIX)):
                            self.wake()
                        elif key.startswith(EXECUTORS_PREFIX):
                            runner = self.runners.get(RunsScheduler.name)
                            if runner is not None:
                                runner.wake()
            except asyncio.CancelledError:
                raise
            except Compacted:
                self.wake()
            except Exception as exc:  # noqa: BLE001 - the periodic passes cover the gap
                log.warning("scheduler watch failed", error=repr(exc))
                await asyncio.sleep(0.5)


_WOKEN_BY_CHANGES = {
    RunsScheduler.name,
    ExecutorTasksCleaner.name,
    Fetcher.name,
    FinishedRunsArchiver.name,
}
