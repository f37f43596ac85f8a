"""Background work of the datamanager (spec §4.4), one small class per job.

Each job has a ``name``, ``run_once()`` (tests call it directly) and ``lock``, the coordination
mutex (under ``datamanager/locks/``, "" = none) its passes run under. ``DataManager`` runs each
with the shared ``agola.util.loops.LoopRunner``: every ``interval`` seconds or sooner when woken,
under the mutex taken with ``try_lock`` (held elsewhere: the pass is skipped), errors logged and
backed off; only cancellation stops it, so an unreachable etcd or object storage never kills the
process.
"""

from __future__ import annotations

from agola.storage.coord.base import Compare, Coordination, Delete, Get, KeyValue, Op, Put
from agola.storage.datamanager.checkpoint import Checkpointer
from agola.storage.datamanager.guarded import apply_guarded
from agola.storage.datamanager.snapshot import list_status_seqs, read_status
from agola.storage.datamanager.storagewals import delete_storage_wals, encode_segment, segment_name
from agola.storage.datamanager.types import (
    CHANGEGROUPS_MINREV_KEY,
    CHANGEGROUPS_PREFIX,
    LAST_STORAGE_WAL_KEY,
    PING_KEY,
    WALS_PREFIX,
    WALSDATA_KEY,
    DataManagerOptions,
    Paths,
    WalData,
    WalStatus,
    is_checkpointed,
    parse_walsdata,
)
from agola.storage.datamanager.wal import RecentWals, WalReader
from agola.storage.objectstorage.base import ObjectStorage

# WALs per storage segment at most, and its size (one coordination transaction records a
# segment, whatever it holds: 64 per segment made a burst's sync cost twice as much CPU per WAL).
SEGMENT_WALS = 256
SEGMENT_BYTES = 4 << 20


class SyncJob:
    """Write every WAL committed after ``lastcommittedstoragewalseq`` to storage, in order, up to
    ``SEGMENT_WALS`` per segment object, and move ``lastcommittedstoragewalseq`` past them.

    The WAL keys themselves are not rewritten: a WAL up to ``lastcommittedstoragewalseq`` is in
    storage whatever its status says (the checkpoint rewrites each key once, straight to
    ``checkpointed``). Rewriting every key here cost as much as the write itself, and the sync
    runs while the writes go on."""

    name = "sync"
    lock = "synclock"

    def __init__(self, coord: Coordination, ost: ObjectStorage, paths: Paths, wals: WalReader | None = None,
                 recent: RecentWals | None = None) -> None:
        self._coord = coord
        self._ost = ost
        self._paths = paths
        self._wals = wals
        self._recent = recent

    async def run_once(self) -> int:
        res = await self._coord.txn([], [Get(LAST_STORAGE_WAL_KEY), Get(WALSDATA_KEY)])
        stored, walsdata = (r.kvs[0] if r is not None and r.kvs else None for r in res.responses)
        last_stored = stored.value.decode() if stored is not None else ""
        last_committed = parse_walsdata(walsdata.value) if walsdata is not None else ""
        if last_stored and last_stored == last_committed:
            return 0
        todo = self._recent.after(last_stored) if self._recent is not None else None
        if todo is None:
            todo = await self._read_todo(last_stored, last_committed)
        # Each segment's transaction moves the key only if nothing else did since it was read (an
        # init or import rewrites it) and the chunk's last WAL is still the one written.
        guard = (Compare.mod(LAST_STORAGE_WAL_KEY, "==", stored.mod_revision) if stored is not None
                 else Compare.create(LAST_STORAGE_WAL_KEY, "==", 0))
        synced = 0
        for chunk in _chunks(todo):
            # One object (one fsync) for the whole chunk, written strictly after the previous
            # one, so a WAL in storage always means every earlier WAL is there too. Large WALs
            # were written to their own data file before their commit: the segment names it.
            segment = segment_name(chunk[0][1].wal_sequence, chunk[-1][1].wal_sequence)
            # The coordination values go in as they are (their status is not read back).
            path = self._paths.wal_segment(segment)
            await self._ost.write(path, encode_segment([kv.value for kv, _ in chunk]), persist=True)
            if self._wals is not None:
                for _, wal in chunk:
                    if wal.inline_data is not None:
                        self._wals.remember(wal.wal_data_file_id, wal.inline_data, f"{path} ({wal.wal_sequence})")
            last_kv = chunk[-1][0]
            res = await self._coord.txn(
                [guard, Compare.mod(last_kv.key, "==", last_kv.mod_revision)],
                [Put(LAST_STORAGE_WAL_KEY, chunk[-1][1].wal_sequence.encode())],
            )
            if not res.succeeded:
                break  # init/import rewrote coordination: the next round starts over
            guard = Compare.mod(LAST_STORAGE_WAL_KEY, "==", res.revision)
            synced += len(chunk)
        return synced

    async def _read_todo(self, last_stored: str, last_committed: str) -> list[tuple[KeyValue, WalData]]:
        # Every WAL up to the last stored one is in storage, so the WALs to sync sort between it
        # and the last committed one: range only over the prefix they share, not over the
        # thousands of WAL keys a burst leaves in coordination.
        prefix = _shared_prefix(last_stored, last_committed) if last_stored else ""
        rr = await self._coord.range(WALS_PREFIX + prefix)
        # The WALs to sync are a suffix of the list: decode from the end only, down to the last
        # stored one (or to a WAL an earlier version marked stored without moving the key).
        todo: list[tuple[KeyValue, WalData]] = []
        after = WALS_PREFIX + last_stored
        for kv in reversed(rr.kvs):
            if last_stored and kv.key <= after:
                break
            wal = WalData.from_json(kv.value, kv.key)
            if wal.wal_status is not WalStatus.COMMITTED:
                break
            todo.append((kv, wal))
        todo.reverse()
        return todo


def _chunks(todo: list[tuple[KeyValue, WalData]]) -> list[list[tuple[KeyValue, WalData]]]:
    """The WALs to sync cut into segments of ``SEGMENT_WALS`` and about ``SEGMENT_BYTES`` at most."""
    chunks: list[list[tuple[KeyValue, WalData]]] = []
    chunk: list[tuple[KeyValue, WalData]] = []
    size = 0
    for kv, wal in todo:
        if chunk and (len(chunk) >= SEGMENT_WALS or size + len(kv.value) > SEGMENT_BYTES):
            chunks.append(chunk)
            chunk, size = [], 0
        chunk.append((kv, wal))
        size += len(kv.value)
    if chunk:
        chunks.append(chunk)
    return chunks


def _shared_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


class CheckpointJob:
    name = "checkpoint"
    lock = "checkpointlock"

    def __init__(self, checkpointer: Checkpointer) -> None:
        self._checkpointer = checkpointer

    async def run_once(self) -> bool:
        return await self._checkpointer.checkpoint()


class CheckpointCleanJob:
    name = "checkpointclean"
    lock = "checkpointlock"

    def __init__(self, checkpointer: Checkpointer) -> None:
        self._checkpointer = checkpointer

    async def run_once(self) -> int:
        return await self._checkpointer.clean()


class EtcdWalCleanJob:
    """Keep at most ``etcd_wals_keep`` WAL keys, dropping the oldest checkpointed ones."""

    name = "etcdwalcleaner"
    lock = "etcdwalcleanerlock"

    def __init__(self, coord: Coordination, options: DataManagerOptions) -> None:
        self._coord = coord
        self._keep = options.etcd_wals_keep

    async def run_once(self) -> int:
        rr = await self._coord.range(WALS_PREFIX)
        drop: list[tuple[str, int, Op]] = []
        for kv in rr.kvs[: max(0, len(rr.kvs) - self._keep)]:
            if not is_checkpointed(kv.value):
                break
            drop.append((kv.key, kv.mod_revision, Delete(kv.key)))
        return await apply_guarded(self._coord, drop)


class StorageWalCleanJob:
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
        return await delete_storage_wals(self._ost, self._paths, limit, inclusive=False)


class CompactChangeGroupsJob:
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


class PingJob:
    """Keep the revision moving so watchers (and their tokens) stay fresh."""

    name = "ping"
    lock = ""

    def __init__(self, coord: Coordination) -> None:
        self._coord = coord

    async def run_once(self) -> int:
        return await self._coord.put(PING_KEY, b"")
