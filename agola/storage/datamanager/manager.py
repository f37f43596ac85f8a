"""``DataManager``: the public face of the datamanager (writes, reads, background loops)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable

from agola.errors import BadRequest
from agola.storage.coord.base import Coordination
from agola.storage.datamanager.checkpoint import Checkpointer
from agola.storage.datamanager.exportimport import (
    delete_storage_wals_upto,
    export_stream,
    write_import_snapshot,
)
from agola.storage.datamanager.feed import Feed, FeedBatch
from agola.storage.datamanager.initetcd import INIT_LOCK_TIMEOUT, init_etcd
from agola.storage.datamanager.loops import (
    CheckpointCleanJob,
    CheckpointJob,
    CompactChangeGroupsJob,
    EtcdWalCleanJob,
    PingJob,
    StorageWalCleanJob,
    SyncJob,
)
from agola.storage.datamanager.maintenance import (
    MaintenanceWatcher,
    disable_maintenance,
    enable_maintenance,
    is_maintenance_enabled,
)
from agola.storage.datamanager.read import Reader
from agola.storage.datamanager.snapshot import latest_status
from agola.storage.datamanager.types import (
    CHANGEGROUPS_PREFIX,
    Action,
    ChangeGroupsUpdateToken,
    CorruptData,
    DataEntry,
    DataManagerOptions,
    Paths,
    lock_key,
    validate_change_group,
)
from agola.storage.datamanager.wal import WalReader, WalWriter
from agola.storage.objectstorage.base import ObjectStorage
from agola.util.aio import cancel_and_wait
from agola.util.backoff import Backoff
from agola.util.log import get_logger
from agola.util.loops import LockedJob, LoopRunner, stop_all

log = get_logger(__name__)

# Writes waiting for the sync job that wake it at once, and how long the first one waits otherwise.
SYNC_WAKE_WALS = 64
SYNC_LINGER = 0.02


class DataManager:
    """A replicated store of objects grouped by datatype: WAL in coordination, snapshots in storage.

    ``coord`` is already scoped to the service prefix (``configstore/``); ``base_path`` is the
    object storage prefix (``configdata``). Call ``init()`` (or ``start()``, which calls it) before
    writing.
    """

    def __init__(
        self,
        coord: Coordination,
        ost: ObjectStorage,
        base_path: str,
        datatypes: list[str],
        options: DataManagerOptions | None = None,
    ) -> None:
        self.coord = coord
        self.ost = ost
        self.paths = Paths(base_path)
        self.datatypes = list(datatypes)
        self.options = options or DataManagerOptions()
        self.wal_reader = WalReader(ost, self.paths)
        # Told when a feed meets a corrupt object (a WAL or snapshot file it cannot decode).
        self.on_corrupt: Callable[[CorruptData], None] | None = None
        self._writer = WalWriter(coord, ost, self.paths, self.datatypes, self.options, self._wake_sync)
        self._reader = Reader(coord, ost, self.paths, self.wal_reader, self.options.read_cache_bytes)
        self.checkpointer = Checkpointer(coord, ost, self.paths, self.datatypes, self.wal_reader, self.options)
        o = self.options
        self.sync_job = SyncJob(coord, ost, self.paths, self.wal_reader, self._writer.recent)
        self.checkpoint_job = CheckpointJob(self.checkpointer)
        self.checkpoint_clean_job = CheckpointCleanJob(self.checkpointer)
        self.etcd_wal_clean_job = EtcdWalCleanJob(coord, o)
        self.storage_wal_clean_job = StorageWalCleanJob(coord, ost, self.paths)
        self.compact_change_groups_job = CompactChangeGroupsJob(coord, o)
        self.ping_job = PingJob(coord)
        self._runners = {
            runner.name: runner
            for runner in (
                self._runner(self.sync_job, o.sync_interval),
                self._runner(self.checkpoint_job, o.checkpoint_interval),
                self._runner(self.checkpoint_clean_job, o.checkpoint_clean_interval),
                self._runner(self.etcd_wal_clean_job, o.etcd_wal_clean_interval),
                self._runner(self.storage_wal_clean_job, o.storage_wal_clean_interval),
                self._runner(self.compact_change_groups_job, o.compact_change_groups_interval),
                self._runner(self.ping_job, o.ping_interval),
            )
        }
        self._tasks: list[asyncio.Task[None]] = []
        self._initialized = False
        self._unsynced = 0
        self._sync_timer: asyncio.TimerHandle | None = None

    def _runner(self, job: LockedJob, interval: float) -> LoopRunner:
        o = self.options
        return LoopRunner.for_locked_job(job, interval, self.coord, lock_key=lock_key, lock_ttl=o.lock_ttl,
                                         min_backoff=min(2 * interval, o.max_backoff), max_backoff=o.max_backoff)

    # --- lifecycle ---------------------------------------------------------------------------

    async def init(self, *, force: bool = False) -> bool:
        """Spec §4.6 InitEtcd; True if coordination was (re)built from storage."""
        done = await init_etcd(self.coord, self.ost, self.paths, self.checkpointer, self.options, force=force)
        self._writer.forget_head()
        self._initialized = True
        return done

    async def start(self) -> None:
        """Initialise (retrying until coordination and storage answer), then run the loops."""
        if self._tasks:
            return
        self._tasks.append(asyncio.create_task(self._init_then_loop(), name="datamanager-init"))

    async def _init_then_loop(self) -> None:
        backoff = Backoff(0.1, self.options.max_backoff)
        while not self._initialized:
            try:
                await self.init()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep trying: the service must not die
                delay = backoff.next()
                log.warning("datamanager init failed", error=repr(exc), retry_in=round(delay, 2))
                await asyncio.sleep(delay)
        for runner in self._runners.values():
            runner.start()

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        if self._sync_timer is not None:
            self._sync_timer.cancel()
            self._sync_timer = None
        await cancel_and_wait(tasks)
        await stop_all(list(self._runners.values()))

    async def run_job(self, job: LockedJob) -> bool:
        """Run one background job now under its lock (``try_lock``: False if held elsewhere)."""
        return await self._runners[job.name].run_once()

    def _wake_sync(self) -> None:
        """After each write: wake the sync job once ``SYNC_WAKE_WALS`` writes are waiting for it, or
        ``SYNC_LINGER`` seconds after the first one (a pass per commit wrote many small segments,
        and a pass costs ~2 ms of CPU whatever it writes)."""
        if not self._tasks:
            return
        self._unsynced += 1
        if self._unsynced >= SYNC_WAKE_WALS:
            self._wake_sync_now()
        elif self._sync_timer is None:
            self._sync_timer = asyncio.get_running_loop().call_later(SYNC_LINGER, self._wake_sync_now)

    def _wake_sync_now(self) -> None:
        if self._sync_timer is not None:
            self._sync_timer.cancel()
            self._sync_timer = None
        self._unsynced = 0
        if self._tasks:
            self._runners[self.sync_job.name].wake()

    # --- writes ------------------------------------------------------------------------------

    async def write_wal(
        self, actions: list[Action], token: ChangeGroupsUpdateToken | None = None
    ) -> ChangeGroupsUpdateToken:
        """Commit ``actions`` atomically; ``Conflict`` if a change group of ``token`` moved.

        Returns a token with the new revision of each change group of ``token``. As with etcd, an
        ``Unavailable`` (or a cancellation) during the commit leaves the outcome unknown: the write
        may have been committed.
        """
        return await self._writer.write_wal(actions, token)

    async def get_change_groups_update_token(self, names: list[str]) -> ChangeGroupsUpdateToken:
        """The current revision of each change group, read from coordination.

        Take the token *before* the reads it protects: any write to those groups after this call
        makes ``write_wal`` with this token fail.
        """
        for name in names:
            validate_change_group(name)
        rr = await self.coord.range(CHANGEGROUPS_PREFIX)
        revs = {kv.key[len(CHANGEGROUPS_PREFIX) :]: kv.mod_revision for kv in rr.kvs}
        return ChangeGroupsUpdateToken(rr.revision, {name: revs.get(name, 0) for name in names})

    # --- reads -------------------------------------------------------------------------------

    async def read_object(self, datatype: str, id: str) -> bytes:
        """The object's current data (recent WALs first, deletes included); ``NotExist`` if none."""
        return await self._reader.read_object(datatype, id)

    def iter_objects(self, datatype: str) -> AsyncIterator[DataEntry]:
        """Every current object of ``datatype``, in id order (streams the snapshot)."""
        return self._reader.iter_objects(datatype)

    async def list_objects(self, datatype: str) -> list[DataEntry]:
        return [entry async for entry in self._reader.iter_objects(datatype)]

    # --- readdb feed ------------------------------------------------------------------------

    def feed(self, wal_sequence: str = "") -> AsyncGenerator[FeedBatch, None]:
        """Batches to mirror the datamanager into a readdb, from the consumer's last applied WAL
        sequence ("" = from scratch). The contract is in ``agola.storage.datamanager.feed``."""
        feed = Feed(self.coord, self.ost, self.paths, self.datatypes, self.wal_reader, self.options.max_backoff,
                    on_corrupt=self._corrupt_found)
        return feed.follow(wal_sequence)

    async def mirror(self, start: Callable[[], Awaitable[str]], store: Callable[[FeedBatch], Awaitable[None]],
                     what: str) -> None:
        """Follow the feed from ``await start()`` (the consumer's last stored WAL sequence) and
        ``await store(batch)`` each batch, until cancelled. A batch that cannot be stored (a full
        disk) is retried from ``start()`` after a backoff, so the mirror resumes once it can."""
        backoff = Backoff()
        while True:
            try:
                feed = self.feed(await start())
                try:
                    async for batch in feed:
                        await store(batch)
                        backoff.reset()
                finally:
                    await feed.aclose()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the mirror outlives a full disk
                delay = backoff.next()
                log.warning("readdb: storing a feed batch failed", readdb=what, error=repr(exc),
                            retry_in=round(delay, 2))
                await asyncio.sleep(delay)

    def _corrupt_found(self, exc: CorruptData) -> None:
        if self.on_corrupt is not None:
            self.on_corrupt(exc)

    # --- checkpoints -------------------------------------------------------------------------

    async def force_checkpoint(self, timeout: float = INIT_LOCK_TIMEOUT) -> bool:
        """Sync every WAL to storage and snapshot them now, waiting for the locks."""
        for lock, run in (("synclock", self.sync_job.run_once), ("checkpointlock", self._checkpoint_forced)):
            mutex = self.coord.mutex(lock_key(lock), ttl=self.options.lock_ttl)
            await mutex.lock(timeout=timeout)
            try:
                result = await run()
            finally:
                await mutex.unlock()
        return bool(result)

    async def _checkpoint_forced(self) -> bool:
        return await self.checkpointer.checkpoint(force=True)

    # --- maintenance, export, import ----------------------------------------------------------

    async def enable_maintenance(self) -> None:
        """``BadRequest`` "maintenance mode already enabled" if it is."""
        await enable_maintenance(self.coord)

    async def disable_maintenance(self) -> None:
        """``BadRequest`` "maintenance mode already disabled" if it is."""
        await disable_maintenance(self.coord)

    async def is_maintenance_enabled(self) -> bool:
        return await is_maintenance_enabled(self.coord)

    def maintenance_watcher(self, retry_interval: float = 1.0) -> MaintenanceWatcher:
        return MaintenanceWatcher(self.coord, retry_interval=retry_interval)

    async def export_data(self) -> AsyncIterator[bytes]:
        """Checkpoint everything committed, then stream the snapshot (format in ``exportimport``)."""
        await self.force_checkpoint()
        status = await latest_status(self.ost, self.paths)
        async for chunk in export_stream(self.ost, self.paths, status, self.datatypes):
            yield chunk

    async def import_data(self, stream: AsyncIterable[bytes]) -> int:
        """Replace all data with an export stream (maintenance mode only, else ``BadRequest``);
        returns the number of objects imported.

        Coordination is rebuilt under a new epoch, so every readdb feed resets and resyncs.
        """
        if not await self.is_maintenance_enabled():
            raise BadRequest("not in maintenance mode")
        status, count = await write_import_snapshot(
            self.ost, self.paths, self.datatypes, stream, self.options.max_data_file_size
        )
        await self.init(force=True)
        await delete_storage_wals_upto(self.ost, self.paths, status.wal_sequence)
        return count
