"""Status codes and error bodies of the configstore API (spec §1.4, §5.6)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from tests.support.services import INTERNAL_API_TOKEN

from .conftest import Installation


async def call(session: aiohttp.ClientSession, base: str, method: str, path: str,
               body: Any = None, params: dict[str, str] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    async with session.request(method, f"{base}/api/v1alpha{path}", data=data, params=params) as resp:
        raw = await resp.read()
        return resp.status, (json.loads(raw) if raw else None)


async def test_status_codes_and_error_bodies(installation: Installation) -> None:
    inst = await installation.start()
    async with aiohttp.ClientSession(headers={"Authorization": f"token {INTERNAL_API_TOKEN}"}) as s:
        base = inst.url
        st, user = await call(s, base, "POST", "/users", {"user_name": "user01"})
        assert st == 201 and user["name"] == "user01"
        assert (await call(s, base, "GET", "/users/user01"))[0] == 200
        assert (await call(s, base, "PUT", "/users/user01", {"user_name": "user01b"}))[0] == 201
        st, tok = await call(s, base, "POST", "/users/user01b/tokens", {"token_name": "t"})
        assert st == 201 and set(tok) == {"token"}
        st, found = await call(s, base, "GET", "/users", params={"query_type": "bytoken", "token": tok["token"]})
        assert st == 200 and [u["name"] for u in found] == ["user01b"]
        st, body = await call(s, base, "GET", "/users", params={"query_type": "bytoken", "token": "nope"})
        assert st == 404 and body["message"]
        assert (await call(s, base, "DELETE", "/users/user01b/tokens/t"))[0] == 204
        st, body = await call(s, base, "POST", "/users", {"user_name": "user01b"})
        assert st == 400 and "already exists" in body["message"]
        st, body = await call(s, base, "GET", "/users/nobody")
        assert st == 404 and "doesn't exist" in body["message"]
        st, _ = await call(s, base, "POST", "/orgs", {"name": "org01", "visibility": "public"})
        assert st == 201
        st, member = await call(s, base, "PUT", "/orgs/org01/members/user01b", {"Role": "member"})
        assert st == 201 and member["member_role"] == "member"
        st, members = await call(s, base, "GET", "/orgs/org01/members")
        assert st == 200 and members[0]["User"]["name"] == "user01b" and members[0]["Role"] == "member"
        st, orgs = await call(s, base, "GET", "/users/user01b/orgs")
        assert st == 200 and orgs[0]["Organization"]["name"] == "org01" and orgs[0]["Role"] == "member"
        assert (await call(s, base, "DELETE", "/orgs/org01/members/user01b"))[0] == 204
        st, secret = await call(s, base, "POST", "/projectgroups/org%2Forg01/secrets",
                                {"name": "s1", "type": "internal", "data": {"a": "b"}})
        assert st == 201 and secret["parent"]["type"] == "projectgroup"
        st, _ = await call(s, base, "PUT", "/projectgroups/org%2Forg01/secrets/s1",
                           {"name": "s1", "type": "internal", "data": {"a": "c"}})
        assert st == 200
        st, listed = await call(s, base, "GET", "/projectgroups/org%2Forg01/secrets")
        assert st == 200 and listed[0]["ParentPath"] == "org/org01" and listed[0]["data"] == {"a": "c"}
        st, group = await call(s, base, "GET", "/projectgroups/org%2Forg01")
        assert st == 200 and {"OwnerType", "OwnerID", "Path", "ParentPath", "GlobalVisibility"} <= set(group)
        assert (await call(s, base, "DELETE", "/projectgroups/org%2Forg01/secrets/s1"))[0] == 204
        assert (await call(s, base, "DELETE", "/orgs/org01"))[0] == 204
        assert (await call(s, base, "DELETE", "/users/user01b"))[0] == 204
        st, body = await call(s, base, "GET", "/nosuchthing")
        assert st == 404 and body["message"]
        # bodies of the data API are capped at 1 MiB
        st, body = await call(s, base, "POST", "/users", {"user_name": "x" * (2 * 1024 * 1024)})
        assert st == 413
        assert (await call(s, base, "PUT", "/maintenance"))[0] == 200
        assert (await call(s, base, "DELETE", "/maintenance"))[0] == 200
