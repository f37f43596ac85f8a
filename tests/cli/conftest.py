from __future__ import annotations

from tests.client.conftest import control_plane, fake_gateway  # noqa: F401 - shared fixtures
