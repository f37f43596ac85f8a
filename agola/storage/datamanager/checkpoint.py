"""Checkpoints (spec §4.4): fold WALs already in storage into a new snapshot, and clean old ones.

A checkpoint rewrites only the data files whose id range the new actions touch; untouched files
are referenced again by the new data status. Data files, indexes and the status are written in
that order, each atomically, so a crash at any point leaves the previous status complete; the
WAL keys are marked ``checkpointed`` only after the status is durable.
"""

from __future__ import annotations

import time

from agola.errors import NotExist
from agola.storage.coord.base import Coordination, Get, Op, Put
from agola.storage.coord.sequence import next_sequence
from agola.storage.datamanager.guarded import apply_guarded
from agola.storage.datamanager.snapshot import (
    DataFileWriter,
    empty_entries,
    iter_data_file,
    latest_status,
    list_status_seqs,
    merge_entries,
    read_status,
)
from agola.storage.datamanager.storagewals import SEGMENT_SUFFIX, last_storage_wal_seq, list_storage_wal_objects
from agola.storage.datamanager.types import (
    CHECKPOINTSEQ_KEY,
    LAST_STORAGE_WAL_KEY,
    WALS_PREFIX,
    Action,
    DataFileRef,
    DataManagerOptions,
    DataStatus,
    Paths,
    WalData,
    WalStatus,
    data_seq_of_file,
    is_checkpointed,
    seq_epoch,
)
from agola.storage.datamanager.wal import WalReader
from agola.storage.objectstorage.base import ObjectStorage
from agola.util.log import get_logger

log = get_logger(__name__)


async def fresh_epoch(ost: ObjectStorage, paths: Paths) -> int:
    """An epoch greater than any sequence found in storage (so a reset is always visible)."""
    epoch = int(time.time())
    status = await latest_status(ost, paths)
    if status is not None:
        epoch = max(epoch, seq_epoch(status.data_sequence) + 1, seq_epoch(status.wal_sequence) + 1)
    last_wal = await last_storage_wal_seq(ost, paths)
    if last_wal:
        epoch = max(epoch, seq_epoch(last_wal) + 1)
    return epoch


class Checkpointer:
    def __init__(
        self,
        coord: Coordination,
        ost: ObjectStorage,
        paths: Paths,
        datatypes: list[str],
        wals: WalReader,
        options: DataManagerOptions,
    ) -> None:
        self._coord = coord
        self._ost = ost
        self._paths = paths
        self._datatypes = datatypes
        self._wals = wals
        self._options = options

    async def checkpoint(self, force: bool = False) -> bool:
        """Snapshot the WALs committed to storage; True if a new data status was written."""
        # One read for both: every WAL up to lastcommittedstoragewalseq is in storage (the sync
        # job moves that key, not the WAL keys); an earlier version marked each key instead.
        res = await self._coord.txn([], [Get(WALS_PREFIX, prefix=True), Get(LAST_STORAGE_WAL_KEY)])
        rr, stored_rr = res.responses
        stored = stored_rr.kvs[0].value.decode() if stored_rr is not None and stored_rr.kvs else ""
        todo: list[tuple[int, WalData]] = []
        for kv in rr.kvs if rr is not None else []:
            if is_checkpointed(kv.value):
                continue
            wal = WalData.from_json(kv.value, kv.key)
            if wal.wal_status is WalStatus.COMMITTED and not (stored and wal.wal_sequence <= stored):
                break  # not in storage yet: later WALs must wait for it
            todo.append((kv.mod_revision, wal))
        if not todo or (len(todo) < self._options.min_checkpoint_wals and not force):
            return False
        status = await latest_status(self._ost, self._paths)
        covered = status.wal_sequence if status else ""
        fresh = [wal for _, wal in todo if not covered or wal.wal_sequence > covered]
        written = False
        if fresh:
            await self._write_snapshot(status, fresh)
            written = True
        segments = await self._segments([wal for _, wal in todo if wal.inline_data is not None])
        updates: list[tuple[str, int, Op]] = []
        for mod, wal in todo:
            segment = segments.get(wal.wal_sequence, "")
            # A WAL still holding its actions gives them up for the segment that has them (kept
            # if none is found: a store written by hand, say).
            done = (wal.stored(segment, WalStatus.CHECKPOINTED) if segment or wal.inline_data is None
                    else wal.with_status(WalStatus.CHECKPOINTED))
            updates.append((WALS_PREFIX + wal.wal_sequence, mod, Put(WALS_PREFIX + wal.wal_sequence, done.to_json())))
        await apply_guarded(self._coord, updates)
        return written

    async def _segments(self, wals: list[WalData]) -> dict[str, str]:
        """The storage segment holding each of these WALs (in order), by sequence."""
        if not wals:
            return {}
        found: dict[str, str] = {}
        objects = await list_storage_wal_objects(self._ost, self._paths, wals[0].previous_wal_sequence)
        i = 0
        for obj in objects:
            while i < len(wals) and wals[i].wal_sequence < obj.first:
                i += 1  # in no object (found by an earlier, overlapping one, or missing)
            while i < len(wals) and wals[i].wal_sequence <= obj.last:
                if obj.is_segment:
                    found.setdefault(wals[i].wal_sequence, obj.name[: -len(SEGMENT_SUFFIX)])
                i += 1
            if i >= len(wals):
                break
        return found

    async def _write_snapshot(self, status: DataStatus | None, wals: list[WalData]) -> DataStatus:
        data_seq = str(await next_sequence(self._coord, CHECKPOINTSEQ_KEY))
        changes: dict[str, dict[str, Action]] = {}
        for wal in wals:
            for action in await self._wals.wal_actions(wal):
                changes.setdefault(action.data_type, {})[action.id] = action
        old_files = status.files if status else {}
        files: dict[str, list[DataFileRef]] = {}
        for dt in list(dict.fromkeys([*self._datatypes, *old_files, *changes])):
            refs = old_files.get(dt, [])
            actions = sorted(changes.get(dt, {}).items())
            files[dt] = await self._merge_datatype(dt, data_seq, refs, actions) if actions else list(refs)
            if not files[dt]:
                del files[dt]
        new_status = DataStatus(data_seq, wals[-1].wal_sequence, files)
        await self._ost.write(self._paths.data_status(data_seq), new_status.to_json(), persist=True)
        log.debug("checkpoint written", data_sequence=data_seq, wal_sequence=new_status.wal_sequence)
        return new_status

    async def _merge_datatype(
        self, dt: str, data_seq: str, refs: list[DataFileRef], actions: list[tuple[str, Action]]
    ) -> list[DataFileRef]:
        writer = DataFileWriter(self._ost, self._paths, dt, data_seq, self._options.max_data_file_size)
        i = 0
        for n, ref in enumerate(refs):
            last = n == len(refs) - 1
            j = i
            while j < len(actions) and (last or actions[j][0] <= ref.last_entry_id):
                j += 1
            if j == i:
                await writer.flush()
                writer.keep(ref)
                continue
            entries = iter_data_file(self._ost, self._paths.data_file(dt, ref.id))
            async for entry in merge_entries(dt, entries, actions[i:j]):
                await writer.add(entry)
            i = j
        async for entry in merge_entries(dt, empty_entries(), actions[i:]):
            await writer.add(entry)
        await writer.flush()
        return writer.refs

    async def clean(self) -> int:
        """Keep the newest data statuses; delete older ones and files none of the kept reference."""
        seqs = await list_status_seqs(self._ost, self._paths)
        if not seqs:
            return 0
        keep = seqs[-self._options.keep_data_statuses :]
        referenced: set[str] = set()
        for seq in keep:
            referenced |= (await read_status(self._ost, self._paths, seq)).file_ids()
        deleted = 0
        for seq in seqs[: -self._options.keep_data_statuses]:
            deleted += await _delete_quietly(self._ost, self._paths.data_status(seq))
        newest = seqs[-1]
        async for info in self._ost.list(self._paths.data_dir, recursive=True):
            rel = info.path[len(self._paths.data_dir) :]
            if "/" not in rel:
                continue
            name = rel.rsplit("/", 1)[1]
            file_id = name.rsplit(".", 1)[0]
            # Files newer than the newest status may belong to a checkpoint running right now.
            if file_id not in referenced and data_seq_of_file(file_id) <= newest:
                deleted += await _delete_quietly(self._ost, info.path)
        return deleted


async def _delete_quietly(ost: ObjectStorage, path: str) -> int:
    try:
        await ost.delete(path)
    except NotExist:
        return 0
    return 1
