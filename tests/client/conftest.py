from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.client.fakegateway import FakeGateway
from tests.client.stack import RoleStack


@pytest.fixture
def fake_gateway(tmp_path: Path) -> Iterator[FakeGateway]:
    gw = FakeGateway(tmp_path / "repos")
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def control_plane(tmp_path: Path) -> Iterator[RoleStack]:
    """gateway, configstore, runservice and gitserver (no executor: runs stay queued)."""
    s = RoleStack(tmp_path)
    s.start()
    try:
        yield s
    finally:
        s.stop()
