from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from tests.client.fakegateway import ADMIN_TOKEN, FakeGateway
from tests.client.stack import ADMIN, RoleStack


@pytest.fixture
def fake_gateway(tmp_path: Path) -> Iterator[FakeGateway]:
    gw = FakeGateway(tmp_path / "repos")
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()


@attrs.frozen
class GatewayUnderTest:
    kind: str  # "fake" or "real"
    url: str
    admin_token: str


@pytest.fixture(params=["fake", "real"])
def gateway(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GatewayUnderTest]:
    """The fake gateway and the real one (gateway, configstore, runservice, gitserver roles): the
    contract tests that keep the fake honest run on both."""
    if request.param == "fake":
        fake = FakeGateway(tmp_path / "repos")
        fake.start()
        try:
            yield GatewayUnderTest("fake", fake.url, ADMIN_TOKEN)
        finally:
            fake.stop()
    else:
        real = RoleStack(tmp_path)
        real.start()
        try:
            yield GatewayUnderTest("real", real.url, ADMIN)
        finally:
            real.stop()


@pytest.fixture
def control_plane(tmp_path: Path) -> Iterator[RoleStack]:
    """gateway, configstore, runservice and gitserver (no executor: runs stay queued)."""
    s = RoleStack(tmp_path)
    s.start()
    try:
        yield s
    finally:
        s.stop()
