"""Configstore instances on real storage: embedded coordination + posix object storage, or etcd +
S3 (moto). ``open()`` starts one more instance (datamanager, readdb, actions) on the same stores,
so one test can play several configstore processes."""

from __future__ import annotations

import asyncio
import importlib
import uuid
from pathlib import Path

import pytest

from agola.services.configstore.actions import ActionHandler
from agola.services.configstore.readdb import ConfigReadDB
from agola.storage.coord.base import Coordination
from agola.storage.coord.embedded import EmbeddedCoordination
from agola.storage.datamanager import DataManager, DataManagerOptions
from agola.storage.objectstorage.base import ObjectStorage
from agola.storage.objectstorage.posix import PosixObjectStorage
from agola.types.configstore import DATATYPES
from tests.support.services import missing

FAST = DataManagerOptions(
    checkpoint_interval=0.1,
    min_checkpoint_wals=5,
    etcd_wals_keep=10,
    sync_interval=0.1,
    etcd_wal_clean_interval=0.1,
    compact_change_groups_interval=0.1,
    ping_interval=0.1,
    lock_ttl=5.0,
    max_backoff=0.5,
)


class Instance:
    def __init__(self, dm: DataManager, readdb: ConfigReadDB, handler: ActionHandler) -> None:
        self.dm = dm
        self.readdb = readdb
        self.cs = handler

    async def stop(self) -> None:
        await self.readdb.stop()
        await self.dm.stop()


class Stack:
    def __init__(self, kind: str, tmp: Path, request: pytest.FixtureRequest) -> None:
        self.kind = kind
        self.tmp = tmp
        self.request = request
        self.prefix = f"cs-{uuid.uuid4().hex[:10]}/configstore/"
        self.bucket = f"cs-{uuid.uuid4().hex[:16]}"
        self.closers: list[Coordination | ObjectStorage] = []
        self.instances: list[Instance] = []

    async def _coord(self) -> Coordination:
        if self.kind == "embedded":
            coord: Coordination = await EmbeddedCoordination.open(self.tmp / "coord", self.prefix)
        else:
            from agola.storage.coord.etcd import EtcdCoordination

            server = self.request.getfixturevalue("etcd_server")
            coord = EtcdCoordination([server.endpoint], self.prefix, timeout=5.0)
        self.closers.append(coord)
        return coord

    async def _ost(self) -> ObjectStorage:
        if self.kind == "embedded":
            ost: ObjectStorage = PosixObjectStorage(self.tmp / "ost")
        else:
            try:
                s3 = importlib.import_module("agola.storage.objectstorage.s3")
            except ImportError:
                missing("agola.storage.objectstorage.s3")
            server = self.request.getfixturevalue("s3_server")
            ost = s3.S3ObjectStorage(
                endpoint=server.endpoint, bucket=self.bucket, access_key=server.access_key,
                secret_key=server.secret_key, location=server.region,
            )
        self.closers.append(ost)
        return ost

    async def open(self, db_path: Path | None = None) -> Instance:
        dm = DataManager(await self._coord(), await self._ost(), "configdata", list(DATATYPES), FAST)
        await dm.init()
        await dm.start()
        readdb = ConfigReadDB(dm, db_path)
        await readdb.start()
        await readdb.wait_synced()
        inst = Instance(dm, readdb, ActionHandler(dm, readdb))
        self.instances.append(inst)
        return inst

    async def close(self) -> None:
        for inst in self.instances:
            async with asyncio.timeout(10):
                await inst.stop()
        for c in reversed(self.closers):
            async with asyncio.timeout(10):
                await c.close()
