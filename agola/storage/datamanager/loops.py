"""Background work of the datamanager (spec §4.4), one small class per job.

Each job has ``run_once()`` (tests call it directly) and runs under its own coordination mutex
taken with ``try_lock``: when another instance holds it, this round is skipped. ``LoopRunner``
repeats a job every ``interval`` seconds (or sooner when woken), logs errors and backs off
exponentially; only cancellation stops it, so an unreachable etcd or object storage never kills
the process.
"""

from __future__ import annotations

import abc
import asyncio
import random
from typing import Awaitable, Callable

from agola.errors import NotExist
from agola.storage.coord.base import Compare, Coordination, Delete, Mutex, Put
from agola.storage.datamanager.checkpoint import Checkpointer
from agola.storage.datamanager.snapshot import (
    list_status_seqs,
    list_storage_wal_seqs,
    read_status,
    read_wal_header,
)
from agola.storage.datamanager.types import (
    CHANGEGROUPS_MINREV_KEY,
    CHANGEGROUPS_PREFIX,
    LAST_STORAGE_WAL_KEY,
    PING_KEY,
    WALS_PREFIX,
    DataManagerOptions,
    Paths,
    WalData,
    WalHeader,
    WalStatus,
    lock_key,
)
from agola.storage.objectstorage.base import ObjectStorage
from agola.util.log import get_logger

log = get_logger(__name__)

# Inline WAL data files the sync job writes at once.
SYNC_PARALLEL = 16


class Job(abc.ABC):
    name: str = ""
    # Lock name under datamanager/locks/ ("" = no lock).
    lock: str = ""

    @abc.abstractmethod
    async def run_once(self) -> object: ...


async def run_locked(coord: Coordination, mutexes: dict[str, Mutex], job: Job, ttl: float) -> bool:
    """Run ``job`` once if its lock is free; False when another instance holds it.

    ``mutexes`` caches one idle mutex (and so one session) per job between rounds; a caller running
    the same job while a round is in flight gets a mutex of its own.
    """
    if not job.lock:
        await job.run_once()
        return True
    mutex = mutexes.pop(job.name, None) or coord.mutex(lock_key(job.lock), ttl=ttl)
    try:
        if not await mutex.try_lock():
            return False
        try:
            await job.run_once()
        finally:
            await mutex.unlock()
    finally:
        mutexes.setdefault(job.name, mutex)
    return True


class LoopRunner:
    """Runs one job forever: every ``interval`` seconds or when ``wake()`` is called."""

    def __init__(
        self,
        job: Job,
        interval: float,
        run: Callable[[Job], Awaitable[bool]],
        max_backoff: float,
    ) -> None:
        self.job = job
        self.interval = interval
        self._run = run
        self._max_backoff = max_backoff
        self._wake = asyncio.Event()
        self.errors = 0

    def wake(self) -> None:
        self._wake.set()

    async def loop(self) -> None:
        failures = 0
        while True:
            self._wake.clear()
            try:
                await self._run(self.job)
                failures = 0
                delay = self.interval
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the loop must survive any failure
                failures += 1
                self.errors += 1
                delay = min(self._max_backoff, self.interval * 2 ** min(failures, 10))
                delay *= random.uniform(0.8, 1.2)
                log.warning(
                    "datamanager job failed", job=self.job.name, error=repr(exc), retry_in=round(delay, 2)
                )
            await self._sleep(delay)

    async def _sleep(self, delay: float) -> None:
        """Wait ``delay`` seconds or until woken. Not ``asyncio.wait_for``: on Python 3.11 a
        cancellation racing its timeout comes out as ``TimeoutError`` and would be lost."""
        waiter = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({waiter}, timeout=delay)
        finally:
            waiter.cancel()


class SyncJob(Job):
    """Write the storage header of every ``committed`` WAL, in order; mark it ``committed_storage``."""

    name = "sync"
    lock = "synclock"

    def __init__(self, coord: Coordination, ost: ObjectStorage, paths: Paths) -> None:
        self._coord = coord
        self._ost = ost
        self._paths = paths

    async def run_once(self) -> int:
        rr = await self._coord.range(WALS_PREFIX)
        todo = [(kv, WalData.from_json(kv.value, kv.key)) for kv in rr.kvs]
        todo = [(kv, wal) for kv, wal in todo if wal.wal_status is WalStatus.COMMITTED]
        synced = 0
        for i in range(0, len(todo), SYNC_PARALLEL):
            chunk = todo[i : i + SYNC_PARALLEL]
            # Data files first (in parallel: nothing lists them), then headers strictly in order,
            # so a header in storage always means its data and every earlier WAL are there too.
            await asyncio.gather(
                *(
                    self._ost.write(self._paths.wal_data(wal.wal_data_file_id), wal.inline_data, persist=True)
                    for _, wal in chunk
                    if wal.inline_data is not None
                )
            )
            for _, wal in chunk:
                header = WalHeader(wal.wal_data_file_id, wal.previous_wal_sequence)
                await self._ost.write(self._paths.wal_header(wal.wal_sequence), header.to_json(), persist=True)
            # One transaction marks the whole chunk: far fewer commits under a write burst.
            res = await self._coord.txn(
                [Compare.mod(kv.key, "==", kv.mod_revision) for kv, _ in chunk],
                [Put(kv.key, wal.stored().to_json()) for kv, wal in chunk]
                + [Put(LAST_STORAGE_WAL_KEY, chunk[-1][1].wal_sequence.encode())],
            )
            if not res.succeeded:
                break  # a WAL moved under us (init/import): next round starts over
            synced += len(chunk)
        return synced


class CheckpointJob(Job):
    name = "checkpoint"
    lock = "checkpointlock"

    def __init__(self, checkpointer: Checkpointer) -> None:
        self._checkpointer = checkpointer

    async def run_once(self) -> bool:
        return await self._checkpointer.checkpoint()


class CheckpointCleanJob(Job):
    name = "checkpointclean"
    lock = "checkpointlock"

    def __init__(self, checkpointer: Checkpointer) -> None:
        self._checkpointer = checkpointer

    async def run_once(self) -> int:
        return await self._checkpointer.clean()


class EtcdWalCleanJob(Job):
    """Keep at most ``etcd_wals_keep`` WAL keys, dropping the oldest checkpointed ones."""

    name = "etcdwalcleaner"
    lock = "etcdwalcleanerlock"

    def __init__(self, coord: Coordination, options: DataManagerOptions) -> None:
        self._coord = coord
        self._keep = options.etcd_wals_keep

    async def run_once(self) -> int:
        rr = await self._coord.range(WALS_PREFIX)
        deleted = 0
        for kv in rr.kvs[: max(0, len(rr.kvs) - self._keep)]:
            wal = WalData.from_json(kv.value, kv.key)
            if wal.wal_status is not WalStatus.CHECKPOINTED:
                break
            res = await self._coord.txn([Compare.mod(kv.key, "==", kv.mod_revision)], [Delete(kv.key)])
            deleted += int(res.succeeded)
        return deleted


class StorageWalCleanJob(Job):
    """Delete storage WALs older than both the oldest kept snapshot and the oldest etcd WAL."""

    name = "storagewalcleaner"
    lock = "storagewalcleanerlock"

    def __init__(self, coord: Coordination, ost: ObjectStorage, paths: Paths) -> None:
        self._coord = coord
        self._ost = ost
        self._paths = paths

    async def run_once(self) -> int:
        statuses = await list_status_seqs(self._ost, self._paths)
        if not statuses:
            return 0
        limit = (await read_status(self._ost, self._paths, statuses[0])).wal_sequence
        first = await self._coord.range(WALS_PREFIX, limit=1)
        if first.kvs:
            limit = min(limit, first.kvs[0].key[len(WALS_PREFIX) :])
        if not limit:
            return 0
        deleted = 0
        for seq in await list_storage_wal_seqs(self._ost, self._paths):
            if seq >= limit:
                break
            try:
                header = await read_wal_header(self._ost, self._paths, seq)
                await self._ost.delete(self._paths.wal_data(header.wal_data_file_id))
            except NotExist:
                pass
            await self._ost.delete(self._paths.wal_header(seq))
            deleted += 1
        return deleted


class CompactChangeGroupsJob(Job):
    """Advance ``changegroupsminrev`` and drop change group keys far behind it (spec §4.4)."""

    name = "compactchangegroups"
    lock = "compactchangegroupslock"

    def __init__(self, coord: Coordination, options: DataManagerOptions) -> None:
        self._coord = coord
        self._range = options.change_group_compact_range

    async def run_once(self) -> int:
        kv = await self._coord.get(CHANGEGROUPS_MINREV_KEY)
        guard = Compare.mod(CHANGEGROUPS_MINREV_KEY, "==", kv.mod_revision) if kv else Compare.create(
            CHANGEGROUPS_MINREV_KEY, "==", 0
        )
        res = await self._coord.txn([guard], [Put(CHANGEGROUPS_MINREV_KEY, b"")])
        if not res.succeeded:
            return 0
        min_rev = res.revision - self._range
        deleted = 0
        for cg in (await self._coord.range(CHANGEGROUPS_PREFIX)).kvs:
            if cg.mod_revision < min_rev:
                r = await self._coord.txn([Compare.mod(cg.key, "==", cg.mod_revision)], [Delete(cg.key)])
                deleted += int(r.succeeded)
        return deleted


class PingJob(Job):
    """Keep the revision moving so watchers (and their tokens) stay fresh."""

    name = "ping"
    lock = ""

    def __init__(self, coord: Coordination) -> None:
        self._coord = coord

    async def run_once(self) -> int:
        return await self._coord.put(PING_KEY, b"")
