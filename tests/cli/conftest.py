from __future__ import annotations

from pathlib import Path

import pytest

from tests.client.conftest import control_plane, fake_gateway  # noqa: F401 - shared fixtures


@pytest.fixture(autouse=True)
def private_config_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No CLI test reads or writes the login profiles of the person running the tests."""
    home = tmp_path_factory.mktemp("xdg-config")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    for name in ("AGOLA_PROFILE", "AGOLA_GATEWAY_URL", "AGOLA_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return home
