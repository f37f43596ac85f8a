"""Fixtures for the coordination contract suite: one ``coord`` per backend (embedded, etcd)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agola.storage.coord.base import Coordination
from agola.storage.coord.embedded import EmbeddedCoordination

BACKENDS = ["embedded", "etcd"]


class Backend:
    """Opens handles on one store (a private embedded dir, or the shared etcd) and closes them."""

    def __init__(self, kind: str, data_dir: Path, endpoint: str = "") -> None:
        self.kind = kind
        self.data_dir = data_dir
        self.endpoint = endpoint
        self.base = f"t-{uuid.uuid4().hex[:10]}/"
        self.handles: list[Coordination] = []

    async def open(self, prefix: str = "main/") -> Coordination:
        if self.kind == "embedded":
            coord: Coordination = await EmbeddedCoordination.open(self.data_dir, self.base + prefix)
        else:
            from agola.storage.coord.etcd import EtcdCoordination

            coord = EtcdCoordination([self.endpoint], self.base + prefix, timeout=5.0)
        self.handles.append(coord)
        return coord

    async def close_all(self) -> None:
        for h in reversed(self.handles):
            await h.close()
        self.handles.clear()


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    endpoint = ""
    if request.param == "etcd":
        endpoint = request.getfixturevalue("etcd_server").endpoint
    b = Backend(request.param, tmp_path / "coord", endpoint)
    yield b
    await b.close_all()


@pytest.fixture
async def coord(backend: Backend) -> Coordination:
    return await backend.open()
