"""The stateful-role contract, for every role built on ``agola.services.stateful.StatefulRole``:
start in normal mode, follow maintenance on and off (readdb stopped, then rebuilt), stop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agola.config import parse_config
from agola.errors import BadRequest
from agola.services.configstore.role import ConfigstoreRole
from agola.services.runservice.role import RunserviceRole
from agola.services.stateful import StatefulRole
from tests.configstore.api.conftest import FAST as CONFIGSTORE_FAST
from tests.runservice.role.conftest import FAST as RUNSERVICE_FAST
from tests.support.services import free_port
from tests.support.waiting import wait_for


def _config(section: str, tmp: Path) -> Any:
    return parse_config(
        f"{section}:\n  dataDir: {tmp / 'data'}\n  web: {{listenAddress: '127.0.0.1:{free_port()}'}}\n"
        f"  objectStorage: {{type: posix, path: '{tmp / 'ost'}'}}\n"
    )


ROLES: dict[str, Callable[[Path], StatefulRole[Any]]] = {
    "configstore": lambda tmp: ConfigstoreRole(_config("configstore", tmp), datamanager_options=CONFIGSTORE_FAST),
    "runservice": lambda tmp: RunserviceRole(_config("runservice", tmp), options=RUNSERVICE_FAST),
}


@pytest.fixture(params=sorted(ROLES))
async def role(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StatefulRole[Any]]:
    role = ROLES[request.param](tmp_path)
    await role.start()
    yield role
    async with asyncio.timeout(15):
        await role.stop()


async def test_starts_serving_with_a_readdb(role: StatefulRole[Any]) -> None:
    assert not role.maintenance
    assert role.readdb is not None and role.dm is not None


async def test_maintenance_stops_the_readdb_and_leaving_it_rebuilds_one(role: StatefulRole[Any]) -> None:
    assert role.dm is not None
    first = role.readdb
    await role.dm.enable_maintenance()
    with pytest.raises(BadRequest, match="already enabled"):
        await role.dm.enable_maintenance()
    await wait_for(lambda: role.maintenance and role.readdb is None, 10, message="maintenance mode")
    await role.dm.disable_maintenance()
    await wait_for(lambda: not role.maintenance and role.readdb is not None, 10, message="normal mode")
    assert role.readdb is not first, "a new readdb for the new normal period"


async def test_a_role_started_in_maintenance_serves_only_after_it(tmp_path: Path) -> None:
    for make in ROLES.values():
        first = make(tmp_path / "one")
        await first.start()
        assert first.dm is not None
        await first.dm.enable_maintenance()
        await first.stop()
        again = make(tmp_path / "one")
        await again.start()
        try:
            assert again.maintenance and again.readdb is None
            assert again.dm is not None
            await again.dm.disable_maintenance()
            await wait_for(lambda: again.readdb is not None, 10, message="normal mode")  # noqa: B023
        finally:
            await again.stop()


async def test_stop_waits_for_a_switch_and_releases_storage(role: StatefulRole[Any]) -> None:
    assert role.dm is not None
    await role.dm.enable_maintenance()  # a switch may be under way while stopping
    async with asyncio.timeout(15):
        await role.stop()
    assert role.coord is None and role.ost is None and role.readdb is None
    async with asyncio.timeout(5):
        await role.stop()  # idempotent
