"""Configstore roles served on loopback, talked to with the real client: on embedded storage
(embedded coordination + posix object storage) or on etcd + S3 (moto). One ``Installation`` is one
set of stores; ``start()`` runs one more configstore instance on it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agola.config import parse_config
from agola.roleclients.configstore import ConfigstoreClient
from agola.services.configstore.role import ConfigstoreRole
from agola.services.role import WebServer
from agola.storage.datamanager import DataManagerOptions
from tests.support.services import INTERNAL_API_TOKEN, TOKEN_LINE, free_port

FAST = DataManagerOptions(
    checkpoint_interval=0.2,
    min_checkpoint_wals=5,
    etcd_wals_keep=10,
    sync_interval=0.2,
    etcd_wal_clean_interval=0.2,
    compact_change_groups_interval=0.2,
    ping_interval=0.2,
    lock_ttl=5.0,
    max_backoff=0.5,
)


class Instance:
    """One configstore role, its web server and a client."""

    def __init__(self, role: ConfigstoreRole, server: WebServer) -> None:
        self.role = role
        self.server = server
        self.url = f"http://127.0.0.1:{server.port}"
        self.c = ConfigstoreClient(self.url, token=INTERNAL_API_TOKEN)

    async def stop(self) -> None:
        await self.c.close()
        await self.server.stop()
        await self.role.stop()


class Installation:
    def __init__(self, kind: str, tmp: Path, request: pytest.FixtureRequest) -> None:
        self.kind = kind
        self.tmp = tmp
        self.request = request
        self.prefix = f"cs-{uuid.uuid4().hex[:10]}/configstore/"
        self.bucket = f"cs-{uuid.uuid4().hex[:16]}"
        self.instances: list[Instance] = []

    def config_text(self, n: int) -> str:
        data_dir = self.tmp / f"cs{n}"
        text = f"configstore:\n  dataDir: {data_dir}\n  web: {{listenAddress: '127.0.0.1:{free_port()}'}}\n"
        if self.kind == "embedded":
            # every instance of an embedded installation shares one coordination and storage dir
            return text + f"  objectStorage: {{type: posix, path: '{self.tmp / 'ost'}'}}\n"
        etcd: Any = self.request.getfixturevalue("etcd_server")
        s3: Any = self.request.getfixturevalue("s3_server")
        return text + (
            f"  etcd: {{endpoints: '{etcd.endpoint}'}}\n"
            "  objectStorage:\n"
            "    type: s3\n"
            f"    endpoint: '{s3.endpoint}'\n"
            f"    bucket: {self.bucket}\n"
            f"    location: {s3.region}\n"
            f"    accessKey: {s3.access_key}\n"
            f"    secretAccessKey: {s3.secret_key}\n"
        )

    async def start(self) -> Instance:
        if self.kind == "embedded" and self.instances:
            raise RuntimeError("the embedded coordination belongs to one process: one instance only")
        config = parse_config(TOKEN_LINE + self.config_text(len(self.instances)))
        role = ConfigstoreRole(config, datamanager_options=FAST, coord_prefix=self.prefix)
        await role.start()
        server = WebServer(role.web_app(), config.configstore.web, shutdown_timeout=1.0)
        try:
            await server.start()
        except BaseException:
            await role.stop()
            raise
        inst = Instance(role, server)
        self.instances.append(inst)
        return inst

    async def close(self) -> None:
        for inst in reversed(self.instances):
            await inst.stop()
        self.instances.clear()


@pytest.fixture(params=["embedded", "etcd-s3"])
async def installation(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Installation]:
    inst = Installation(request.param, tmp_path, request)
    yield inst
    await inst.close()


@pytest.fixture
async def cs(installation: Installation) -> ConfigstoreClient:
    """A client of a running configstore (embedded, then etcd + S3)."""
    return (await installation.start()).c


@pytest.fixture
async def distributed(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Installation]:
    inst = Installation("etcd-s3", tmp_path, request)
    yield inst
    await inst.close()
