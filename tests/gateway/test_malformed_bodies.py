"""Malformed request bodies are 400s with a clear message, never a 500 with a traceback: deeply
nested JSON on the public gateway and on an internal role (the runservice)."""

from __future__ import annotations

from urllib.parse import quote

import aiohttp
import pytest

from agola.util.http import MAX_JSON_DEPTH
from tests.gateway.conftest import ADMIN_TOKEN, Env
from tests.support.services import INTERNAL_AUTH


def _nested(depth: int) -> str:
    return '{"name": ' + "[" * depth + "]" * depth + "}"


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 100_000])
async def test_deeply_nested_json_is_a_400_on_the_gateway_and_the_runservice(env: Env, depth: int) -> None:
    targets = [
        (f"{env.url}/api/v1alpha/users", {"Authorization": f"token {ADMIN_TOKEN}"}),
        (f"{env.rs_url}/api/v1alpha/executor/e1", INTERNAL_AUTH),
    ]
    async with aiohttp.ClientSession() as http:
        for url, auth in targets:
            async with http.post(url, data=_nested(depth), headers={**auth, "Content-Type": "application/json"}) as resp:
                body = await resp.json()
                assert resp.status == 400, (url, body)
                assert body["message"] == f"request body nests deeper than {MAX_JSON_DEPTH} levels"
                assert "Traceback" not in await resp.text()


async def test_a_body_within_the_limit_reaches_the_handler(env: Env) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{env.url}/api/v1alpha/users", data=_nested(MAX_JSON_DEPTH - 1),
                             headers={"Authorization": f"token {ADMIN_TOKEN}"}) as resp:
            assert resp.status == 400
            assert "nests deeper" not in (await resp.json())["message"]  # the handler's own complaint


async def test_secret_values_are_strings_only(env: Env) -> None:
    await env.user("alice")
    token = await env.admin.create_user_token("alice", "raw")
    url = f"{env.url}/api/v1alpha/projectgroups/{quote('user/alice', safe='')}/secrets"
    async with aiohttp.ClientSession(headers={"Authorization": f"token {token}"}) as http:
        for value, kind in ((42, "a number"), ({"x": "y"}, "an object"), (["a"], "a list"), (True, "a boolean")):
            async with http.post(url, json={"name": "s", "type": "internal", "data": {"pw": value}}) as resp:
                assert resp.status == 400
                assert (await resp.json())["message"] == f"secret data: the value of 'pw' must be a string, not {kind}"
        async with http.post(url, json={"name": "s", "type": "internal", "data": {"pw": "fine"}}) as resp:
            assert resp.status == 201, await resp.text()
