from __future__ import annotations

from tests.client.conftest import fake_gateway  # noqa: F401 - shared fixture
