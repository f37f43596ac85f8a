"""Maintenance mode, export and import of the configstore through its API (spec §3.12)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agola.errors import BadRequest, NotExist, Unavailable
from agola.roleclients.configstore import ConfigstoreClient
from agola.types.configstore import (
    CreateUserLARequest,
    CreateUserRequest,
    Organization,
    Parent,
    Project,
    ProjectGroup,
    RemoteSource,
    Secret,
    Variable,
    VariableValue,
)
from tests.support.waiting import wait_for

from .conftest import Installation, Instance


async def populate(cs: ConfigstoreClient) -> dict[str, Any]:
    """One object of every kind (and a few more)."""
    rs = await cs.create_remote_source(RemoteSource(name="gitea01", api_url="http://127.0.0.1:3000",
                                                    type="gitea", auth_type="password"))
    u1 = await cs.create_user(CreateUserRequest("user01", CreateUserLARequest(
        remote_source_name="gitea01", remote_user_id="1", user_access_token="t")))
    await cs.create_user(CreateUserRequest("user02"))
    tok = await cs.create_user_token("user01", "ci")
    await cs.create_org(Organization(name="org01", visibility="private", creator_user_id=u1.id))
    await cs.add_org_member("org01", "user02", "member")
    await cs.create_project_group(ProjectGroup(name="group01", parent=Parent("projectgroup", "org/org01"),
                                               visibility="public"))
    p = await cs.create_project(Project(
        name="project01", parent=Parent("projectgroup", "org/org01/group01"), visibility="public",
        remote_repository_config_type="remotesource", remote_source_id=rs.id,
        linked_account_id=next(iter(u1.linked_accounts)), repository_id="3", repository_path="user01/repo"))
    await cs.create_secret("projectgroup", "org/org01", Secret(name="creds", type="internal", data={"pw": "x"}))
    await cs.create_variable("project", p.project.id, Variable(name="PW", values=[VariableValue("creds", "pw")]))
    return {"token": tok.token, "project": p}


def entries(exported: bytes) -> list[dict[str, Any]]:
    docs = [json.loads(line) for line in exported.splitlines() if line.strip()]
    return [d for d in docs if "data_type" in d]


async def export(cs: ConfigstoreClient) -> bytes:
    return b"".join([c async for c in cs.export()])


async def set_mode(inst: Instance, maintenance: bool) -> None:
    await wait_for(lambda: inst.role.maintenance == maintenance and (maintenance or inst.role.actions is not None), 10)


async def test_export_import_into_an_empty_installation(installation: Installation) -> None:
    src = await installation.start()
    made = await populate(src.c)
    exported = await export(src.c)
    kinds = sorted({e["data_type"] for e in entries(exported)})
    assert kinds == sorted(["user", "org", "orgmember", "projectgroup", "project", "remotesource", "secret", "variable"])

    empty = Installation(installation.kind, installation.tmp / "empty", installation.request)
    try:
        dst = await empty.start()
        assert await dst.c.list_users() == []
        # import only in maintenance mode
        with pytest.raises(BadRequest, match="not in maintenance mode"):
            await dst.c.import_(exported)
        await dst.c.set_maintenance(True)
        with pytest.raises(BadRequest, match="already enabled"):
            await dst.c.set_maintenance(True)
        await set_mode(dst, True)
        # only maintenance, export and import are served
        with pytest.raises(Unavailable, match="maintenance"):
            await dst.c.list_users()
        assert (await dst.c.json("GET", "/version"))["version"]
        assert await dst.c.import_(exported) == len(entries(exported))
        await dst.c.set_maintenance(False)
        with pytest.raises(BadRequest, match="already disabled"):
            await dst.c.set_maintenance(False)
        await set_mode(dst, False)

        # every object is back, with the same ids and data
        async def same_export() -> bool:
            return sorted(map(json.dumps, entries(await export(dst.c)))) == sorted(map(json.dumps, entries(exported)))

        await wait_for(same_export, 15)
        assert (await dst.c.get_user_by_token(made["token"])).name == "user01"
        p = await dst.c.get_project("org/org01/group01/project01")
        assert p.project == made["project"].project and p.global_visibility == "private"
        assert [m.user.name for m in await dst.c.get_org_members("org01")] == ["user01", "user02"]
        [v] = await dst.c.get_variables("project", p.project.id)
        assert v.variable.name == "PW"
        assert [s.secret.data for s in await dst.c.get_secrets("project", p.project.id, tree=True)] == [{"pw": "x"}]
        # and the installation goes on from there
        with pytest.raises(BadRequest, match="already exists"):
            await dst.c.create_user(CreateUserRequest("user02"))
        await dst.c.create_user(CreateUserRequest("user03"))
    finally:
        await empty.close()


async def test_import_replaces_existing_objects_and_rejects_garbage(installation: Installation) -> None:
    inst = await installation.start()
    await inst.c.create_user(CreateUserRequest("keep"))
    exported = await export(inst.c)
    await inst.c.create_user(CreateUserRequest("gone"))
    await inst.c.set_maintenance(True)
    await set_mode(inst, True)
    # export works in maintenance mode too
    assert b'"data_type":"user"' in await export(inst.c)
    with pytest.raises(BadRequest):
        await inst.c.import_(b"this is not an export\n")
    await inst.c.import_(exported)
    await inst.c.set_maintenance(False)
    await set_mode(inst, False)

    async def only_keep() -> bool:
        return [u.name for u in await inst.c.list_users(asc=True)] == ["keep"]

    await wait_for(only_keep, 15)
    with pytest.raises(NotExist):
        await inst.c.get_user("gone")


async def test_maintenance_is_seen_by_every_instance(distributed: Installation) -> None:
    a = await distributed.start()
    b = await distributed.start()
    await a.c.create_user(CreateUserRequest("user01"))
    await a.c.set_maintenance(True)
    await set_mode(a, True)
    await set_mode(b, True)
    for inst in (a, b):
        with pytest.raises(Unavailable, match="maintenance"):
            await inst.c.get_user("user01")
    assert b'"data_type":"user"' in await export(b.c)
    await b.c.set_maintenance(False)
    await set_mode(a, False)
    await set_mode(b, False)
    for inst in (a, b):
        assert (await inst.c.get_user("user01")).name == "user01"
