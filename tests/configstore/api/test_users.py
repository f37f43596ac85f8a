"""Users, linked accounts, tokens and user queries through the REST API."""

from __future__ import annotations

import pytest

from agola.errors import BadRequest, NotExist
from agola.roleclients.configstore import ConfigstoreClient
from agola.types.configstore import (
    CreateUserLARequest,
    CreateUserRequest,
    RemoteSource,
    UpdateUserLARequest,
    UpdateUserRequest,
)


def gitea(name: str = "gitea01") -> RemoteSource:
    return RemoteSource(name=name, api_url="http://127.0.0.1:3000", type="gitea", auth_type="password")


def la(rs: str = "gitea01", remote_id: str = "42") -> CreateUserLARequest:
    return CreateUserLARequest(remote_source_name=rs, remote_user_id=remote_id, remote_user_name="remote",
                               user_access_token="secret-access")


async def test_create_get_update_delete_user(cs: ConfigstoreClient) -> None:
    user = await cs.create_user(CreateUserRequest("user01"))
    assert user.name == "user01" and user.id
    assert (await cs.get_user("user01")).id == user.id
    assert (await cs.get_user(user.id)).name == "user01"
    # its root project group exists
    root = await cs.get_project_group("user/user01")
    assert root.project_group.name == "" and root.owner_id == user.id
    renamed = await cs.update_user("user01", UpdateUserRequest("user01b"))
    assert renamed.id == user.id and renamed.name == "user01b"
    with pytest.raises(NotExist):
        await cs.get_user("user01")
    assert (await cs.get_project_group("user/user01b")).project_group.id == root.project_group.id
    await cs.delete_user("user01b")
    with pytest.raises(NotExist):
        await cs.get_user(user.id)
    with pytest.raises(NotExist):
        await cs.get_project_group(root.project_group.id)


async def test_user_failures(cs: ConfigstoreClient) -> None:
    await cs.create_user(CreateUserRequest("user01"))
    await cs.create_user(CreateUserRequest("user02"))
    with pytest.raises(BadRequest, match="already exists"):
        await cs.create_user(CreateUserRequest("user01"))
    for bad in ("", "1user", "user_01", "-user", "user--01", "5e1c4a32-9a57-4b8e-9c1f-0d9d26e6f0a1"):
        with pytest.raises(BadRequest):
            await cs.create_user(CreateUserRequest(bad))
    with pytest.raises(BadRequest, match="already exists"):
        await cs.update_user("user01", UpdateUserRequest("user02"))
    with pytest.raises(BadRequest):
        await cs.update_user("user01", UpdateUserRequest("bad_name"))
    with pytest.raises((BadRequest, NotExist)):
        await cs.update_user("nobody", UpdateUserRequest("someone"))
    with pytest.raises((BadRequest, NotExist)):
        await cs.delete_user("nobody")
    with pytest.raises(NotExist):
        await cs.get_user("nobody")
    # a linked account needs an existing remote source
    with pytest.raises(BadRequest):
        await cs.create_user(CreateUserRequest("user03", la("nosuchrs")))
    with pytest.raises(NotExist):
        await cs.get_user("user03")


async def test_malformed_bodies_are_400(cs: ConfigstoreClient) -> None:
    with pytest.raises(BadRequest, match="JSON"):
        await cs.json("POST", "/users", data=b"{not json", headers={"Content-Type": "application/json"})
    with pytest.raises(BadRequest, match="expected a string"):
        await cs.json("POST", "/users", json_body={"user_name": 12})
    with pytest.raises(BadRequest, match="empty"):
        await cs.json("POST", "/users")


async def test_tokens_are_shown_once_and_found_by_value(cs: ConfigstoreClient) -> None:
    user = await cs.create_user(CreateUserRequest("user01"))
    tok = await cs.create_user_token("user01", "ci")
    assert tok.token
    assert (await cs.get_user_by_token(tok.token)).id == user.id
    # never again: the stored user keeps only a hash
    raw = await cs.json("GET", "/users/user01")
    assert tok.token not in str(raw) and "ci" in raw["tokens"]
    with pytest.raises(BadRequest, match="already exists"):
        await cs.create_user_token("user01", "ci")
    with pytest.raises(BadRequest):
        await cs.create_user_token("user01", "")
    with pytest.raises(NotExist):
        await cs.get_user_by_token("wrong-token")
    await cs.delete_user_token("user01", "ci")
    with pytest.raises(NotExist):
        await cs.get_user_by_token(tok.token)
    with pytest.raises(BadRequest):
        await cs.delete_user_token("user01", "ci")


async def test_linked_accounts_and_queries(cs: ConfigstoreClient) -> None:
    rs = await cs.create_remote_source(gitea())
    user = await cs.create_user(CreateUserRequest("user01", la()))
    [la1] = user.linked_accounts.values()
    assert (la1.remote_source_id, la1.remote_user_id) == (rs.id, "42")
    assert (await cs.get_user_by_linked_account(la1.id)).id == user.id
    assert (await cs.get_user_by_remote_user(rs.id, "42")).id == user.id
    # the same remote user can't be linked twice
    with pytest.raises(BadRequest):
        await cs.create_user(CreateUserRequest("user02", la()))
    user2 = await cs.create_user(CreateUserRequest("user02"))
    with pytest.raises(BadRequest):
        await cs.create_user_la("user02", la())
    la2 = await cs.create_user_la("user02", la(remote_id="43"))
    assert (await cs.get_user_by_remote_user(rs.id, "43")).id == user2.id
    updated = await cs.update_user_la("user02", la2.id, UpdateUserLARequest(
        remote_user_id="43", remote_user_name="renamed", user_access_token="new"))
    assert updated.remote_user_name == "renamed"
    with pytest.raises((BadRequest, NotExist)):
        await cs.update_user_la("user02", "00000000-0000-4000-8000-000000000000", UpdateUserLARequest())
    await cs.delete_user_la("user02", la2.id)
    with pytest.raises(NotExist):
        await cs.get_user_by_linked_account(la2.id)
    with pytest.raises((BadRequest, NotExist)):
        await cs.delete_user_la("user02", la2.id)
    # query errors
    with pytest.raises(BadRequest, match="query_type"):
        await cs.json("GET", "/users", params={"query_type": "bogus"})
    with pytest.raises(BadRequest, match="token"):
        await cs.json("GET", "/users", params={"query_type": "bytoken"})
    with pytest.raises(NotExist):
        await cs.get_user_by_remote_user(rs.id, "999")


async def test_user_list_pagination(cs: ConfigstoreClient) -> None:
    names = [f"user{i:02d}" for i in range(25)]
    for n in names:
        await cs.create_user(CreateUserRequest(n))
    assert [u.name for u in await cs.list_users()] == names[:10]
    assert [u.name for u in await cs.list_users(limit=100)] == names[:20]  # at most 20
    assert [u.name for u in await cs.list_users(start="user09", limit=3)] == ["user10", "user11", "user12"]
    # without asc the reference lists in descending order
    assert [u.name for u in await cs.list_users(start="user03", asc=False)] == ["user02", "user01", "user00"]
    assert [u["name"] for u in await cs.json("GET", "/users", params={"limit": 2})] == ["user24", "user23"]
    with pytest.raises(BadRequest):
        await cs.json("GET", "/users", params={"limit": "-1"})
    with pytest.raises(BadRequest):
        await cs.json("GET", "/users", params={"limit": "x"})
