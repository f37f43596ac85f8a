"""Organizations, members and remote sources through the REST API."""

from __future__ import annotations

import pytest

from agola.errors import BadRequest, NotExist
from agola.roleclients.configstore import ConfigstoreClient
from agola.types.configstore import CreateUserLARequest, CreateUserRequest, Organization, RemoteSource


async def test_org_lifecycle_and_members(cs: ConfigstoreClient) -> None:
    u1 = await cs.create_user(CreateUserRequest("user01"))
    u2 = await cs.create_user(CreateUserRequest("user02"))
    org = await cs.create_org(Organization(name="org01", visibility="private", creator_user_id=u1.id))
    assert org.id and org.created_at
    assert (await cs.get_org("org01")).id == org.id
    assert (await cs.get_org(org.id)).name == "org01"
    root = await cs.get_project_group("org/org01")
    assert (root.owner_type, root.owner_id, root.global_visibility) == ("org", org.id, "private")
    # the creator is its owner
    assert [(m.user.name, m.role) for m in await cs.get_org_members("org01")] == [("user01", "owner")]
    member = await cs.add_org_member("org01", "user02", "member")
    assert (member.user_id, member.member_role, member.organization_id) == (u2.id, "member", org.id)
    # changing a role updates the membership
    assert (await cs.add_org_member("org01", "user02", "owner")).id == member.id
    assert [(o.organization.name, o.role) for o in await cs.get_user_orgs("user02")] == [("org01", "owner")]
    assert [m.user.name for m in await cs.get_org_members("org01")] == ["user01", "user02"]
    # sub-lists page too
    raw = await cs.json("GET", "/orgs/org01/members", params={"limit": 1, "asc": "false"})
    assert [m["User"]["name"] for m in raw] == ["user02"]
    raw = await cs.json("GET", "/orgs/org01/members", params={"start": "user01"})
    assert [m["User"]["name"] for m in raw] == ["user02"]
    await cs.remove_org_member("org01", "user02")
    assert await cs.get_user_orgs("user02") == []
    # deleting the org removes its members and tree
    await cs.delete_org("org01")
    with pytest.raises(NotExist):
        await cs.get_org(org.id)
    with pytest.raises(NotExist):
        await cs.get_project_group(root.project_group.id)
    assert await cs.get_user_orgs("user01") == []


async def test_org_failures(cs: ConfigstoreClient) -> None:
    await cs.create_user(CreateUserRequest("user01"))
    await cs.create_org(Organization(name="org01", visibility="public"))
    with pytest.raises(BadRequest, match="already exists"):
        await cs.create_org(Organization(name="org01", visibility="public"))
    with pytest.raises(BadRequest):
        await cs.create_org(Organization(name="org_bad", visibility="public"))
    with pytest.raises(BadRequest, match="visibility"):
        await cs.create_org(Organization(name="org02", visibility="secret"))
    with pytest.raises(BadRequest, match="creator"):
        await cs.create_org(Organization(name="org03", visibility="public",
                                         creator_user_id="00000000-0000-4000-8000-000000000001"))
    with pytest.raises(BadRequest, match="role"):
        await cs.add_org_member("org01", "user01", "boss")
    with pytest.raises((BadRequest, NotExist)):
        await cs.add_org_member("org01", "nobody", "member")
    with pytest.raises((BadRequest, NotExist)):
        await cs.add_org_member("noorg", "user01", "member")
    with pytest.raises(BadRequest, match="not a member"):
        await cs.remove_org_member("org01", "user01")
    with pytest.raises(NotExist):
        await cs.get_org("noorg")
    with pytest.raises(NotExist):
        await cs.get_org_members("noorg")
    with pytest.raises((BadRequest, NotExist)):
        await cs.delete_org("noorg")


async def test_org_list_pagination(cs: ConfigstoreClient) -> None:
    for i in range(4):
        await cs.create_org(Organization(name=f"org{i}", visibility="public"))
    assert [o.name for o in await cs.list_orgs()] == ["org0", "org1", "org2", "org3"]
    assert [o.name for o in await cs.list_orgs(start="org1", limit=2)] == ["org2", "org3"]
    assert [o.name for o in await cs.list_orgs(asc=False, limit=1)] == ["org3"]


def rs(name: str, type: str = "gitea", auth_type: str = "password", **kw: object) -> RemoteSource:
    return RemoteSource(name=name, api_url="http://127.0.0.1:3000", type=type, auth_type=auth_type, **kw)  # type: ignore[arg-type]


async def test_remote_sources(cs: ConfigstoreClient) -> None:
    gitea = await cs.create_remote_source(rs("gitea01"))
    assert gitea.id and gitea.login_enabled and gitea.registration_enabled
    github = await cs.create_remote_source(rs("github01", "github", "oauth2", oauth2_client_id="cid",
                                              oauth2_client_secret="csec"))
    assert (await cs.get_remote_source("github01")).id == github.id
    assert (await cs.get_remote_source(github.id)).oauth2_client_secret == "csec"
    assert [r.name for r in await cs.list_remote_sources()] == ["gitea01", "github01"]
    assert [r.name for r in await cs.list_remote_sources(start="gitea01")] == ["github01"]
    updated = await cs.update_remote_source("gitea01", rs("gitea02", login_enabled=False))
    assert updated.id == gitea.id and updated.name == "gitea02" and not updated.login_enabled
    with pytest.raises(NotExist):
        await cs.get_remote_source("gitea01")
    # duplicate names, on create and on rename
    with pytest.raises(BadRequest, match="already exists"):
        await cs.create_remote_source(rs("github01", "github", "oauth2", oauth2_client_id="a", oauth2_client_secret="b"))
    with pytest.raises(BadRequest, match="already exists"):
        await cs.update_remote_source("gitea02", rs("github01"))
    await cs.delete_remote_source("gitea02")
    with pytest.raises(NotExist):
        await cs.get_remote_source(gitea.id)
    with pytest.raises((BadRequest, NotExist)):
        await cs.delete_remote_source("gitea02")
    with pytest.raises((BadRequest, NotExist)):
        await cs.update_remote_source("gitea02", rs("gitea03"))


async def test_remote_source_failures(cs: ConfigstoreClient) -> None:
    # wrong auth type for the type: github and gitlab only support oauth2
    with pytest.raises(BadRequest, match="doesn't support auth type"):
        await cs.create_remote_source(rs("github01", "github", "password"))
    with pytest.raises(BadRequest, match="doesn't support auth type"):
        await cs.create_remote_source(rs("gitlab01", "gitlab", "password"))
    with pytest.raises(BadRequest, match="client id"):
        await cs.create_remote_source(rs("gitea01", "gitea", "oauth2", oauth2_client_secret="s"))
    with pytest.raises(BadRequest, match="client secret"):
        await cs.create_remote_source(rs("gitea01", "gitea", "oauth2", oauth2_client_id="i"))
    with pytest.raises(BadRequest, match="type"):
        await cs.create_remote_source(rs("bitbucket01", "bitbucket"))
    with pytest.raises(BadRequest, match="api url"):
        await cs.create_remote_source(RemoteSource(name="gitea01", type="gitea", auth_type="password"))
    with pytest.raises(BadRequest):
        await cs.create_remote_source(rs("gitea_01"))
    assert await cs.list_remote_sources() == []
    # a remote source in use can't be deleted
    await cs.create_remote_source(rs("gitea01"))
    await cs.create_user(CreateUserRequest("user01", CreateUserLARequest(remote_source_name="gitea01",
                                                                         remote_user_id="1")))
    with pytest.raises(BadRequest, match="used by"):
        await cs.delete_remote_source("gitea01")
