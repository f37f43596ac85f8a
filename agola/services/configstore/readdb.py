"""The configstore readdb: every configstore object, mirrored from the datamanager's feed into an
in-memory ``ConfigState`` (spec §4.7, §5.3).

It follows ``DataManager.feed`` and keeps the feed's bookkeeping (applied WAL sequence, revision,
change group revisions), from which it hands out the change-group update tokens that guard writes
(``token()``): a write made from a stale view fails on its change groups instead of overwriting.

Queries are answered from memory: configuration data is small (users, orgs, projects, secrets),
every operation needs tree walks and indexes that are simplest as dicts, and an operation must
read its state and take its token without awaiting in between, which a synchronous in-memory
view gives for free. Given a ``db_path``, every batch is also persisted to sqlite (one
transaction per batch, with its WAL sequence, as the feed contract asks) and loaded back on start,
so a restarted instance continues from where it stopped instead of resyncing from the snapshot.

A full resync (first start, import, wiped coordination) is loaded into a staging state and swapped
in when complete, so readers never see a half-loaded installation.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from agola.errors import Unavailable
from agola.services.configstore.state import ConfigState
from agola.storage.datamanager import ActionType, ChangeGroupsUpdateToken, DataManager, FeedBatch
from agola.storage.datamanager.feed import token_from
from agola.storage.readdb import ReadDB
from agola.util.aio import cancel_and_wait
from agola.util.log import get_logger

log = get_logger(__name__)

DEFAULT_WAIT = 30.0
RESYNC_LOG = "configstore readdb resyncing from the datamanager snapshot"

MIGRATIONS = [
    """
    CREATE TABLE object (datatype TEXT NOT NULL, id TEXT NOT NULL, data BLOB NOT NULL,
                         PRIMARY KEY (datatype, id));
    CREATE TABLE changegroup (name TEXT PRIMARY KEY, revision INTEGER NOT NULL);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
]


class ConfigReadDB:
    def __init__(self, dm: DataManager, db_path: str | os.PathLike[str] | None = None) -> None:
        self.dm = dm
        self.db_path = db_path
        self._db: ReadDB | None = None
        self._state = ConfigState()
        self._groups: dict[str, int] = {}
        self._staging: tuple[ConfigState, dict[str, int]] | None = None
        self.wal_sequence = ""
        self.revision = 0
        self._synced = False
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------------------------------
    # lifecycle

    async def start(self) -> None:
        """Load the persisted state (if any), then follow the datamanager in the background."""
        if self._task is not None:
            return
        if self.db_path is not None and self._db is None:
            self._db = await ReadDB.open(self.db_path, MIGRATIONS)
            await self._load()
        self._task = asyncio.create_task(self._follow(), name="configstore-readdb")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait([task])
        self._synced = False
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def _follow(self) -> None:
        async def start() -> str:
            return self.wal_sequence  # the last batch applied (and stored)

        await self.dm.mirror(start, self._store, "configstore")

    async def _store(self, batch: FeedBatch) -> None:
        if self._db is not None:
            await self._persist(batch)
        self.apply(batch)
        async with self._changed:
            self._changed.notify_all()

    async def _load(self) -> None:
        assert self._db is not None
        state = ConfigState()
        for row in await self._db.fetchall("SELECT datatype, id, data FROM object"):
            try:
                state.apply(row["datatype"], row["id"], bytes(row["data"]))
            except Exception as exc:  # noqa: BLE001 - same policy as for the feed
                log.warning("readdb: undecodable stored object skipped", id=row["id"], error=repr(exc))
        groups = {r["name"]: int(r["revision"]) for r in await self._db.fetchall("SELECT name, revision FROM changegroup")}
        meta = {r["key"]: r["value"] for r in await self._db.fetchall("SELECT key, value FROM meta")}
        self._state, self._groups = state, groups
        self.wal_sequence = meta.get("wal_sequence", "")
        self.revision = int(meta.get("revision", "0"))
        log.info("configstore readdb loaded", objects=sum(state.count(dt) for dt in ("user", "org", "project")),
                 wal_sequence=self.wal_sequence)

    async def _persist(self, batch: FeedBatch) -> None:
        assert self._db is not None
        async with self._db.write() as tx:
            if batch.reset:
                await tx.execute("DELETE FROM object")
                await tx.execute("DELETE FROM changegroup")
            for action in batch.actions:
                if action.action_type is ActionType.PUT:
                    await tx.execute(
                        "INSERT OR REPLACE INTO object (datatype, id, data) VALUES (?, ?, ?)",
                        (action.data_type, action.id, action.data),
                    )
                else:
                    await tx.execute("DELETE FROM object WHERE datatype = ? AND id = ?", (action.data_type, action.id))
            if batch.change_groups_reset:
                await tx.execute("DELETE FROM changegroup")
            for name, rev in batch.change_groups.items():
                if rev:
                    await tx.execute("INSERT OR REPLACE INTO changegroup (name, revision) VALUES (?, ?)", (name, rev))
                else:
                    await tx.execute("DELETE FROM changegroup WHERE name = ?", (name,))
            for key, value in (("wal_sequence", batch.wal_sequence), ("revision", str(batch.revision))):
                await tx.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # ------------------------------------------------------------------------------------------
    # applying the feed (synchronous: a batch is applied atomically for every reader)

    def apply(self, batch: FeedBatch) -> None:
        if batch.reset:
            # Worth a line: a full resync reads every object from storage (first start, import).
            log.info(RESYNC_LOG, wal_sequence=batch.wal_sequence)
            self._staging = (ConfigState(), {})
            self._synced = False
        state, groups = self._staging if self._staging is not None else (self._state, self._groups)
        for action in batch.actions:
            if action.action_type is ActionType.PUT:
                try:
                    state.apply(action.data_type, action.id, action.data)
                except Exception as exc:  # noqa: BLE001 - one bad object must not stop the mirror
                    log.warning("readdb: undecodable object skipped", datatype=action.data_type, id=action.id,
                                error=repr(exc))
            else:
                state.delete(action.data_type, action.id)
        if batch.change_groups_reset:
            groups.clear()
        for name, rev in batch.change_groups.items():
            if rev:
                groups[name] = rev
            else:
                groups.pop(name, None)
        self.wal_sequence = batch.wal_sequence
        self.revision = batch.revision
        if batch.synced:
            if self._staging is not None:
                self._state, self._groups = self._staging
                self._staging = None
            self._synced = True

    # ------------------------------------------------------------------------------------------
    # reading

    @property
    def state(self) -> ConfigState:
        """The current state. Read it and take ``token()`` without awaiting in between."""
        return self._state

    @property
    def synced(self) -> bool:
        return self._synced

    def token(self, names: list[str] | tuple[str, ...]) -> ChangeGroupsUpdateToken:
        """The update token for ``names`` as of the state now visible."""
        return token_from(self.revision, self._groups, list(names))

    async def wait_synced(self, timeout: float = DEFAULT_WAIT) -> None:
        await self._wait(lambda: self._synced, timeout, "configstore readdb is not synced yet")

    async def wait_revision(self, revision: int, timeout: float = DEFAULT_WAIT) -> None:
        """Wait until the readdb reflects coordination revision ``revision`` (read your writes)."""
        await self._wait(lambda: self._synced and self.revision >= revision, timeout,
                         f"configstore readdb did not reach revision {revision}")

    async def _wait(self, cond: Callable[[], bool], timeout: float, message: str) -> None:
        if cond():
            return
        try:
            async with asyncio.timeout(timeout):
                async with self._changed:
                    await self._changed.wait_for(cond)
        except TimeoutError:
            raise Unavailable(message) from None
