"""The readdb feed (spec §4.7): everything a service's local readdb needs to mirror the datamanager.

Contract
--------
A consumer (the configstore or runservice readdb) keeps, in its own database, the datamanager
objects it projects plus four bookkeeping values: ``wal_sequence`` (str), ``revision`` (int),
a table of change group revisions (name -> int), and nothing else. It runs::

    state = load wal_sequence from sqlite ("" when the database is new)
    async for batch in dm.feed(state):
        async with one sqlite transaction:
            if batch.reset:                 wipe every projected row AND every change group row
            for action in batch.actions:    put -> upsert (data_type, id, data); delete -> delete if present
            if batch.change_groups_reset:   delete every change group row
            for name, rev in batch.change_groups.items():
                                            rev == 0 -> delete the row, else upsert it
            store batch.wal_sequence and batch.revision (always, verbatim)
        if batch.synced: the readdb is caught up and may serve reads

Apply each batch atomically and persist its ``wal_sequence`` in the same transaction: after a
crash, ``feed(saved wal_sequence)`` continues exactly where the database stopped. The feed never
skips, duplicates or reorders a WAL for a consumer that follows this contract.

How it proceeds (and what the batches look like):

1. *Full sync* when ``wal_sequence`` is empty, belongs to another epoch than the latest storage
   WAL (coordination wiped, or data imported), or is unknown to both storage and coordination:
   the latest snapshot is sent as puts, the first batch with ``reset=True``. Batches of a full
   sync carry ``wal_sequence=""`` (incomplete: a crash in the middle restarts the full sync) except
   the last one, which carries the snapshot's WAL sequence.
2. Storage WALs after that sequence, in order, a few per batch.
3. The WALs still in coordination, read at one revision R, then a batch with ``revision=R``,
   every change group (``change_groups_reset=True``) and ``synced=True``.
4. Then it follows the coordination watch from R+1: one batch per burst of events, each with the
   new WAL actions, changed change groups and the revision reached (``synced=True``). Pings keep
   the revision moving even when nothing is written.

``revision`` is 0 until step 3. A consumer builds change group update tokens from its database
(``token_from(revision, stored revisions, names)``) inside the read transaction whose data it
validates, so a write succeeds only if nobody touched those groups since the data it read.

When the epoch changes or the WAL chain breaks (import, wiped coordination, a WAL whose
predecessor is not the last one applied) the feed starts over at step 1 with the consumer's last
``wal_sequence``, so the consumer sees ``reset=True`` when it must. Errors are retried with
backoff; the iterator only ends when the consumer stops iterating (``aclose()`` or ``break``).
Real errors (coordination or storage unreachable) are logged as warnings; the expected states are
not: a datamanager not initialised yet (info once, then debug, for ``INIT_GRACE`` seconds) and a
coordination closed under the feed while the process stops (debug).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable

import attrs

from agola.errors import NotExist
from agola.storage.coord.base import Closed, Compacted, Coordination, Event, KeyValue
from agola.storage.datamanager.snapshot import iter_status_entries, latest_status
from agola.storage.datamanager.storagewals import has_storage_wal, iter_storage_wals
from agola.storage.datamanager.types import (
    CHANGEGROUPS_PREFIX,
    DM,
    LAST_STORAGE_WAL_KEY,
    WALS_PREFIX,
    WALSDATA_KEY,
    Action,
    ChangeGroupsUpdateToken,
    CorruptData,
    NoDataStatus,
    NotInitialized,
    Paths,
    WalData,
    seq_epoch,
)
from agola.storage.datamanager.wal import WalReader
from agola.storage.objectstorage.base import ObjectStorage
from agola.util.log import get_logger

log = get_logger(__name__)

SNAPSHOT_BATCH = 500
WAL_BATCH_ACTIONS = 1000
WATCH_BATCH_EVENTS = 1000
# How long "not initialised" / "no snapshot yet" is an expected state rather than an error: the
# first init creates walsdata, then its checkpoint writes the first snapshot, well within this.
INIT_GRACE = 5.0


@attrs.frozen
class FeedBatch:
    """One unit of work for the consumer: apply it in one transaction (see module docstring)."""

    actions: list[Action]
    wal_sequence: str
    revision: int = 0
    reset: bool = False
    change_groups: dict[str, int] = attrs.field(factory=dict)
    change_groups_reset: bool = False
    synced: bool = False


def token_from(revision: int, change_groups: dict[str, int], names: list[str]) -> ChangeGroupsUpdateToken:
    """The update token a consumer hands to writers, from its stored revision and groups."""
    return ChangeGroupsUpdateToken(revision, {name: change_groups.get(name, 0) for name in names})


class _Resync(Exception):
    """Start over from the consumer's last applied sequence (full sync if it must)."""


class Feed:
    def __init__(
        self,
        coord: Coordination,
        ost: ObjectStorage,
        paths: Paths,
        datatypes: list[str],
        wals: WalReader,
        max_backoff: float = 10.0,
        on_corrupt: Callable[[CorruptData], None] | None = None,
    ) -> None:
        self._on_corrupt = on_corrupt
        self._coord = coord
        self._ost = ost
        self._paths = paths
        self._datatypes = datatypes
        self._wals = wals
        self._max_backoff = max_backoff

    async def follow(self, wal_sequence: str) -> AsyncGenerator[FeedBatch, None]:
        cur = wal_sequence
        delay = 0.05
        streak = 0  # resyncs in a row without a batch delivered in between
        waiting_since: float | None = None  # when the current run of "not initialised" began
        while True:
            try:
                async for batch in self._run(cur):
                    yield batch
                    cur = batch.wal_sequence
                    delay, streak, waiting_since = 0.05, 0, None
            except _Resync as exc:
                streak += 1
                log.info("readdb feed resync", reason=str(exc), wal_sequence=cur)
                if streak > 1:  # no progress: do not spin
                    await asyncio.sleep(delay)
                    delay = min(self._max_backoff, delay * 2)
            except CorruptData as exc:
                # Not an outage: waiting will not fix it. Said once per retry, at error level,
                # naming the object; the owner decides (a stateful role stops).
                log.error("readdb feed: corrupt datamanager object", path=exc.path, reason=exc.reason)
                if self._on_corrupt is not None:
                    self._on_corrupt(exc)
                await asyncio.sleep(self._max_backoff)
            except Exception as exc:  # noqa: BLE001 - a feed outlives any outage
                now = time.monotonic()
                if isinstance(exc, (NotInitialized, NoDataStatus)) and (
                    waiting_since is None or now - waiting_since < INIT_GRACE
                ):
                    # Expected while the datamanager initialises (a readdb starts with it). Past
                    # the grace it is a warning: storage lost its snapshots, or is unreadable.
                    level = log.info if waiting_since is None else log.debug
                    level("readdb feed waiting for the datamanager to be initialised", reason=str(exc))
                    waiting_since = now if waiting_since is None else waiting_since
                elif isinstance(exc, Closed):
                    # Coordination closed under a feed still running: the process is stopping.
                    log.debug("readdb feed: coordination closed", error=str(exc))
                else:
                    log.warning("readdb feed error", error=repr(exc), retry_in=round(delay, 2))
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(self._max_backoff, delay * 2)

    async def _needs_full(self, cur: str, etcd_seqs: set[str]) -> bool:
        if not cur:
            return True
        kv = await self._coord.get(LAST_STORAGE_WAL_KEY)
        last_storage = kv.value.decode() if kv else ""
        if seq_epoch(cur) != seq_epoch(last_storage):
            return True
        if cur in etcd_seqs:
            return False
        return not await has_storage_wal(self._ost, self._paths, cur)

    async def _run(self, cur: str) -> AsyncIterator[FeedBatch]:
        if await self._coord.get(WALSDATA_KEY) is None:
            raise NotInitialized()
        etcd_seqs = {kv.key[len(WALS_PREFIX) :] for kv in (await self._coord.range(WALS_PREFIX)).kvs}
        if await self._needs_full(cur, etcd_seqs):
            async for batch in self._snapshot():
                yield batch
                cur = batch.wal_sequence
        if cur not in etcd_seqs:
            async for batch in self._storage_wals(cur):
                yield batch
                cur = batch.wal_sequence
        rr = await self._coord.range(DM)
        async for batch in self._etcd_wals(cur, rr.kvs, rr.revision):
            yield batch
            cur = batch.wal_sequence
        async for batch in self._watch(cur, rr.revision):
            yield batch

    async def _snapshot(self) -> AsyncIterator[FeedBatch]:
        status = await latest_status(self._ost, self._paths)
        if status is None:
            raise NoDataStatus()
        reset = True
        for dt in list(dict.fromkeys([*self._datatypes, *status.files])):
            chunk: list[Action] = []
            async for entry in iter_status_entries(self._ost, self._paths, status, dt):
                chunk.append(Action.put(dt, entry.id, entry.data))
                if len(chunk) >= SNAPSHOT_BATCH:
                    yield FeedBatch(chunk, "", reset=reset)
                    chunk, reset = [], False
            if chunk:
                yield FeedBatch(chunk, "", reset=reset)
                reset = False
        yield FeedBatch([], status.wal_sequence, reset=reset)

    async def _storage_wals(self, cur: str) -> AsyncIterator[FeedBatch]:
        actions: list[Action] = []
        wals = aiter(iter_storage_wals(self._ost, self._paths, start_after=cur))
        while True:
            try:
                wal = await anext(wals)
                if cur and wal.previous_wal_sequence != cur:
                    raise CorruptData(
                        self._paths.wal_status_dir,
                        f"wal {wal.wal_sequence}: previous wal sequence {wal.previous_wal_sequence!r}, "
                        f"expected {cur!r}",
                    )
                actions.extend(await self._wals.storage_wal_actions(wal))
            except StopAsyncIteration:
                break
            except NotExist:
                raise _Resync("storage wals cleaned while reading") from None
            cur = wal.wal_sequence
            if len(actions) >= WAL_BATCH_ACTIONS:
                yield FeedBatch(actions, cur)
                actions = []
        if actions:
            yield FeedBatch(actions, cur)

    async def _etcd_wals(self, cur: str, kvs: list[KeyValue], revision: int) -> AsyncIterator[FeedBatch]:
        actions: list[Action] = []
        groups: dict[str, int] = {}
        for kv in kvs:
            if kv.key.startswith(CHANGEGROUPS_PREFIX):
                groups[kv.key[len(CHANGEGROUPS_PREFIX) :]] = kv.mod_revision
            elif kv.key.startswith(WALS_PREFIX):
                wal = WalData.from_json(kv.value, kv.key)
                if cur and wal.wal_sequence <= cur:
                    continue
                if cur and wal.previous_wal_sequence != cur:
                    raise _Resync(f"wal {wal.wal_sequence} follows {wal.previous_wal_sequence}, not {cur}")
                actions.extend(await self._wals.wal_actions(wal))
                cur = wal.wal_sequence
        yield FeedBatch(actions, cur, revision, change_groups=groups, change_groups_reset=True, synced=True)

    async def _watch(self, cur: str, revision: int) -> AsyncIterator[FeedBatch]:
        queue: asyncio.Queue[Event | BaseException | None] = asyncio.Queue(maxsize=WATCH_BATCH_EVENTS * 10)
        pump = asyncio.create_task(self._pump(revision + 1, queue), name="datamanager-feed-watch")
        try:
            while True:
                events = [await queue.get()]
                while not queue.empty() and len(events) < WATCH_BATCH_EVENTS:
                    events.append(queue.get_nowait())
                actions: list[Action] = []
                groups: dict[str, int] = {}
                for ev in events:
                    if ev is None:
                        raise _Resync("watch ended")
                    if isinstance(ev, Compacted):
                        raise _Resync("watch compacted")
                    if isinstance(ev, BaseException):
                        raise ev
                    cur = await self._apply_event(ev, cur, actions, groups)
                    revision = max(revision, ev.revision)
                yield FeedBatch(actions, cur, revision, change_groups=groups, synced=True)
        finally:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)

    async def _apply_event(self, ev: Event, cur: str, actions: list[Action], groups: dict[str, int]) -> str:
        key = ev.kv.key
        if key.startswith(CHANGEGROUPS_PREFIX):
            groups[key[len(CHANGEGROUPS_PREFIX) :]] = ev.kv.mod_revision if ev.type == "put" else 0
        elif key == WALSDATA_KEY and ev.type == "delete":
            raise _Resync("walsdata deleted (coordination reset)")
        elif key.startswith(WALS_PREFIX) and ev.type == "put":
            wal = WalData.from_json(ev.kv.value, key)
            if cur and wal.wal_sequence <= cur:
                return cur  # a status change, or a WAL re-inserted by init
            if cur and seq_epoch(wal.wal_sequence) != seq_epoch(cur):
                raise _Resync(f"new epoch at wal {wal.wal_sequence}")
            if cur and wal.previous_wal_sequence != cur:
                raise _Resync(f"wal {wal.wal_sequence} follows {wal.previous_wal_sequence}, not {cur}")
            actions.extend(await self._wals.wal_actions(wal))
            return wal.wal_sequence
        return cur

    async def _pump(self, start: int, queue: asyncio.Queue[Event | BaseException | None]) -> None:
        try:
            async with self._coord.watch(DM, start_revision=start) as watcher:
                async for ev in watcher:
                    await queue.put(ev)
            await queue.put(None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - handed to the feed, which resyncs
            await queue.put(exc)
