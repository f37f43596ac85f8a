"""Reads (spec §4.5, with quirk 8 of §11.1 fixed): the latest snapshot merged with every WAL still
in coordination that the snapshot does not include, deletes included.

Order of the two reads matters: WALs are listed first, then the latest data status is read. A WAL
leaves coordination only after a snapshot including it was written, so any WAL missing from the
listing is in the status read afterwards, and WALs the status already covers are skipped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from agola.errors import NotExist
from agola.storage.coord.base import Coordination
from agola.storage.datamanager.snapshot import (
    SnapshotCache,
    empty_entries,
    iter_status_entries,
    list_status_seqs,
    merge_entries,
    read_status,
)
from agola.storage.datamanager.types import (
    Action,
    ActionType,
    DataEntry,
    DataStatus,
    Paths,
)
from agola.storage.datamanager.wal import WalReader, list_etcd_wals
from agola.storage.objectstorage.base import ObjectStorage


class Reader:
    def __init__(
        self,
        coord: Coordination,
        ost: ObjectStorage,
        paths: Paths,
        wals: WalReader,
        cache_bytes: int,
    ) -> None:
        self._coord = coord
        self._ost = ost
        self._paths = paths
        self._wals = wals
        self._snapshots = SnapshotCache(ost, paths, cache_bytes)
        self._statuses: dict[str, DataStatus] = {}

    async def _state(self) -> tuple[DataStatus | None, dict[tuple[str, str], Action]]:
        wals, _ = await list_etcd_wals(self._coord)
        status = await self._latest_status()
        covered = status.wal_sequence if status else ""
        changes: dict[tuple[str, str], Action] = {}
        for wal in wals:
            if covered and wal.wal_sequence <= covered:
                continue
            for action in await self._wals.wal_actions(wal):
                changes[(action.data_type, action.id)] = action
        return status, changes

    async def _latest_status(self) -> DataStatus | None:
        """The newest data status; statuses are immutable, so each is read once."""
        for seq in reversed(await list_status_seqs(self._ost, self._paths)):
            status = self._statuses.get(seq)
            if status is None:
                try:
                    status = await read_status(self._ost, self._paths, seq)
                except NotExist:
                    continue  # cleaned between the listing and the read
                self._statuses = {seq: status}  # only the newest is worth keeping
            return status
        return None

    async def read_object(self, datatype: str, id: str) -> bytes:
        status, changes = await self._state()
        action = changes.get((datatype, id))
        if action is not None:
            if action.action_type is ActionType.DELETE:
                raise NotExist(f"{datatype} {id!r} does not exist")
            return action.data
        if status is None:
            raise NotExist(f"{datatype} {id!r} does not exist")
        return await self._snapshots.read(status, datatype, id)

    async def iter_objects(self, datatype: str) -> AsyncIterator[DataEntry]:
        """Every current object of ``datatype`` in id order (snapshot merged with recent WALs)."""
        status, changes = await self._state()
        pending = sorted((id, a) for (dt, id), a in changes.items() if dt == datatype)
        entries = iter_status_entries(self._ost, self._paths, status, datatype) if status else empty_entries()
        async for entry in merge_entries(datatype, entries, pending):
            yield entry
