from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.client.fakegateway import FakeGateway


@pytest.fixture
def fake_gateway(tmp_path: Path) -> Iterator[FakeGateway]:
    gw = FakeGateway(tmp_path / "repos")
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()
