"""A readdb stand-in that follows the feed contract (dicts instead of sqlite)."""

from __future__ import annotations

import asyncio

from agola.storage.datamanager import ActionType, DataManager, FeedBatch


class Mirror:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.groups: dict[str, int] = {}
        self.wal_sequence = ""
        self.revision = 0
        self.synced = False
        self.resets = 0
        self.batches = 0
        self._task: asyncio.Task[None] | None = None

    def apply(self, batch: FeedBatch) -> None:
        if batch.reset:
            self.objects.clear()
            self.groups.clear()
            self.resets += 1
        for a in batch.actions:
            if a.action_type is ActionType.PUT:
                self.objects[(a.data_type, a.id)] = a.data
            else:
                self.objects.pop((a.data_type, a.id), None)
        if batch.change_groups_reset:
            self.groups.clear()
        for name, rev in batch.change_groups.items():
            if rev:
                self.groups[name] = rev
            else:
                self.groups.pop(name, None)
        self.wal_sequence = batch.wal_sequence
        self.revision = batch.revision
        self.synced = batch.synced
        self.batches += 1

    def start(self, dm: DataManager) -> None:
        async def run() -> None:
            async for batch in dm.feed(self.wal_sequence):
                self.apply(batch)

        self._task = asyncio.create_task(run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self.synced = False

    def of(self, datatype: str) -> dict[str, bytes]:
        return {id: data for (dt, id), data in self.objects.items() if dt == datatype}
