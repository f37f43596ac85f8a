"""The configstore role: owns users, orgs, project groups, projects, remote sources, secrets and
variables, served over the internal REST API (``agola.services.configstore.api``).

Storage: coordination (``configstore/`` prefix: etcd, or embedded under ``<dataDir>/coord``),
object storage (``configstore.objectStorage``), a datamanager on both (``configdata``), and a
readdb mirrored in memory and persisted to ``<dataDir>/readdb/db``. Several instances may share
etcd + S3: each follows the datamanager, change groups keep their writes consistent.

Modes (spec §3.12): normal (datamanager loops, readdb, full API) or maintenance (only the
maintenance/export/import API). Every instance follows the ``maintenance`` key and switches.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from agola.config import Config
from agola.errors import Unavailable
from agola.services.configstore.actions import ActionHandler
from agola.services.configstore.api import build_app
from agola.services.configstore.ops import Env
from agola.services.configstore.readdb import ConfigReadDB
from agola.services.role import Role
from agola.storage.coord.base import Coordination
from agola.storage.coord.factory import open_coordination
from agola.storage.datamanager import DataManager, DataManagerOptions
from agola.storage.objectstorage.base import ObjectStorage
from agola.storage.objectstorage.factory import open_object_storage
from agola.types.configstore import DATATYPES
from agola.util.log import get_logger

log = get_logger(__name__)

COORD_PREFIX = "configstore/"
DATA_BASE_PATH = "configdata"
WATCH_RETRY = 1.0


class ConfigstoreRole(Role):
    name = "configstore"

    def __init__(
        self,
        config: Config,
        *,
        datamanager_options: DataManagerOptions | None = None,
        coord_prefix: str = COORD_PREFIX,
        env: Env | None = None,
        persist_readdb: bool = True,
    ) -> None:
        """``coord_prefix``: the coordination key prefix (tests give each installation its own on a
        shared etcd); ``env``: ids, time and random secrets (tests); ``persist_readdb``: keep the
        readdb in sqlite under ``<dataDir>/readdb`` (else it resyncs from storage on start)."""
        super().__init__(config)
        self.dm_options = datamanager_options or DataManagerOptions()
        self.coord_prefix = coord_prefix
        self.env = env
        self.persist_readdb = persist_readdb
        self.coord: Coordination | None = None
        self.ost: ObjectStorage | None = None
        # The datamanager of the current mode: running in normal mode; in maintenance mode
        # stopped, used only for maintenance/export/import.
        self.dm: DataManager | None = None
        self.readdb: ConfigReadDB | None = None
        # What the data handlers call; None outside normal mode (they answer 503).
        self.actions: ActionHandler | None = None
        self.maintenance = False
        self._watch_task: asyncio.Task[None] | None = None
        self._mode_lock = asyncio.Lock()
        self._app: web.Application | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        section = self.section
        self.coord = await open_coordination(section.etcd, section.data_dir, self.coord_prefix)
        self.ost = open_object_storage(section.object_storage)
        self.dm = self._new_dm()
        self.maintenance = await self.dm.is_maintenance_enabled()
        if not self.maintenance:
            await self._start_normal()
        # The watcher reads the key again before watching it: a switch in between is not missed.
        self._watch_task = asyncio.create_task(self._watch_maintenance(), name="configstore-maintenance")

    async def stop(self) -> None:
        # Under the mode lock: a switch in progress completes first (cancelling it halfway could
        # leave a half-opened readdb behind), and none starts afterwards.
        async with self._mode_lock:
            task, self._watch_task = self._watch_task, None
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            await self._stop_normal()
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

    # --- modes --------------------------------------------------------------------------------

    def _new_dm(self) -> DataManager:
        assert self.coord is not None and self.ost is not None
        return DataManager(self.coord, self.ost, DATA_BASE_PATH, list(DATATYPES), self.dm_options)

    async def _start_normal(self) -> None:
        # A fresh datamanager per normal period: an import done meanwhile (by any instance)
        # rebuilt coordination under a new epoch, which a fresh instance reads from scratch.
        self.dm = self._new_dm()
        await self.dm.start()
        db_path = Path(self.section.data_dir) / "readdb" / "db" if self.persist_readdb and self.section.data_dir else None
        if db_path is not None:
            db_path.parent.mkdir(parents=True, exist_ok=True)
        self.readdb = ConfigReadDB(self.dm, db_path)
        await self.readdb.start()
        self.actions = ActionHandler(self.dm, self.readdb, self.env)

    async def _stop_normal(self) -> None:
        self.actions = None
        readdb, self.readdb = self.readdb, None
        if readdb is not None:
            await readdb.stop()
        if self.dm is not None:
            await self.dm.stop()

    async def _watch_maintenance(self) -> None:
        assert self.dm is not None
        watcher = self.dm.maintenance_watcher(retry_interval=WATCH_RETRY)
        async for enabled in watcher:
            try:
                await self._switch(enabled)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a failed switch must not end the watch
                log.error("configstore mode switch failed", maintenance=enabled, error=repr(exc))

    async def _switch(self, maintenance: bool) -> None:
        async with self._mode_lock:
            if maintenance == self.maintenance:
                return
            log.info("configstore switching mode", maintenance=maintenance)
            self.maintenance = maintenance
            if maintenance:
                await self._stop_normal()
            else:
                await self._start_normal()

    # --- for tests and in-process use ----------------------------------------------------------

    def require_actions(self) -> ActionHandler:
        """The action handler (the in-process ``ConfigstoreAPI``); ``Unavailable`` if not serving."""
        if self.actions is None:
            raise Unavailable("configstore is not serving (starting, stopping or in maintenance mode)")
        return self.actions
