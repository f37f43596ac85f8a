from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agola.types.configstore import CreateUserLARequest

from .stack import Stack
from .world import World


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def populated() -> World:
    """user01 (owner of org01), user02 linked to gitea01, org01 with group01/sub01 and a project."""
    w = World()
    w.remote_source("gitea01")
    w.remote_source("github01", type="github", auth_type="oauth2", oauth2_client_id="id", oauth2_client_secret="sec")
    u1 = w.user("user01")
    w.user("user02", CreateUserLARequest(remote_source_name="gitea01", remote_user_id="42", remote_user_name="u2"))
    w.org("org01", creator=u1.id)
    w.group("org/org01", "group01")
    w.group("org/org01/group01", "sub01")
    w.project("org/org01/group01", "project01")
    w.group("user/user01", "mygroup")
    return w


@pytest.fixture(params=["embedded", "etcd-s3"])
async def stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stack]:
    s = Stack(request.param, tmp_path, request)
    yield s
    await s.close()
