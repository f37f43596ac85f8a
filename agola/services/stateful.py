"""The base of the roles that own data (configstore, runservice): storage, modes, graceful stop.

A stateful role keeps its objects in a datamanager on coordination (etcd, or embedded under
``<dataDir>/coord``) and object storage, and answers queries from a readdb that follows the
datamanager. Several instances may share etcd + S3.

Modes (spec §3.12): *normal* (datamanager loops, readdb, the role's own loops, full API) or
*maintenance* (only the maintenance/export/import API). The mode is the existence of the
coordination key ``maintenance``: every instance follows it (``MaintenanceWatcher``) and switches.
Switches and ``stop()`` run under one lock: a switch in progress completes first (cancelling it
halfway could leave a half-opened readdb behind), and none starts after ``stop()``.

A subclass says what its datamanager holds and adds its own pieces through the hooks::

    class MyRole(StatefulRole[MyReadDB]):
        name = "mystore"
        data_base_path = "mydata"
        datatypes = ("thing",)

        def new_readdb(self, dm: DataManager) -> MyReadDB: ...
        async def serving_started(self) -> None: ...   # normal mode on: loops, actions
        async def serving_stopping(self) -> None: ...  # normal mode off (idempotent)
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Generic, Protocol, TypeVar

from agola.config import Config
from agola.config import ObjectStorage as ObjectStorageSettings
from agola.services.instances import InstanceRegistration, list_instances
from agola.services.role import Role
from agola.storage.coord.base import Coordination
from agola.storage.coord.factory import EtcdSettings, open_coordination
from agola.storage.datamanager import CorruptData, DataManager, DataManagerOptions
from agola.storage.objectstorage.base import ObjectStorage
from agola.storage.objectstorage.factory import open_object_storage
from agola.types.maintenance import MaintenanceStatus
from agola.util.aio import cancel_and_wait
from agola.util.log import get_logger
from agola.util.privatefiles import private_dir

log = get_logger(__name__)

# Wait this long before watching the maintenance key again after a coordination outage.
WATCH_RETRY = 1.0


class StorageSection(Protocol):
    """The config section of a stateful role (``configstore``, ``runservice``)."""

    @property
    def data_dir(self) -> str: ...

    @property
    def etcd(self) -> EtcdSettings | None: ...

    @property
    def object_storage(self) -> ObjectStorageSettings | None: ...


class Follower(Protocol):
    """A readdb: follows the datamanager between ``start()`` and ``stop()``."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    @property
    def synced(self) -> bool:
        """Caught up with the datamanager: queries may be answered."""
        ...


ReadDBT = TypeVar("ReadDBT", bound=Follower)


class StatefulRole(Role, Generic[ReadDBT]):
    data_base_path: ClassVar[str]
    datatypes: ClassVar[Sequence[str]]

    def __init__(self, config: Config, *, coord_prefix: str,
                 datamanager_options: DataManagerOptions | None = None) -> None:
        """``coord_prefix``: the coordination key prefix (``<name>/``; tests give each
        installation its own on a shared etcd)."""
        super().__init__(config)
        self.coord_prefix = coord_prefix
        self.dm_options = datamanager_options
        self.coord: Coordination | None = None
        self.ost: ObjectStorage | None = None
        # The datamanager of the current mode: running in normal mode; in maintenance mode
        # stopped, used only for maintenance/export/import.
        self.dm: DataManager | None = None
        self.readdb: ReadDBT | None = None
        self.maintenance = False
        self._watch_task: asyncio.Task[None] | None = None
        self._mode_lock = asyncio.Lock()
        self._registration: InstanceRegistration | None = None
        self._corrupt: CorruptData | None = None

    @property
    def storage_section(self) -> StorageSection:
        section: StorageSection = self.section
        return section

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        section = self.storage_section
        if section.data_dir:
            private_dir(section.data_dir)  # coordination, readdb and posix objects live below
        self.coord = await open_coordination(section.etcd, section.data_dir, self.coord_prefix)
        self.ost = open_object_storage(section.object_storage)
        self.dm = self.new_datamanager()
        await self.storage_opened()
        self.maintenance = await self.dm.is_maintenance_enabled()
        if not self.maintenance:
            await self._start_normal()
        self._registration = InstanceRegistration(self.coord)
        self._registration.start(self.maintenance)
        # The watcher reads the key again before watching it: a switch in between is not missed.
        self._watch_task = asyncio.create_task(self._watch_maintenance(), name=f"{self.name}-maintenance")

    async def stop(self) -> None:
        async with self._mode_lock:
            task, self._watch_task = self._watch_task, None
            if task is not None:
                await cancel_and_wait([task])
            await self._stop_normal()
        registration, self._registration = self._registration, None
        if registration is not None:
            await registration.stop()
        await self.storage_closing()
        if self.ost is not None:
            await self.ost.close()
            self.ost = None
        if self.coord is not None:
            await self.coord.close()
            self.coord = None

    # --- hooks --------------------------------------------------------------------------------

    def new_datamanager(self) -> DataManager:
        assert self.coord is not None and self.ost is not None, "start() first"
        return DataManager(self.coord, self.ost, self.data_base_path, list(self.datatypes), self.dm_options)

    async def storage_opened(self) -> None:
        """Coordination, object storage and the datamanager are open (both modes)."""

    async def storage_closing(self) -> None:
        """Normal mode is off for good; coordination and object storage close next."""

    async def datamanager_for_serving(self) -> DataManager:
        """The datamanager of a new normal period (started next); default: the one open."""
        assert self.dm is not None, "start() first"
        return self.dm

    @abc.abstractmethod
    def new_readdb(self, dm: DataManager) -> ReadDBT:
        """A readdb following ``dm`` (started next)."""

    async def serving_started(self) -> None:
        """Normal mode is on: the datamanager runs and the readdb follows it."""

    async def serving_stopping(self) -> None:
        """Normal mode goes off (the readdb and the datamanager stop next). Also called when it
        was never on, or only partly: it must cope with that."""

    def readdb_path(self) -> Path | None:
        """``<dataDir>/readdb/db`` (its folder created), None without a data dir."""
        data_dir = self.storage_section.data_dir
        if not data_dir:
            return None
        path = Path(data_dir) / "readdb" / "db"
        private_dir(path.parent)  # the readdb holds secret values
        return path

    # --- modes --------------------------------------------------------------------------------

    def health_problem(self) -> str | None:
        """``/health``: not synced while normal mode is on but its readdb has not caught up (or
        cannot: a corrupt datamanager object is named). Maintenance mode serves what it should."""
        if self._corrupt is not None:
            return str(self._corrupt)
        if self.maintenance:
            return None
        readdb = self.readdb
        if readdb is None:
            return f"{self.name} is not serving yet"
        if not readdb.synced:
            return f"{self.name} readdb is not synced with the datamanager yet"
        return None

    def _corrupt_found(self, exc: CorruptData) -> None:
        """A corrupt WAL or snapshot file: the readdb can never catch up; stop, naming it (the
        object stays as it is for recovery)."""
        if self._corrupt is None:
            self._corrupt = exc
            self.fail(exc)

    async def _start_normal(self) -> None:
        self.dm = await self.datamanager_for_serving()
        self.dm.on_corrupt = self._corrupt_found
        await self.dm.start()
        self.readdb = self.new_readdb(self.dm)
        await self.readdb.start()
        await self.serving_started()

    async def _stop_normal(self) -> None:
        await self.serving_stopping()
        readdb, self.readdb = self.readdb, None
        if readdb is not None:
            await readdb.stop()
        if self.dm is not None:
            await self.dm.stop()

    async def _watch_maintenance(self) -> None:
        assert self.dm is not None
        async for enabled in self.dm.maintenance_watcher(retry_interval=WATCH_RETRY):
            try:
                await self._switch(enabled)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a failed switch must not end the watch
                log.error("mode switch failed", role=self.name, maintenance=enabled, error=repr(exc))

    async def _switch(self, maintenance: bool) -> None:
        async with self._mode_lock:
            if maintenance == self.maintenance:
                return
            log.info("switching mode", role=self.name, maintenance=maintenance)
            self.maintenance = maintenance
            if maintenance:
                await self._stop_normal()
            else:
                await self._start_normal()
            if self._registration is not None:
                await self._registration.set_mode(maintenance)

    async def maintenance_status(self) -> MaintenanceStatus:
        """The requested mode and the mode of every live instance (spec §3.12)."""
        assert self.dm is not None and self.coord is not None, "start() first"
        return MaintenanceStatus.of(await self.dm.is_maintenance_enabled(), await list_instances(self.coord))
