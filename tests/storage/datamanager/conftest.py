"""Fixtures: a datamanager "stack" per deployment (embedded + posix, etcd + S3).

``stack.open()`` returns a new ``DataManager`` with its own coordination client and object storage
client on the same underlying stores, so one test can play several service instances.
"""

from __future__ import annotations

import asyncio
import importlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agola.storage.coord.base import Coordination
from agola.storage.coord.embedded import EmbeddedCoordination
from agola.storage.datamanager import DataManager, DataManagerOptions
from agola.storage.objectstorage.base import ObjectStorage
from agola.storage.objectstorage.posix import PosixObjectStorage
from tests.support.services import missing

DATATYPES = ["user", "org", "project"]

# Small thresholds so a handful of writes exercises checkpoints, file splits and cleaners.
FAST = DataManagerOptions(
    checkpoint_interval=0.05,
    min_checkpoint_wals=3,
    etcd_wals_keep=4,
    checkpoint_clean_interval=0.1,
    storage_wal_clean_interval=0.1,
    sync_interval=0.05,
    etcd_wal_clean_interval=0.05,
    compact_change_groups_interval=0.05,
    change_group_compact_range=1000,
    ping_interval=0.1,
    max_data_file_size=2048,
    lock_ttl=5.0,
    max_backoff=0.5,
    # Mixes both WAL paths: small WALs inline in coordination, larger ones written to storage first.
    inline_wal_max_bytes=256,
)


class Stack:
    def __init__(self, kind: str, tmp: Path, request: pytest.FixtureRequest) -> None:
        self.kind = kind
        self.tmp = tmp
        self.request = request
        self.prefix = f"dm-{uuid.uuid4().hex[:10]}/svc/"
        self.bucket = f"dm-{uuid.uuid4().hex[:16]}"
        self.closers: list[object] = []
        self.managers: list[DataManager] = []

    async def open_coord(self) -> Coordination:
        if self.kind == "embedded":
            coord: Coordination = await EmbeddedCoordination.open(self.tmp / "coord", self.prefix)
        else:
            try:
                mod = importlib.import_module("agola.storage.coord.etcd")
            except ImportError:
                missing("agola.storage.coord.etcd")
            server = self.request.getfixturevalue("etcd_server")
            coord = mod.EtcdCoordination([server.endpoint], self.prefix, timeout=5.0)
        self.closers.append(coord)
        return coord

    async def open_ost(self) -> ObjectStorage:
        if self.kind == "embedded":
            ost: ObjectStorage = PosixObjectStorage(self.tmp / "ost")
        else:
            try:
                mod = importlib.import_module("agola.storage.objectstorage.s3")
            except ImportError:
                missing("agola.storage.objectstorage.s3")
            s3 = self.request.getfixturevalue("s3_server")
            ost = mod.S3ObjectStorage(
                endpoint=s3.endpoint,
                bucket=self.bucket,
                access_key=s3.access_key,
                secret_key=s3.secret_key,
                location=s3.region,
            )
        self.closers.append(ost)
        return ost

    async def open(
        self, options: DataManagerOptions = FAST, datatypes: list[str] | None = None, init: bool = True
    ) -> DataManager:
        dm = DataManager(await self.open_coord(), await self.open_ost(), "configdata", datatypes or DATATYPES, options)
        self.managers.append(dm)
        if init:
            await dm.init()
        return dm

    async def close(self) -> None:
        # Bounded waits: a hang here must fail the test with a stack, not eat the suite's timeout.
        for dm in self.managers:
            async with asyncio.timeout(20):
                await dm.stop()
        for c in reversed(self.closers):
            async with asyncio.timeout(20):
                await c.close()  # type: ignore[attr-defined]


@pytest.fixture(params=["embedded", "etcd-s3"])
async def stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stack]:
    s = Stack(request.param, tmp_path, request)
    yield s
    await s.close()


@pytest.fixture
async def embedded_stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stack]:
    s = Stack("embedded", tmp_path, request)
    yield s
    await s.close()
