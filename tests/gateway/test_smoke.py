from __future__ import annotations

from tests.gateway.conftest import Env


async def test_version_and_users(env: Env) -> None:
    v = await env.client().version()
    assert v.service == "gateway" and v.version
    user, c = await env.user("alice")
    me = await c.current_user()
    assert me.id == user.id and me.username == "alice" and me.tokens == ["default"]
