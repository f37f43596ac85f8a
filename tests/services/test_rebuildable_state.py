"""Rebuildable state is rebuilt, the rest stops naming the damaged file (issue 16 item 9).

A real configstore role (embedded coordination, posix object storage) whose files are damaged
between two starts: the readdb (a cache) is moved aside and resynced; ``coord.db`` (the only copy
of coordination) and a datamanager object (snapshot or WAL file) stop the role with an error
naming them. ``/health`` says "not synced" (503) while the role cannot serve.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agola.config import parse_config
from agola.roleclients.configstore import ConfigstoreClient
from agola.services.configstore.role import ConfigstoreRole
from agola.services.role import RoleHost, RoleStartError
from agola.types.configstore import CreateUserRequest
from tests.configstore.api.conftest import FAST
from tests.support.logs import logged
from tests.support.services import free_port
from tests.support.waiting import wait_for

REBUILD_LOG = "readdb file corrupt: moved aside, rebuilding it from the datamanager"


class Site:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.data = tmp / "data"
        self.ost = tmp / "ost"
        self.url = f"http://127.0.0.1:{self.port}"

    def role(self) -> ConfigstoreRole:
        config = parse_config(
            f"configstore:\n  dataDir: {self.data}\n  web: {{listenAddress: '127.0.0.1:{self.port}'}}\n"
            f"  objectStorage: {{type: posix, path: '{self.ost}'}}\n")
        return ConfigstoreRole(config, datamanager_options=FAST)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[tuple[RoleHost, ConfigstoreRole]]:
        role = self.role()
        host = RoleHost([role], shutdown_timeout=5)
        await host.start()
        try:
            yield host, role
        finally:
            async with asyncio.timeout(15):
                await host.stop()

    async def health(self) -> tuple[int, dict[str, Any]]:
        async with aiohttp.ClientSession() as session, session.get(f"{self.url}/health") as resp:
            return resp.status, await resp.json()

    async def wait_healthy(self) -> None:
        async def ok() -> bool:
            return (await self.health())[0] == 200
        await wait_for(ok, 15, message="/health ok")


def _damage(path: Path, how: str) -> None:
    raw = path.read_bytes()
    path.write_bytes(os.urandom(4096) + raw[4096:] if how == "random-header" else raw[: len(raw) // 2])


@pytest.fixture
async def site(tmp_path: Path) -> Site:
    """A configstore that held users alice and bob, stopped (everything checkpointed)."""
    site = Site(tmp_path)
    async with site.running() as (_, role):
        await site.wait_healthy()
        client = ConfigstoreClient(site.url)
        for name in ("alice", "bob"):
            await client.create_user(CreateUserRequest(user_name=name))
        assert role.dm is not None
        await role.dm.force_checkpoint()
        await client.close()
    return site


@pytest.mark.parametrize("how", ["random-header", "truncated"])
async def test_a_corrupt_readdb_is_moved_aside_and_rebuilt(
        site: Site, how: str, caplog: pytest.LogCaptureFixture) -> None:
    db = site.data / "readdb" / "db"
    _damage(db, how)
    async with site.running():
        await site.wait_healthy()
        client = ConfigstoreClient(site.url)
        assert sorted(u.name for u in await client.list_users()) == ["alice", "bob"]
        await client.close()
    [record] = logged(caplog, REBUILD_LOG)
    assert record.fields["path"] == str(db)  # type: ignore[attr-defined]
    assert Path(record.fields["moved_to"]).is_file()  # type: ignore[attr-defined]


async def test_a_corrupt_coordination_file_stops_the_start_naming_it(site: Site) -> None:
    coord_db = site.data / "coord" / "coord.db"
    assert coord_db.is_file()
    _damage(coord_db, "random-header")
    with pytest.raises(RoleStartError) as err:
        async with site.running():
            pass
    assert str(coord_db) in str(err.value) and "corrupt" in str(err.value)


async def test_a_corrupt_datamanager_file_stops_the_role_naming_it_and_health_says_why(site: Site) -> None:
    # The readdb must rebuild from storage (a new install of the same data), and every snapshot
    # data file and WAL file (the users' objects, base64 in them) is damaged: WALs are in storage
    # segments (`wals/status/<last>.<first>.segment`) or, from an older layout, `wals/data/<id>`.
    for path in (site.data / "readdb").iterdir():
        path.unlink()
    objects = site.ost / "data"  # the posix object storage's root of object keys
    damaged = sorted(str(p.relative_to(objects)) for p in objects.rglob("*") if p.is_file() and p.stat().st_size
                     and (p.suffix in (".data", ".segment") or (p.parent.parent.name == "wals" and p.parent.name == "data")))
    assert len(damaged) >= 3
    for name in damaged:
        (objects / name).write_bytes(b'{"ActionType": "put", "DataT')
    async with site.running() as (host, _role):
        failure = await asyncio.wait_for(host.wait_failure(), 20)
        assert "corrupt datamanager object" in str(failure)
        assert any(name in str(failure) for name in damaged), (failure, damaged)
        status, body = await site.health()
        assert status == 503 and body["status"] == "not synced"
        assert body["reason"] == str(failure)
    # Nothing was rewritten: the damaged objects are as they were, for recovery.
    assert all((objects / name).read_bytes() == b'{"ActionType": "put", "DataT' for name in damaged)
